/// The active half of the edge's health checking: an HTTP check per ingress endpoint every
/// `interval`, each bounded by `timeout`. An endpoint goes unhealthy after `unhealthyThreshold`
/// failed checks in a row and healthy again after `healthyThreshold` good ones in a row.
/// Pure; the caller sends the checks (`GET path`, `Host: <the route's hostname>`, any status
/// below 500 is good) and owns the clock.
///
/// Endpoints start healthy: an edge that starts, or learns a new cluster, serves at once, and
/// passive detection takes out whatever is down on the first failed attempts.
public struct ActiveHealthCheck: Sendable {
    public struct Settings: Sendable, Hashable {
        public var interval: Duration = .milliseconds(500)
        public var timeout: Duration = .milliseconds(400)
        public var unhealthyThreshold: Int = 2
        public var healthyThreshold: Int = 2
        public var path: String = "/"
        public init() {}

        public func validate() throws(ConfigurationError) {
            if interval <= .zero { throw ConfigurationError(.notPositive, "the health check interval must be positive") }
            if timeout <= .zero { throw ConfigurationError(.notPositive, "the health check timeout must be positive") }
            if timeout > interval {
                throw ConfigurationError(.ordering, "the health check timeout (\(timeout)) must not exceed its interval (\(interval))")
            }
            if unhealthyThreshold < 1 || healthyThreshold < 1 {
                throw ConfigurationError(.notPositive, "the health check thresholds must be at least 1")
            }
        }
    }

    public enum Decision: Sendable, Hashable {
        /// Send a check to the endpoint now, and report it with `record` within `timeout`.
        case check(EdgeEndpoint)
        case markUnhealthy(EdgeEndpoint)
        case markHealthy(EdgeEndpoint)
    }

    struct State: Sendable {
        var healthy = true
        var run: RiseFall
        var nextCheck: BatonInstant
        var inFlight = false
    }

    public let settings: Settings
    private var endpoints: [EdgeEndpoint: State] = [:]

    public init(settings: Settings = Settings()) { self.settings = settings }

    /// Sets the endpoints under check: new ones start healthy with a check due at once.
    public mutating func track(_ set: Set<EdgeEndpoint>, now: BatonInstant) {
        for e in endpoints.keys where !set.contains(e) { endpoints[e] = nil }
        for e in set where endpoints[e] == nil {
            endpoints[e] = State(run: RiseFall(rise: settings.healthyThreshold, fall: settings.unhealthyThreshold), nextCheck: now)
        }
    }

    public func isHealthy(_ e: EdgeEndpoint) -> Bool { endpoints[e]?.healthy ?? false }
    public var unhealthy: Set<EdgeEndpoint> { Set(endpoints.filter { !$0.value.healthy }.keys) }

    /// When the next check falls due.
    public var nextDeadline: BatonInstant? { endpoints.values.filter { !$0.inFlight }.map(\.nextCheck).min() }

    /// The checks due at `now`; each endpoint has at most one in flight.
    public mutating func evaluate(now: BatonInstant) -> [Decision] {
        var out: [Decision] = []
        for e in endpoints.keys.sorted() {
            guard var s = endpoints[e], !s.inFlight, s.nextCheck <= now else { continue }
            s.inFlight = true
            s.nextCheck = now + settings.interval
            endpoints[e] = s
            out.append(.check(e))
        }
        return out
    }

    /// The result of a check `evaluate` asked for: `passed` false for a 5xx, a connect failure or
    /// no answer within `timeout`.
    public mutating func record(_ e: EdgeEndpoint, passed: Bool, now: BatonInstant) -> [Decision] {
        guard var s = endpoints[e] else { return [] }
        defer { endpoints[e] = s }
        s.inFlight = false
        if s.nextCheck < now { s.nextCheck = now }
        guard s.run.record(passed: passed), s.healthy != passed else { return [] }
        s.healthy = passed
        return [passed ? .markHealthy(e) : .markUnhealthy(e)]
    }
}
