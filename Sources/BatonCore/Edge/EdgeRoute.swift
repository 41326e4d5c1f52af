import BatonAPI

/// One ingress gateway endpoint an edge sends traffic to. `key` (`address:port`) names it in
/// health state, logs and metrics.
public struct EdgeEndpoint: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var address: String
    public var port: Int
    public init(address: String, port: Int) { self.address = address; self.port = port }

    public var key: String { address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)" }
    public var description: String { key }
    public static func < (a: EdgeEndpoint, b: EdgeEndpoint) -> Bool { (a.address, a.port) < (b.address, b.port) }
}

/// A destination cluster as a route resolved it: the ingress endpoints that publish the route's
/// hostname, the cluster's region, and its weight in a weighted list.
public struct EdgeCluster: Sendable, Hashable {
    public var name: String
    /// nil: the Cluster has no `spec.locality`; it is never local to any edge.
    public var region: String?
    /// Only the ingresses that publish the hostname. Empty: the cluster can take no traffic
    /// (its share of a strict weighted list gets 503 "no healthy upstream").
    public var endpoints: [EdgeEndpoint]
    /// The weight from a weighted list; 1 in auto and named lists.
    public var weight: Int
    public init(name: String, region: String?, endpoints: [EdgeEndpoint], weight: Int = 1) {
        self.name = name
        self.region = region
        self.endpoints = endpoints
        self.weight = weight
    }
}

/// How a route chooses among its clusters.
public enum EdgeRouteMode: Sendable, Hashable {
    /// Auto and named lists: clusters in the edge's region only; when none of them has a healthy
    /// ingress, every remote region's clusters share the traffic.
    case locality
    /// A weighted list: a strict split, no failover (`healthAware: false`), or the split spread
    /// over the clusters with a healthy ingress (`healthAware: true`, Baton's extension).
    case weighted(healthAware: Bool)
}

/// A rule's destination, resolved against the Cluster objects the edge knows.
public struct EdgeRoute: Sendable, Hashable {
    public var mode: EdgeRouteMode
    public var clusters: [EdgeCluster]
    public init(mode: EdgeRouteMode, clusters: [EdgeCluster]) { self.mode = mode; self.clusters = clusters }

    /// Whether a failed attempt may be retried on another cluster: never in a strict weighted list.
    public var failsOver: Bool { mode != .weighted(healthAware: false) }
}

/// Something wrong with a route's destination list, for the Gateway's status and the edge's log.
public struct EdgeRouteCondition: Sendable, Hashable, CustomStringConvertible {
    public struct Reason: RawRepresentable, Sendable, Hashable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// A named (or weighted) cluster has no Cluster object.
        public static let clusterNotFound = Reason(rawValue: "ClusterNotFound")
        /// A named (or weighted) cluster exists, but none of its ingresses publishes the hostname.
        public static let hostnameNotPublished = Reason(rawValue: "HostnameNotPublished")
        /// No cluster at all can take the route's traffic.
        public static let noClusters = Reason(rawValue: "NoClusters")
    }
    /// The `spec.http[i].routing.rules[j].route.clusterDestination...` path the condition is about.
    public var field: String
    public var reason: Reason
    public var message: String
    public init(field: String, reason: Reason, message: String) {
        self.field = field
        self.reason = reason
        self.message = message
    }
    public var description: String { "\(field): \(reason.rawValue): \(message)" }
}

/// A Cluster object as the edge sees it: its name, its metadata labels and its spec.
public struct EdgeClusterObject: Sendable, Hashable {
    public var name: String
    public var labels: [String: String]
    public var spec: ClusterSpec
    public init(name: String, labels: [String: String] = [:], spec: ClusterSpec) {
        self.name = name
        self.labels = labels
        self.spec = spec
    }
}

