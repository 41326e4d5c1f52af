import BatonAPI

/// The routes Baton keeps in one node's main table, and the changes that take the table from
/// what is installed to what is wanted. Every change of a destination's gateways is one
/// replace (`ip route replace` semantics), never a delete and an add: there is no instant
/// without a route. Pure; `BatonDataplane.NetlinkRoute` carries the changes out.
public struct StaticRouteTable: Sendable, Hashable {
    /// Destination → gateways (several: ECMP), in the order they are listed.
    public var routes: [IPPrefix: [IPAddress]]

    public init(_ routes: [IPPrefix: [IPAddress]] = [:]) { self.routes = routes }

    public enum Change: Sendable, Hashable {
        case replace(IPPrefix, via: [IPAddress])
        case delete(IPPrefix, via: [IPAddress])
    }

    /// Replaces for what is new or different, then deletes for what is no longer wanted,
    /// ordered by destination for a stable log.
    public func changes(to wanted: StaticRouteTable) -> [Change] {
        var out: [Change] = []
        for (d, g) in wanted.routes.sorted(by: { Self.order($0.key, $1.key) }) where routes[d].map(Set.init) != Set(g) {
            out.append(.replace(d, via: g))
        }
        for (d, g) in routes.sorted(by: { Self.order($0.key, $1.key) }) where wanted.routes[d] == nil {
            out.append(.delete(d, via: g))
        }
        return out
    }

    static func order(_ a: IPPrefix, _ b: IPPrefix) -> Bool { (a.address, a.length) < (b.address, b.length) }
}
