import BatonAPI
@testable import BatonAgent
import BatonClient
import Foundation
import Testing

/// How each node's agent writes its StaticRoute status: a merge patch of its own entry only.
@Suite(.serialized, .enabled(if: BatonBinary.path != nil, "baton binary not built: run `swift build` before `swift test`"))
struct StaticRouteStatusTests: EgressProcessSuite {
    @Test func aNodeTokenWritesOnlyItsOwnEntryOfAStaticRoutesStatus() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ServerProcess(dataDir: dir)
        defer { server.kill() }
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
        let node1 = BatonClient(server: server.url, token: token)
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
