import BatonAPI
import BatonCore
import BatonTesting
import Testing

private typealias Action = VRRPInstance.Action

private func ip(_ text: String) -> IPAddress { IPAddress(text)! }

/// An instant `d` after the clock's origin.
private func at(_ d: Duration) -> BatonInstant { .zero + d }

private func config(
    _ version: VRRPProtocolVersion = .v3,
    priority: UInt8 = 100,
    interval: Duration = .seconds(1),
    preempt: Bool = true,
    preemptDelay: Duration = .zero,
    address: String = "10.0.0.1"
) -> VRRPInstance.Configuration {
    try! VRRPInstance.Configuration(version: version, vrid: 51, priority: priority, advertInterval: interval,
                                    preempt: preempt, preemptDelay: preemptDelay, primaryAddress: ip(address))
}

/// An advertisement from another router (10.0.0.9 unless told), advertising `interval`.
private func advert(_ priority: UInt8, interval: Duration = .seconds(1), from source: String = "10.0.0.9") -> VRRPInstance.Event {
    .advertisementReceived(priority: priority, maxAdvertInterval: interval, source: ip(source))
}

/// A non-owner started at `clock.now` and left until its master-down timer made it Master.
private func startedMaster(_ cfg: VRRPInstance.Configuration, clock: ManualClock) -> VRRPInstance {
    var vrrp = VRRPInstance(configuration: cfg)
    _ = vrrp.handle(.startup, now: clock.now)
    clock.set(to: vrrp.nextDeadline!)
    _ = vrrp.handle(.timerFired, now: clock.now)
    precondition(vrrp.state == .master)
    return vrrp
}

@Suite struct VRRPInstanceTests {
    // MARK: - Configuration and timing

    struct TimingCase: Sendable, CustomTestStringConvertible {
        var version: VRRPProtocolVersion
        var priority: UInt8
        var interval: Duration
        var skewTime: Duration
        var masterDownInterval: Duration
        var testDescription: String { "\(version) priority \(priority) every \(interval)" }
    }

    /// RFC 9568 §6.1: Skew_Time = ((256 − Priority) × Master_Adver_Interval) / 256 and
    /// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time. RFC 3768 §6.1: Skew_Time =
    /// (256 − Priority) / 256 s, whatever the interval.
    @Test(arguments: [
        TimingCase(version: .v3, priority: 100, interval: .seconds(1), skewTime: .nanoseconds(609_375_000), masterDownInterval: .nanoseconds(3_609_375_000)),
        TimingCase(version: .v3, priority: 255, interval: .seconds(1), skewTime: .nanoseconds(3_906_250), masterDownInterval: .nanoseconds(3_003_906_250)),
        TimingCase(version: .v3, priority: 1, interval: .seconds(1), skewTime: .nanoseconds(996_093_750), masterDownInterval: .nanoseconds(3_996_093_750)),
        TimingCase(version: .v3, priority: 200, interval: .milliseconds(10), skewTime: .nanoseconds(2_187_500), masterDownInterval: .nanoseconds(32_187_500)),
        TimingCase(version: .v3, priority: 100, interval: .milliseconds(20), skewTime: .nanoseconds(12_187_500), masterDownInterval: .nanoseconds(72_187_500)),
        TimingCase(version: .v3, priority: 100, interval: .milliseconds(40_950), skewTime: .nanoseconds(24_953_906_250), masterDownInterval: .nanoseconds(147_803_906_250)),
        TimingCase(version: .v2, priority: 100, interval: .seconds(1), skewTime: .nanoseconds(609_375_000), masterDownInterval: .nanoseconds(3_609_375_000)),
        TimingCase(version: .v2, priority: 100, interval: .seconds(3), skewTime: .nanoseconds(609_375_000), masterDownInterval: .nanoseconds(9_609_375_000)),
        TimingCase(version: .v2, priority: 254, interval: .seconds(1), skewTime: .nanoseconds(7_812_500), masterDownInterval: .nanoseconds(3_007_812_500)),
    ])
    func skewTimeAndMasterDownInterval(_ c: TimingCase) {
        let vrrp = VRRPInstance(configuration: config(c.version, priority: c.priority, interval: c.interval))
        #expect(vrrp.skewTime == c.skewTime)
        #expect(vrrp.masterDownInterval == c.masterDownInterval)
    }

    struct RefusedCase: Sendable, CustomTestStringConvertible {
        var version: VRRPProtocolVersion = .v3
        var vrid: UInt8 = 51
        var priority: UInt8 = 100
        var interval: Duration = .seconds(1)
        var preempt = true
        var preemptDelay: Duration = .zero
        var address = "10.0.0.1"
        var code: ConfigurationError.Code
        var message: String
        var testDescription: String { message }
    }

