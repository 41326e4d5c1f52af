import BatonAPI
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `preempt_delay` and `nopreempt` behave the same in Baton and keepalived 2.2.7: a
/// higher-priority router joins a LAN whose lower-priority Master is the other implementation,
/// once with keepalived joining and once with Baton joining, and the two runs are compared.
///
/// keepalived 2.2.7's rules (`vrrp_state_backup` in vrrp.c), which Baton's `VRRPInstance` follows:
/// - a Backup accepts a lower-priority advert while `preempt_delay` runs; the delay starts at the
///   first lower-priority advert it accepts (for a router joining a LAN, within one advert
///   interval of its start), and is cancelled by an advert of priority ≥ its own. Once it ends,
///   lower-priority adverts are discarded, the master-down timer set by the last accepted one
///   runs out, and the joiner takes over: about `preempt_delay + Master_Down_Interval` after it
///   starts (keepalived's man page: "preempt_delay 2 ... approximately 5.5 seconds" for 3.5);
/// - `nopreempt` (with `state BACKUP`, which it requires) accepts every lower-priority advert, so
///   the joiner takes over only when the Master goes away.
@Suite(.serialized, .enabled(if: VRRPInteropPrerequisites.met, VRRPInteropPrerequisites.skipMessage))
struct VRRPInteropPreemptionTests {
    static let incumbentPriority = 100
    static let joinerPriority = 200

    /// The delay: long beside Master_Down_Interval at VRRPv3's 0.2 s, short at VRRPv2's 1 s.
    static func delay(_ setup: VRRPSetup) -> Double { setup.version == 2 ? 1.5 : 1 }

    /// How long after it starts a joiner with `preempt_delay` took the VIP, for each joiner:
    /// not before `delay + Master_Down_Interval - advert interval`, about as long for both.
    @Test(arguments: VRRPSetup.both)
    func preemptDelayHoldsTheJoinerBackForTheSameTime(_ setup: VRRPSetup) async throws {
        let delay = Self.delay(setup)
        let down = setup.masterDownInterval(priority: Self.joinerPriority)
        let earliest = delay + down - setup.advertInterval
        let expected = delay + down
        var taken: [VRRPSpeakerKind: Duration] = [:]
        for joiner in VRRPSpeakerKind.allCases {
            let lab = VRRPLab()
            defer { lab.down() }
            try lab.up()
            let time = try await Self.join(lab, setup: setup, joiner: joiner, preemption: .delay(delay))
            lab.report("\(setup): \(joiner) joining with preempt_delay \(delay) took over after \(time) (preempt_delay + Master_Down_Interval \(expected) s)")
            #expect(time >= .seconds(earliest), "\(joiner) preempted before its delay ran out")
            #expect(time <= .seconds(expected + setup.advertInterval + 0.6), "\(joiner) preempted late")
            taken[joiner] = time
        }
        let gap = abs((taken[.baton]! - taken[.keepalived]!) / .seconds(1))
        VRRPLab.report("\(setup): preempt_delay takeover Baton \(taken[.baton]!) vs keepalived \(taken[.keepalived]!), gap \(gap) s")
        #expect(gap <= setup.advertInterval + 0.3, "Baton and keepalived wait differently")
    }

    /// Without a delay both take over one `Master_Down_Interval` after they start (the baseline
    /// the delay adds to).
    @Test(arguments: [VRRPSetup.v3])
    func preemptionWithoutADelayTakesMasterDownInterval(_ setup: VRRPSetup) async throws {
        let down = setup.masterDownInterval(priority: Self.joinerPriority)
        for joiner in VRRPSpeakerKind.allCases {
            let lab = VRRPLab()
            defer { lab.down() }
            try lab.up()
            let time = try await Self.join(lab, setup: setup, joiner: joiner, preemption: .preempt)
            lab.report("\(setup): \(joiner) joining (preempt) took over after \(time) (Master_Down_Interval \(down) s)")
            #expect(time >= .seconds(down - 0.05) && time <= .seconds(down + 0.6))
        }
    }

    /// A `nopreempt` joiner stays Backup behind the lower-priority Master past the time a
    /// preempting one would take over, and takes over (within its Master_Down_Interval) only
    /// when the Master is killed; both implementations alike.
    @Test(arguments: VRRPSetup.both)
    func nopreemptNeverTakesOverWhileTheMasterLives(_ setup: VRRPSetup) async throws {
        let down = setup.masterDownInterval(priority: Self.joinerPriority)
        var taken: [VRRPSpeakerKind: Duration] = [:]
        for joiner in VRRPSpeakerKind.allCases {
            let lab = VRRPLab()
            defer { lab.down() }
            try lab.up()
            try await Self.startIncumbent(lab, setup: setup, kind: joiner.other)
            try lab.start(joiner, host: 2, setup: setup, priority: Self.joinerPriority, preemption: .nopreempt)
            try await lab.waitStarted(2)
            // A preempting joiner would have taken over one Master_Down_Interval after its start.
            try await lab.expectHolderStays(1, for: .seconds(down + 2 * setup.advertInterval))
            let time = try await lab.stop(host: 1, signal: SIGKILL, thenWaitForHolder: 2, within: .seconds(down + 1))
            lab.report("\(setup): \(joiner) with nopreempt stayed Backup for \(down + 2 * setup.advertInterval) s; master killed -> took over after \(time) (Master_Down_Interval \(down) s)")
            #expect(time <= .seconds(down + 0.5))
            let line = VRRPLab.notifyLine
            try await lab.waitForNotifications(host: 2, [line("BACKUP", Self.joinerPriority), line("MASTER", Self.joinerPriority)])
            taken[joiner] = time
        }
        VRRPLab.report("\(setup): nopreempt takeover after the master's death Baton \(taken[.baton]!) vs keepalived \(taken[.keepalived]!)")
    }

    // MARK: Steps

    /// Starts the lower-priority router alone on host 1 and waits until it is Master.
    static func startIncumbent(_ lab: VRRPLab, setup: VRRPSetup, kind: VRRPSpeakerKind) async throws {
        try lab.start(kind, host: 1, setup: setup, priority: incumbentPriority)
        try await lab.waitForHolder(1, within: .seconds(setup.masterDownInterval(priority: incumbentPriority) + 1.5))
    }

    /// The incumbent (the other kind) becomes Master; then `joiner` starts on host 2 with
    /// `preemption`. Returns how long after its start the joiner held the VIP alone.
    static func join(_ lab: VRRPLab, setup: VRRPSetup, joiner: VRRPSpeakerKind, preemption: VRRPPreemption) async throws -> Duration {
        try await startIncumbent(lab, setup: setup, kind: joiner.other)
        let start = ContinuousClock.now
        try lab.start(joiner, host: 2, setup: setup, priority: joinerPriority, preemption: preemption)
        try await lab.waitForHolder(2, within: .seconds(setup.masterDownInterval(priority: joinerPriority) + 10))
        let time = ContinuousClock.now - start
        // The incumbent stepped down (Backup, VIP released) rather than fighting on.
        try await lab.expectHolderStays(2, for: .seconds(2 * setup.advertInterval))
        return time
    }
}
