/// What one attempt to an ingress endpoint came to, as outlier detection counts it.
public enum EdgeAttemptOutcome: Sendable, Hashable {
    /// A response below 500 (or a 5xx that is not counted, see `record`).
    case success
    /// A 5xx response from the ingress: 502, 503 and 504 are also gateway errors.
    case status(Int)
    /// The TCP connection to the ingress could not be made (refused, unreachable, connect timeout).
    case connectFailure
    /// The connection was reset or closed before the response ended.
    case reset
    /// The proxy's own timeout fired (the ingress did not answer in time). Envoy does not count
    /// these (its issue #41985); Baton does, as local-origin failures.
    case timeout
}

/// The passive half of the edge's health checking: outlier detection on live traffic, per
/// ingress endpoint. Pure; the caller owns the clock and passes `now`.
///
/// - An endpoint is ejected after `consecutive5xx` 5xx answers in a row, `consecutiveGatewayErrors`
///   502/503/504 in a row, or `consecutiveLocalOriginFailures` connect failures, resets or
///   timeouts in a row. Any success resets the counts.
/// - An ejection lasts `baseEjectionTime × n`, n being the endpoint's ejection count, capped at
///   `maxEjectionTime`. The count goes down by one for every `baseEjectionTime` the endpoint
///   spends in rotation without being ejected.
/// - At most `maxEjectionPercent` of the endpoints are ejected at once; the default is 100%,
///   because Envoy's 10% is why failover never happens with few ingresses (Istio #34605).
/// - An ejected endpoint returns at the end of its time (`evaluate` reports it), or when its
///   active checks, having failed, pass again (`uneject`).
public struct OutlierDetector: Sendable {
    public struct Settings: Sendable, Hashable {
        public var consecutive5xx: Int = 5
        public var consecutiveGatewayErrors: Int = 3
        public var consecutiveLocalOriginFailures: Int = 3
        public var baseEjectionTime: Duration = .seconds(5)
        public var maxEjectionTime: Duration = .seconds(300)
        public var maxEjectionPercent: Int = 100
        public init() {}

        /// Refuses settings the detector cannot work with, naming the setting.
        public func validate() throws(ConfigurationError) {
            for (name, v) in [("consecutive5xx", consecutive5xx), ("consecutiveGatewayErrors", consecutiveGatewayErrors),
                              ("consecutiveLocalOriginFailures", consecutiveLocalOriginFailures)] where v < 1 {
                throw ConfigurationError(.notPositive, "\(name) is \(v): it must be at least 1")
            }
            if baseEjectionTime <= .zero { throw ConfigurationError(.notPositive, "baseEjectionTime must be positive") }
            if maxEjectionTime < baseEjectionTime {
                throw ConfigurationError(.ordering, "maxEjectionTime (\(maxEjectionTime)) must not be below baseEjectionTime (\(baseEjectionTime))")
            }
            if !(0...100).contains(maxEjectionPercent) {
                throw ConfigurationError(.outOfRange, "maxEjectionPercent is \(maxEjectionPercent): it must be between 0 and 100")
            }
        }
    }

    public enum Reason: String, Sendable, Hashable {
        case consecutive5xx = "Consecutive5xx"
        case consecutiveGatewayErrors = "ConsecutiveGatewayErrors"
        case consecutiveLocalOriginFailures = "ConsecutiveLocalOriginFailures"
    }

    public enum Decision: Sendable, Hashable {
        /// Take the endpoint out of rotation until `until`; `count` is its ejection count.
        case eject(EdgeEndpoint, reason: Reason, until: BatonInstant, count: Int)
        /// The endpoint's ejection time is over: back in rotation.
        case uneject(EdgeEndpoint)
    }

    struct State: Sendable {
        var fivexx = 0
        var gateway = 0
        var localOrigin = 0
        var ejectedUntil: BatonInstant?
        var ejections = 0
        /// When the ejection count last went down, or the endpoint last came back.
        var decayFrom: BatonInstant = .zero
    }

    public let settings: Settings
    private var endpoints: [EdgeEndpoint: State] = [:]

    public init(settings: Settings = Settings()) { self.settings = settings }

