import BatonAPI
import BatonClient
import Foundation
import Testing

/// `baton agent --dataplane none` against a real server: registration and heartbeats.
@Suite(.serialized, .enabled(if: BatonBinary.path != nil, "baton binary not built: run `swift build` before `swift test`"))
struct AgentProcessTests {
    @Test func agentRegistersItsNodeAndTunnelAndHeartbeatsWithItsOwnToken() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ServerProcess(dataDir: dir)
        defer { server.kill() }
        let token = try BatonBinary.run(["token", "create", "node1"], env: server.env).out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.count == 64)
        // An operator's label set before the agent starts survives registration.
        _ = try await server.client.create(Resource(apiVersion: "baton.io/v1", kind: "Node",
                                                    metadata: ObjectMeta(name: "node1", labels: ["egress": "true"]), body: ["spec": [:]]))
        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: BatonBinary.path!)
        agent.arguments = ["agent", "--server", server.url, "--token", token, "--node", "node1", "--labels", "zone=a",
                           "--address", "10.0.0.11", "--dataplane", "none", "--log-level", "warning"]
        agent.standardOutput = FileHandle.nullDevice
        agent.standardError = FileHandle.nullDevice
        try agent.run()
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL); agent.waitUntilExit() } }

        let client = server.client
        var beats: Set<String> = []
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while beats.count < 3 && ContinuousClock.now < deadline {
            if let t = try? await client.get(.egressTunnel, name: "node1", namespace: nil),
               let beat = t.status?["lastHeartbeatTime"]?.stringValue {
                beats.insert(beat)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(beats.count >= 3, "the agent heartbeats (saw \(beats.count) distinct lastHeartbeatTime values)")
        let node = try await client.get(.node, name: "node1", namespace: nil)
        #expect(node.metadata.labels == ["egress": "true", "zone": "a"])
        #expect(node.status?["addresses"]?.arrayValue?.first?["address"] == "10.0.0.11")
        let tunnel = try await client.get(.egressTunnel, name: "node1", namespace: nil)
        #expect(tunnel.status?["tunnel"]?["parent"]?["ipv4"] == "10.0.0.11")
    }

    @Test func agentRefusesAnUnknownDataplane() throws {
        let r = try BatonBinary.run(["agent", "--node", "n1", "--dataplane", "ebpf"])
        #expect(r.status != 0)
        #expect(r.err.contains("--dataplane must be linux or none"))
    }
}
