import BatonCore
import Synchronization

/// A clock that moves only when a test moves it, so decision tests run step by step with no
/// sleeps. Safe to share between tasks.
public final class ManualClock: BatonClock {
    private let current: Mutex<BatonInstant>

    public init(_ start: BatonInstant = .zero) { current = Mutex(start) }

    public var now: BatonInstant { current.withLock { $0 } }

    /// Moves the clock forward by `duration` (negative durations are refused) and returns the new `now`.
    @discardableResult
    public func advance(by duration: Duration) -> BatonInstant {
        precondition(duration >= .zero, "ManualClock only moves forward")
        return current.withLock { $0 = $0 + duration; return $0 }
    }

    /// Sets the clock to `instant`, which must not be earlier than `now`.
    public func set(to instant: BatonInstant) {
        current.withLock {
            precondition(instant >= $0, "ManualClock only moves forward")
            $0 = instant
        }
    }
}
