import BatonAPI

/// One gateway's health as one node's probes see it: consecutive answered and failed probes
/// against `successThreshold` and `failureThreshold`, and the hold-down that keeps traffic off a
/// gateway that has just come back (anti-flap). Pure: the caller owns the clock and the probes.
public struct GatewayHealth: Sendable, Hashable {
    public enum State: String, Sendable, Hashable {
        /// Not judged yet. A route may use it (the original operator installs at once).
        case unknown = "Unknown"
        case healthy = "Healthy"
        case unhealthy = "Unhealthy"
    }

    public var state: State = .unknown
    /// When `state` last changed.
    public private(set) var since: BatonInstant
    /// When it last went from unhealthy to healthy: the hold-down runs from here.
    public private(set) var recoveredAt: BatonInstant?
    /// The probes counted in a row: `successThreshold` answers are its rise, `failureThreshold`
    /// failures its fall.
    private var run: RiseFall
    public var failureThreshold: Int { run.fall }
    public let holdDown: Duration

    /// Thresholds below 1 count as 1.
    public init(failureThreshold: Int, successThreshold: Int, holdDown: Duration, now: BatonInstant) {
        self.run = RiseFall(rise: successThreshold, fall: failureThreshold)
        self.holdDown = holdDown
        self.since = now
    }

    public init(_ check: StaticRouteSpec.HealthCheck.Resolved, now: BatonInstant) {
        self.init(failureThreshold: check.failureThreshold, successThreshold: check.successThreshold,
                  holdDown: .nanoseconds(check.holdDown), now: now)
    }

    /// Records one probe's outcome; returns the new state when it changed.
    ///
    /// Unknown becomes healthy at the first answer and unhealthy after `failureThreshold`
    /// failures; healthy becomes unhealthy after `failureThreshold` consecutive failures;
    /// unhealthy becomes healthy after `successThreshold` consecutive answers, and its
    /// hold-down starts then.
    @discardableResult
    public mutating func record(answered: Bool, now: BatonInstant) -> State? {
        let complete = run.record(passed: answered)
        if answered {
            switch state {
            case .unknown: return move(to: .healthy, now: now)
            case .unhealthy where complete:
                recoveredAt = now
                return move(to: .healthy, now: now)
            default: return nil
            }
        }
        if state != .unhealthy && complete { return move(to: .unhealthy, now: now) }
        return nil
    }

    private mutating func move(to s: State, now: BatonInstant) -> State {
        state = s
        since = now
        return s
    }

    /// Whether it may carry traffic at all: not judged unhealthy.
    public var usable: Bool { state != .unhealthy }

    /// Whether it is in its hold-down at `now`: healthy again, but not for `holdDown` yet.
    public func inHoldDown(now: BatonInstant) -> Bool {
        guard state == .healthy, let r = recoveredAt else { return false }
        return now < r + holdDown
    }

    /// When its hold-down ends (nil when it is not in one at `now`).
    public func holdDownEnds(now: BatonInstant) -> BatonInstant? {
        guard inHoldDown(now: now), let r = recoveredAt else { return nil }
        return r + holdDown
    }
}
