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
        func heartbeatsReceived() async -> Double {
            guard let reply = try? await client.send(.GET, "/metrics") else { return 0 }
            let line = String(decoding: reply.body, as: UTF8.self).split(separator: "\n")
                .first { $0.hasPrefix("baton_egress_heartbeats_total ") }
            return line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        }
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        var phase: String?
        var received = 0.0
        while (phase != "Ready" || received < 5) && ContinuousClock.now < deadline {
            received = await heartbeatsReceived()
            phase = (try? await client.get(.egressTunnel, name: "node1", namespace: nil))?.status?["phase"]?.stringValue
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(await heartbeatsReceived() >= 5, "the agent heartbeats")
        #expect(phase == "Ready")
        let node = try await client.get(.node, name: "node1", namespace: nil)
        #expect(node.metadata.labels == ["egress": "true", "zone": "a"])
        #expect(node.status?["addresses"]?.arrayValue?.first?["address"] == "10.0.0.11")
        let tunnel = try await client.get(.egressTunnel, name: "node1", namespace: nil)
        #expect(tunnel.status?["tunnel"]?["parent"]?["ipv4"] == "10.0.0.11")
        // The controller shows the agent's reported time once the tunnel is Ready.
        #expect(tunnel.status?["lastHeartbeatTime"]?.stringValue.flatMap(Timestamp.parse) != nil)
    }

    @Test func agentRefusesAnUnknownDataplane() throws {
        let r = try BatonBinary.run(["agent", "--node", "n1", "--dataplane", "ebpf"])
        #expect(r.status != 0)
        #expect(r.err.contains("--dataplane must be linux or none"))
    }
}
