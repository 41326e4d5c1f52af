import BatonAPI
import BatonServer
import BatonStore
import BatonTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes
import Testing

let seedGateway = """
apiVersion: egressgateway.spidernet.io/v1beta1
kind: EgressGateway
metadata:
  name: egw1
spec:
  clusterDefault: true
  ippools:
    ipv4:
      - 10.6.1.55
      - 10.6.1.56
    ipv4DefaultEIP: 10.6.1.56
    ipv6:
      - fd00::55
      - fd00::56
    ipv6DefaultEIP: fd00::55
  nodeSelector:
    selector:
      matchLabels:
        egress: "true"
status:
  nodeList:
    - name: node1
      status: Ready
"""

@Suite struct APITests {
    @Test(arguments: [TestingSetup.router, .live])
    func applyCreatesThenReportsUnchangedAndDropsStatus(setup: TestingSetup) async throws {
        let h = try Harness()
        try await h.app.test(setup) { client in
            let first = try await client.send(.patch, path(.egressGateway, "egw1"), yaml: seedGateway)
            #expect(first.status == .created)
            #expect(first.headers[HTTPField.Name("X-Baton-Apply-Result")!] == "created")
            let object = try #require(first.json)
            #expect(object["status"] == nil, "status in an applied manifest is ignored")
            #expect(object["metadata"]?["resourceVersion"]?.stringValue != nil)
            #expect(object["metadata"]?["generation"]?.intValue == 1)
            let again = try await client.send(.patch, path(.egressGateway, "egw1"), yaml: seedGateway)
            #expect(again.status == .ok)
            #expect(again.headers[HTTPField.Name("X-Baton-Apply-Result")!] == "unchanged")
            #expect(again.json?["metadata"]?["resourceVersion"] == object["metadata"]?["resourceVersion"])
            let got = try await client.send(.get, path(.egressGateway, "egw1"))
            #expect(got.status == .ok)
            let parsed = try Manifest.parseDocuments(seedGateway)[0]
            #expect(got.json?["spec"] == parsed["spec"])
        }
    }

    @Test func everySeedManifestAppliesAndReadsBackTheSameSpec() async throws {
        let h = try Harness()
        let documents = try SeedManifests.all().flatMap { try Manifest.parseDocuments($0.yaml) }
        #expect(documents.count >= 8, "the seeds hold at least 8 manifests, found \(documents.count)")
        try await h.app.test(.router) { client in
            for doc in documents {
                let kind = try #require(KindRegistry.find(apiVersion: doc["apiVersion"]?.stringValue ?? "", kind: doc["kind"]?.stringValue ?? ""))
                let name = try #require(doc["metadata"]?["name"]?.stringValue)
                let ns = kind.namespaced ? (doc["metadata"]?["namespace"]?.stringValue ?? "default") : nil
                let applied = try await client.send(.patch, path(kind, name, namespace: ns), json: doc)
                #expect(applied.status.code < 300, "\(kind.kind) \(name): \(applied.text)")
                let got = try await client.send(.get, path(kind, name, namespace: ns))
                var whole = doc
                _ = kind.normalize(&whole)
                #expect(got.json?["spec"] == whole["spec"], "\(kind.kind) \(name) reads back with the same spec")
            }
        }
    }

    @Test func refusedObjectIs422WithFieldCausesAndNothingIsStored() async throws {
        let h = try Harness()
        let bad = seedGateway.replacingOccurrences(of: "ipv4DefaultEIP: 10.6.1.56", with: "ipv4DefaultEIP: 10.6.1.99")
        try await h.app.test(.router) { client in
            let before = try await h.store.currentRevision()
            let r = try await client.send(.post, path(.egressGateway), yaml: bad)
            #expect(r.status.code == 422)
            let status = try #require(r.json)
            #expect(status["kind"] == "Status")
            #expect(status["reason"] == "Invalid")
            let causes = status["details"]?["causes"]?.arrayValue ?? []
            #expect(causes.contains { $0["field"] == "spec.ippools.ipv4DefaultEIP" })
            #expect(status["message"]?.stringValue?.contains("is not covered by IPPools") == true)
            #expect(try await h.store.currentRevision() == before)
            let get = try await client.send(.get, path(.egressGateway, "egw1"))
            #expect(get.status == .notFound)
        }
    }

    @Test func unknownFieldIsRefusedWithItsPath() async throws {
        let h = try Harness()
        let bad = seedGateway.replacingOccurrences(of: "    ipv4DefaultEIP:", with: "    ipv4DefaultEIPs:")
        try await h.app.test(.router) { client in
            let r = try await client.send(.post, path(.egressGateway), yaml: bad)
            #expect(r.status.code == 422)
            #expect(r.text.contains("spec.ippools.ipv4DefaultEIPs"))
        }
    }

