import BatonAPI
import BatonCore
import BatonTesting
import Testing

@Suite struct HeartbeatMonitorTests {
    static let timeout = Duration.milliseconds(500)
    static let period = Duration.milliseconds(100)

    func monitor() -> HeartbeatMonitor { HeartbeatMonitor(eipEvictionTimeout: Self.timeout, tunnelMonitorPeriod: Self.period) }

    @Test func evictsExactlyOnceAfterTimeoutThenReadyWithoutRepeat() {
        let clock = ManualClock()
        var m = monitor()
        m.heartbeatReceived("node1", at: clock.now)
        m.heartbeatReceived("node2", at: clock.now)
        #expect(m.evaluate(now: clock.now) == [.markReady(node: "node1"), .markReady(node: "node2")])
        #expect(m.evaluate(now: clock.now) == [])

        var timeouts: [HeartbeatMonitor.Decision] = []
        for _ in 0..<20 {                       // 2 s of monitor ticks; node2 keeps heartbeating
            clock.advance(by: Self.period)
            m.heartbeatReceived("node2", at: clock.now)
            timeouts += m.evaluate(now: clock.now)
        }
        #expect(timeouts == [.markHeartbeatTimeout(node: "node1", silentFor: .milliseconds(600))])
        #expect(m.phase(of: "node1") == .heartbeatTimeout)

        // Exactly at the timeout is not yet "older than" it.
        var edge = monitor()
        edge.heartbeatReceived("n", at: .zero)
        _ = edge.evaluate(now: .zero)
        #expect(edge.evaluate(now: .zero + Self.timeout) == [])
        #expect(edge.nextDeadline == BatonInstant.zero + Self.timeout)

        // The node comes back: Ready once.
        m.heartbeatReceived("node1", at: clock.now)
        #expect(m.evaluate(now: clock.now) == [.markReady(node: "node1")])
        #expect(m.evaluate(now: clock.advance(by: Self.period)) == [])
    }

    @Test func graceGivesEveryLiveTunnelAFullTimeoutButLeavesTimedOutOnesAlone() {
        var m = monitor()
        m.heartbeatReceived("a", at: .zero)
        m.heartbeatReceived("b", at: .zero)
        _ = m.evaluate(now: .zero)
        m.heartbeatReceived("b", at: .zero + .milliseconds(400))
        #expect(m.evaluate(now: .zero + .milliseconds(600)) == [.markHeartbeatTimeout(node: "a", silentFor: .milliseconds(600))])
        // b's silence from 0.4 s to 0.8 s says nothing: grace from 0.8 s.
        m.grantGrace(now: .zero + .milliseconds(800))
        #expect(m.nextDeadline == .zero + .milliseconds(1300))
        #expect(m.evaluate(now: .zero + .milliseconds(1300)) == [])
        #expect(m.evaluate(now: .zero + .milliseconds(1301)) == [.markHeartbeatTimeout(node: "b", silentFor: .milliseconds(501))])
        #expect(m.phase(of: "a") == .heartbeatTimeout)
    }

    @Test func hundredDelaysShorterThanTimeoutCauseNoEviction() {
        let clock = ManualClock()
        var m = monitor()
        var decisions: [HeartbeatMonitor.Decision] = []
        m.heartbeatReceived("node1", at: clock.now)
        decisions += m.evaluate(now: clock.now)
        for i in 0..<100 {
            // A stall (SIGSTOP) just short of the timeout, evaluated every monitor period.
            let stall = Self.timeout - .milliseconds(1 + i % 7)
            let end = clock.now + stall
            while clock.now + Self.period <= end {
                decisions += m.evaluate(now: clock.advance(by: Self.period))
            }
            clock.set(to: end)
            decisions += m.evaluate(now: clock.now)
            m.heartbeatReceived("node1", at: clock.now)  // SIGCONT: the queued heartbeat lands
            decisions += m.evaluate(now: clock.now)
        }
        #expect(decisions == [.markReady(node: "node1")])
    }

    /// The agent's own clock (what it writes into `lastHeartbeatTime`) is minutes off; the monitor
    /// never sees it, so only receive times decide.
    @Test(arguments: [Duration.seconds(-600), .zero, .seconds(600)])
    func agentClockSkewChangesNothing(skew: Duration) {
        let server = ManualClock(BatonInstant(sinceOrigin: .seconds(1000)))
        let agent = ManualClock(BatonInstant(sinceOrigin: .seconds(1000) + skew))
        var m = monitor()
        var decisions: [HeartbeatMonitor.Decision] = []
        for _ in 0..<50 {
            let sentAt = agent.now                  // what a naive controller would compare with
            _ = sentAt
            server.advance(by: .milliseconds(3))    // network delay
            m.heartbeatReceived("node1", at: server.now)
            decisions += m.evaluate(now: server.now)
            server.advance(by: Self.period - .milliseconds(3))
            agent.advance(by: Self.period)
            decisions += m.evaluate(now: server.now)
        }
        #expect(decisions == [.markReady(node: "node1")])
    }

    @Test func newLeaderGivesTrackedTunnelsAFullTimeoutOfGrace() {
        let clock = ManualClock(BatonInstant(sinceOrigin: .seconds(50)))
        var m = monitor()
        m.track("node1", phase: .ready, now: clock.now)
        m.track("node2", phase: .heartbeatTimeout, now: clock.now)
        #expect(m.evaluate(now: clock.advance(by: Self.timeout)) == [])
        #expect(m.evaluate(now: clock.advance(by: .milliseconds(1))) == [.markHeartbeatTimeout(node: "node1", silentFor: .milliseconds(501))])
    }

