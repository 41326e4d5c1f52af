import BatonAPI
import BatonCore
import BatonTesting
import Testing

private typealias Verdict = VRRPHealthMonitor.Verdict

/// An instance whose interface goes down and comes back, step by step on a manual clock, as
/// keepalived tracks an instance's interface: FAULT while the link is down (a Master gives up
/// its VIPs, the notify script gets FAULT), Backup when it returns, then Master by the normal
/// rules, announcing the VIPs again. The link state reaches the instance through the checks'
/// verdict (`Verdict.tracking`), so a link fault and a failed check share one path.
@Suite struct VRRPInterfaceStateTests {
    static let up = VRRPInterfaceState(interface: "eth0", up: true)
    static let cut = VRRPInterfaceState(interface: "eth0", up: false, condition: "no carrier")

    /// The old master of the bench: priority 200 at 0.02 s; the stand-in advertises 100.
    static func master(clock: ManualClock) throws -> VRRPInstance {
        let cfg = try VRRPInstance.Configuration(version: .v3, vrid: 51, priority: 200, advertInterval: .milliseconds(20),
                                                 preempt: true, preemptDelay: .zero, primaryAddress: IPAddress("192.168.88.11")!)
        var vrrp = VRRPInstance(configuration: cfg)
        for event in Verdict.healthy.tracking(up).startupEvents(base: 200) { _ = vrrp.handle(event, now: clock.now) }
        clock.set(to: vrrp.nextDeadline!)
        #expect(vrrp.handle(.timerFired, now: clock.now) == [.sendAdvertisement(priority: 200), .becameMaster, .notify(.master)])
        return vrrp
    }

    static func standIn(_ priority: UInt8 = 100) -> VRRPInstance.Event {
        .advertisementReceived(priority: priority, maxAdvertInterval: .milliseconds(20), source: IPAddress("192.168.88.12")!)
    }

    /// Feeds the instance what a verdict change means, as the speaker's runner does.
    fileprivate static func change(_ vrrp: inout VRRPInstance, from old: Verdict, to new: Verdict, now: BatonInstant) -> [VRRPInstance.Action] {
        new.events(since: old, base: vrrp.configuration.priority).flatMap { vrrp.handle($0, now: now) }
    }

    @Test func theInterfaceStateNamesWhatIsWrong() {
        #expect(Self.up.faultReason == nil)
        #expect(Self.cut.faultReason == "interface eth0 is down: no carrier")
        #expect(VRRPInterfaceState(interface: "eth0", up: false).faultReason == "interface eth0 is down: down")
        #expect(VRRPInterfaceState(interface: "eth0", up: true, condition: "ignored").condition == "up")
    }

    @Test func aLinkDownIsAFaultAheadOfTheChecksAndKeepsTheirPriority() {
        let checks = Verdict(ready: true, fault: "check tcp 10.0.0.1:80 failed: refused", priorityOffset: -20)
        #expect(checks.tracking(Self.cut) == Verdict(ready: true, fault: "interface eth0 is down: no carrier", priorityOffset: -20))
        #expect(checks.tracking(Self.up) == checks)
        #expect(checks.tracking(nil) == checks)
        let waiting = Verdict(ready: false, fault: nil, priorityOffset: 0)
        #expect(waiting.tracking(Self.cut).startupEvents(base: 100) == [], "not started before the checks answer, link or not")
    }