    @Test(arguments: [
        RefusedCase(vrid: 0, code: .outOfRange, message: "vrid must be 1...255, got 0"),
        RefusedCase(priority: 0, code: .outOfRange, message: "priority must be 1...255 (0 is reserved for a Master that is leaving), got 0"),
        RefusedCase(version: .v2, interval: .milliseconds(1_500), code: .outOfRange, message: "advertInterval must be whole seconds 1...255 for VRRPv2, got 1.5 seconds"),
        RefusedCase(version: .v2, interval: .zero, code: .outOfRange, message: "advertInterval must be whole seconds 1...255 for VRRPv2, got 0.0 seconds"),
        RefusedCase(version: .v2, interval: .seconds(256), code: .outOfRange, message: "advertInterval must be whole seconds 1...255 for VRRPv2, got 256.0 seconds"),
        RefusedCase(version: .v2, address: "fe80::1", code: .outOfRange, message: "primaryAddress must be IPv4 for VRRPv2 (RFC 3768 is IPv4 only), got fe80::1"),
        RefusedCase(interval: .milliseconds(5), code: .outOfRange, message: "advertInterval must be whole centiseconds 0.01...40.95 s for VRRPv3, got 0.005 seconds"),
        RefusedCase(interval: .milliseconds(15), code: .outOfRange, message: "advertInterval must be whole centiseconds 0.01...40.95 s for VRRPv3, got 0.015 seconds"),
        RefusedCase(interval: .milliseconds(40_960), code: .outOfRange, message: "advertInterval must be whole centiseconds 0.01...40.95 s for VRRPv3, got 40.96 seconds"),
        RefusedCase(preemptDelay: .seconds(-1), code: .outOfRange, message: "preemptDelay must not be negative, got -1.0 seconds"),
        RefusedCase(preempt: false, preemptDelay: .seconds(300), code: .conflicting, message: "preemptDelay (300.0 seconds) needs preempt; nopreempt never preempts"),
    ])
    func refusedConfigurationsNameTheSetting(_ c: RefusedCase) {
        #expect(throws: ConfigurationError(c.code, c.message)) {
            try VRRPInstance.Configuration(version: c.version, vrid: c.vrid, priority: c.priority, advertInterval: c.interval,
                                           preempt: c.preempt, preemptDelay: c.preemptDelay, primaryAddress: ip(c.address))
        }
    }

    struct AcceptedCase: Sendable, CustomTestStringConvertible {
        var version: VRRPProtocolVersion
        var interval: Duration
        var address: String
        var testDescription: String { "\(version) every \(interval) from \(address)" }
    }

    @Test(arguments: [
        AcceptedCase(version: .v3, interval: .milliseconds(10), address: "fe80::1"),
        AcceptedCase(version: .v3, interval: .milliseconds(40_950), address: "10.0.0.1"),
        AcceptedCase(version: .v3, interval: .milliseconds(20), address: "2001:db8::1"),
        AcceptedCase(version: .v2, interval: .seconds(1), address: "10.0.0.1"),
        AcceptedCase(version: .v2, interval: .seconds(255), address: "10.0.0.1"),
    ])
    func acceptedConfigurationsAtTheEdges(_ c: AcceptedCase) throws {
        let cfg = try VRRPInstance.Configuration(version: c.version, vrid: 255, priority: 255, advertInterval: c.interval, primaryAddress: ip(c.address))
        #expect(cfg.advertInterval == c.interval)
        #expect(cfg.isAddressOwner)
    }

    // MARK: - Startup (RFC 9568 §6.4.1)

    @Test(arguments: VRRPProtocolVersion.allCases)
    func addressOwnerBecomesMasterAtOnceAndAdvertisesEveryInterval(_ version: VRRPProtocolVersion) {
        let clock = ManualClock()
        var vrrp = VRRPInstance(configuration: config(version, priority: 255))
        #expect(vrrp.state == .initialize)
        #expect(vrrp.nextDeadline == nil)

        #expect(vrrp.handle(.startup, now: clock.now) == [.sendAdvertisement(priority: 255), .becameMaster, .notify(.master)])
        #expect(vrrp.state == .master)
        #expect(vrrp.nextDeadline == at(.seconds(1)))
        #expect(vrrp.handle(.startup, now: clock.now) == [], "startup while running is ignored")

        clock.advance(by: .milliseconds(999))
        #expect(vrrp.handle(.timerFired, now: clock.now) == [], "an early wake-up does nothing")
        #expect(vrrp.nextDeadline == at(.seconds(1)))
        clock.advance(by: .milliseconds(1))
        #expect(vrrp.handle(.timerFired, now: clock.now) == [.sendAdvertisement(priority: 255)])
        #expect(vrrp.nextDeadline == at(.seconds(2)))

        // A late wake-up: the advertisement timer restarts from when it was served, with no burst.
        clock.advance(by: .milliseconds(1_250))
        #expect(vrrp.handle(.timerFired, now: clock.now) == [.sendAdvertisement(priority: 255)])
        #expect(vrrp.nextDeadline == at(.milliseconds(3_250)))
        #expect(vrrp.handle(.timerFired, now: clock.now) == [])
    }

    @Test(arguments: VRRPProtocolVersion.allCases)
    func nonOwnerStartsAsBackupAndTakesOverWhenNoMasterAdvertises(_ version: VRRPProtocolVersion) {
        let clock = ManualClock(at(.seconds(7)))
        var vrrp = VRRPInstance(configuration: config(version, priority: 100))

        #expect(vrrp.handle(.startup, now: clock.now) == [.becameBackup, .notify(.backup)])
        #expect(vrrp.state == .backup)
        #expect(vrrp.masterAdverInterval == .seconds(1))
        #expect(vrrp.nextDeadline == at(.seconds(7) + .nanoseconds(3_609_375_000)))

        clock.set(to: vrrp.nextDeadline! - .nanoseconds(1))
        #expect(vrrp.handle(.timerFired, now: clock.now) == [])
        #expect(vrrp.state == .backup)
        clock.advance(by: .nanoseconds(1))
        #expect(vrrp.handle(.timerFired, now: clock.now) == [.sendAdvertisement(priority: 100), .becameMaster, .notify(.master)])
        #expect(vrrp.state == .master)
        #expect(vrrp.nextDeadline == clock.now + .seconds(1))
    }

    // MARK: - Backup (RFC 9568 §6.4.2)

    @Test func backupTakesOverWithinSkewTimeAfterAPriorityZeroAdvert() {
        let clock = ManualClock()
        var vrrp = VRRPInstance(configuration: config(priority: 100))
        _ = vrrp.handle(.startup, now: clock.now)

        clock.set(to: at(.seconds(1)))
        #expect(vrrp.handle(advert(200), now: clock.now) == [])
        #expect(vrrp.nextDeadline == at(.nanoseconds(4_609_375_000)))

        clock.set(to: at(.milliseconds(1_500)))
        #expect(vrrp.handle(advert(0), now: clock.now) == [])
        #expect(vrrp.nextDeadline == at(.nanoseconds(2_109_375_000)), "Skew_Time = 156/256 s")

        clock.set(to: vrrp.nextDeadline!)
        #expect(vrrp.handle(.timerFired, now: clock.now) == [.sendAdvertisement(priority: 100), .becameMaster, .notify(.master)])
    }

    @Test func v3BackupLearnsTheMastersIntervalAndForgetsItAsMaster() {
        let clock = ManualClock()
        var vrrp = VRRPInstance(configuration: config(.v3, priority: 100, interval: .seconds(1)))
        _ = vrrp.handle(.startup, now: clock.now)

        clock.set(to: at(.milliseconds(500)))
        #expect(vrrp.handle(advert(200, interval: .seconds(2)), now: clock.now) == [])
        #expect(vrrp.masterAdverInterval == .seconds(2))
        #expect(vrrp.skewTime == .nanoseconds(1_218_750_000), "156 × 2 s / 256")
        #expect(vrrp.masterDownInterval == .nanoseconds(7_218_750_000))
        #expect(vrrp.nextDeadline == at(.nanoseconds(7_718_750_000)))

        clock.set(to: at(.seconds(1)))
        #expect(vrrp.handle(advert(0, interval: .seconds(2)), now: clock.now) == [])
        #expect(vrrp.nextDeadline == at(.nanoseconds(2_218_750_000)), "Skew_Time from the learned interval")

        clock.set(to: vrrp.nextDeadline!)
        #expect(vrrp.handle(.timerFired, now: clock.now) == [.sendAdvertisement(priority: 100), .becameMaster, .notify(.master)])
        #expect(vrrp.masterAdverInterval == .seconds(1))
        #expect(vrrp.nextDeadline == clock.now + .seconds(1), "a Master advertises at its own interval")
    }

    @Test func v2BackupNeverLearnsAndDropsAdvertsWithAnotherInterval() {
        let clock = ManualClock()
        var vrrp = VRRPInstance(configuration: config(.v2, priority: 100, interval: .seconds(1)))
        _ = vrrp.handle(.startup, now: clock.now)
        let startupDeadline = at(.nanoseconds(3_609_375_000))

        clock.set(to: at(.milliseconds(500)))
        #expect(vrrp.handle(advert(200, interval: .seconds(2)), now: clock.now) == [])
        #expect(vrrp.nextDeadline == startupDeadline, "RFC 3768 §7.1: an interval mismatch is discarded")
        #expect(vrrp.masterAdverInterval == .seconds(1))

        #expect(vrrp.handle(advert(200, interval: .seconds(1)), now: clock.now) == [])
        #expect(vrrp.nextDeadline == at(.nanoseconds(4_109_375_000)))
        #expect(vrrp.masterAdverInterval == .seconds(1))
    }

    struct BackupAdvertCase: Sendable, CustomTestStringConvertible {
        var advertised: UInt8
        var preempt: Bool
        var resets: Bool
        var testDescription: String { "priority \(advertised) with preempt \(preempt): \(resets ? "reset" : "discard")" }
    }

    /// RFC 9568 §6.4.2: reset the master-down timer if Preempt_Mode is False or the advertised
    /// priority is ≥ ours; otherwise discard, leaving the timer running.
    @Test(arguments: [
        BackupAdvertCase(advertised: 150, preempt: true, resets: true),
        BackupAdvertCase(advertised: 100, preempt: true, resets: true),
        BackupAdvertCase(advertised: 99, preempt: true, resets: false),
        BackupAdvertCase(advertised: 1, preempt: true, resets: false),
        BackupAdvertCase(advertised: 99, preempt: false, resets: true),
        BackupAdvertCase(advertised: 1, preempt: false, resets: true),
        BackupAdvertCase(advertised: 255, preempt: false, resets: true),
    ])
    func backupResetsOrDiscards(_ c: BackupAdvertCase) {
        let clock = ManualClock()
        var vrrp = VRRPInstance(configuration: config(priority: 100, preempt: c.preempt))
        _ = vrrp.handle(.startup, now: clock.now)
        clock.set(to: at(.milliseconds(500)))
        #expect(vrrp.handle(advert(c.advertised), now: clock.now) == [])
        #expect(vrrp.state == .backup)
        #expect(vrrp.nextDeadline == (c.resets ? at(.nanoseconds(4_109_375_000)) : at(.nanoseconds(3_609_375_000))))
    }

    @Test func preemptingBackupTakesOverFromALowerPriorityMasterWhenItsTimerRunsOut() {
        let clock = ManualClock()
        var vrrp = VRRPInstance(configuration: config(priority: 200))
        _ = vrrp.handle(.startup, now: clock.now)
        let deadline = at(.nanoseconds(3_218_750_000))   // 3 s + 56/256 s
        #expect(vrrp.nextDeadline == deadline)

        for k in 0..<3 {
            clock.set(to: at(.milliseconds(500) + .seconds(k)))
            #expect(vrrp.handle(.timerFired, now: clock.now) == [])
            #expect(vrrp.handle(advert(100), now: clock.now) == [])
            #expect(vrrp.nextDeadline == deadline, "the lower-priority advert is discarded")
        }
        clock.set(to: deadline)
        #expect(vrrp.handle(.timerFired, now: clock.now) == [.sendAdvertisement(priority: 200), .becameMaster, .notify(.master)])
    }

    @Test func nopreemptFollowsALowerPriorityMasterUntilItGoesAway() {
        let clock = ManualClock()
        var vrrp = VRRPInstance(configuration: config(priority: 200, preempt: false))
        _ = vrrp.handle(.startup, now: clock.now)

        var lastAdvert = clock.now
        for k in 0..<100 {
            clock.set(to: at(.milliseconds(500) + .seconds(k)))
            #expect(vrrp.handle(.timerFired, now: clock.now) == [])
            #expect(vrrp.handle(advert(100), now: clock.now) == [])
            lastAdvert = clock.now
        }
        #expect(vrrp.state == .backup)
        #expect(vrrp.nextDeadline == lastAdvert + .nanoseconds(3_218_750_000))

        clock.set(to: vrrp.nextDeadline! - .nanoseconds(1))
        #expect(vrrp.handle(.timerFired, now: clock.now) == [])
        clock.advance(by: .nanoseconds(1))
        #expect(vrrp.handle(.timerFired, now: clock.now) == [.sendAdvertisement(priority: 200), .becameMaster, .notify(.master)])
        #expect(clock.now == at(.nanoseconds(102_718_750_000)))
    }

    /// keepalived 2.2.7 `vrrp_state_backup`: the delay starts at the first lower-priority advert
    /// the Backup accepts; it accepts them until the delay ends, then discards them, so it takes
    /// over Master_Down_Interval after the last one it accepted.
    @Test func preemptDelayStartsWhenALowerPriorityMasterIsFirstSeen() {
        let clock = ManualClock()
        var vrrp = VRRPInstance(configuration: config(priority: 200, preemptDelay: .seconds(5)))
        _ = vrrp.handle(.startup, now: clock.now)
        #expect(vrrp.preemptDelayEndsAt == nil)

        clock.set(to: at(.milliseconds(500)))
        #expect(vrrp.handle(advert(100), now: clock.now) == [])
        #expect(vrrp.preemptDelayEndsAt == at(.milliseconds(5_500)))
        #expect(vrrp.nextDeadline == at(.nanoseconds(3_718_750_000)), "accepted: the timer was reset")

        for k in 1...4 {
            clock.set(to: at(.milliseconds(500) + .seconds(k)))
            #expect(vrrp.handle(advert(100), now: clock.now) == [])
            #expect(vrrp.nextDeadline == clock.now + .nanoseconds(3_218_750_000))
            #expect(vrrp.preemptDelayEndsAt == at(.milliseconds(5_500)), "the delay does not restart")
        }
        let lastAccepted = clock.now   // 4.5 s
        for k in 5...7 {
            clock.set(to: at(.milliseconds(500) + .seconds(k)))
            #expect(vrrp.handle(.timerFired, now: clock.now) == [])
            #expect(vrrp.handle(advert(100), now: clock.now) == [])
            #expect(vrrp.nextDeadline == lastAccepted + .nanoseconds(3_218_750_000), "the delay is over: discarded")
        }
        clock.set(to: at(.nanoseconds(7_718_750_000)))
        #expect(vrrp.handle(.timerFired, now: clock.now) == [.sendAdvertisement(priority: 200), .becameMaster, .notify(.master)])
        #expect(vrrp.preemptDelayEndsAt == nil)
    }

    @Test func preemptDelayIsCancelledByAHigherPriorityAdvertAndStartsAgainAfterwards() {
        let clock = ManualClock()
        var vrrp = VRRPInstance(configuration: config(priority: 200, preemptDelay: .seconds(5)))
        _ = vrrp.handle(.startup, now: clock.now)

        clock.set(to: at(.milliseconds(500)))
        _ = vrrp.handle(advert(100), now: clock.now)
        #expect(vrrp.preemptDelayEndsAt == at(.milliseconds(5_500)))

        clock.set(to: at(.seconds(2)))
        _ = vrrp.handle(advert(250, from: "10.0.0.8"), now: clock.now)
        #expect(vrrp.preemptDelayEndsAt == nil)

        clock.set(to: at(.seconds(3)))
        _ = vrrp.handle(advert(100), now: clock.now)
        #expect(vrrp.preemptDelayEndsAt == at(.seconds(8)))

        clock.set(to: at(.seconds(4)))
        _ = vrrp.handle(advert(0, from: "10.0.0.8"), now: clock.now)
        #expect(vrrp.preemptDelayEndsAt == at(.seconds(8)), "a priority-0 advert leaves the delay alone")
        #expect(vrrp.nextDeadline == at(.seconds(4) + .nanoseconds(218_750_000)))
    }

    /// OpenShift ipfailover's default, `preempt_delay 300`: a node whose check passes again comes
    /// back as Backup under a lower-priority Master and takes the VIP 300 s after it first sees it.
    @Test func preemptDelayCountsFromRecoveryNotFromProcessStart() {
        let clock = ManualClock()
        var vrrp = VRRPInstance(configuration: config(priority: 200, preemptDelay: .seconds(300)))
        #expect(vrrp.handle(.fault("check script failed"), now: clock.now) == [])
        #expect(vrrp.handle(.startup, now: clock.now) == [.becameFault(reason: "check script failed"), .notify(.fault)])

        clock.set(to: at(.seconds(60)))
        #expect(vrrp.handle(.recovered, now: clock.now) == [.becameBackup, .notify(.backup)])
        for k in 0..<400 where vrrp.state == .backup {
            let advertAt = at(.milliseconds(60_500) + .seconds(k))
            if vrrp.nextDeadline! <= advertAt {
                clock.set(to: vrrp.nextDeadline!)
                #expect(vrrp.handle(.timerFired, now: clock.now) == [.sendAdvertisement(priority: 200), .becameMaster, .notify(.master)])
                break
            }
            clock.set(to: advertAt)
            #expect(vrrp.handle(advert(100), now: clock.now) == [])
            if k == 0 { #expect(vrrp.preemptDelayEndsAt == at(.milliseconds(360_500))) }
        }
        #expect(vrrp.state == .master)
        #expect(clock.now == at(.milliseconds(359_500) + .nanoseconds(3_218_750_000)))
    }

    // MARK: - Master (RFC 9568 §6.4.3)

    @Test func masterAnswersAPriorityZeroAdvertAtOnceAndRestartsItsTimer() {
        let clock = ManualClock()
        var vrrp = VRRPInstance(configuration: config(priority: 255))
        _ = vrrp.handle(.startup, now: clock.now)
        clock.set(to: at(.milliseconds(400)))
        #expect(vrrp.handle(advert(0), now: clock.now) == [.sendAdvertisement(priority: 255)])
        #expect(vrrp.state == .master)
        #expect(vrrp.nextDeadline == at(.milliseconds(1_400)))
    }

    /// The lower-priority router may have held the addresses (this Master was frozen, or cut
    /// off): announcing them again takes the LAN's neighbour caches back, as keepalived's default
    /// `vrrp_garp_lower_prio_repeat` does.
    @Test func masterSendsAnAdvertAtOnceToALowerPriorityRouterAnnouncesAgainAndKeepsItsSchedule() {
        let clock = ManualClock()
        var vrrp = startedMaster(config(priority: 100), clock: clock)
        let scheduled = vrrp.nextDeadline
        clock.advance(by: .milliseconds(300))
        #expect(vrrp.handle(advert(99), now: clock.now) == [.sendAdvertisement(priority: 100), .announceAddresses])
        #expect(vrrp.state == .master)
        #expect(vrrp.nextDeadline == scheduled)
    }

    @Test(arguments: VRRPProtocolVersion.allCases)
    func masterStepsDownForAHigherPriority(_ version: VRRPProtocolVersion) {
        let clock = ManualClock()
        var vrrp = startedMaster(config(version, priority: 100), clock: clock)
        clock.set(to: at(.seconds(4)))
        let interval: Duration = version == .v3 ? .seconds(2) : .seconds(1)
        #expect(vrrp.handle(advert(150, interval: interval), now: clock.now) == [.releaseAddresses, .becameBackup, .notify(.backup)])
        #expect(vrrp.state == .backup)
        switch version {
        case .v3:
            #expect(vrrp.masterAdverInterval == .seconds(2))
            #expect(vrrp.nextDeadline == at(.seconds(4) + .nanoseconds(7_218_750_000)))
        case .v2:
            #expect(vrrp.masterAdverInterval == .seconds(1))
            #expect(vrrp.nextDeadline == at(.seconds(4) + .nanoseconds(3_609_375_000)))
        }
    }

    struct TieCase: Sendable, CustomTestStringConvertible {
        var local: String
        var sender: String
        var stepsDown: Bool
        var testDescription: String { "\(local) hears \(sender)" }
    }

    /// RFC 9568 §6.4.3: at equal priority the higher primary address wins, compared as unsigned
    /// integers in network byte order (not as text).
    @Test(arguments: [
        TieCase(local: "10.0.0.1", sender: "10.0.0.2", stepsDown: true),
        TieCase(local: "10.0.0.2", sender: "10.0.0.1", stepsDown: false),
        TieCase(local: "10.0.0.9", sender: "10.0.0.10", stepsDown: true),
        TieCase(local: "10.0.0.10", sender: "10.0.0.9", stepsDown: false),
        TieCase(local: "192.168.1.1", sender: "10.255.255.255", stepsDown: false),
        TieCase(local: "fe80::1", sender: "fe80::2", stepsDown: true),
        TieCase(local: "fe80::a", sender: "fe80::9", stepsDown: false),
        TieCase(local: "2001:db8::1", sender: "fe80::1", stepsDown: true),
    ])
    func equalPriorityTieBreakOnPrimaryAddress(_ c: TieCase) {
        let clock = ManualClock()
        var vrrp = startedMaster(config(priority: 100, address: c.local), clock: clock)
        let actions = vrrp.handle(advert(100, from: c.sender), now: clock.now)
        if c.stepsDown {
            #expect(actions == [.releaseAddresses, .becameBackup, .notify(.backup)])
            #expect(vrrp.state == .backup)
        } else {
            #expect(actions == [.sendAdvertisement(priority: 100), .announceAddresses])
            #expect(vrrp.state == .master)
        }
    }

    struct IgnoredCase: Sendable, CustomTestStringConvertible {
        var version: VRRPProtocolVersion
        var interval: Duration
        var source: String
        var why: String
        var testDescription: String { why }
    }

    @Test(arguments: [
        IgnoredCase(version: .v3, interval: .seconds(1), source: "10.0.0.1", why: "our own advert looped back"),
        IgnoredCase(version: .v3, interval: .seconds(1), source: "fe80::9", why: "the other address family"),
        IgnoredCase(version: .v3, interval: .zero, source: "10.0.0.9", why: "VRRPv3 interval 0 (RFC 9568 §7.1)"),
        IgnoredCase(version: .v2, interval: .seconds(2), source: "10.0.0.9", why: "VRRPv2 interval mismatch (RFC 3768 §7.1)"),
    ])
    func advertsThatAreNotPartOfThisElectionChangeNothing(_ c: IgnoredCase) {
        let clock = ManualClock()
        var backup = VRRPInstance(configuration: config(c.version, priority: 100))
        _ = backup.handle(.startup, now: clock.now)
        var master = startedMaster(config(c.version, priority: 100), clock: clock)
        let backupDeadline = backup.nextDeadline
        let masterDeadline = master.nextDeadline
        for priority: UInt8 in [0, 50, 100, 200] {
            let event = VRRPInstance.Event.advertisementReceived(priority: priority, maxAdvertInterval: c.interval, source: ip(c.source))
            #expect(backup.handle(event, now: clock.now) == [])
            #expect(master.handle(event, now: clock.now) == [])
        }
        #expect(backup.state == .backup)
        #expect(backup.nextDeadline == backupDeadline)
        #expect(master.state == .master)
        #expect(master.nextDeadline == masterDeadline)
    }

    // MARK: - Shutdown, fault, priority

    @Test func shutdownAsMasterSendsPriorityZeroThenReleases() {
        let clock = ManualClock()
        var vrrp = startedMaster(config(priority: 100), clock: clock)
        #expect(vrrp.handle(.shutdown, now: clock.now) == [.sendAdvertisement(priority: 0), .releaseAddresses, .notify(.stop)])
        #expect(vrrp.state == .initialize)
        #expect(vrrp.nextDeadline == nil)
        #expect(vrrp.handle(.shutdown, now: clock.now) == [])
        #expect(vrrp.handle(.timerFired, now: clock.now) == [])
        #expect(vrrp.handle(advert(200), now: clock.now) == [])

        clock.advance(by: .seconds(1))
        #expect(vrrp.handle(.startup, now: clock.now) == [.becameBackup, .notify(.backup)], "it can start again")
        #expect(vrrp.nextDeadline == clock.now + .nanoseconds(3_609_375_000))
    }

    @Test func shutdownAsBackupSendsNothing() {
        let clock = ManualClock()
        var vrrp = VRRPInstance(configuration: config(priority: 100))
        #expect(vrrp.handle(.shutdown, now: clock.now) == [], "never started")
        _ = vrrp.handle(.startup, now: clock.now)
        #expect(vrrp.handle(.shutdown, now: clock.now) == [.notify(.stop)])
        #expect(vrrp.state == .initialize)
        #expect(vrrp.nextDeadline == nil)
    }

    @Test func faultFromMasterSendsPriorityZeroReleasesAndGoesQuiet() {
        let clock = ManualClock()
        var vrrp = startedMaster(config(priority: 100), clock: clock)
        #expect(vrrp.handle(.fault("eth0 down"), now: clock.now)
                == [.sendAdvertisement(priority: 0), .releaseAddresses, .becameFault(reason: "eth0 down"), .notify(.fault)])
        #expect(vrrp.state == .fault)
        #expect(vrrp.nextDeadline == nil)
        #expect(vrrp.faultReason == "eth0 down")

        clock.advance(by: .seconds(10))
        #expect(vrrp.handle(.timerFired, now: clock.now) == [])
        #expect(vrrp.handle(advert(200), now: clock.now) == [])
        #expect(vrrp.handle(advert(0), now: clock.now) == [])
        #expect(vrrp.handle(.fault("check script failed"), now: clock.now) == [])
        #expect(vrrp.faultReason == "check script failed")

        #expect(vrrp.handle(.recovered, now: clock.now) == [.becameBackup, .notify(.backup)])
        #expect(vrrp.faultReason == nil)
        #expect(vrrp.nextDeadline == clock.now + .nanoseconds(3_609_375_000))
        #expect(vrrp.handle(.recovered, now: clock.now) == [])

        #expect(vrrp.handle(.fault("check script failed"), now: clock.now) == [.becameFault(reason: "check script failed"), .notify(.fault)])
        #expect(vrrp.handle(.shutdown, now: clock.now) == [.notify(.stop)])
        #expect(vrrp.handle(.startup, now: clock.now) == [.becameFault(reason: "check script failed"), .notify(.fault)],
                "the fault outlives a restart until it clears")
    }

    @Test func addressOwnerRecoversStraightToMaster() {
        let clock = ManualClock()
        var vrrp = VRRPInstance(configuration: config(priority: 255))
        _ = vrrp.handle(.startup, now: clock.now)
        _ = vrrp.handle(.fault("eth0 down"), now: clock.now)
        clock.advance(by: .seconds(3))
        #expect(vrrp.handle(.recovered, now: clock.now) == [.sendAdvertisement(priority: 255), .becameMaster, .notify(.master)])
        #expect(vrrp.nextDeadline == at(.seconds(4)))
    }

    @Test func priorityChangesMoveTheMasterDownTimerAsKeepalivedDoes() {
        let clock = ManualClock()
        var vrrp = VRRPInstance(configuration: config(priority: 100))
        _ = vrrp.handle(.startup, now: clock.now)
        #expect(vrrp.nextDeadline == at(.nanoseconds(3_609_375_000)))

        clock.set(to: at(.seconds(1)))
        #expect(vrrp.handle(.priorityChanged(200), now: clock.now) == [])
        #expect(vrrp.priority == 200)
        #expect(vrrp.nextDeadline == at(.nanoseconds(3_218_750_000)), "Skew_Time went from 156/256 to 56/256 s")

        #expect(vrrp.handle(.priorityChanged(0), now: clock.now) == [])
        #expect(vrrp.priority == 1, "0 on the wire means leaving")
        #expect(vrrp.nextDeadline == at(.nanoseconds(3_996_093_750)))
        #expect(vrrp.handle(.priorityChanged(255), now: clock.now) == [])
        #expect(vrrp.priority == 254, "255 means address owner")
        #expect(vrrp.configuration.priority == 100)

        clock.set(to: vrrp.nextDeadline!)
        #expect(vrrp.handle(.timerFired, now: clock.now) == [.sendAdvertisement(priority: 254), .becameMaster, .notify(.master)])
        #expect(vrrp.handle(.priorityChanged(90), now: clock.now) == [], "a Master says so in its next advert")
        clock.set(to: vrrp.nextDeadline!)
        #expect(vrrp.handle(.timerFired, now: clock.now) == [.sendAdvertisement(priority: 90)])

        var owner = VRRPInstance(configuration: config(priority: 255))
        #expect(owner.handle(.priorityChanged(50), now: clock.now) == [])
        #expect(owner.priority == 255, "an address owner's priority does not change")
    }
}