    @Test func settingsRefuseTimeoutNotAboveSumOfPeriods() throws {
        let ok = EgressFailoverSettings(tunnelMonitorPeriod: .milliseconds(100), tunnelUpdatePeriod: .milliseconds(100),
                                        eipEvictionTimeout: .milliseconds(250))
        try ok.validate()
        let seed = EgressFailoverSettings(tunnelMonitorPeriod: .seconds(5), tunnelUpdatePeriod: .seconds(5), eipEvictionTimeout: .seconds(5))
        #expect(throws: ConfigurationError(.ordering, "eipEvictionTimeout should be greater than the sum of tunnelUpdatePeriod and tunnelMonitorPeriod")) {
            try seed.validate()
        }
    }

    // MARK: Probe-confirmed early eviction

    static let suspect = Duration.milliseconds(225)
    func probing() -> HeartbeatMonitor {
        HeartbeatMonitor(eipEvictionTimeout: Self.timeout, tunnelMonitorPeriod: Self.period, suspectAfter: Self.suspect)
    }

    @Test func aSilentNodeThatDoesNotAnswerIsEvictedBeforeTheTimeout() {
        let clock = ManualClock()
        var m = probing()
        m.heartbeatReceived("node1", at: clock.now)
        #expect(m.evaluate(now: clock.now) == [.markReady(node: "node1")])
        #expect(m.nextDeadline == clock.now + Self.suspect)
        #expect(m.evaluate(now: clock.advance(by: .milliseconds(225))) == [], "at suspectAfter exactly: not yet")
        let started = clock.advance(by: .milliseconds(5))
        #expect(m.evaluate(now: started) == [.probe(node: "node1")])
        #expect(m.evaluate(now: clock.advance(by: .milliseconds(20))) == [], "one probe per silence")
        #expect(m.nextDeadline == BatonInstant.zero + Self.timeout, "while probing, the timeout is next")
        m.probeFinished("node1", reachable: false, startedAt: started)
        #expect(m.nextDeadline == BatonInstant.zero, "an unreachable node is due at once")
        #expect(m.evaluate(now: clock.advance(by: .milliseconds(75))) == [.markUnreachable(node: "node1", silentFor: .milliseconds(325))])
        #expect(m.phase(of: "node1") == .heartbeatTimeout)
        #expect(m.evaluate(now: clock.advance(by: .milliseconds(400))) == [], "the timeout adds no second decision")
        #expect(m.nextDeadline == nil)
        m.heartbeatReceived("node1", at: clock.now)
        #expect(m.evaluate(now: clock.now) == [.markReady(node: "node1")])
    }

    @Test func aSilentNodeThatAnswersWaitsForTheTimeout() {
        let clock = ManualClock()
        var m = probing()
        m.heartbeatReceived("node1", at: clock.now)
        _ = m.evaluate(now: clock.now)
        let started = clock.advance(by: .milliseconds(230))
        #expect(m.evaluate(now: started) == [.probe(node: "node1")])
        m.probeFinished("node1", reachable: true, startedAt: started)
        for _ in 0..<27 { #expect(m.evaluate(now: clock.advance(by: .milliseconds(10))) == []) }  // up to 500 ms
        #expect(m.evaluate(now: clock.advance(by: .milliseconds(1))) == [.markHeartbeatTimeout(node: "node1", silentFor: .milliseconds(501))])
    }

    @Test func aHeartbeatDuringTheProbeOutweighsItsResult() {
        let clock = ManualClock()
        var m = probing()
        m.heartbeatReceived("node1", at: clock.now)
        _ = m.evaluate(now: clock.now)
        let started = clock.advance(by: .milliseconds(230))
        #expect(m.evaluate(now: started) == [.probe(node: "node1")])
        m.heartbeatReceived("node1", at: clock.advance(by: .milliseconds(10)))
        m.probeFinished("node1", reachable: false, startedAt: started)
        #expect(m.evaluate(now: clock.advance(by: .milliseconds(50))) == [])
        #expect(m.phase(of: "node1") == .ready)
        // The next silence gets a probe of its own, counted from the newer heartbeat; a late
        // result of the old probe is ignored.
        #expect(m.evaluate(now: clock.advance(by: .milliseconds(170))) == [])
        let second = clock.advance(by: .milliseconds(10))
        #expect(m.evaluate(now: second) == [.probe(node: "node1")])
        m.probeFinished("node1", reachable: false, startedAt: started)
        #expect(m.evaluate(now: clock.advance(by: .milliseconds(10))) == [])
        m.probeFinished("node1", reachable: false, startedAt: second)
        #expect(m.evaluate(now: clock.advance(by: .milliseconds(10))) == [.markUnreachable(node: "node1", silentFor: .milliseconds(250))])
    }

    @Test func onlyReadyNodesAreProbedAndOnlyWhenConfigured() {
        let clock = ManualClock()
        var plain = monitor()
        plain.heartbeatReceived("node1", at: clock.now)
        _ = plain.evaluate(now: clock.now)
        #expect(plain.evaluate(now: clock.advance(by: .milliseconds(400))) == [], "no suspectAfter: no probe")
        // A tunnel the leader only tracks (never heard by this monitor) is not probed.
        var m = probing()
        m.track("node2", phase: .ready, now: clock.now)
        #expect(m.evaluate(now: clock.advance(by: .milliseconds(300))) == [])
        // A suspectAfter not below the timeout is ignored.
        #expect(HeartbeatMonitor(eipEvictionTimeout: Self.timeout, tunnelMonitorPeriod: Self.period, suspectAfter: Self.timeout).suspectAfter == nil)
    }
}

@Test func defaultsFromTheValuesFileSatisfyTheCoreRule() throws {
    let settings = EgressFailoverSettings(try FeatureSettings.parse(yaml: ""))
    try settings.validate()
    #expect(settings.eipEvictionTimeout == .milliseconds(700))

}
