import BatonAPI
import BatonCore
import Logging
import Synchronization

/// Something an operator should read back as a timeline: an ejection, a return, a locality
/// failover. `baton edge` writes each as an Event on the Gateway (or Cluster) it concerns.
public struct EdgeNotice: Sendable, Hashable {
    public var kind: String
    public var name: String
    public var reason: String
    public var message: String
    public var warning: Bool
}

/// The edge's shared state: the route table from the control plane, and the health of every
/// ingress endpoint (passive outlier detection and active checks, both from BatonCore). Safe to
/// use from every event loop; the hot path takes one short lock per look-up.
public final class EdgeState: Sendable {
    struct Health: Sendable {
        var outlier: OutlierDetector
        var active: ActiveHealthCheck
        /// Endpoints out of rotation: ejected or failing their active checks.
        var down: Set<EdgeEndpoint> = []
        /// Per endpoint, the cluster it belongs to and a hostname it publishes (for checks and logs).
        var owners: [EdgeEndpoint: (cluster: String, hostname: String)] = [:]
        /// Per locality route (`gateway/server#rule`), the tier it served from last.
        var tiers: [String: EdgeLocalityTier] = [:]
        /// Endpoints with a failure counted toward an ejection.
        var streaking: Set<EdgeEndpoint> = []
    }

    public let settings: EdgeSettings
    let clock: any BatonClock
    let logger: Logger
    let metrics: EdgeMetrics
    private let table = Mutex(EdgeRouteTable())
    private let health: Mutex<Health>
    private let notices: @Sendable (EdgeNotice) -> Void
    /// Requests and retries in flight, for the retry budget.
    let inFlight = Atomic<Int>(0)
    let retriesInFlight = Atomic<Int>(0)
    /// Bumped after every change to the route table or to the endpoints out of rotation, so
    /// that each event loop keeps its own copy of both and takes no lock per request.
    let generation = Atomic<UInt64>(1)
    /// Bumped after every new route table only (before `generation`): the loops copy the table,
    /// and prune their idle connections, only when it changed, not on every health change.
    let tableGeneration = Atomic<UInt64>(0)
    /// How many endpoints have a failure streak. While none has, a success changes nothing and
    /// is not recorded (no lock, no clock read). Two loops may race here: a success read as
    /// "nothing to reset" just as another loop counts a failure leaves that failure counted,
    /// which only shortens a streak's path to ejection by one success that overlapped it.
    private let streaks = Atomic<Int>(0)

    public init(settings: EdgeSettings, clock: any BatonClock = MonotonicClock(), logger: Logger,
                notices: @escaping @Sendable (EdgeNotice) -> Void = { _ in }) {
        self.settings = settings
        self.clock = clock
        self.logger = logger
        self.metrics = EdgeMetrics()
        self.notices = notices
        self.health = Mutex(Health(outlier: OutlierDetector(settings: settings.outlier),
                                   active: ActiveHealthCheck(settings: settings.activeCheck)))
    }

    public var routeTable: EdgeRouteTable { table.withLock { $0 } }

    /// Installs a new route table and starts (or stops) watching the endpoints it names.
    public func install(_ new: EdgeRouteTable) {
        var owners: [EdgeEndpoint: (cluster: String, hostname: String)] = [:]
        for (_, byHost) in new.servers {
            for (host, rules) in byHost {
                for rule in rules {
                    for c in rule.route.clusters {
                        for e in c.endpoints where owners[e] == nil {
                            owners[e] = (c.name, host.hasPrefix("*.") ? String(host.dropFirst(2)) : host)
                        }
                    }
                }
            }
        }
        let now = clock.now
        health.withLock { h in
            let set = Set(owners.keys)
            h.outlier.track(set, now: now)
            h.active.track(set, now: now)
            h.owners = owners
            h.down = h.down.intersection(set)
            h.streaking = h.streaking.intersection(set)
            streaks.store(h.streaking.count, ordering: .relaxed)
        }
        table.withLock { $0 = new }
        tableGeneration.add(1, ordering: .releasing)
        generation.add(1, ordering: .releasing)
        checkLocality()
    }

    /// The endpoints out of rotation now.
    var down: Set<EdgeEndpoint> { health.withLock { $0.down } }

    func owner(of e: EdgeEndpoint) -> (cluster: String, hostname: String)? { health.withLock { $0.owners[e] } }