// MARK: - Several routers on one LAN

/// Routers sharing one LAN, driven by one manual clock. Multicast has no latency: an
/// advertisement reaches every other running, connected router at the instant it is sent, and
/// their replies are delivered in turn before the clock moves. A crashed router neither sends,
/// receives nor wakes up.
private struct LAN {
    struct Router {
        var name: String
        var vrrp: VRRPInstance
        var running = true
        var connected = true
    }

    struct Entry: Hashable, CustomStringConvertible {
        var at: BatonInstant
        var router: String
        var action: Action
        var description: String { "\(at) \(router) \(action)" }
    }

    let clock = ManualClock()
    var routers: [Router]
    var log: [Entry] = []
    /// The most routers that were Master at once, checked once an event and every advert it
    /// caused at that instant have been delivered.
    var mostMastersAtOnce = 0

    init(_ configurations: [(String, VRRPInstance.Configuration)]) {
        routers = configurations.map { Router(name: $0.0, vrrp: VRRPInstance(configuration: $0.1)) }
    }

    func index(_ name: String) -> Int { routers.firstIndex { $0.name == name }! }

    mutating func send(_ event: VRRPInstance.Event, to name: String) { deliver(event, to: index(name)) }

    /// A crash: the process stops with no goodbye.
    mutating func crash(_ name: String) { routers[index(name)].running = false }

