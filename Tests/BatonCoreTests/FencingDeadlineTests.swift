import BatonCore
import BatonTesting
import Testing

@Suite struct FencingDeadlineTests {
    /// SplitMix64, so the cases are the same on every run.
    struct Random {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(bound))
        }
    }

    @Test func deadlineIsSendPlusTimeoutMinusMargin() throws {
        let f = try FencingDeadline(eipEvictionTimeout: .milliseconds(500), safetyMargin: .milliseconds(100))
        let sent = BatonInstant(sinceOrigin: .seconds(7))
        #expect(f.deadline(lastAcknowledgedSend: sent) == sent + .milliseconds(400))
        #expect(!f.mustFence(now: sent + .milliseconds(399), lastAcknowledgedSend: sent))
        #expect(f.mustFence(now: sent + .milliseconds(400), lastAcknowledgedSend: sent))
        #expect(f.mustFence(now: sent, lastAcknowledgedSend: nil))
        #expect(throws: ConfigurationError.self) { try FencingDeadline(eipEvictionTimeout: .milliseconds(500), safetyMargin: .milliseconds(500)) }
        #expect(throws: ConfigurationError.self) { try FencingDeadline(eipEvictionTimeout: .milliseconds(500), safetyMargin: .zero) }
    }

    /// Real time is the server's clock here; the agent's clock is offset by an arbitrary amount.
    /// Heartbeats are sent, delayed, some lost, some acknowledged; then the agent is cut off. The
    /// agent's fence instant (mapped to real time) is always before the monitor's eviction.
    @Test func fenceAlwaysPrecedesEviction() throws {
        let timeout = Duration.milliseconds(500), period = Duration.milliseconds(100)
        let fencing = try FencingDeadline(eipEvictionTimeout: timeout, safetyMargin: .milliseconds(50))
        var rng = Random(state: 42)
        for _ in 0..<200 {
            let offset = Duration.seconds(rng.next(1000) - 500)      // agent clock = real + offset
            var monitor = HeartbeatMonitor(eipEvictionTimeout: timeout, tunnelMonitorPeriod: period)
            var real = BatonInstant(sinceOrigin: .seconds(100))
            var lastAckSendAgent: BatonInstant?
            for _ in 0..<(1 + rng.next(20)) {
                real = real + .milliseconds(rng.next(100) + 1)
                let sendAgent = real + offset
                let delay = Duration.milliseconds(rng.next(300))
                let lost = rng.next(4) == 0, ackLost = rng.next(4) == 0
                if !lost {
                    monitor.heartbeatReceived("n", at: real + delay)
                    if !ackLost { lastAckSendAgent = max(lastAckSendAgent ?? sendAgent, sendAgent) }
                }
            }
            guard let ack = lastAckSendAgent else { continue }
            _ = monitor.evaluate(now: real)
            // Step real time in 1 ms until the monitor evicts.
            var t = real
            var evictedAt: BatonInstant?
            while evictedAt == nil {
                t = t + .milliseconds(1)
                if monitor.evaluate(now: t).contains(where: { if case .markHeartbeatTimeout = $0 { true } else { false } }) { evictedAt = t }
            }
            let fenceReal = fencing.deadline(lastAcknowledgedSend: ack) - offset
            #expect(fenceReal < evictedAt!)
            #expect(fencing.mustFence(now: evictedAt! + offset, lastAcknowledgedSend: ack))
        }
    }

    @Test func minimumMarginCoversDriftAndWithdrawal() {
        let m = FencingDeadline.minimumSafetyMargin(eipEvictionTimeout: .seconds(1), driftRate: 0.001, withdrawalTime: .milliseconds(20))
        #expect(m > .milliseconds(21) && m < .milliseconds(23))
    }
}
