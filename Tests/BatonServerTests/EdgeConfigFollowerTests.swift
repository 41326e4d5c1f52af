import BatonAPI
@testable import BatonEdge
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
}