    /// A fresh process for a crashed router, started now.
    mutating func restart(_ name: String) {
        let i = index(name)
        routers[i].vrrp = VRRPInstance(configuration: routers[i].vrrp.configuration)
        routers[i].running = true
        deliver(.startup, to: i)
    }

    /// Fires every timer in deadline order (ties in router order) until `end`, then sets the clock to `end`.
    mutating func run(until end: BatonInstant) {
        while let (i, deadline) = routers.indices
            .compactMap({ i in routers[i].running ? routers[i].vrrp.nextDeadline.map { (i, $0) } : nil })
            .min(by: { $0.1 < $1.1 }),
            deadline <= end {
            clock.set(to: max(deadline, clock.now))
            deliver(.timerFired, to: i)
        }
        clock.set(to: end)
    }

    var masters: [String] { routers.filter { $0.running && $0.vrrp.state == .master }.map(\.name) }

    func entries(_ keep: (Action) -> Bool) -> [Entry] { log.filter { keep($0.action) } }

    /// Transitions and address moves, without adverts and notifications.
    var transitions: [Entry] {
        entries {
            switch $0 {
            case .becameMaster, .becameBackup, .becameFault, .releaseAddresses: true
            case .sendAdvertisement, .announceAddresses, .notify: false
            }
        }
    }