/// Resolves `route.clusterDestination` into the clusters and endpoints a route sends to.
///
/// - `{}` (auto): every cluster with an ingress that publishes the hostname (`spec.ingresses[].hostnames`,
///   exact or `*.` wildcard; an ingress without `hostnames` publishes every hostname), sorted by
///   name. Clusters and hostnames that come or go change the result on the next resolve.
/// - `clusters: [{name}]` / `[{labels}]` (named): only the clusters named or selected. A named
///   cluster that does not exist or does not publish the hostname is kept out of rotation and
///   reported as a condition.
/// - `clusters: [{name, weight}]` (weighted): every listed cluster keeps its place and weight,
///   even one without ingresses, so that its share gets 503 "no healthy upstream" (strict), or
///   is spread over the others (`healthAware: true`).
public enum EdgeRouteResolver {
    public static func resolve(_ destination: GatewaySpec.ClusterDestinations, hostname: String,
                               clusters: [EdgeClusterObject], field: String = "clusterDestination")
        -> (route: EdgeRoute, conditions: [EdgeRouteCondition]) {
        let byName = Dictionary(clusters.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var conditions: [EdgeRouteCondition] = []
        var resolved: [EdgeCluster] = []
        let list = destination.clusters ?? []
        let weighted = destination.isWeighted

        if list.isEmpty {
            for c in clusters.sorted(by: { $0.name < $1.name }) {
                let ep = endpoints(of: c.spec, publishing: hostname)
                if !ep.isEmpty { resolved.append(EdgeCluster(name: c.name, region: c.spec.locality?.region, endpoints: ep)) }
            }
        } else {
            for (k, d) in list.enumerated() {
                let f = "\(field).clusters[\(k)]"
                let weight = weighted ? Int(clamping: d.weight ?? 0) : 1
                var matched: [EdgeClusterObject] = []
                if let name = d.name, !name.isEmpty {
                    if let c = byName[name] {
                        matched = [c]
                    } else {
                        conditions.append(.init(field: "\(f).name", reason: .clusterNotFound,
                                                message: "cluster \"\(name)\" does not exist"))
                        if weighted { resolved.append(EdgeCluster(name: name, region: nil, endpoints: [], weight: weight)) }
                        continue
                    }
                } else if let labels = d.labels, !labels.isEmpty {
                    matched = clusters.filter { c in labels.allSatisfy { c.labels[$0.key] == $0.value } }
                        .sorted { $0.name < $1.name }
                    if matched.isEmpty {
                        conditions.append(.init(field: "\(f).labels", reason: .clusterNotFound,
                                                message: "no cluster has the labels \(labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))"))
                    }
                }
                for c in matched where !resolved.contains(where: { $0.name == c.name }) {
                    let ep = endpoints(of: c.spec, publishing: hostname)
                    if ep.isEmpty {
                        conditions.append(.init(field: d.name != nil ? "\(f).name" : "\(f).labels", reason: .hostnameNotPublished,
                                                message: "cluster \"\(c.name)\" has no ingress that publishes the hostname \(hostname)"))
                        if !weighted { continue }
                    }
                    resolved.append(EdgeCluster(name: c.name, region: c.spec.locality?.region, endpoints: ep, weight: weight))
                }
            }
        }
        if resolved.allSatisfy({ $0.endpoints.isEmpty }) {
            conditions.append(.init(field: field, reason: .noClusters,
                                    message: "no cluster publishes the hostname \(hostname): every request gets 503 \"no healthy upstream\""))
        }
        let mode: EdgeRouteMode = weighted ? .weighted(healthAware: destination.healthAware ?? false) : .locality
        return (EdgeRoute(mode: mode, clusters: resolved), conditions)
    }

    /// The ingresses of `spec` that publish `hostname`, in spec order, without duplicates. For a
    /// wildcard server hostname (`*.example.com`), an ingress publishing any name under it counts.
    public static func endpoints(of spec: ClusterSpec, publishing hostname: String) -> [EdgeEndpoint] {
        var out: [EdgeEndpoint] = []
        let h = hostname.lowercased()
        for i in spec.ingresses ?? [] where i.serves(h) || (h.hasPrefix("*.") && (i.hostnames ?? []).contains { name in
            let n = name.lowercased()
            return n == h || (!n.hasPrefix("*.") && n.hasSuffix(h.dropFirst(1)))
        }) {
            let e = EdgeEndpoint(address: i.address, port: Int(i.effectivePort))
            if !out.contains(e) { out.append(e) }
        }
        return out
    }
}
