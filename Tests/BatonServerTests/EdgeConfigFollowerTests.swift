import BatonAPI
import BatonClient
@testable import BatonEdge
import BatonTesting
import Logging
import Synchronization
import Testing

/// What makes `EdgeConfigFollower` rebuild the route table.
@Suite struct EdgeConfigFollowerTests {
    static func gateway(spec: JSONValue, status: JSONValue? = nil, labels: [String: String]? = nil) -> Resource {
        var body: [String: JSONValue] = ["spec": spec]
        if let status { body["status"] = status }
        return Resource(apiVersion: "gateway.tsb.tetrate.io/v2", kind: "Gateway", metadata: ObjectMeta(name: "g", labels: labels), body: body)
    }

    @Test func aStatusWriteChangesNoRouteButSpecLabelsArrivalAndDeletionDo() {
        let spec: JSONValue = ["http": [["name": "a", "port": 80, "hostname": "h.example"]]]
        let g = Self.gateway(spec: spec)
        // The edge writes Gateway statuses itself: the watch sends those back, and they must not
        // rebuild (and reinstall) anything.
        let withStatus = Self.gateway(spec: spec, status: ["conditions": [["type": "ResolvedRefs", "status": "True"]]])
        #expect(!EdgeConfigFollower.routingChanged(g, withStatus))
        #expect(EdgeConfigFollower.routingChanged(g, Self.gateway(spec: ["http": [["name": "a", "port": 81, "hostname": "h.example"]]])))
        #expect(EdgeConfigFollower.routingChanged(g, Self.gateway(spec: spec, labels: ["app": "x"])))
        #expect(EdgeConfigFollower.routingChanged(nil, g))
        #expect(EdgeConfigFollower.routingChanged(g, nil))
        #expect(!EdgeConfigFollower.routingChanged(nil, nil))
    }

    /// Events go through `observed` as the watches deliver them: the table is installed when the
    /// routes change and only then, and each install queues the Gateway's status.
    @Test func eachRouteChangeInstallsOnceAndQueuesTheGatewaysStatusInOrder() {
        let settings = EdgeSettings(host: "127.0.0.1", port: 80, region: "region-1", namespace: "edge")
        let state = EdgeState(settings: settings, clock: ManualClock(), logger: Logger(label: "test"))
        let statuses = Mutex<[String]>([])
        // No request is made: the follower is driven by hand, never `run()`.
        let follower = EdgeConfigFollower(client: BatonClient(server: "http://127.0.0.1:9", token: nil), state: state,
                                          logger: Logger(label: "test"),
                                          status: { g, s in statuses.withLock { $0.append("\(g) \(s.conditions?.first?.status ?? "?")") } })
        let spec: JSONValue = ["workloadSelector": ["namespace": "edge"],
                               "http": [["name": "a", "port": 80, "hostname": "h.example",
                                         "routing": ["rules": [["route": ["clusterDestination": ["clusters": [["name": "c1"]]]]]]]]]]
        let cluster = Resource(apiVersion: "api.tsb.tetrate.io/v2", kind: "Cluster", metadata: ObjectMeta(name: "c1"),
                               body: ["spec": ["locality": ["region": "region-1"], "ingresses": [["address": "127.0.0.11", "port": 80]]]])
        follower.observed(Self.gateway(spec: spec), name: "g", gateway: true)
        #expect(follower.installs.load(ordering: .relaxed) == 1)
        #expect(statuses.withLock { $0 } == ["g False"], "c1 does not exist yet")
        follower.observed(cluster, name: "c1", gateway: false)
        #expect(follower.installs.load(ordering: .relaxed) == 2)
        #expect(state.routeTable.servers[80]?["h.example"]?.first?.route.clusters.map(\.endpoints.count) == [1])
        #expect(statuses.withLock { $0 } == ["g False", "g True"])
        // The edge's own status write comes back through the watch: nothing is rebuilt.
        let written = Self.gateway(spec: spec, status: ["conditions": [["type": "ResolvedRefs", "status": "True"]]])
        follower.observed(written, name: "g", gateway: true)
        #expect(follower.installs.load(ordering: .relaxed) == 2)
        #expect(statuses.withLock { $0 }.count == 2)
        // The cluster goes: the routes change again.
        follower.observed(nil, name: "c1", gateway: false)
        #expect(follower.installs.load(ordering: .relaxed) == 3)
        #expect(statuses.withLock { $0 } == ["g False", "g True", "g False"])
    }
}
