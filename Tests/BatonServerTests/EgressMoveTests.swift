import BatonAPI
import BatonCore
import BatonServer
import BatonStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import Synchronization
import Testing

/// `POST .../egressgateways/NAME/move` against a running egress controller (`EgressWorld`): the
/// EIP lands on the target, the controller keeps it there and rewrites the gateway's nodeList,
/// and refusals change nothing.
@Suite struct EgressMoveTests {
    static func api(_ store: SQLiteStore) -> Application<CallbackResponder<BasicRequestContext>> {
        let api = APIServer(store: store, tokens: TokenAuthority(adminToken: Harness.admin, store: store),
                            metrics: PrometheusCollectorRegistry(), logger: Logger(label: "test"))
        return Application(responder: api.responder, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    static let movePath = path(.egressGateway, "egw1") + "/move"

    /// The node whose nodeList entry carries `eip`, and every node's EIPs.
    static func carriers(_ status: EgressGatewayStatus?) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for n in status?.nodeList ?? [] { out[n.name ?? ""] = (n.eips ?? []).compactMap(\.ipv4) }
        return out
    }

    @Test func anEIPMovedByHandStaysOnItsNewNodeAndRefusalsChangeNothing() async throws {
        // node1, node2 and node4 are egress nodes; node3 is Ready but outside the nodeSelector;
        // node4 will stop heartbeating.
        try await EgressWorld.with(nodes: ["node1", "node2", "node3", "node4"], egressNodes: ["node1", "node2", "node4"],
                                   policies: 1) { w in
            try await w.drive(until: "placed on node1") { try await w.placedPolicies()["policy0"] == "node1" }
            w.live = ["node1", "node2", "node3"]
            try await w.drive(until: "node4 HeartbeatTimeout") { try await w.tunnels()["node4"]?.phase == .heartbeatTimeout }
            try await w.waitFor("node4 HeartbeatTimeout in the nodeList") {
                try await w.gatewayStatus()?.nodeList?.first { $0.name == "node4" }?.status == "HeartbeatTimeout"
            }
            let eip = try #require(try await w.policyEIPs()["policy0"])
            #expect(Self.carriers(try await w.gatewayStatus())["node1"] == [eip])
            let nodeToken = try await TokenAuthority(adminToken: Harness.admin, store: w.store).issueNodeToken(node: "node1")
            let before = try await w.store.get(kind: "EgressPolicy", namespace: "default", name: "policy0")

            try await Self.api(w.store).test(.router) { client in
                // Refusals: 422 naming the field and its value.
                let refusals: [(JSONValue, String, String)] = [
                    (["eip": "10.6.1", "node": "node2"], "eip", "eip \"10.6.1\" is not an IPv4 or IPv6 address"),
                    (["eip": "10.6.1.59", "node": "node2"], "eip", "EIP 10.6.1.59 is not assigned to any node in EgressGateway egw1"),
                    (["eip": .string(eip), "node": "node9"], "node", "node node9 not found"),
                    (["eip": .string(eip), "node": "node4"], "node", "node node4 is not Ready (phase HeartbeatTimeout)"),
                    (["eip": .string(eip), "node": "node3"], "node", "node node3 does not match the nodeSelector of EgressGateway egw1"),
                    (["eip": .string(eip), "node": "node2", "force": true], "force", "unknown field \"force\""),
                    (["eip": .string(eip)], "node", "Required value"),
                    (["eip": 7, "node": "node2"], "eip", "expected string"),
                ]
                for (body, field, message) in refusals {
                    let r = try await client.send(.post, Self.movePath, json: body)
                    #expect(r.status.code == 422, "\(body): \(r.text)")
                    #expect(r.json?["reason"] == "Invalid")
                    #expect(r.json?["details"]?["causes"]?.arrayValue?.first?["field"]?.stringValue == field, "\(r.text)")
                    #expect(r.json?["message"]?.stringValue?.contains(message) == true, "\(r.text)")
                }
                let missing = try await client.send(.post, path(.egressGateway, "nope") + "/move", json: ["eip": .string(eip), "node": "node2"])
                #expect(missing.status == .notFound)
                #expect(missing.json?["message"] == "EgressGateway \"nope\" not found")
                let node = try await client.send(.post, Self.movePath, token: nodeToken, json: ["eip": .string(eip), "node": "node2"])
                #expect(node.status == .forbidden)
                #expect(try await client.send(.get, Self.movePath).status == .methodNotAllowed)
                // ...and nothing changed.
                let after = try await w.store.get(kind: "EgressPolicy", namespace: "default", name: "policy0")
                #expect(after.metadata.resourceVersion == before.metadata.resourceVersion)
                #expect(try await w.events(reason: "EIPMoved").isEmpty)

                // The move.
                let r = try await client.send(.post, Self.movePath, json: ["eip": .string(eip), "node": "node2"])
                #expect(r.status == .ok, "\(r.text)")
                let reply = try #require(r.json)
                #expect(reply["gateway"] == "egw1")
                #expect(reply["eip"]?.stringValue == eip)
                #expect(reply["from"] == "node1")
                #expect(reply["to"] == "node2")
                #expect(reply["moved"] == true)
                #expect(reply["policies"] == [["name": "policy0", "namespace": "default"]])
                let moved = try await w.store.get(kind: "EgressPolicy", namespace: "default", name: "policy0")
                let status = try #require(moved.decodeStatus(EgressPolicyStatus.self))
                #expect(status.node == "node2")
                #expect(status.eip?.ipv4 == eip, "the EIP itself does not change")
                #expect(status.observedGeneration == before.decodeStatus(EgressPolicyStatus.self)?.observedGeneration)

                // The controller rewrites the nodeList from the new status...
                try await w.waitFor("the nodeList shows the EIP on node2") {
                    let c = Self.carriers(try await w.gatewayStatus())
                    return c["node2"] == [eip] && c["node1"] == []
                }
                // ...and keeps it there while time passes.
                for _ in 0..<5 { try await w.step() }
                try await Task.sleep(for: .milliseconds(50))
                #expect(try await w.placedPolicies() == ["policy0": "node2"])
                #expect(Self.carriers(try await w.gatewayStatus())["node2"] == [eip])
                try await w.waitFor("the EIPMoved event") { try await !w.events(reason: "EIPMoved").isEmpty }
                let events = try await w.events(reason: "EIPMoved")
                #expect(events.count == 1, "only the move by hand: the controller moved nothing")
                #expect(events.first?.body["message"]?.stringValue == "EIP \(eip) moved from node1 to node2 by hand")
                #expect(events.first?.body["involvedObject"]?["name"] == "egw1")

                // Again: a no-op that succeeds and writes nothing.
                let revision = try await w.store.get(kind: "EgressPolicy", namespace: "default", name: "policy0").metadata.resourceVersion
                let again = try await client.send(.post, Self.movePath, json: ["eip": .string(eip), "node": "node2"])
                #expect(again.status == .ok)
                #expect(again.json?["moved"] == false)
                #expect(again.json?["from"] == "node2")
                #expect(try await w.store.get(kind: "EgressPolicy", namespace: "default", name: "policy0").metadata.resourceVersion == revision)
            }
        }
    }

    /// The race: the controller decided from the old status, and a move lands between its decision
    /// and its write. Its write meets the newer object (409), re-reads it, and must not put the
    /// old node back; it places again from the moved status instead.
    @Test func theControllerDoesNotUndoAMoveThatLandsMidPlacement() async throws {
        let intercepting = Mutex<InterceptingStore?>(nil)
        try await EgressWorld.with(nodes: ["node1", "node2"], policies: 1, controllerStore: { base in
            let s = InterceptingStore(base: base)
            intercepting.withLock { $0 = s }
            return s
        }) { w in
            try await w.drive(until: "placed on node1") { try await w.placedPolicies()["policy0"] == "node1" }
            let wrapper = try #require(intercepting.withLock { $0 })
            // The next policy status write of the controller first lets "the operator" move policy0
            // to node2, as the move handler writes it.
            let moved = Mutex(false)
            wrapper.beforeNextPolicyStatusWrite {
                var p = try await w.store.get(kind: "EgressPolicy", namespace: "default", name: "policy0")
                p.status?["node"] = "node2"
                _ = try await w.store.updateStatus(p)
                moved.withLock { $0 = true }
            }
            // A spec change (new generation) makes the controller rewrite policy0's status.
            var p = try await w.store.get(kind: "EgressPolicy", namespace: "default", name: "policy0")
            p.spec?["appliedTo"] = ["podSubnet": ["10.0.1.0/24"]]
            let updated = try await w.store.update(p)
            #expect(updated.metadata.generation == 2)

            try await w.waitFor("the controller re-placed from the moved status") {
                let s = try await w.store.get(kind: "EgressPolicy", namespace: "default", name: "policy0")
                    .decodeStatus(EgressPolicyStatus.self)
                return s?.observedGeneration == 2
            }
            #expect(moved.withLock { $0 }, "the move landed mid-placement")
            for _ in 0..<5 { try await w.step() }
            try await Task.sleep(for: .milliseconds(50))
            #expect(try await w.placedPolicies() == ["policy0": "node2"])
            try await w.waitFor("the nodeList shows the EIP on node2") {
                Self.carriers(try await w.gatewayStatus())["node2"]?.isEmpty == false
            }
            #expect(Self.carriers(try await w.gatewayStatus())["node1"] == [])
        }
    }
}

/// The move handler alone, on a hand-built store: a write that meets a newer policy starts over
/// from a fresh read, and keeps what the other writer wrote.
@Suite struct EgressMoveConflictTests {
    static func world() async throws -> SQLiteStore {
        let store = try SQLiteStore.inMemory()
        for n in ["node1", "node2"] {
            _ = try await store.create(Resource(apiVersion: "baton.io/v1", kind: "Node",
                                                metadata: ObjectMeta(name: n, labels: ["egress": "true"]), body: ["spec": [:]]))
            _ = try await store.create(Resource(apiVersion: "egressgateway.spidernet.io/v1beta1", kind: "EgressTunnel",
                                                metadata: ObjectMeta(name: n), body: ["spec": [:], "status": ["phase": "Ready"]]))
        }
        let gateway = EgressGatewaySpec(ippools: .init(ipv4: ["10.6.1.55-10.6.1.56"]),
                                        nodeSelector: .init(selector: LabelSelector(matchLabels: ["egress": "true"])))
        _ = try await store.create(Resource(apiVersion: "egressgateway.spidernet.io/v1beta1", kind: "EgressGateway",
                                            metadata: ObjectMeta(name: "egw1"), body: ["spec": try JSONValue(encoding: gateway)]))
        // Two policies share 10.6.1.55 on node1: one unit.
        for name in ["a", "b"] {
            let spec = EgressPolicySpec(egressGatewayName: "egw1", egressIP: EgressIP(ipv4: "10.6.1.55"),
                                        appliedTo: .init(podSubnet: ["10.0.0.0/24"]))
            _ = try await store.create(Resource(apiVersion: "egressgateway.spidernet.io/v1beta1", kind: "EgressPolicy",
                                                metadata: ObjectMeta(name: name, namespace: "default"),
                                                body: ["spec": try JSONValue(encoding: spec),
                                                       "status": ["node": "node1", "eip": ["ipv4": "10.6.1.55"], "observedGeneration": 1]]))
        }
        return store
    }

