/// keepalived's `rise`/`fall` counting for one tracked check (a `vrrp_script`'s `result`, as
/// keepalived 2.2.7's `vrrp_script_child_thread` keeps it). Pure: it only counts outcomes.
///
/// - Before the first outcome the status is `unknown`, and that first outcome decides at once
///   (keepalived starts the counter at `rise − 1`: "one success is enough", and the first
///   failure counts as a fall whatever `fall` is).
/// - Once up, it goes down after `fall` failures in a row; once down, it comes up after `rise`
///   successes in a row. A success resets the failures counted so far, and a failure the
///   successes.
public struct VRRPCheckCounter: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable {
        /// No outcome yet.
        case unknown
        case up
        case down
    }

    /// Successes in a row that bring a down check up, ≥ 1.
    public let rise: Int
    /// Failures in a row that bring an up check down, ≥ 1.
    public let fall: Int
    /// keepalived's `result`: 0...rise−1 is down (counting successes), rise...rise+fall−1 is up
    /// (counting down the failures it still tolerates).
    private var result: Int
    private var reported = false

    public init(rise: Int, fall: Int) {
        precondition(rise >= 1 && fall >= 1, "rise and fall are at least 1")
        self.rise = rise
        self.fall = fall
        result = rise - 1
    }

    public var status: Status {
        guard reported else { return .unknown }
        return result >= rise ? .up : .down
    }

    /// Counts one outcome and returns the new status when it changed (from `unknown` too).
    public mutating func record(success: Bool) -> Status? {
        let before = status
        let top = rise + fall - 1
        if success {
            if result < rise - 1 {
                result += 1
            } else {
                result = top
            }
        } else {
            result = result > rise ? result - 1 : 0
        }
        reported = true
        let after = status
        return after == before ? nil : after
    }
}
