import BatonAPI
import BatonCore
import Foundation

/// Carries out a node's `StaticRouteTable` in the namespace it runs in, over rtnetlink.
///
/// - Routes to a destination other than the default route go to the main table, as the
///   original operator's `ip route add` puts them, with Baton's protocol number (217).
/// - Default routes (`0.0.0.0/0`, `::/0`) go to table 217, consulted by a rule at priority
///   `rulePriority + 1`, after a rule at `rulePriority` that looks up the main table for
///   anything more specific than a default route (`suppress_prefixlength 0`): the LAN, the
///   Baton server and the cluster's networks keep their paths, and the node's own default
///   route stays as it is beneath. If the server (or a cluster network) is reached only by the
///   node's default route, a route to it through that same path is pinned first.
/// - A route Baton did not make is never replaced or deleted: a destination whose main-table
///   slot holds one is reported as failed.
public final class LinuxStaticRoutes: @unchecked Sendable {
    public static let defaultRouteTable: UInt32 = 217
    public let rulePriority: Int
    /// Addresses and networks whose path must not move onto a gateway (the Baton server, the
    /// cluster's networks).
    public let pinned: [IPPrefix]

    public init(rulePriority: Int = 150, pinned: [IPPrefix] = []) {
        self.rulePriority = rulePriority
        self.pinned = pinned
    }

    static func metric(_ family: IPAddress.Family) -> UInt32 { family == .v4 ? 0 : 1024 }
    static func table(_ d: IPPrefix) -> UInt32 { d.length == 0 ? defaultRouteTable : NetlinkRoute.mainTable }

    /// The routes Baton has installed (a restarted agent starts from these).
    public func installed() throws -> StaticRouteTable {
        var t = StaticRouteTable()
        for f in [IPAddress.Family.v4, .v6] {
            for e in try NetlinkRoute.list(f) where e.isBaton && e.table == Self.table(e.destination) && !isPin(e) {
                t.routes[e.destination] = e.gateways
            }
        }
        return t
    }

    func isPin(_ e: NetlinkRoute.Entry) -> Bool {
        pinned.contains(e.destination) && e.table == NetlinkRoute.mainTable
    }

    /// Takes the installed routes from `from` to `to`. Returns the destinations that could not
    /// be routed, with why; everything else is done.
    public func apply(from: StaticRouteTable, to: StaticRouteTable) throws -> [IPPrefix: String] {
        let changes = from.changes(to: to)
        guard !changes.isEmpty else { return [:] }
        var failed: [IPPrefix: String] = [:]
        let families = Set(to.routes.keys.filter { $0.length == 0 }.map(\.address.family))
        for f in families { try ensureRules(f) }
        // Someone else's route in a slot Baton would take: leave it, say so.
        var foreign: [IPPrefix: NetlinkRoute.Entry] = [:]
        let replaced = changes.compactMap { if case .replace(let d, _) = $0 { d } else { nil } }
        for f in Set(replaced.map(\.address.family)) {
            for e in try NetlinkRoute.list(f) where !e.isBaton && e.metric == Self.metric(f) && e.table == Self.table(e.destination) && e.type == 1 {
                foreign[e.destination] = e
            }
        }
        for c in changes {
            switch c {
            case .replace(let d, let gateways):
                if let other = foreign[d] {
                    failed[d] = "a route to \(d) that Baton did not make is in the way (protocol \(other.protocolNumber)); it is left as it is"
                    continue
                }
                failed.merge(try NetlinkRoute.apply([.replace(d, via: gateways)], table: Self.table(d), metric: Self.metric(d.address.family))) { a, _ in a }
            case .delete(let d, _):
                failed.merge(try NetlinkRoute.apply([.delete(d)], table: Self.table(d), metric: Self.metric(d.address.family))) { a, _ in a }
            }
        }
        for f in [IPAddress.Family.v4, .v6] where !families.contains(f) && from.routes.keys.contains(where: { $0.length == 0 && $0.address.family == f }) {
            try removeRules(f)
        }
        return failed
    }

    // MARK: Rules for default routes

    func ruleArgs(_ f: IPAddress.Family) -> [[String]] {
        [["priority", "\(rulePriority)", "lookup", "main", "suppress_prefixlength", "0"],
         ["priority", "\(rulePriority + 1)", "lookup", "\(Self.defaultRouteTable)"]]
    }

    func haveRules(_ f: IPAddress.Family) throws -> [Bool] {
        let out = try Command.run("ip", [f == .v4 ? "-4" : "-6", "rule", "show"])
        return [out.contains("\(rulePriority):\tfrom all lookup main suppress_prefixlength 0"),
                out.contains("\(rulePriority + 1):\tfrom all lookup \(Self.defaultRouteTable)")]
    }

    /// The two rules, and the server's pinned path, before the first default route of `f`.
    func ensureRules(_ f: IPAddress.Family) throws {
        try pin(f)
        let have = try haveRules(f)
        for (rule, present) in zip(ruleArgs(f), have) where !present {
            _ = try Command.run("ip", [f == .v4 ? "-4" : "-6", "rule", "add"] + rule)
        }
    }

    func removeRules(_ f: IPAddress.Family) throws {
        let have = try haveRules(f)
        for (rule, present) in zip(ruleArgs(f), have) where present {
            _ = try Command.run("ip", [f == .v4 ? "-4" : "-6", "rule", "del"] + rule)
        }
    }

    /// For each pinned address or network of `f` whose main-table path is the node's default
    /// route: a route to it through that same gateway and device, so that rule `rulePriority`
    /// keeps it.
    func pin(_ f: IPAddress.Family) throws {
        let prefixes = pinned.filter { $0.address.family == f && $0.length > 0 }
        guard !prefixes.isEmpty else { return }
        let main = try NetlinkRoute.list(f).filter { $0.table == NetlinkRoute.mainTable && $0.type == 1 }
        for p in prefixes {
            guard let best = main.filter({ $0.destination.length <= p.length && $0.destination.contains(p.address) })
                    .max(by: { $0.destination.length < $1.destination.length }),
                  best.destination.length == 0, !best.isBaton, let via = best.gateways.first else { continue }
            var args = ["route", "replace", "\(p)", "via", "\(via)"]
            if best.interfaceIndex != 0, let name = Self.interfaceName(best.interfaceIndex) { args += ["dev", name] }
            _ = try Command.run("ip", [f == .v4 ? "-4" : "-6"] + args + ["proto", "\(NetlinkRoute.batonProtocol)"])
        }
    }

    static func interfaceName(_ index: UInt32) -> String? {
        var buffer = [CChar](repeating: 0, count: 32)
        guard if_indextoname(index, &buffer) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Removes every route, pin and rule Baton added (`baton agent --cleanup`).
    public func cleanup() throws {
        for f in [IPAddress.Family.v4, .v6] {
            let mine = try NetlinkRoute.list(f).filter { $0.isBaton && ($0.table == NetlinkRoute.mainTable || $0.table == Self.defaultRouteTable) }
            for e in mine {
                _ = try NetlinkRoute.apply([.delete(e.destination)], table: e.table, metric: e.metric)
            }
            try removeRules(f)
        }
    }
}
