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
        switch route.mode {
        case .weighted(healthAware: false):
            let candidates = excluding.isEmpty ? route.clusters : route.clusters.filter { !excluding.contains($0.name) }
            guard let c = weightedChoice(candidates, using: &rng) else { return .noHealthyUpstream(cluster: nil) }
            guard let e = endpointChoice(c, isHealthy: isHealthy, using: &rng) else { return .noHealthyUpstream(cluster: c.name) }
            return .endpoint(cluster: c.name, endpoint: e)
        case .weighted(healthAware: true):
            let candidates = excluding.isEmpty ? route.clusters : route.clusters.filter { !excluding.contains($0.name) }
            let live = candidates.filter { $0.endpoints.contains(where: isHealthy) }
            guard let c = weightedChoice(live, using: &rng), let e = endpointChoice(c, isHealthy: isHealthy, using: &rng) else {
                return .noHealthyUpstream(cluster: nil)
            }
            return .endpoint(cluster: c.name, endpoint: e)
        case .locality:
            // Two passes and no allocation (this runs for every request): count the clusters
            // that can serve, then take a random one of them.
            var liveCount = 0, localCount = 0
            for c in route.clusters where !excluding.contains(c.name) && c.endpoints.contains(where: isHealthy) {
                liveCount += 1
                if c.region == region { localCount += 1 }
            }
            guard liveCount > 0 else { return .noHealthyUpstream(cluster: nil) }
            let onlyLocal = localCount > 0
            var k = Int.random(in: 0..<(onlyLocal ? localCount : liveCount), using: &rng)
            for c in route.clusters where !excluding.contains(c.name) && (!onlyLocal || c.region == region)
                && c.endpoints.contains(where: isHealthy) {
                if k == 0 {
                    guard let e = endpointChoice(c, isHealthy: isHealthy, using: &rng) else { return .noHealthyUpstream(cluster: nil) }
                    return .endpoint(cluster: c.name, endpoint: e)
                }
                k -= 1
            }
            return .noHealthyUpstream(cluster: nil)
        }
    }

    @inlinable
    static func weightedChoice(_ clusters: [EdgeCluster], using rng: inout some RandomNumberGenerator) -> EdgeCluster? {
        let total = clusters.reduce(0) { $0 + max(0, $1.weight) }
        guard total > 0 else { return nil }
        var roll = Int.random(in: 0..<total, using: &rng)
        for c in clusters where c.weight > 0 {
            if roll < c.weight { return c }
            roll -= c.weight
        }
        return nil
    }

    @inlinable
    static func endpointChoice(_ c: EdgeCluster, isHealthy: (EdgeEndpoint) -> Bool,
                               using rng: inout some RandomNumberGenerator) -> EdgeEndpoint? {
        if c.endpoints.count == 1 { return isHealthy(c.endpoints[0]) ? c.endpoints[0] : nil }
        let healthy = c.endpoints.filter(isHealthy)
        guard !healthy.isEmpty else { return nil }
        return healthy.count == 1 ? healthy[0] : healthy[Int.random(in: 0..<healthy.count, using: &rng)]
    }
}