    @Test func staleResourceVersionIs409() async throws {
        let h = try Harness()
        try await h.app.test(.router) { client in
            let created = try #require(try await client.send(.post, path(.egressGateway), yaml: seedGateway).json)
            var stale = created
            stale["spec"]?["clusterDefault"] = false
            let first = try await client.send(.put, path(.egressGateway, "egw1"), json: stale)
            #expect(first.status == .ok)
            #expect(first.json?["metadata"]?["generation"]?.intValue == 2)
            let second = try await client.send(.put, path(.egressGateway, "egw1"), json: stale)
            #expect(second.status == .conflict)
        }
    }

    @Test func authentication401AndNodeRights403() async throws {
        let h = try Harness()
        let token = try await h.api.tokens.issueNodeToken(node: "node1")
        let node1: JSONValue = ["apiVersion": "baton.io/v1", "kind": "Node", "metadata": ["name": "node1"]]
        let node2: JSONValue = ["apiVersion": "baton.io/v1", "kind": "Node", "metadata": ["name": "node2"]]
        try await h.app.test(.router) { client in
            #expect(try await client.send(.get, path(.node), token: nil).status == .unauthorized)
            #expect(try await client.send(.get, path(.node), token: "wrong").status == .unauthorized)
            #expect(try await client.send(.patch, path(.node, "node1"), token: token, json: node1).status == .created)
            let other = try await client.send(.patch, path(.node, "node2"), token: token, json: node2)
            #expect(other.status == .forbidden)
            #expect(other.text.contains("node \\\"node1\\\""))
            #expect(try await client.send(.post, path(.egressGateway), token: token, yaml: seedGateway).status == .forbidden)
            #expect(try await client.send(.get, path(.egressGateway), token: token).status == .ok)
            let tunnel: JSONValue = ["apiVersion": "egressgateway.spidernet.io/v1beta1", "kind": "EgressTunnel", "metadata": ["name": "node1"]]
            #expect(try await client.send(.patch, path(.egressTunnel, "node1"), token: token, json: tunnel).status == .created)
            #expect(try await client.send(.post, "/apis/baton.io/v1/nodes/node2/token", token: token).status == .forbidden)
            // Health, metrics and the OpenAPI document need no token.
            #expect(try await client.send(.get, "/healthz", token: nil).status == .ok)
            #expect(try await client.send(.get, "/readyz", token: nil).status == .ok)
            #expect(try await client.send(.get, "/metrics", token: nil).status == .ok)
            #expect(try await client.send(.get, "/openapi.json", token: nil).status == .ok)
        }
    }

    @Test func statusSubresourceWritesOnlyStatus() async throws {
        let h = try Harness()
        try await h.app.test(.router) { client in
            let created = try #require(try await client.send(.post, path(.egressGateway), yaml: seedGateway).json)
            var withStatus = created
            withStatus["status"] = ["nodeList": [["name": "node1", "status": "Ready"]]]
            withStatus["spec"]?["clusterDefault"] = false
            let r = try await client.send(.put, path(.egressGateway, "egw1") + "/status", json: withStatus)
            #expect(r.status == .ok, "\(r.text)")
            #expect(r.json?["status"]?["nodeList"]?.arrayValue?.count == 1)
            #expect(r.json?["spec"]?["clusterDefault"] == true, "a status write leaves spec alone")
            #expect(r.json?["metadata"]?["generation"]?.intValue == 1)
        }
    }

    @Test func watchStreamsNewlineDelimitedEventsFromAResourceVersion() async throws {
        let h = try Harness()
        try await h.app.test(.live) { client in
            let created = try #require(try await client.send(.post, path(.egressGateway), yaml: seedGateway).json)
            let rv = try #require(created["metadata"]?["resourceVersion"]?.stringValue)
            var updated = created
            updated["spec"]?["clusterDefault"] = false
            _ = try await client.send(.put, path(.egressGateway, "egw1"), json: updated)
            _ = try await client.send(.delete, path(.egressGateway, "egw1"))
            // From the creation's revision: the update and the delete, then the timeout closes the stream.
            let r = try await client.send(.get, path(.egressGateway) + "?watch=true&resourceVersion=\(rv)&timeoutSeconds=0.5")
            let lines = r.text.split(separator: "\n").compactMap { try? JSONValue.parse(Data($0.utf8)) }
            #expect(lines.map { $0["type"]?.stringValue ?? "" } == ["MODIFIED", "DELETED"])
            #expect(lines.first?["object"]?["spec"]?["clusterDefault"] == false)
        }
    }

