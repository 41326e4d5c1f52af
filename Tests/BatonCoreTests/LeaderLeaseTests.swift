import BatonCore
import BatonTesting
import Testing

@Suite struct LeaderLeaseTests {
    static let config = try! LeaderLease.Configuration(leaseDuration: .seconds(15), renewDeadline: .seconds(10), retryPeriod: .seconds(2))

    @Test func acquireRenewAndLoseAfterRenewDeadline() {
        let clock = ManualClock()
        var a = LeaderLease(identity: "a", configuration: Self.config)
        #expect(a.handle(.observed(nil), now: clock.now) == [])
        let acquire = a.handle(.tick, now: clock.now)
        let record = LeaderLease.Record(holderIdentity: "a", leaseDuration: .seconds(15), leaderTransitions: 1, renewCount: 1)
        #expect(acquire == [.tryAcquire(record)])
        #expect(a.handle(.tick, now: clock.now) == [], "one write in flight at a time")
        #expect(a.handle(.renewed, now: clock.now) == [.becameLeader])
        #expect(a.role == .leader)

        clock.advance(by: .seconds(2))
        var renewed = record
        renewed.renewCount = 2
        #expect(a.handle(.tick, now: clock.now) == [.renew(renewed)])
        #expect(a.handle(.renewed, now: clock.now) == [])
        #expect(a.lastRenewal == clock.now)

        // The store goes away: renewals fail until renewDeadline has passed since the last success.
        let lastGood = clock.now
        var lost: [LeaderLease.Action] = []
        while clock.now < lastGood + .seconds(12) {
            clock.advance(by: .seconds(2))
            for action in a.handle(.tick, now: clock.now) {
                if case .renew = action { lost += a.handle(.renewFailed, now: clock.now) } else { lost.append(action) }
            }
            if !lost.isEmpty { break }
        }
        #expect(lost == [.lostLeadership])
        #expect(clock.now == lastGood + .seconds(10))
        #expect(a.role == .follower)
    }

    @Test func standByWhileAnotherHoldsAnUnexpiredLeaseThenAcquireWhenExpired() {
        let clock = ManualClock()
        var b = LeaderLease(identity: "b", configuration: Self.config)
        let held = LeaderLease.Record(holderIdentity: "a", leaseDuration: .seconds(15), leaderTransitions: 1, renewCount: 7)
        _ = b.handle(.observed(held), now: clock.now)
        #expect(b.handle(.tick, now: clock.now) == [.standBy(holder: "a", until: .zero + .seconds(15))])

        // The holder renews: the record changes, so the wait starts again from that observation.
        clock.advance(by: .seconds(10))
        var renewed = held
        renewed.renewCount = 8
        _ = b.handle(.observed(renewed), now: clock.now)
        clock.advance(by: .seconds(10))
        _ = b.handle(.observed(renewed), now: clock.now)   // same record again: no new observation time
        #expect(b.handle(.tick, now: clock.now) == [.standBy(holder: "a", until: .zero + .seconds(25))])

        // The holder dies; 15 s after the last change, b takes over.
        clock.advance(by: .seconds(5))
        let acquire = b.handle(.tick, now: clock.now)
        #expect(acquire == [.tryAcquire(.init(holderIdentity: "b", leaseDuration: .seconds(15), leaderTransitions: 2, renewCount: 9))])
        #expect(b.handle(.renewed, now: clock.now) == [.becameLeader])
    }

    /// With an etcd lease the store expires the holder: a follower waits for the lease to be
    /// gone, however long it stays unchanged (keep-alives do not change the record).
    @Test func whenTheStoreExpiresLeasesAFollowerWaitsForTheLeaseToGo() {
        let clock = ManualClock()
        var b = LeaderLease(identity: "b", configuration: Self.config, expiry: .store)
        let held = LeaderLease.Record(holderIdentity: "a", leaseDuration: .seconds(15), leaderTransitions: 1, renewCount: 1)
        _ = b.handle(.observed(held), now: clock.now)
        clock.advance(by: .seconds(60))
        _ = b.handle(.observed(held), now: clock.now)
        #expect(b.handle(.tick, now: clock.now) == [.standBy(holder: "a", until: .zero + .seconds(15))])
        #expect(b.role == .follower)
        // etcd expired a's lease and deleted the key: b acquires at its next tick.
        _ = b.handle(.observed(nil), now: clock.now)
        #expect(b.handle(.tick, now: clock.now) == [.tryAcquire(.init(holderIdentity: "b", leaseDuration: .seconds(15),
                                                                     leaderTransitions: 1, renewCount: 1))])
        #expect(b.handle(.renewed, now: clock.now) == [.becameLeader])
    }

    @Test func failedAcquireStaysFollowerAndLeaderSeeingAnotherHolderStops() {
        let clock = ManualClock()
        var a = LeaderLease(identity: "a", configuration: Self.config)
        _ = a.handle(.observed(nil), now: clock.now)
        _ = a.handle(.tick, now: clock.now)
        #expect(a.handle(.renewFailed, now: clock.now) == [])
        #expect(a.role == .follower)
        _ = a.handle(.tick, now: clock.advance(by: .seconds(2)))
        #expect(a.handle(.renewed, now: clock.now) == [.becameLeader])
        let other = LeaderLease.Record(holderIdentity: "c", leaseDuration: .seconds(15), leaderTransitions: 2, renewCount: 5)
        #expect(a.handle(.observed(other), now: clock.now) == [.lostLeadership])
    }

    @Test func resignReleasesTheLease() {
        var a = LeaderLease(identity: "a", configuration: Self.config)
        _ = a.handle(.observed(nil), now: .zero)
        _ = a.handle(.tick, now: .zero)
        _ = a.handle(.renewed, now: .zero)
        #expect(a.handle(.resign, now: .zero) == [.lostLeadership, .release(.init(holderIdentity: nil, leaseDuration: .seconds(15), leaderTransitions: 1, renewCount: 2))])
    }

    @Test(arguments: [
        (15, 10, 2, nil),
        (10, 10, 2, "leaseDuration (10.0 seconds) must be greater than renewDeadline (10.0 seconds)"),
        (15, 2, 2, "renewDeadline (2.0 seconds) must be greater than retryPeriod (2.0 seconds)"),
        (15, 10, 0, "retryPeriod must be greater than 0, got 0.0 seconds"),
    ] as [(Int, Int, Int, String?)])
    func configurationOrdering(lease: Int, renew: Int, retry: Int, message: String?) {
        do {
            _ = try LeaderLease.Configuration(leaseDuration: .seconds(lease), renewDeadline: .seconds(renew), retryPeriod: .seconds(retry))
            #expect(message == nil)
        } catch {
            #expect(error.message == message)
        }
    }
}