    /// What the other writer does to policy b between the handler's read and its write of b.
    enum Interference: String, CaseIterable, Sendable {
        /// The controller rewrites b's status for a new generation.
        case newGeneration
        /// Another move already put b on node2.
        case movedAlready
    }

    @Test(arguments: Interference.allCases)
    func aConflictStartsOverFromAFreshRead(interference: Interference) async throws {
        let base = try await Self.world()
        let store = InterceptingStore(base: base)
        store.beforeNextPolicyStatusWrite {
            var b = try await base.get(kind: "EgressPolicy", namespace: "default", name: "b")
            switch interference {
            case .newGeneration: b.status?["observedGeneration"] = 2
            case .movedAlready: b.status?["node"] = "node2"
            }
            _ = try await base.updateStatus(b)
        }
        let api = APIServer(store: store, tokens: TokenAuthority(adminToken: Harness.admin, store: base),
                            metrics: PrometheusCollectorRegistry(), logger: Logger(label: "test"))
        let app = Application(responder: api.responder, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.router) { client in
            let r = try await client.send(.post, EgressMoveTests.movePath, json: ["eip": "10.6.1.55", "node": "node2"])
            #expect(r.status == .ok, "\(r.text)")
            #expect(r.json?["from"] == "node1")
            #expect(r.json?["moved"] == true)
            #expect(r.json?["policies"]?.arrayValue?.count == 2)
        }
        for name in ["a", "b"] {
            let s = try await base.get(kind: "EgressPolicy", namespace: "default", name: name).decodeStatus(EgressPolicyStatus.self)
            #expect(s?.node == "node2", "\(name)")
            #expect(s?.eip?.ipv4 == "10.6.1.55")
            #expect(s?.observedGeneration == (name == "b" && interference == .newGeneration ? 2 : 1), "the other writer's field is kept")
        }
        let events = try await base.list(kind: "Event", namespace: nil, selector: nil).items
        #expect(events.map { $0.body["message"]?.stringValue } == ["EIP 10.6.1.55 moved from node1 to node2 by hand"])
        await base.close()
    }
}

/// A store that runs a hook before the controller's next EgressPolicy status write, to put
/// another writer's change exactly between the controller's decision and its write.
final class InterceptingStore: ResourceStore, Sendable {
    let base: SQLiteStore
    private let hook = Mutex<(@Sendable () async throws -> Void)?>(nil)