    /// Counts one attempt's outcome against its endpoint (passive outlier detection).
    func record(_ outcome: EdgeAttemptOutcome, endpoint: EdgeEndpoint, cluster: String) {
        if case .success = outcome, streaks.load(ordering: .relaxed) == 0 { return }
        let now = clock.now
        let decisions = health.withLock { h -> [OutlierDetector.Decision] in
            let d = h.outlier.record(outcome, for: endpoint, now: now)
            for case .eject(let e, _, _, _) in d { h.down.insert(e) }
            if h.outlier.hasStreak(endpoint) { h.streaking.insert(endpoint) } else { h.streaking.remove(endpoint) }
            streaks.store(h.streaking.count, ordering: .relaxed)
            return d
        }
        guard !decisions.isEmpty else { return }
        generation.add(1, ordering: .releasing)
        for case .eject(let e, let reason, let until, let count) in decisions {
            metrics.ejection(cluster: cluster)
            let message = "ingress \(e) of cluster \(cluster) ejected for \(until - now) (ejection \(count)): \(reason.rawValue), last \(outcome)"
            logger.warning("\(message)")
            notices(EdgeNotice(kind: "Cluster", name: cluster, reason: "IngressEjected", message: message, warning: true))
        }
        checkLocality()
    }

    /// Ends ejections that are over and runs the active checks' schedule. Returns the checks to
    /// send now (endpoint and the hostname to send as `Host`).
    func tick() -> [(EdgeEndpoint, String)] {
        let now = clock.now
        let (returned, checks) = health.withLock { h -> ([EdgeEndpoint], [(EdgeEndpoint, String)]) in
            var back: [EdgeEndpoint] = []
            for case .uneject(let e) in h.outlier.evaluate(now: now) where h.active.isHealthy(e) {
                h.down.remove(e)
                back.append(e)
            }
            var checks: [(EdgeEndpoint, String)] = []
            if settings.activeChecks {
                for case .check(let e) in h.active.evaluate(now: now) {
                    checks.append((e, h.owners[e]?.hostname ?? e.address))
                }
            }
            return (back, checks)
        }
        if !returned.isEmpty { generation.add(1, ordering: .releasing) }
        for e in returned { announceReturn(e, why: "its ejection time is over") }
        if !returned.isEmpty { checkLocality() }
        return checks
    }

    /// The result of an active check.
    func checked(_ e: EdgeEndpoint, passed: Bool, detail: String) {
        let now = clock.now
        let (decisions, back) = health.withLock { h -> ([ActiveHealthCheck.Decision], Bool) in
            let d = h.active.record(e, passed: passed, now: now)
            var back = false
            for decision in d {
                switch decision {
                case .markUnhealthy(let e): h.down.insert(e)
                case .markHealthy(let e):
                    // Failed checks, then passed again: back, and its ejection (if any) ends.
                    h.outlier.uneject(e, now: now)
                    h.down.remove(e)
                    back = true
                default: break
                }
            }
            return (d, back)
        }
        guard !decisions.isEmpty else { return }
        generation.add(1, ordering: .releasing)
        let cluster = owner(of: e)?.cluster ?? "?"
        if decisions.contains(.markUnhealthy(e)) {
            let message = "ingress \(e) of cluster \(cluster) failed \(settings.activeCheck.unhealthyThreshold) health checks: \(detail)"
            logger.warning("\(message)")
            notices(EdgeNotice(kind: "Cluster", name: cluster, reason: "IngressUnhealthy", message: message, warning: true))
        }
        if back { announceReturn(e, why: "it passed \(settings.activeCheck.healthyThreshold) health checks") }
        checkLocality()
    }

    private func announceReturn(_ e: EdgeEndpoint, why: String) {
        let cluster = owner(of: e)?.cluster ?? "?"
        let message = "ingress \(e) of cluster \(cluster) is back in rotation: \(why)"
        logger.notice("\(message)")
        notices(EdgeNotice(kind: "Cluster", name: cluster, reason: "IngressReturned", message: message, warning: false))
    }

    /// Reports each locality route whose serving tier changed (local → remote, back, or none).
    private func checkLocality() {
        let table = routeTable
        let down = self.down
        var changes: [(String, EdgeLocalityTier, EdgeLocalityTier)] = []
        health.withLock { h in
            for (_, byHost) in table.servers {
                for (host, rules) in byHost {
                    for (j, rule) in rules.enumerated() where rule.route.mode == .locality {
                        let key = "\(rule.server) \(host)#\(j)"
                        let tier = EdgeBalancer.tier(rule.route, region: settings.region, isHealthy: { !down.contains($0) })
                        let old = h.tiers[key] ?? .local
                        if old != tier { changes.append((key, old, tier)) }
                        h.tiers[key] = tier
                    }
                }
            }
        }
        for (key, old, tier) in changes {
            let gateway = String(key.prefix { $0 != "/" })
            let message: String
            switch tier {
            case .remote: message = "\(key): no local cluster in \(settings.region) has a healthy ingress; sharing traffic across remote regions"
            case .local: message = "\(key): a local cluster in \(settings.region) is healthy again; traffic returns home"
            case .none: message = "\(key): no cluster has a healthy ingress; answering 503 no healthy upstream"
            }
            logger.warning("locality \(old.rawValue) -> \(tier.rawValue): \(message)")
            notices(EdgeNotice(kind: "Gateway", name: gateway, reason: tier == .local ? "LocalityReturned" : "LocalityFailover",
                               message: message, warning: tier != .local))
        }
    }
}
