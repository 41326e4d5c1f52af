import BatonAPI
@testable import BatonAgent
import BatonClient
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The agent's managed mode without root: `baton agent --dataplane none` against a real server
/// decides what it would run for each IPFailover selecting its node, records it in its journal
/// and reports it in `status.nodes`, and follows edits, relabelling and deletion.
@Suite(.serialized, .enabled(if: BatonBinary.path != nil, "baton binary not built: run `swift build` before `swift test`"))
struct IPFailoverAgentProcessTests: EgressProcessSuite {
    static func ipFailover(_ name: String, _ spec: String) -> String {
        """
        apiVersion: baton.io/v1
        kind: IPFailover
        metadata:
          name: \(name)
        spec:
        \(spec.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        """
    }

    /// `baton agent --dataplane none` for node `i` (address 10.0.0.(10+i)) with its own token.
    final class Agent: @unchecked Sendable {
        let process = Process()
        let journal: String
        let log: String

        init(_ i: Int, labels: String, server: ServerProcess, dir: String) throws {
            let token = try BatonBinary.run(["token", "create", "node\(i)"], env: server.env).out
                .trimmingCharacters(in: .whitespacesAndNewlines)
            journal = "\(dir)/node\(i).journal"
            log = "\(dir)/agent\(i).log"
            FileManager.default.createFile(atPath: log, contents: nil)
            process.executableURL = URL(fileURLWithPath: BatonBinary.path!)
            process.arguments = ["agent", "--server", server.url, "--token", token, "--node", "node\(i)", "--labels", labels,
                                 "--address", "10.0.0.\(10 + i)", "--dataplane", "none", "--dataplane-log", journal]
            let handle = FileHandle(forWritingAtPath: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
        }

        /// The journal's IPFailover lines, `ipfailover-start NAME INSTANCES` / `ipfailover-stop NAME`, without the stamp.
        var lines: [String] {
            let text = (try? String(contentsOfFile: journal, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").map { $0.split(separator: " ", maxSplits: 1).last.map(String.init) ?? "" }
                .filter { $0.hasPrefix("ipfailover-") }
        }

        func stop(_ signal: Int32 = SIGTERM) {
            guard process.isRunning else { return }
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
        }

        deinit { stop(SIGKILL) }
    }

    /// This node's entry of IPFailover `name`'s status, or nil.
    func entry(_ client: BatonClient, _ name: String, node: String) async throws -> IPFailoverStatus.NodeState? {
        let object = try await client.get(.ipFailover, name: name, namespace: nil)
        return object.decodeStatus(IPFailoverStatus.self)?.nodes?[node]
    }

    @Test func anAgentRunsTheIPFailoversSelectingItsNodeAndFollowsEditsLabelsAndDeletes() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ServerProcess(dataDir: dir)
        defer { server.kill() }
        let client = server.client
        let manifest = dir + "/ipf.yaml"
        func apply(_ yaml: String) throws {
            try yaml.write(toFile: manifest, atomically: true, encoding: .utf8)
            let r = try BatonBinary.run(["apply", "-f", manifest], env: server.env)
            #expect(r.status == 0, "\(r.err)")
        }
        try apply(Self.ipFailover("web", """
            virtualIPs: 10.0.0.50-51
            monitorPort: 0
            nodeSelector:
              matchLabels:
                ipfailover: web
            """) + "\n---\n" + Self.ipFailover("db", """
            virtualIPs: 10.0.0.60
            vrrpIDOffset: 20
            nodeSelector:
              matchLabels:
                ipfailover: db
            """))

        // A stale entry, as a crashed agent of node1 would have left it in an IPFailover that no
        // longer selects node1: the agent removes it once it has read everything.
        _ = try await client.mergeStatus(.ipFailover, name: "db", namespace: nil,
                                         status: ["nodes": ["node1": ["instances": [["vrid": 21, "state": "master"]]]]])

        let node1 = try Agent(1, labels: "ipfailover=web", server: server, dir: dir)
        let node2 = try Agent(2, labels: "ipfailover=web", server: server, dir: dir)

        // Both nodes run web, as the ipfailover pod would on them (2 replicas): node2 (.12,
        // slot 12) prefers every instance, 255 − 12 then 12 + 1; node1 (.11) prefers instance 2.
        let web2 = try await waitFor("node2's entry of web") { try await entry(client, "web", node: "node2") }
        #expect(web2.instances == [
            .init(name: "web_VIP_1", vrid: 11, state: "init", priority: 243),
            .init(name: "web_VIP_2", vrid: 12, state: "init", priority: 13),
        ])
        #expect(web2.observedGeneration == 1 && web2.message == nil)
        let web1 = try await waitFor("node1's entry of web") { try await entry(client, "web", node: "node1") }
        #expect(web1.instances?.map(\.vrid) == [11, 12])
        #expect(web1.instances?[1].priority == 244)
        _ = try await waitFor("node1's journal") { node1.lines.isEmpty ? nil : true }
        #expect(node1.lines.count == 1 && node1.lines[0].hasPrefix("ipfailover-start web web_VIP_1:11:"))
        #expect(node1.lines[0].hasSuffix(":10.0.0.50;web_VIP_2:12:244:10.0.0.51"))
        // db selects no node: nobody runs it, and node1's stale entry is gone.
        _ = try await waitFor("node1's stale entry of db removed") { try await entry(client, "db", node: "node1") == nil ? true : nil }
        #expect(try await client.get(.ipFailover, name: "db", namespace: nil).decodeStatus(IPFailoverStatus.self)?.nodes?.isEmpty ?? true)
        #expect(!node1.lines.contains { $0.contains(" db") } && !node2.lines.contains { $0.contains(" db") })

