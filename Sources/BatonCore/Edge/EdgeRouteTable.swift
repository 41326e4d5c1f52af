import BatonAPI
import Synchronization

/// Everything one edge serves, resolved from the Gateways that select it and the Clusters it
/// knows: per listening port, per hostname, the rules in order. Rebuilt whole on every Gateway or
/// Cluster change; requests look routes up in it.
public struct EdgeRouteTable: Sendable, Hashable {
    public struct Rule: Sendable, Hashable {
        public var match: [GatewaySpec.HTTPMatchCondition]
        public var route: EdgeRoute
        /// `gateway/server` for logs and metrics.
        public var server: String
        /// The rule's place in this table, 0 to `ruleCount` - 1: the proxy keeps what it prepares
        /// per rule in an array (`EdgeProxyHandler`'s route plans), rebuilt with the table.
        public var id: Int
    }

    /// port → lowercased hostname (or `*.suffix`) → rules in order.
    public private(set) var servers: [Int: [String: [Rule]]] = [:]
    /// Per Gateway name, the conditions found while resolving it.
    public private(set) var conditions: [String: [EdgeRouteCondition]] = [:]
    /// The ports served, in order (`lookupAnyPort` tries them per request).
    public private(set) var ports: [Int] = []
    /// How many rules the table holds (their `id`s are 0 to this - 1).
    public private(set) var ruleCount = 0

    public init() {}

    /// Whether a Gateway's `workloadSelector` selects an edge in `namespace` with `labels`.
    public static func selects(_ selector: GatewaySpec.WorkloadSelector, namespace: String, labels: [String: String]) -> Bool {
        guard selector.namespace == namespace || selector.namespace == "*" else { return false }
        return (selector.labels ?? [:]).allSatisfy { labels[$0.key] == $0.value }
    }

    /// Builds the table from the selected Gateways (by name, applied in name order: the first
    /// Gateway to claim a port and hostname keeps it) and every Cluster.
    public init(gateways: [(name: String, spec: GatewaySpec)], clusters: [EdgeClusterObject]) {
        for (name, spec) in gateways.sorted(by: { $0.name < $1.name }) {
            var conds: [EdgeRouteCondition] = []
            for (i, server) in (spec.http ?? []).enumerated() {
                let host = server.hostname.lowercased()
                let port = Int(server.port)
                if servers[port]?[host] != nil {
                    conds.append(.init(field: "spec.http[\(i)].hostname", reason: .init(rawValue: "Conflict"),
                                       message: "port \(port) and hostname \(host) are already served by another Gateway"))
                    continue
                }
                var rules: [Rule] = []
                for (j, rule) in (server.routing?.rules ?? []).enumerated() {
                    let field = "spec.http[\(i)].routing.rules[\(j)].route.clusterDestination"
                    let dest = rule.route?.clusterDestination ?? .init()
                    let (route, c) = EdgeRouteResolver.resolve(dest, hostname: host, clusters: clusters, field: field)
                    conds += c
                    rules.append(Rule(match: rule.match ?? [], route: route, server: "\(name)/\(server.name)", id: ruleCount))
                    ruleCount += 1
                }
                if rules.isEmpty {
                    // No routing: every cluster publishing the hostname (as `clusterDestination: {}`).
                    let (route, c) = EdgeRouteResolver.resolve(.init(), hostname: host, clusters: clusters,
                                                               field: "spec.http[\(i)].routing")
                    conds += c
                    rules.append(Rule(match: [], route: route, server: "\(name)/\(server.name)", id: ruleCount))
                    ruleCount += 1
                }
                servers[port, default: [:]][host] = rules
            }
            conditions[name] = conds
        }
        ports = servers.keys.sorted()
    }

    /// Every ingress endpoint some rule may send to.
    public var endpoints: Set<EdgeEndpoint> {
        var all = Set<EdgeEndpoint>()
        for byHost in servers.values {
            for rules in byHost.values {
                for rule in rules {
                    for cluster in rule.route.clusters { all.formUnion(cluster.endpoints) }
                }
            }
        }
        return all
    }

    /// The rule for a request on `port` for `host` (the Host header, port stripped), or nil (404).
    /// `header` looks a request header up by lowercased name. `regexes` compiles and keeps the
    /// `regex` patterns; an event loop passes its own, so that loops share no lock (nil: one
    /// shared under a lock).
    public func lookup(port: Int, host: String, path: String, header: (String) -> String?,
                       regexes: EdgeRegexMatcher? = nil) -> Rule? {
        guard let byHost = servers[port] else { return nil }
        let h = Self.hostKey(host)
        let rules = byHost[h] ?? wildcard(h, in: byHost)
        guard let rules else { return nil }
        return rules.first { rule in
            rule.match.isEmpty || rule.match.contains { Self.matches($0, port: port, path: path, header: header, regexes: regexes) }
        }
    }

