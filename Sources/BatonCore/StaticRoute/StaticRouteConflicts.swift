import BatonAPI

/// Two StaticRoutes that route one destination on one node: only one route can sit in the
/// kernel's table for it, so one StaticRoute wins and both say so in their status. The lower
/// priority value wins (a StaticRoute's priority is its best gateway's; `gateway` alone is 0),
/// then the older object, then the name: every node decides the same way, and nothing ever
/// fails with "file exists".
public enum StaticRouteConflicts {
    public struct Claim: Sendable, Hashable {
        public var name: String
        public var priority: Int64
        /// RFC 3339 creation time; older wins a tie (the empty string sorts first).
        public var created: String
        public var destinations: [IPPrefix]

        public init(name: String, priority: Int64, created: String, destinations: [IPPrefix]) {
            self.name = name
            self.priority = priority
            self.created = created
            self.destinations = destinations
        }
    }

    /// What one StaticRoute may install on this node.
    public struct Outcome: Sendable, Hashable {
        /// Destinations whose route this StaticRoute owns.
        public var owned: [IPPrefix] = []
        /// Every destination shared with another StaticRoute, and whether this one won it.
        public var conflicts: [StaticRouteStatus.Conflict] = []
        public init(owned: [IPPrefix] = [], conflicts: [StaticRouteStatus.Conflict] = []) { self.owned = owned; self.conflicts = conflicts }
    }

    /// The outcome of every claim, by StaticRoute name.
    public static func resolve(_ claims: [Claim]) -> [String: Outcome] {
        var byDestination: [IPPrefix: [Claim]] = [:]
        for c in claims { for d in Set(c.destinations) { byDestination[d, default: []].append(c) } }
        var out: [String: Outcome] = Dictionary(uniqueKeysWithValues: claims.map { ($0.name, Outcome()) })
        for c in claims {
            for d in c.destinations {
                let rivals = byDestination[d] ?? []
                let winner = rivals.min { ($0.priority, $0.created, $0.name) < ($1.priority, $1.created, $1.name) }!
                if winner.name == c.name { out[c.name]!.owned.append(d) }
                for r in rivals where r.name != c.name {
                    out[c.name]!.conflicts.append(.init(destination: d.description, staticRoute: r.name, winner: winner.name == c.name))
                }
            }
        }
        return out
    }
}