    init(base: SQLiteStore) { self.base = base }

    func beforeNextPolicyStatusWrite(_ body: @escaping @Sendable () async throws -> Void) {
        hook.withLock { $0 = body }
    }

    func updateStatus(_ object: Resource) async throws -> Resource {
        if object.kind == "EgressPolicy", let body = hook.withLock({ h in defer { h = nil }; return h }) {
            try await body()
        }
        return try await base.updateStatus(object)
    }

    func create(_ object: Resource) async throws -> Resource { try await base.create(object) }
    func get(kind: String, namespace: String?, name: String) async throws -> Resource {
        try await base.get(kind: kind, namespace: namespace, name: name)
    }
    func list(kind: String, namespace: String?, selector: LabelSelector?) async throws -> ListResult {
        try await base.list(kind: kind, namespace: namespace, selector: selector)
    }
    func update(_ object: Resource) async throws -> Resource { try await base.update(object) }
    func delete(kind: String, namespace: String?, name: String, expectedRevision: Int64?) async throws -> Resource {
        try await base.delete(kind: kind, namespace: namespace, name: name, expectedRevision: expectedRevision)
    }
    func watch(kind: String?, namespace: String?, since revision: Int64) async throws -> AsyncThrowingStream<WatchEvent, any Error> {
        try await base.watch(kind: kind, namespace: namespace, since: revision)
    }
    func currentRevision() async throws -> Int64 { try await base.currentRevision() }
}