    /// The rule every request on `port` for `host` gets, whatever its path and headers: the
    /// host's first rule when it has no match conditions. When `port` is not served and exactly
    /// one port is, that port's (as `lookupAnyPort` would find). Nil when `lookup` must decide
    /// per request, or when the host is served only on another port among several, or not at
    /// all. The proxy keeps this per connection.
    public func unconditionalRule(port: Int, host: String) -> Rule? {
        guard let byHost = servers[port] ?? (ports.count == 1 ? servers[ports[0]] : nil) else { return nil }
        let h = Self.hostKey(host)
        guard let first = (byHost[h] ?? wildcard(h, in: byHost))?.first, first.match.isEmpty else { return nil }
        return first
    }

    /// The rule for a host served on any port: for an edge whose listening port differs from
    /// the Gateway's (`port` is the port clients address, behind a load balancer or NAT).
    public func lookupAnyPort(host: String, path: String, header: (String) -> String?, regexes: EdgeRegexMatcher? = nil) -> Rule? {
        for port in ports {
            if let r = lookup(port: port, host: host, path: path, header: header, regexes: regexes) { return r }
        }
        return nil
    }

    private func wildcard(_ h: String, in byHost: [String: [Rule]]) -> [Rule]? {
        var rest = Substring(h)
        while let dot = rest.firstIndex(of: ".") {
            rest = rest[rest.index(after: dot)...]
            if let r = byHost["*." + rest] { return r }
        }
        return nil
    }

    /// The host without its port, lowercased; the same string when there is nothing to change
    /// (the common case: no copy, no `Character` walk).
    static func hostKey(_ host: String) -> String {
        let u = host.utf8
        if u.first == UInt8(ascii: "[") || u.contains(UInt8(ascii: ":")) { return stripPort(host).lowercased() }
        return u.contains(where: { $0 >= 65 && $0 <= 90 }) ? host.lowercased() : host
    }

    static func stripPort(_ host: String) -> String {
        if host.hasPrefix("[") { return String(host.prefix { $0 != "]" }.dropFirst()) }
        if let colon = host.lastIndex(of: ":") { return String(host[..<colon]) }
        return host
    }

    /// TSB's match condition: every part present must hold.
    public static func matches(_ m: GatewaySpec.HTTPMatchCondition, port: Int, path: String,
                               header: (String) -> String?, regexes: EdgeRegexMatcher? = nil) -> Bool {
        if let p = m.port, Int(p) != port { return false }
        if let uri = m.uri, !matches(uri, path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path, regexes) {
            return false
        }
        for (name, sm) in m.headers ?? [:] {
            guard let v = header(name.lowercased()), matches(sm, v, regexes) else { return false }
        }
        return true
    }

    static func matches(_ sm: GatewaySpec.StringMatch, _ value: String, _ regexes: EdgeRegexMatcher?) -> Bool {
        if let e = sm.exact { return value == e }
        if let p = sm.prefix { return value.hasPrefix(p) }
        if let r = sm.regex {
            if let regexes { return regexes.wholeMatch(r, value) }
            return sharedRegexes.withLock { $0.wholeMatch(r, value) }
        }
        return false
    }

    /// For callers with no matcher of their own.
    private static let sharedRegexes = Mutex(EdgeRegexMatcher())
}

/// Compiled `regex` patterns, so that a request does not compile its rule's pattern again. Not
/// `Sendable` (nor is `Regex`): each event loop keeps its own, and needs no lock. Bounded: past
/// 1,024 patterns, new ones are compiled on each use.
public final class EdgeRegexMatcher {
    private var compiled: [String: Regex<AnyRegexOutput>] = [:]
    static let maxPatterns = 1024

    public init() {}

    /// How many patterns are kept.
    public var count: Int { compiled.count }

    /// Whether `pattern` matches the whole of `value`; an invalid pattern matches nothing (the
    /// API refuses those when a Gateway is applied).
    public func wholeMatch(_ pattern: String, _ value: String) -> Bool {
        let re: Regex<AnyRegexOutput>
        if let hit = compiled[pattern] {
            re = hit
        } else {
            guard let new = try? Regex(pattern) else { return false }
            if compiled.count < Self.maxPatterns { compiled[pattern] = new }
            re = new
        }
        return (try? re.wholeMatch(in: value)) != nil
    }
}