    /// An agent watches only the gateways whose nodeList names its node. A gateway that starts
    /// naming it arrives as ADDED, one that stops as DELETED; changes to others are not sent.
    @Test func fieldSelectorWatchReportsObjectsEnteringAndLeavingTheSelection() async throws {
        let h = try Harness()
        try await h.app.test(.live) { client in
            let created = try #require(try await client.send(.post, path(.egressGateway), yaml: seedGateway).json)
            let rv = try #require(created["metadata"]?["resourceVersion"]?.stringValue)
            func setNodes(_ names: [String]) async throws {
                let list: [JSONValue] = names.map { ["name": .string($0), "status": "Ready"] }
                let r = try await client.send(.patch, path(.egressGateway, "egw1") + "/status", json: ["status": ["nodeList": .array(list)]],
                                              contentType: "application/merge-patch+json")
                #expect(r.status == .ok, "\(r.text)")
            }
            try await setNodes(["node2"])            // not node1's: not sent
            try await setNodes(["node1", "node2"])   // enters: ADDED
            try await setNodes(["node1"])            // still node1's: MODIFIED
            try await setNodes(["node3"])            // leaves: DELETED
            try await setNodes(["node2", "node3"])   // not node1's: not sent
            let selector = "status.nodeList%5B%2A%5D.name%3Dnode1"
            let r = try await client.send(.get, path(.egressGateway) + "?watch=true&resourceVersion=\(rv)&timeoutSeconds=0.5&fieldSelector=\(selector)")
            let lines = r.text.split(separator: "\n").compactMap { try? JSONValue.parse(Data($0.utf8)) }
            #expect(lines.map { $0["type"]?.stringValue ?? "" } == ["DELETED", "ADDED", "MODIFIED", "DELETED"])
            // The list with the same selector: nothing names node1 now.
            let list = try await client.send(.get, path(.egressGateway) + "?fieldSelector=\(selector)")
            #expect(list.json?["items"]?.arrayValue?.isEmpty == true)
        }
    }

    @Test func servedOpenAPIDocumentIsTheCommittedOne() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let committed = try JSONValue.parse(try Data(contentsOf: root.appendingPathComponent("openapi.json")))
        #expect(committed == OpenAPIDocument.document, "run `baton openapi > openapi.json` after changing a kind")
        let paths = OpenAPIDocument.document["paths"]?.objectValue ?? [:]
        for kind in KindRegistry.all {
            #expect(paths[kind.collectionPath(namespace: kind.namespaced ? "{namespace}" : nil)] != nil, "\(kind.kind)")
            #expect(OpenAPIDocument.document["components"]?["schemas"]?[kind.kind] != nil)
        }
    }
}

@Suite struct StatusMergePatchTests {
    @Test func mergePatchChangesOnlyTheGivenStatusFields() async throws {
        let h = try Harness()
        let token = try await h.api.tokens.issueNodeToken(node: "node1")
        let tunnel: JSONValue = ["apiVersion": "egressgateway.spidernet.io/v1beta1", "kind": "EgressTunnel", "metadata": ["name": "node1"]]
        try await h.app.test(.router) { client in
            #expect(try await client.send(.patch, path(.egressTunnel, "node1"), token: token, json: tunnel).status == .created)
            let controller: JSONValue = ["status": ["phase": "Ready", "mark": "0x26000001"]]
            let a = try await client.send(.patch, path(.egressTunnel, "node1") + "/status", json: controller, contentType: "application/merge-patch+json")
            #expect(a.status == .ok, "\(a.text)")
            let agent: JSONValue = ["status": ["lastHeartbeatTime": "2026-11-24T00:00:00.100Z"]]
            let b = try await client.send(.patch, path(.egressTunnel, "node1") + "/status", token: token, json: agent, contentType: "application/merge-patch+json")
            #expect(b.status == .ok, "\(b.text)")
            #expect(b.json?["status"]?["phase"] == "Ready")
            #expect(b.json?["status"]?["mark"] == "0x26000001")
            #expect(b.json?["status"]?["lastHeartbeatTime"] == "2026-11-24T00:00:00.100Z")
            let bad: JSONValue = ["status": ["phase": "Sleeping"]]
            let c = try await client.send(.patch, path(.egressTunnel, "node1") + "/status", json: bad, contentType: "application/merge-patch+json")
            #expect(c.status.code == 422)
        }
    }
}

