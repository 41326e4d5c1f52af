import BatonAPI
@testable import BatonAgent
import BatonClient
import Foundation
import Logging
import Testing

/// How each node's agent writes its StaticRoute status: a merge patch of its own entry only.
@Suite(.serialized, .enabled(if: BatonBinary.path != nil, "baton binary not built: run `swift build` before `swift test`"))
struct StaticRouteStatusTests: EgressProcessSuite {
    /// A server holding StaticRoute `primary`, and a client with node1's token.
    func serverWithRoute(_ dir: String) async throws -> (ServerProcess, BatonClient) {
        let server = try await ServerProcess(dataDir: dir)
        try """
            apiVersion: networking.digitalocean.com/v1
            kind: StaticRoute
            metadata:
              name: primary
            spec:
              destinations: ["34.160.111.145"]
              gateway: "10.116.0.4"
            """.write(toFile: dir + "/sr.yaml", atomically: true, encoding: .utf8)
        #expect(try BatonBinary.run(["apply", "-f", dir + "/sr.yaml"], env: server.env).status == 0)
        let token = try BatonBinary.run(["token", "create", "node1"], env: server.env).out.trimmingCharacters(in: .whitespacesAndNewlines)
        return (server, BatonClient(server: server.url, token: token))
    }

    @Test func aNodeTokenWritesOnlyItsOwnEntryOfAStaticRoutesStatus() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (server, node1) = try await serverWithRoute(dir)
        defer { server.kill() }
        let entry = StaticRouteStatus.NodeRoute(gateway: "10.116.0.4", gateways: ["10.116.0.4"], phase: "Ready",
                                                health: [.init(address: "10.116.0.4", state: "Healthy")])
        _ = try await node1.mergeStatus(.staticRoute, name: "primary", namespace: nil, status: StaticRouteStatusReporter.patch(node: "node1", entry))
        for status: JSONValue in [
            ["nodes": ["node2": ["phase": "Ready"]]],
            ["nodes": .null],
            ["create_fn": .array([])],
        ] {
            await #expect {
                _ = try await node1.mergeStatus(.staticRoute, name: "primary", namespace: nil, status: status)
            } throws: { ($0 as? APIError)?.code == 403 }
        }
        // The spec is not the node's either.
        var object = try await node1.get(.staticRoute, name: "primary", namespace: nil)
        object.body["spec"]?["gateway"] = "10.116.0.12"
        await #expect { _ = try await node1.update(object) } throws: { ($0 as? APIError)?.code == 403 }

        let stored = try await server.client.get(.staticRoute, name: "primary", namespace: nil)
        #expect(stored.decodeStatus(StaticRouteStatus.self)?.nodes == ["node1": entry])
        let table = try BatonBinary.run(["get", "sr", "-o", "wide"], env: server.env).out
        #expect(table.contains("IN USE") && table.contains("10.116.0.4   10.116.0.4   1/1"), "\(table)")
    }

    /// The agent's reporter, with the node's token: its entry lands in the StaticRoute's status,
    /// and a switch's Event lands in `default`, naming the route, the node and the reason.
    @Test func theReporterWritesItsEntryAndItsEventsWithTheNodesToken() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (server, node1) = try await serverWithRoute(dir)
        defer { server.kill() }
        let reporter = StaticRouteStatusReporter(client: node1, node: "node1", logger: Logger(label: "test"))
        let entry = StaticRouteStatus.NodeRoute(gateway: "10.116.0.12", phase: "Ready")
        reporter.set("primary", entry)
        reporter.event(.init(name: "primary", uid: nil, reason: "GatewaySwitched", message: "10.116.0.4 -> 10.116.0.12", type: "Normal"))
        reporter.finish()
        await reporter.run()

        let stored = try await server.client.get(.staticRoute, name: "primary", namespace: nil)
        #expect(stored.decodeStatus(StaticRouteStatus.self)?.nodes == ["node1": entry])
        let events = try await server.client.list(.event, namespace: "default").items
        let switched = try #require(events.first { $0.body["reason"]?.stringValue == "GatewaySwitched" })
        #expect(switched.body["involvedObject"]?["kind"]?.stringValue == "StaticRoute")
        #expect(switched.body["involvedObject"]?["name"]?.stringValue == "primary")
        #expect(switched.body["message"]?.stringValue == "10.116.0.4 -> 10.116.0.12")
        #expect(switched.body["source"]?["host"]?.stringValue == "node1")
    }

    @Test func anEntryReplacesTheStoredOneAndNilRemovesIt() {
        let patch = StaticRouteStatusReporter.patch(node: "node1", .init(gateway: "10.116.0.12", phase: "Ready"))
        let stored: JSONValue = ["nodes": ["node1": ["gateway": "10.116.0.4", "phase": "NotReady", "message": "no gateway answers",
                                                     "lastSwitchTime": "2026-01-01T00:00:00Z"], "node2": ["phase": "Ready"]]]
        let merged = JSONValue.mergePatch(stored, patch)
        #expect(merged["nodes"]?["node1"] == ["gateway": "10.116.0.12", "phase": "Ready"])
        #expect(merged["nodes"]?["node2"] == ["phase": "Ready"])
        #expect(StaticRouteStatusReporter.patch(node: "node1", nil) == ["nodes": ["node1": .null]])
    }
}