    /// When `name` advertised (priority-0 adverts left out).
    func adverts(from name: String) -> [BatonInstant] {
        log.compactMap { entry in
            guard entry.router == name, case .sendAdvertisement(let priority) = entry.action, priority > 0 else { return nil }
            return entry.at
        }
    }

    /// The notify scripts' runs, as "router STATE".
    var notifications: [String] {
        log.compactMap { entry in
            guard case .notify(let state) = entry.action else { return nil }
            return "\(entry.router) \(state.rawValue)"
        }
    }

    private mutating func deliver(_ event: VRRPInstance.Event, to first: Int) {
        var pending: [(to: Int, event: VRRPInstance.Event)] = [(first, event)]
        var steps = 0
        while !pending.isEmpty {
            steps += 1
            precondition(steps < 1_000, "advertisements keep bouncing")
            let (i, event) = pending.removeFirst()
            guard routers[i].running else { continue }
            let config = routers[i].vrrp.configuration
            for action in routers[i].vrrp.handle(event, now: clock.now) {
                log.append(Entry(at: clock.now, router: routers[i].name, action: action))
                guard case .sendAdvertisement(let priority) = action, routers[i].connected else { continue }
                let heard = VRRPInstance.Event.advertisementReceived(priority: priority, maxAdvertInterval: config.advertInterval, source: config.primaryAddress)
                for j in routers.indices where j != i && routers[j].running && routers[j].connected {
                    pending.append((j, heard))
                }
            }
        }
        mostMastersAtOnce = max(mostMastersAtOnce, masters.count)
    }
}

