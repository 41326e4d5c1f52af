/// Which clusters of a locality route take traffic now.
public enum EdgeLocalityTier: String, Sendable, Hashable {
    /// At least one cluster in the edge's region has a healthy ingress: only local clusters serve.
    case local
    /// No local cluster has a healthy ingress: the remote regions' healthy clusters share the traffic.
    case remote
    /// No cluster has a healthy ingress: every request gets 503 "no healthy upstream".
    case none
}

/// The edge's choice of cluster and ingress for one attempt. Pure: the health view, the region
/// and the random source come from the caller.
///
/// Locality, and Baton's answers to Envoy's knobs:
/// - **Overprovisioning factor: none (∞ in Envoy's terms).** Envoy spills part of the traffic
///   to the next priority as soon as less than 1/1.4 (71%) of the local hosts are healthy. The
///   seed's edge keeps traffic local while *any* local ingress is healthy ("if all ingress
///   gateways in the same region fail ..."), so Baton does: cross-region traffic costs latency
///   and money, and one healthy local ingress is all an operator asked for. A local cluster
///   with several ingresses spreads over its healthy ones.
/// - **Panic threshold: 0% (no panic mode).** Envoy, below 50% healthy, sends to every host,
///   dead ones included. Baton never sends a first attempt to an ejected or failing ingress:
///   when every cluster is out, the answer is 503 "no healthy upstream". Nothing is stuck that
///   way: ejections end by themselves after their time (`OutlierDetector`), and active checks
///   bring an ingress back as soon as it answers, so a false positive heals without traffic
///   being sent into a black hole first.
public enum EdgeBalancer {
    public enum Pick: Sendable, Hashable {
        case endpoint(cluster: String, endpoint: EdgeEndpoint)
        /// Answer 503 "no healthy upstream". `cluster` names the dead cluster a strict weighted
        /// split chose, nil when no cluster at all could take the request.
        case noHealthyUpstream(cluster: String?)
    }

    /// The tier a locality route serves from, given which endpoints are in rotation.
    public static func tier(_ route: EdgeRoute, region: String, isHealthy: (EdgeEndpoint) -> Bool) -> EdgeLocalityTier {
        let live = route.clusters.filter { $0.endpoints.contains(where: isHealthy) }
        if live.contains(where: { $0.region == region }) { return .local }
        return live.isEmpty ? .none : .remote
    }

    /// Chooses the cluster and ingress for an attempt. `excluding` holds the clusters earlier
    /// attempts of this request went to: a retry never goes back to one of them (when no other
    /// cluster can take it, the pick is `noHealthyUpstream`).
    @inlinable  // specialized for the caller's random source: a generic `Int.random` per request is not free
    public static func pick(_ route: EdgeRoute, region: String, excluding: [String] = [],
                            isHealthy: (EdgeEndpoint) -> Bool,
                            using rng: inout some RandomNumberGenerator) -> Pick {
        choices(route, region: region, excluding: excluding, isHealthy: isHealthy).pick(using: &rng)
    }

    /// What a pick draws from: the clusters that may take the request, each with its weight and
    /// its endpoints in rotation. It depends only on the route, the region, the excluded clusters
    /// and the health view, so the proxy keeps the one for first attempts (nothing excluded)
    /// until the route table or the health view changes: a request then costs one or two
    /// random draws and no walk over the route.
    public struct Choices: Sendable, Hashable {
        public struct Choice: Sendable, Hashable {
            public var cluster: String
            /// Its endpoints in rotation. Empty only in a strict weighted list: that cluster's
            /// share gets 503 "no healthy upstream".
            public var endpoints: [EdgeEndpoint]
        }
        /// In route order.
        public private(set) var choices: [Choice] = []
        /// The running total of the weights, per choice: choice `i` takes the rolls below
        /// `upTo[i]` and at or above `upTo[i - 1]`.
        public private(set) var upTo: [Int] = []

        public init() {}

        mutating func append(_ cluster: String, endpoints: [EdgeEndpoint], weight: Int) {
            choices.append(Choice(cluster: cluster, endpoints: endpoints))
            upTo.append((upTo.last ?? 0) + weight)
        }

        /// The chosen cluster's index in `choices`, and its endpoint's in its `endpoints` (nil when
        /// it has none in rotation). Nil: no cluster can take the request. One draw for the
        /// cluster when there is a choice of weights, one for the endpoint when it has several.
        @inlinable
        public func draw(using rng: inout some RandomNumberGenerator) -> (choice: Int, endpoint: Int?)? {
            guard let total = upTo.last, total > 0 else { return nil }
            let roll = Int.random(in: 0..<total, using: &rng)
            var i = 0
            while upTo[i] <= roll { i += 1 }
            switch choices[i].endpoints.count {
            case 0: return (i, nil)
            case 1: return (i, 0)
            case let n: return (i, Int.random(in: 0..<n, using: &rng))
            }
        }

        @inlinable
        public func pick(using rng: inout some RandomNumberGenerator) -> Pick {
            guard let (i, e) = draw(using: &rng) else { return .noHealthyUpstream(cluster: nil) }
            guard let e else { return .noHealthyUpstream(cluster: choices[i].cluster) }
            return .endpoint(cluster: choices[i].cluster, endpoint: choices[i].endpoints[e])
        }
    }

    /// The choices for an attempt (see `pick`):
    /// - strict weights: every cluster with a weight above 0, healthy or not;
    /// - health-aware weights: those of them with an endpoint in rotation;
    /// - locality: the clusters with an endpoint in rotation in the edge's region, or when there
    ///   is none, in every region; each with the same chance (weights do not apply).
    public static func choices(_ route: EdgeRoute, region: String, excluding: [String] = [],
                               isHealthy: (EdgeEndpoint) -> Bool) -> Choices {
        var out = Choices()
        switch route.mode {
        case .weighted(let healthAware):
            for c in route.clusters where c.weight > 0 && !excluding.contains(c.name) {
                let live = c.endpoints.filter(isHealthy)
                if healthAware && live.isEmpty { continue }
                out.append(c.name, endpoints: live, weight: c.weight)
            }
        case .locality:
            let live = route.clusters.compactMap { c -> (EdgeCluster, [EdgeEndpoint])? in
                guard !excluding.contains(c.name) else { return nil }
                let e = c.endpoints.filter(isHealthy)
                return e.isEmpty ? nil : (c, e)
            }
            let onlyLocal = live.contains { $0.0.region == region }
            for (c, e) in live where !onlyLocal || c.region == region { out.append(c.name, endpoints: e, weight: 1) }
        }
        return out
    }
}