        // An edit restarts web on both nodes with the new VRIDs, without restarting the agents.
        try apply(Self.ipFailover("web", """
            virtualIPs: 10.0.0.50-51
            monitorPort: 0
            vrrpIDOffset: 30
            nodeSelector:
              matchLabels:
                ipfailover: web
            """))
        for (node, agent) in [("node1", node1), ("node2", node2)] {
            let edited = try await waitFor("\(node) running web's edit") { () -> IPFailoverStatus.NodeState? in
                let e = try await entry(client, "web", node: node)
                return e?.observedGeneration == 2 ? e : nil
            }
            #expect(edited.instances?.map(\.vrid) == [31, 32])
            _ = try await waitFor("\(node)'s journal of the restart") { agent.lines.count >= 3 ? true : nil }
            #expect(Array(agent.lines.prefix(3).map { $0.split(separator: " ").prefix(2).joined(separator: " ") })
                    == ["ipfailover-start web", "ipfailover-stop web", "ipfailover-start web"])
            #expect(agent.lines[2].contains("web_VIP_1:31:") && agent.lines[2].contains("web_VIP_2:32:"))
        }
        #expect(node1.process.isRunning && node2.process.isRunning)

        // The operator relabels node1 from web to db: node1 leaves web and runs db.
        let relabel = try BatonBinary.run(["label", "node", "node1", "ipfailover=db", "--overwrite"], env: server.env)
        #expect(relabel.status == 0, "\(relabel.err)")
        let db1 = try await waitFor("node1's entry of db") { try await entry(client, "db", node: "node1") }
        #expect(db1.instances?.map(\.name) == ["db_VIP_1"] && db1.instances?.map(\.vrid) == [21])
        _ = try await waitFor("node1's entry of web removed") { try await entry(client, "web", node: "node1") == nil ? true : nil }
        #expect(node1.lines.suffix(2) == ["ipfailover-stop web", node1.lines.last!])
        #expect(node1.lines.last!.hasPrefix("ipfailover-start db db_VIP_1:21:"))

        // Deleted: node2 stops web.
        let deleted = try BatonBinary.run(["delete", "ipf", "web"], env: server.env)
        #expect(deleted.status == 0, "\(deleted.err)")
        _ = try await waitFor("node2 stopping web") { node2.lines.last == "ipfailover-stop web" ? true : nil }
        #expect(node2.lines.count == 4)

        // A graceful stop: the agent stops db and removes its entry.
        node1.stop(SIGTERM)
        #expect(node1.process.terminationStatus == 0)
        #expect(node1.lines.last == "ipfailover-stop db")
        #expect(try await entry(client, "db", node: "node1") == nil)
        node2.stop(SIGTERM)
    }

    /// The agent's write path: a node's token may merge-patch its own entry of an IPFailover's
    /// status, and nothing else of it.
    @Test func aNodeTokenWritesOnlyItsOwnEntryOfAnIPFailoversStatus() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ServerProcess(dataDir: dir)
        defer { server.kill() }
        try Self.ipFailover("web", "virtualIPs: 10.0.0.50").write(toFile: dir + "/ipf.yaml", atomically: true, encoding: .utf8)
        #expect(try BatonBinary.run(["apply", "-f", dir + "/ipf.yaml"], env: server.env).status == 0)
        let token = try BatonBinary.run(["token", "create", "node1"], env: server.env).out.trimmingCharacters(in: .whitespacesAndNewlines)
        let node1 = BatonClient(server: server.url, token: token)
        let own: JSONValue = ["nodes": ["node1": ["instances": [["vrid": 11, "state": "backup"]]]]]
        _ = try await node1.mergeStatus(.ipFailover, name: "web", namespace: nil, status: own)
        for status: JSONValue in [
            ["nodes": ["node2": ["instances": [["vrid": 11, "state": "master"]]]]],
            ["nodes": .null],
            ["nodes": ["node1": .null, "node2": .null]],
        ] {
            await #expect {
                _ = try await node1.mergeStatus(.ipFailover, name: "web", namespace: nil, status: status)
            } throws: { ($0 as? APIError)?.code == 403 }
        }
        let stored = try await server.client.get(.ipFailover, name: "web", namespace: nil).decodeStatus(IPFailoverStatus.self)
        #expect(stored?.nodes?.keys.sorted() == ["node1"])
        #expect(stored?.nodes?["node1"]?.instances?.first?.state == "backup")
    }
}

/// The status write the agent sends: its own entry, whole (absent fields as null, so the merge
/// patch replaces the stored entry), or null to remove it.
@Suite struct IPFailoverStatusPatchTests {
    @Test func anEntryReplacesTheStoredOneAndNilRemovesIt() throws {
        let entry = IPFailoverStatus.NodeState(observedGeneration: 2, instances: [.init(name: "web_VIP_1", vrid: 11, state: "master", priority: 243)])
        let patch = IPFailoverStatusReporter.patch(node: "node1", entry)
        #expect(patch["nodes"]?["node1"]?["message"] == .null)
        #expect(patch["nodes"]?["node1"]?["lastTransitionTime"] == .null)
        #expect(patch["nodes"]?["node1"]?["observedGeneration"] == 2)
        #expect(patch["nodes"]?["node1"]?["instances"]?.arrayValue?.first?["state"] == "master")
        #expect(IPFailoverStatusReporter.patch(node: "node1", nil) == ["nodes": ["node1": .null]])
        // Merged onto an entry that had a message, the message goes.
        let stored: JSONValue = ["nodes": ["node1": ["message": "the speaker failed", "observedGeneration": 1], "node2": ["observedGeneration": 1]]]
        let merged = JSONValue.mergePatch(stored, patch)
        #expect(merged["nodes"]?["node1"]?["message"] == nil)
        #expect(merged["nodes"]?["node2"]?["observedGeneration"] == 1)
    }
}