@Suite struct VRRPInstanceLANTests {
    /// Three routers (priorities 150, 100, 50; VRRPv3 every second): the highest wins the start,
    /// a crashed Master is replaced Master_Down_Interval after its last advert, a Master that
    /// shuts down is replaced within Skew_Time, and the highest preempts when it comes back.
    @Test func threeRoutersConvergeThroughACrashAShutdownAndAReturn() {
        var lan = LAN([
            ("a", config(priority: 150, address: "10.0.0.1")),
            ("b", config(priority: 100, address: "10.0.0.2")),
            ("c", config(priority: 50, address: "10.0.0.3")),
        ])
        for name in ["a", "b", "c"] { lan.send(.startup, to: name) }

        // The shortest Master_Down_Interval wins: 3 s + 106/256 s.
        lan.run(until: at(.seconds(10)))
        #expect(lan.masters == ["a"])
        #expect(lan.adverts(from: "a").last == at(.nanoseconds(9_414_062_500)))

        // a crashes at 10 s; b (Master_Down_Interval 3.609375 s) takes over that long after a's
        // last advert, before c's timer (3.8046875 s) runs out.
        lan.crash("a")
        lan.run(until: at(.seconds(20)))
        #expect(lan.masters == ["b"])

        // b shuts down at 20 s: c takes over after its Skew_Time, 206/256 s.
        lan.send(.shutdown, to: "b")
        lan.crash("b")
        lan.run(until: at(.seconds(30)))
        #expect(lan.masters == ["c"])

        // a comes back at 30 s as Backup, discards c's lower-priority adverts and preempts when
        // its own master-down timer runs out.
        lan.restart("a")
        lan.run(until: at(.seconds(40)))
        #expect(lan.masters == ["a"])
        #expect(lan.mostMastersAtOnce == 1)

        #expect(lan.transitions.map { "\($0)" } == [
            "\(at(.zero)) a becameBackup",
            "\(at(.zero)) b becameBackup",
            "\(at(.zero)) c becameBackup",
            "\(at(.nanoseconds(3_414_062_500))) a becameMaster",
            "\(at(.nanoseconds(13_023_437_500))) b becameMaster",        // 9.4140625 + 3.609375
            "\(at(.seconds(20))) b releaseAddresses",
            "\(at(.nanoseconds(20_804_687_500))) c becameMaster",        // 20 + 0.8046875
            "\(at(.seconds(30))) a becameBackup",
            "\(at(.nanoseconds(33_414_062_500))) a becameMaster",        // 30 + 3.4140625
            "\(at(.nanoseconds(33_414_062_500))) c releaseAddresses",
            "\(at(.nanoseconds(33_414_062_500))) c becameBackup",
        ])
        #expect(lan.notifications == [
            "a BACKUP", "b BACKUP", "c BACKUP",
            "a MASTER",
            "b MASTER",
            "b STOP",
            "c MASTER",
            "a BACKUP", "a MASTER", "c BACKUP",
        ])
    }

    struct TakeoverCase: Sendable, CustomTestStringConvertible {
        var version: VRRPProtocolVersion
        var interval: Duration
        /// The Backup's (priority 100) Master_Down_Interval and Skew_Time.
        var masterDownInterval: Duration
        var skewTime: Duration
        var testDescription: String { "\(version) every \(interval)" }
    }

    /// Two routers (200 and 100): the Backup takes over exactly Master_Down_Interval after the
    /// crashed Master's last advert, and exactly Skew_Time after a Master's priority-0 advert.
    @Test(arguments: [
        TakeoverCase(version: .v3, interval: .seconds(1), masterDownInterval: .nanoseconds(3_609_375_000), skewTime: .nanoseconds(609_375_000)),
        TakeoverCase(version: .v3, interval: .milliseconds(20), masterDownInterval: .nanoseconds(72_187_500), skewTime: .nanoseconds(12_187_500)),
        TakeoverCase(version: .v3, interval: .milliseconds(10), masterDownInterval: .nanoseconds(36_093_750), skewTime: .nanoseconds(6_093_750)),
        TakeoverCase(version: .v2, interval: .seconds(1), masterDownInterval: .nanoseconds(3_609_375_000), skewTime: .nanoseconds(609_375_000)),
        TakeoverCase(version: .v2, interval: .seconds(2), masterDownInterval: .nanoseconds(6_609_375_000), skewTime: .nanoseconds(609_375_000)),
    ])
    func backupTakesOverOnTime(_ c: TakeoverCase) {
        for graceful in [false, true] {
            var lan = LAN([
                ("a", config(c.version, priority: 200, interval: c.interval, address: "10.0.0.1")),
                ("b", config(c.version, priority: 100, interval: c.interval, address: "10.0.0.2")),
            ])
            lan.send(.startup, to: "a")
            lan.send(.startup, to: "b")
            let stop = at(c.interval * 20 + .nanoseconds(1))
            lan.run(until: stop)
            #expect(lan.masters == ["a"])
            let lastAdvert = lan.adverts(from: "a").last!

            if graceful { lan.send(.shutdown, to: "a") }
            lan.crash("a")
            lan.run(until: stop + c.masterDownInterval * 2)
            #expect(lan.masters == ["b"])
            let takeover = lan.entries { $0 == .becameMaster }.last { $0.router == "b" }!.at
            #expect(takeover == (graceful ? stop + c.skewTime : lastAdvert + c.masterDownInterval),
                    "graceful: \(graceful)")
            #expect(lan.mostMastersAtOnce == 1)
        }
    }

    /// A partition makes both equal-priority routers Master; when it heals, the first advert each
    /// hears settles it: the higher primary address stays.
    @Test func splitBrainHealsToTheHigherAddress() {
        var lan = LAN([
            ("low", config(priority: 100, address: "10.0.0.9")),
            ("high", config(priority: 100, address: "10.0.0.10")),
        ])
        for i in lan.routers.indices { lan.routers[i].connected = false }
        lan.send(.startup, to: "low")
        lan.send(.startup, to: "high")
        lan.run(until: at(.seconds(5)))
        #expect(Set(lan.masters) == ["low", "high"])

        for i in lan.routers.indices { lan.routers[i].connected = true }
        lan.run(until: at(.seconds(10)))
        #expect(lan.masters == ["high"])
        // Both became Master at 3.609375 s and advertise on the same schedule: at 5.609375 s
        // "low" advertises, "high" answers at once, and "low" steps down.
        #expect(lan.transitions.filter { $0.at > at(.seconds(5)) }.map { "\($0)" } == [
            "\(at(.nanoseconds(5_609_375_000))) low releaseAddresses",
            "\(at(.nanoseconds(5_609_375_000))) low becameBackup",
        ])
    }

    /// nopreempt (OpenShift `PREEMPTION=nopreempt`): a higher-priority router that comes back
    /// leaves the lower-priority Master alone, and takes over only when that Master goes away.
    @Test func nopreemptLeavesTheLowerPriorityMasterInPlace() {
        var lan = LAN([
            ("a", config(priority: 150, preempt: false, address: "10.0.0.1")),
            ("b", config(priority: 100, preempt: false, address: "10.0.0.2")),
        ])
        lan.send(.startup, to: "b")
        lan.run(until: at(.seconds(10)))
        #expect(lan.masters == ["b"])

        lan.send(.startup, to: "a")
        lan.run(until: at(.seconds(100)))
        #expect(lan.masters == ["b"])

        lan.crash("b")
        let lastAdvert = lan.adverts(from: "b").last!
        lan.run(until: at(.seconds(110)))
        #expect(lan.masters == ["a"])
        #expect(lan.entries { $0 == .becameMaster }.last!.at == lastAdvert + .nanoseconds(3_414_062_500))
    }

    /// A track script lowers the Master's priority below the Backup's: the preempting Backup
    /// discards the next adverts and takes over when its timer runs out.
    @Test func aLoweredMasterPriorityHandsOver() {
        var lan = LAN([
            ("a", config(priority: 150, address: "10.0.0.1")),
            ("b", config(priority: 100, address: "10.0.0.2")),
        ])
        lan.send(.startup, to: "a")
        lan.send(.startup, to: "b")
        lan.run(until: at(.seconds(10)))
        #expect(lan.masters == ["a"])
        let lastHigh = lan.adverts(from: "a").last!

        lan.send(.priorityChanged(50), to: "a")
        lan.run(until: at(.seconds(20)))
        #expect(lan.masters == ["b"])
        #expect(lan.entries { $0 == .becameMaster }.last! == .init(at: lastHigh + .nanoseconds(3_609_375_000), router: "b", action: .becameMaster))
        #expect(lan.mostMastersAtOnce == 1)
    }
}