@Suite struct HeartbeatEndpointTests {
    @Test func aNodeHeartbeatsItsOwnTunnelOnly() async throws {
        let h = try Harness()
        let token = try await h.api.tokens.issueNodeToken(node: "node1")
        let tunnel: JSONValue = ["apiVersion": "egressgateway.spidernet.io/v1beta1", "kind": "EgressTunnel", "metadata": ["name": "node1"]]
        let (_, start) = try await h.heartbeats.read(after: nil)
        nonisolated(unsafe) var revision: String?
        try await h.app.test(.router) { client in
            let url = path(.egressTunnel, "node1") + "/heartbeat"
            // No tunnel yet: 404, and nothing is recorded.
            #expect(try await client.send(.post, url, token: token, json: ["time": "2026-11-24T00:00:00Z"]).status == .notFound)
            let created = try await client.send(.patch, path(.egressTunnel, "node1"), token: token, json: tunnel)
            #expect(created.status == .created)
            revision = created.json?["metadata"]?["resourceVersion"]?.stringValue
            let ok = try await client.send(.post, url, token: token, json: ["time": "2026-11-24T00:00:00.100Z"])
            #expect(ok.status == .noContent, "\(ok.text)")
            // Another node's token may not beat for node1.
            let other = try await h.api.tokens.issueNodeToken(node: "node2")
            #expect(try await client.send(.post, url, token: other, json: [:]).status == .forbidden)
            // Bad bodies name the field.
            let badTime = try await client.send(.post, url, token: token, json: ["time": "noon"])
            #expect(badTime.status.code == 422)
            #expect(badTime.json?["details"]?["causes"]?.arrayValue?.first?["field"] == "time")
            let unknown = try await client.send(.post, url, token: token, json: ["counter": 1])
            #expect(unknown.status.code == 422)
            #expect(unknown.json?["details"]?["causes"]?.arrayValue?.first?["field"] == "counter")
            // An empty body is a heartbeat too.
            #expect(try await client.send(.post, url, token: token).status == .noContent)
        }
        // Recorded: the two accepted heartbeats, one record for the node, with the newest time (none).
        let (records, _) = try await h.heartbeats.read(after: start)
        #expect(records == [HeartbeatRecord(node: "node1", agentTime: nil)])
        // The tunnel object itself was not written by the heartbeats.
        #expect(try await h.store.get(kind: "EgressTunnel", namespace: nil, name: "node1").metadata.resourceVersion == revision)

        // Deleted through the API: the very next heartbeat is a 404 (although the tunnel was
        // just seen), so the agent registers again.
        try await h.app.test(.router) { client in
            let url = path(.egressTunnel, "node1") + "/heartbeat"
            let before = try await client.send(.post, url, token: token)
            let deleted = try await client.send(.delete, path(.egressTunnel, "node1"))
            let after = try await client.send(.post, url, token: token)
            #expect(before.status == .noContent)
            #expect(deleted.status == .ok)
            #expect(after.status == .notFound)
        }
    }
}

@Suite struct BatchApplyTests {
    static let policy: JSONValue = [
        "apiVersion": "egressgateway.spidernet.io/v1beta1", "kind": "EgressPolicy",
        "metadata": ["name": "p1", "namespace": "default"],
        "spec": ["egressGatewayName": "egw1", "appliedTo": ["podSubnet": ["10.244.0.0/24"]]],
    ]

    @Test func aPolicyMayNameAGatewayFromTheSameBatch() async throws {
        let h = try Harness()
        let gateway = try Manifest.parseDocuments(seedGateway)[0]
        try await h.app.test(.router) { client in
            let r = try await client.send(.post, "/apply", json: ["items": [gateway, Self.policy]])
            #expect(r.status == .ok, "\(r.text)")
            #expect(r.json?["items"]?.arrayValue?.map { $0["outcome"]?.stringValue ?? "" } == ["created", "created"])
            let again = try await client.send(.post, "/apply", json: ["items": [gateway, Self.policy]])
            #expect(again.json?["items"]?.arrayValue?.map { $0["outcome"]?.stringValue ?? "" } == ["unchanged", "unchanged"])
        }
    }

    @Test func oneRefusedItemMeansNothingIsWritten() async throws {
        let h = try Harness()
        let gateway = try Manifest.parseDocuments(seedGateway)[0]
        var missing = Self.policy
        missing["spec"]?["egressGatewayName"] = "missing"
        let orphan = missing
        try await h.app.test(.router) { client in
            let before = try await h.store.currentRevision()
            let r = try await client.send(.post, "/apply", json: ["items": [gateway, orphan]])
            #expect(r.status.code == 422)
            #expect(r.json?["refused"]?.arrayValue?.map { $0["index"]?.intValue } == [1])
            #expect(try await h.store.currentRevision() == before)
        }
    }

    @Test func aNodeTokenMayNotApplyOtherObjects() async throws {
        let h = try Harness()
        let token = try await h.api.tokens.issueNodeToken(node: "node1")
        let gateway = try Manifest.parseDocuments(seedGateway)[0]
        try await h.app.test(.router) { client in
            let r = try await client.send(.post, "/apply", token: token, json: ["items": [gateway]])
            #expect(r.status.code == 422)
            #expect(r.json?["refused"]?.arrayValue?.first?["status"]?["code"] == 403)
        }
    }
}