    /// The bench's link cut, from the old master's side: FAULT at once (VIPs released), nothing
    /// heard or sent while down; when the link returns, Backup first, whatever it hears first
    /// from the stand-in, and Master after `Master_Down_Interval` (3 × 20 ms + Skew_Time
    /// 4.375 ms) with its advertisement and `.becameMaster` (the gratuitous ARP).
    @Test func aMasterWhoseLinkIsCutFaultsThenComesBackThroughBackupAndAnnounces() throws {
        let clock = ManualClock()
        var vrrp = try Self.master(clock: clock)
        let healthy = Verdict.healthy.tracking(Self.up), cut = Verdict.healthy.tracking(Self.cut)

        clock.advance(by: .milliseconds(7))
        #expect(Self.change(&vrrp, from: healthy, to: cut, now: clock.now)
                == [.sendAdvertisement(priority: 0), .releaseAddresses, .becameFault(reason: "interface eth0 is down: no carrier"), .notify(.fault)])
        #expect(vrrp.state == .fault)
        #expect(vrrp.nextDeadline == nil, "no advertisement timer while the link is down")
        #expect(vrrp.handle(Self.standIn(), now: clock.advance(by: .milliseconds(30))) == [], "adverts are ignored in FAULT")
        #expect(vrrp.handle(.timerFired, now: clock.advance(by: .seconds(1))) == [])

        // The link returns; the stand-in's advertisement is the first thing heard.
        #expect(Self.change(&vrrp, from: cut, to: healthy, now: clock.now) == [.becameBackup, .notify(.backup)])
        let back = clock.now
        #expect(vrrp.state == .backup)
        #expect(vrrp.nextDeadline == back + .nanoseconds(64_375_000))
        for step in 1...3 {
            #expect(vrrp.handle(Self.standIn(), now: clock.set(back + .milliseconds(20 * step))) == [], "a lower priority is discarded")
        }
        #expect(vrrp.nextDeadline == back + .nanoseconds(64_375_000), "the lower priority does not reset the master-down timer")
        clock.set(to: back + .nanoseconds(64_375_000))
        #expect(vrrp.handle(.timerFired, now: clock.now) == [.sendAdvertisement(priority: 200), .becameMaster, .notify(.master)])
    }

    /// A check that still fails when the link returns keeps the instance in FAULT; it recovers
    /// when both are well, and a check failing while the link is down adds no transition.
    @Test func theLinkAndAFailedCheckHoldTheFaultTogether() throws {
        let clock = ManualClock()
        var vrrp = try Self.master(clock: clock)
        let failing = Verdict(ready: true, fault: "check script failed", priorityOffset: 0)
        var checks = Verdict.healthy, link = Self.up
        var current = checks.tracking(link)
        func move(checks newChecks: Verdict? = nil, link newLink: VRRPInterfaceState? = nil) -> [VRRPInstance.Action] {
            checks = newChecks ?? checks
            link = newLink ?? link
            let next = checks.tracking(link)
            defer { current = next }
            return Self.change(&vrrp, from: current, to: next, now: clock.advance(by: .milliseconds(5)))
        }
        #expect(move(link: Self.cut).contains(.notify(.fault)))
        #expect(move(checks: failing) == [], "already in FAULT")
        #expect(move(link: Self.up) == [], "the check still holds it in FAULT")
        #expect(vrrp.state == .fault)
        #expect(move(checks: .healthy) == [.becameBackup, .notify(.backup)])
    }

    /// An interface already down when the speaker starts: the instance starts in FAULT, and
    /// leaves it as Backup when the link comes up.
    @Test func anInstanceOnADownInterfaceStartsInFault() throws {
        let cfg = try VRRPInstance.Configuration(version: .v3, vrid: 51, priority: 100, advertInterval: .milliseconds(10),
                                                 preempt: true, preemptDelay: .zero, primaryAddress: IPAddress("10.0.0.1")!)
        var vrrp = VRRPInstance(configuration: cfg)
        let down = Verdict.healthy.tracking(Self.cut)
        #expect(down.startupEvents(base: 100).flatMap { vrrp.handle($0, now: .zero) }
                == [.becameFault(reason: "interface eth0 is down: no carrier"), .notify(.fault)])
        #expect(Self.change(&vrrp, from: down, to: Verdict.healthy.tracking(Self.up), now: .zero + .seconds(1))
                == [.becameBackup, .notify(.backup)])
    }
}

private extension ManualClock {
    /// Sets the clock to `instant` and returns it.
    func set(_ instant: BatonInstant) -> BatonInstant {
        set(to: instant)
        return instant
    }
}
