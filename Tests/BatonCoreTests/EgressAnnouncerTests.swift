import BatonCore
import BatonTesting
import Testing

@Suite struct EgressAnnouncerTests {
    let clock = ManualClock()

    func make() throws -> EgressAnnouncer {
        EgressAnnouncer(fencing: try FencingDeadline(eipEvictionTimeout: .milliseconds(700), safetyMargin: .milliseconds(100)))
    }

    @Test func announcesOnlyAfterAHeartbeatIsAcknowledged() throws {
        var a = try make()
        #expect(a.placement(["10.6.1.56"], readStartedAt: clock.now, now: clock.now).isEmpty, "no acknowledged heartbeat yet: fenced")
        #expect(a.heartbeatAcknowledged(sentAt: clock.now, now: clock.now) == [.announce(["10.6.1.56"])])
    }

    @Test func fencesAtTheDeadlineAndWaitsForAFreshPlacement() throws {
        var a = try make()
        _ = a.heartbeatAcknowledged(sentAt: clock.now, now: clock.now)
        let sent = clock.now
        _ = a.placement(["10.6.1.56", "10.6.1.57"], readStartedAt: clock.now, now: clock.now)
        #expect(a.nextDeadline == sent.advanced(by: .milliseconds(600)))
        #expect(a.tick(now: clock.advance(by: .milliseconds(599))).isEmpty)
        let fence = a.tick(now: clock.advance(by: .milliseconds(1)))
        #expect(fence == [.withdraw(["10.6.1.56", "10.6.1.57"], reason: "no heartbeat acknowledged before the fence deadline")])
        // A read that started before the fence ended proves nothing.
        let earlyRead = clock.now
        // The link comes back: a new heartbeat is acknowledged, but the held placement may be stale.
        #expect(a.heartbeatAcknowledged(sentAt: clock.advance(by: .milliseconds(5)), now: clock.now).isEmpty)
        #expect(a.wantsFreshRead)
        #expect(a.placement(["10.6.1.56", "10.6.1.57"], readStartedAt: earlyRead, now: clock.now).isEmpty)
        // A stale watch event repeats the old placement: still nothing.
        #expect(a.placement(["10.6.1.56", "10.6.1.57"], readStartedAt: nil, now: clock.now).isEmpty)
        // A fresh read shows the EIPs moved away while we were cut off: nothing to announce.
        #expect(a.placement([], readStartedAt: clock.now, now: clock.now).isEmpty)
        #expect(a.placement(["10.6.1.58"], readStartedAt: nil, now: clock.now) == [.announce(["10.6.1.58"])])
    }

    /// A frozen agent (SIGSTOP) wakes past its deadline and its first act is a heartbeat, which
    /// is acknowledged before any tick ran: that must still count as a fence, and the agent must
    /// wait for a fresh placement, not go on announcing what it held before the freeze.
    @Test func aDeadlineMissedWhileFrozenFencesEvenIfTheNextAckComesFirst() throws {
        var a = try make()
        _ = a.heartbeatAcknowledged(sentAt: clock.now, now: clock.now)
        _ = a.placement(["10.6.1.56"], readStartedAt: clock.now, now: clock.now)
        #expect(a.announced == ["10.6.1.56"])
        // Frozen for 2 s; on waking, a heartbeat goes out and is acknowledged at once.
        let sent = clock.advance(by: .seconds(2))
        let actions = a.heartbeatAcknowledged(sentAt: sent, now: clock.advance(by: .milliseconds(2)))
        #expect(actions == [.withdraw(["10.6.1.56"], reason: "no heartbeat acknowledged before the fence deadline")])
        #expect(a.announced.isEmpty)
        #expect(a.nextDeadline == nil, "no kernel lease to renew")
        #expect(a.wantsFreshRead)
        // The placement it still holds (a watch event from before) does not bring the EIP back...
        #expect(a.placement(["10.6.1.56"], readStartedAt: nil, now: clock.now).isEmpty)
        // ...a fresh read does (here the EIP is still placed on this node).
        #expect(a.placement(["10.6.1.56"], readStartedAt: clock.advance(by: .milliseconds(1)), now: clock.now) == [.announce(["10.6.1.56"])])
    }

    @Test func heartbeatsInTimeNeverFence() throws {
        var a = try make()
        _ = a.heartbeatAcknowledged(sentAt: clock.now, now: clock.now)
        _ = a.placement(["10.6.1.56"], readStartedAt: clock.now, now: clock.now)
        for _ in 0..<100 {
            let sent = clock.advance(by: .milliseconds(200))
            #expect(a.tick(now: clock.advance(by: .milliseconds(150))).isEmpty)
            #expect(a.heartbeatAcknowledged(sentAt: sent, now: clock.now).isEmpty)
        }
        #expect(a.announced == ["10.6.1.56"])
    }

    @Test func aMoveAwayWithdrawsAndAMoveHereAnnounces() throws {
        var a = try make()
        _ = a.heartbeatAcknowledged(sentAt: clock.now, now: clock.now)
        _ = a.placement(["10.6.1.56"], readStartedAt: clock.now, now: clock.now)
        #expect(a.placement(["10.6.1.57"], readStartedAt: nil, now: clock.now)
                == [.withdraw(["10.6.1.56"], reason: "placed elsewhere"), .announce(["10.6.1.57"])])
    }
}
