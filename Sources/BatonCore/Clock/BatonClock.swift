/// Where a caller gets `now` for the core's decisions. The core itself never reads a clock:
/// agents, controllers and tests own one and pass `clock.now` into `handle`/`evaluate`.
public protocol BatonClock: Sendable {
    /// The current instant; never goes backwards.
    var now: BatonInstant { get }
}

/// The process's monotonic clock (`ContinuousClock`), with its origin at `init`. Its instants
/// mean nothing to another process or machine.
public struct MonotonicClock: BatonClock {
    private let origin: ContinuousClock.Instant

    public init() { origin = ContinuousClock.now }

    public var now: BatonInstant { BatonInstant(sinceOrigin: origin.duration(to: ContinuousClock.now)) }
}