    /// Sets the endpoints under watch: new ones start in rotation, gone ones are forgotten.
    public mutating func track(_ set: Set<EdgeEndpoint>, now: BatonInstant) {
        for e in endpoints.keys where !set.contains(e) { endpoints[e] = nil }
        for e in set where endpoints[e] == nil { endpoints[e] = State(decayFrom: now) }
    }

    public func isEjected(_ e: EdgeEndpoint) -> Bool { endpoints[e]?.ejectedUntil != nil }
    /// Whether `e` has a failure counted toward an ejection (a success would then change state).
    public func hasStreak(_ e: EdgeEndpoint) -> Bool {
        guard let s = endpoints[e] else { return false }
        return s.fivexx > 0 || s.gateway > 0 || s.localOrigin > 0
    }
    public var ejected: Set<EdgeEndpoint> { Set(endpoints.filter { $0.value.ejectedUntil != nil }.keys) }
    public func ejectionCount(_ e: EdgeEndpoint) -> Int { endpoints[e]?.ejections ?? 0 }

    /// The earliest ejection end, for the caller's timer.
    public var nextDeadline: BatonInstant? { endpoints.values.compactMap(\.ejectedUntil).min() }

    /// Counts one attempt's outcome. Outcomes for an endpoint already ejected (attempts that were
    /// in flight) change nothing.
    public mutating func record(_ outcome: EdgeAttemptOutcome, for e: EdgeEndpoint, now: BatonInstant) -> [Decision] {
        guard var s = endpoints[e] else { return [] }
        defer { endpoints[e] = s }
        if s.ejectedUntil != nil { return [] }
        var reason: Reason?
        switch outcome {
        case .success:
            s.fivexx = 0; s.gateway = 0; s.localOrigin = 0
        case .status(let code) where code >= 500:
            s.fivexx += 1
            if [502, 503, 504].contains(code) { s.gateway += 1 } else { s.gateway = 0 }
            s.localOrigin = 0
            if s.gateway >= settings.consecutiveGatewayErrors { reason = .consecutiveGatewayErrors }
            else if s.fivexx >= settings.consecutive5xx { reason = .consecutive5xx }
        case .status:
            s.fivexx = 0; s.gateway = 0; s.localOrigin = 0
        case .connectFailure, .reset, .timeout:
            s.localOrigin += 1
            if s.localOrigin >= settings.consecutiveLocalOriginFailures { reason = .consecutiveLocalOriginFailures }
        }
        guard let reason else { return [] }
        let ejectedNow = endpoints.values.filter { $0.ejectedUntil != nil }.count
        guard (ejectedNow + 1) * 100 <= settings.maxEjectionPercent * endpoints.count else { return [] }
        decay(&s, now: now)
        s.ejections += 1
        let time = min(settings.baseEjectionTime * s.ejections, settings.maxEjectionTime)
        s.ejectedUntil = now + time
        s.fivexx = 0; s.gateway = 0; s.localOrigin = 0
        return [.eject(e, reason: reason, until: now + time, count: s.ejections)]
    }

    /// Ends an ejection before its time (the ejection count stays): for an endpoint that failed
    /// its active checks and then passed them again, as Envoy's
    /// `successful_active_health_check_uneject_host` does. Returns whether it was ejected.
    @discardableResult
    public mutating func uneject(_ e: EdgeEndpoint, now: BatonInstant) -> Bool {
        guard endpoints[e]?.ejectedUntil != nil else { return false }
        endpoints[e]!.ejectedUntil = nil
        endpoints[e]!.decayFrom = now
        return true
    }

    /// Returns the endpoints whose ejection time is over at `now`. Call at `nextDeadline`.
    public mutating func evaluate(now: BatonInstant) -> [Decision] {
        var out: [Decision] = []
        for e in endpoints.keys.sorted() {
            guard let until = endpoints[e]!.ejectedUntil, until <= now else { continue }
            endpoints[e]!.ejectedUntil = nil
            endpoints[e]!.decayFrom = now
            out.append(.uneject(e))
        }
        return out
    }

    private func decay(_ s: inout State, now: BatonInstant) {
        guard s.ejections > 0 else { return }
        let healthyFor = now - s.decayFrom
        let steps = Int(healthyFor / settings.baseEjectionTime)
        s.ejections = max(0, s.ejections - steps)
        s.decayFrom = s.decayFrom + settings.baseEjectionTime * steps
    }
}
