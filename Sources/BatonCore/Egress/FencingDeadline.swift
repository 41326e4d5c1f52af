/// The agent's self-fencing rule: the instant by which an agent must stop announcing its EIPs
/// (withdraw addresses, stop GARP/NA) if no newer heartbeat is acknowledged by the server.
///
/// All instants here are on the **agent's** monotonic clock, which the agent owns; the server's
/// clock is never read.
///
///     fenceDeadline = s + eipEvictionTimeout − safetyMargin
///
/// where `s` is the instant the agent *sent* its newest acknowledged heartbeat (not the instant
/// the acknowledgement arrived, which would be later and unsafe).
///
/// ## Why the agent has stopped before the server may evict
///
/// Write T = `eipEvictionTimeout`, m = `safetyMargin`, and measure real time. Let `h` be the
/// newest heartbeat the agent saw acknowledged, sent at real time s and received by the server
/// at real time r.
/// 1. A message is received after it is sent: r ≥ s.
/// 2. The server evicts (`HeartbeatMonitor`) only when its own clock shows more than T since the
///    receive time r' of the newest heartbeat it received from the node. r' ≥ r, because `h`
///    was received and any later heartbeat only moves r' forward (heartbeats that reached the
///    server but whose acknowledgement was lost also only move r' forward). So the earliest
///    eviction is at e > r' + T ≥ s + T.
/// 3. The agent fences at f = s + T − m on its clock, so f < s + T ≤ e whenever m > 0.
/// 4. The new node starts announcing only after it learns of the eviction, later than e.
///
/// Hence f < e: the old node has stopped before any successor starts. The margin m buys room for
/// what the ideal argument leaves out, and must cover it:
/// - clock rate error ρ (both monotonic clocks may run fast or slow): the agent's T − m may last
///   up to (T − m)(1 + ρ) real time, the server's T as little as T(1 − ρ);
/// - the time w the agent takes to withdraw its addresses once the deadline fires.
/// The condition (T − m)(1 + ρ) + w < T(1 − ρ) gives m > (2ρT + w) / (1 + ρ);
/// `minimumSafetyMargin(driftRate:withdrawalTime:)` computes it.
public struct FencingDeadline: Sendable, Hashable {
    /// The server's eviction timeout (`feature.eipEvictionTimeout`).
    public let eipEvictionTimeout: Duration
    /// How long before the earliest possible eviction the agent fences.
    public let safetyMargin: Duration

    /// Refuses a margin that is not positive or not smaller than the timeout.
    public init(eipEvictionTimeout: Duration, safetyMargin: Duration) throws(ConfigurationError) {
        guard eipEvictionTimeout > .zero else {
            throw ConfigurationError(.notPositive, "eipEvictionTimeout must be greater than 0, got \(eipEvictionTimeout)")
        }
        guard safetyMargin > .zero, safetyMargin < eipEvictionTimeout else {
            throw ConfigurationError(.ordering, "fencing safetyMargin must be greater than 0 and less than eipEvictionTimeout (\(eipEvictionTimeout)), got \(safetyMargin)")
        }
        self.eipEvictionTimeout = eipEvictionTimeout
        self.safetyMargin = safetyMargin
    }

    /// The smallest margin that keeps the argument above true for clocks whose rate is off by at
    /// most `driftRate` (for example 0.0005 for 500 ppm) and an agent that needs `withdrawalTime`
    /// to stop announcing.
    public static func minimumSafetyMargin(eipEvictionTimeout: Duration, driftRate: Double, withdrawalTime: Duration) -> Duration {
        (eipEvictionTimeout * (2 * driftRate) + withdrawalTime) / (1 + driftRate)
    }

    /// The instant (agent clock) by which the agent must have stopped announcing its EIPs, given
    /// the send instant of its newest acknowledged heartbeat.
    public func deadline(lastAcknowledgedSend: BatonInstant) -> BatonInstant {
        lastAcknowledgedSend + (eipEvictionTimeout - safetyMargin)
    }

    /// Whether the agent must be fenced at `now`: true when no heartbeat was ever acknowledged, or
    /// the deadline of the newest one has been reached.
    public func mustFence(now: BatonInstant, lastAcknowledgedSend: BatonInstant?) -> Bool {
        guard let lastAcknowledgedSend else { return true }
        return now >= deadline(lastAcknowledgedSend: lastAcknowledgedSend)
    }
}
