/// Consecutive check outcomes against two thresholds: `rise` passes in a row make a target
/// healthy, `fall` failures in a row make it unhealthy (HAProxy's `rise` and `fall`, Envoy's
/// healthy and unhealthy thresholds). A pass resets the failures counted so far, and a failure
/// the passes. Pure: it only counts; what a completed run changes is the owner's to decide.
///
/// The edge's active checks (`ActiveHealthCheck`) and a static route's gateway probes
/// (`GatewayHealth`) count this way. VRRP's tracked checks count as keepalived does instead
/// (`VRRPCheckCounter`), so that a check script behaves as it did under keepalived.
public struct RiseFall: Sendable, Hashable {
    /// Passes in a row that complete a rise, ≥ 1.
    public let rise: Int
    /// Failures in a row that complete a fall, ≥ 1.
    public let fall: Int
    public private(set) var passes = 0
    public private(set) var failures = 0

    /// Thresholds below 1 count as 1.
    public init(rise: Int, fall: Int) {
        self.rise = max(1, rise)
        self.fall = max(1, fall)
    }

    /// Counts one outcome. Returns whether the run it belongs to is complete: at least `rise`
    /// passes in a row for a pass, at least `fall` failures in a row for a failure.
    public mutating func record(passed: Bool) -> Bool {
        if passed {
            passes += 1
            failures = 0
            return passes >= rise
        }
        failures += 1
        passes = 0
        return failures >= fall
    }
}
