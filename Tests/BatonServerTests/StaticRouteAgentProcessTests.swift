import BatonAPI
@testable import BatonAgent
import BatonClient
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `baton agent --dataplane none` against a real server, without root: each agent decides the
/// routes of the StaticRoutes selecting its node as the Linux data plane would, journals them
/// (`staticroute-replace|delete`), reports them in `status.nodes.NODE`, and follows edits,
/// selectors, conflicts and deletes. Gateways are not probed here (no network is touched).
@Suite(.serialized, .enabled(if: BatonBinary.path != nil, "baton binary not built: run `swift build` before `swift test`"))
struct StaticRouteAgentProcessTests: EgressProcessSuite {
    typealias Agent = IPFailoverAgentProcessTests.Agent

    static func journal(_ agent: Agent) -> [String] {
        let text = (try? String(contentsOfFile: agent.journal, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map { $0.split(separator: " ", maxSplits: 1).last.map(String.init) ?? "" }
            .filter { $0.hasPrefix("staticroute-") }
    }

    func entries(_ client: BatonClient, _ name: String) async throws -> [String: StaticRouteStatus.NodeRoute] {
        try await client.get(.staticRoute, name: name, namespace: nil).decodeStatus(StaticRouteStatus.self)?.nodes ?? [:]
    }

    @Test func agentsRouteJournalAndReportEveryStaticRouteSelectingTheirNode() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ServerProcess(dataDir: dir)
        defer { server.kill() }
        let client = server.client
        let manifest = dir + "/sr.yaml"
        func apply(_ yaml: String) throws {
            try yaml.write(toFile: manifest, atomically: true, encoding: .utf8)
            let r = try BatonBinary.run(["apply", "-f", manifest], env: server.env)
            #expect(r.status == 0, "\(r.err)")
        }
        func seed(_ name: String, _ gateway: String, selector: String = "") -> String {
            """
            apiVersion: networking.digitalocean.com/v1
            kind: StaticRoute
            metadata:
              name: \(name)
            spec:
              destinations: ["34.160.111.145"]
              gateway: "\(gateway)"
            \(selector)
            """
        }
        let node1 = try Agent(1, labels: "sr=yes", server: server, dir: dir)
        let node2 = try Agent(2, labels: "sr=no", server: server, dir: dir)
        defer { node1.stop(); node2.stop() }

        // The seed's primary.yaml: both nodes route, and report Ready through the gateway.
        try apply(seed("primary", "10.116.0.4"))
        for agent in [node1, node2] {
            _ = try await waitFor("the route journalled") { Self.journal(agent) == ["staticroute-replace 34.160.111.145/32 via 10.116.0.4"] ? true : nil }
        }
        _ = try await waitFor("both nodes Ready") { () -> Bool? in
            let e = try await entries(client, "primary")
            return e.count == 2 && e.values.allSatisfy({ $0.phase == "Ready" && $0.gateway == "10.116.0.4" }) ? true : nil
        }
        // Not probed with --dataplane none: every gateway's health is Unknown.
        let health = try await entries(client, "primary")["node1"]?.health
        #expect(health?.map { [$0.address, $0.state] } == [["10.116.0.4", "Unknown"]])

        // spec.gateway edited in place: one replace per node, and an event naming each node.
        try apply(seed("primary", "10.116.0.12"))
        for agent in [node1, node2] {
            _ = try await waitFor("the edit journalled") { Self.journal(agent).last == "staticroute-replace 34.160.111.145/32 via 10.116.0.12" ? true : nil }
            #expect(!Self.journal(agent).contains { $0.hasPrefix("staticroute-delete") })
        }
        _ = try await waitFor("an event per node") { () -> Bool? in
            let events = try BatonBinary.run(["events"], env: server.env).out
            return (1...2).allSatisfy { events.contains("node node\($0): gateway 10.116.0.4 -> 10.116.0.12: the StaticRoute's gateways changed") } ? true : nil
        }

        // A nodeSelector: node2 drops the route and its status entry.
        try apply(seed("primary", "10.116.0.12", selector: "  nodeSelector: {matchLabels: {sr: \"yes\"}}"))
        _ = try await waitFor("node2's route removed") { Self.journal(node2).last == "staticroute-delete 34.160.111.145/32" ? true : nil }
        _ = try await waitFor("node2's entry removed") { try await entries(client, "primary").keys.sorted() == ["node1"] ? true : nil }

        // A rival for the same destination at a higher priority value: it waits, and both say so.
        try apply("""
            apiVersion: networking.digitalocean.com/v1
            kind: StaticRoute
            metadata:
              name: rival
            spec:
              destinations: ["34.160.111.145"]
              gateways: [{address: "10.116.0.5", priority: 3}]
            """)
        let rival = try await waitFor("the rival's entries") { () -> [String: StaticRouteStatus.NodeRoute]? in
            let e = try await entries(client, "rival")
            return e.count == 2 ? e : nil
        }
        #expect(rival["node1"]?.phase == "NotReady")
        #expect(rival["node1"]?.conflicts == [.init(destination: "34.160.111.145/32", staticRoute: "primary", winner: false)])
        #expect(rival["node2"]?.phase == "Ready" && rival["node2"]?.gateway == "10.116.0.5")
        #expect(Self.journal(node1).last == "staticroute-replace 34.160.111.145/32 via 10.116.0.12")
        _ = try await waitFor("the primary's conflict on node1") { () -> Bool? in
            try await entries(client, "primary")["node1"]?.conflicts?.first?.winner == true ? true : nil
        }

        // The primary goes: the rival takes node1 over; then it goes too.
        #expect(try BatonBinary.run(["delete", "sr", "primary"], env: server.env).status == 0)
        _ = try await waitFor("node1 through the rival") { Self.journal(node1).last == "staticroute-replace 34.160.111.145/32 via 10.116.0.5" ? true : nil }
        #expect(try BatonBinary.run(["delete", "sr", "rival"], env: server.env).status == 0)
        for agent in [node1, node2] {
            _ = try await waitFor("the rival's route removed") { Self.journal(agent).last == "staticroute-delete 34.160.111.145/32" ? true : nil }
        }
    }
}
