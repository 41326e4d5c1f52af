import BatonAPI
import BatonStore
import Foundation
import Hummingbird
import Metrics

extension APIServer {
    static let heartbeatCounter = Counter(label: "baton_egress_heartbeats_total")

    /// `POST .../egresstunnels/NAME/heartbeat`: an agent's heartbeat, a renewal rather than an
    /// object write. The body is `{"time": RFC3339}` (the agent's own clock, shown as the tunnel's
    /// `lastHeartbeatTime`) or empty. The answer comes only once the heartbeat is recorded where
    /// the leader reads it, so an acknowledged heartbeat is one the leader will observe: the
    /// agent's fence deadline rests on that (docs/egress-failover.md).
    ///
    /// 404 when the tunnel does not exist: the agent registers it again. A tunnel deleted through
    /// another replica may still be beaten for up to a second (`knownTunnels`); the controller
    /// ignores heartbeats of tunnels it does not know, so this delays only the re-registration.
    func heartbeat(_ route: APIRoute, name: String, request: inout Request, identity: Identity) async throws -> Response {
        guard route.kind.kind == "EgressTunnel" else {
            throw APIError.notFound("\(route.kind.plural) have no heartbeat subresource")
        }
        try authorize(identity, .update, route, name: name)
        guard let heartbeats else { throw APIError.unavailable("this server keeps no heartbeat log") }
        var agentTime: String?
        let buffer = try await request.collectBody(upTo: 4096)
        if buffer.readableBytes > 0 {
            let body: JSONValue
            do { body = try JSONValue.parse(Data(buffer: buffer)) } catch {
                throw APIError.badRequest("the heartbeat body is not valid JSON: \(Self.describe(error))")
            }
            guard case .object(let fields) = body else { throw APIError.badRequest("a heartbeat body is a JSON object: {\"time\": RFC3339}") }
            for (key, value) in fields {
                guard key == "time" else {
                    throw APIError.invalid(kind: "EgressTunnel", name: name,
                                           causes: [.unknown(key)])
                }
                guard let text = value.stringValue, Timestamp.parse(text) != nil else {
                    throw APIError.invalid(kind: "EgressTunnel", name: name,
                                           causes: [.invalid("time", "\(value.stringValue ?? "\(value)")", "must be an RFC 3339 time")])
                }
                agentTime = text
            }
        }
        // The tunnel must exist. A tunnel seen within the last second counts (heartbeats come 5
        // times a second per node; a deletion through this server is seen at once).
        let store = self.store
        do {
            guard try await knownTunnels.exists(name, lookup: { try await store.exists(kind: "EgressTunnel", namespace: nil, name: name) }) else {
                throw APIError.notFound(kind: "EgressTunnel", name: name)
            }
            try await heartbeats.record(node: name, agentTime: agentTime)
        } catch let error as APIError where error.reason == .storeWithoutQuorum {
            // The store cannot record anything, so no replica can evict this node or move its
            // EIPs until it is back, and then the controller gives every node a full
            // eipEvictionTimeout (docs/etcd.md). Saying so lets the agent keep its EIPs.
            throw holdEIPsWithoutQuorum ? error : APIError.unavailable(error.message)
        }
        Self.heartbeatCounter.increment()
        return Response(status: .noContent)
    }
}
