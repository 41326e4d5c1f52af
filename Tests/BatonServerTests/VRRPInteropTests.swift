import BatonAPI
import BatonDataplane
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `baton vrrp` and a real keepalived (Debian's 2.2.7) on one LAN with the same VRID, in
/// network namespaces this suite creates (`bv<pid>-*`, never the machine's own): the higher
/// priority wins whichever has it, a killed Master's VIP moves to the other within
/// `Master_Down_Interval`, and a Baton Master stopped with SIGTERM hands over within about
/// `Skew_Time` (its priority-0 advertisement), in VRRPv2 with `auth_type PASS` and in VRRPv3.
/// The other points of issue 5's interop list are in `VRRPInterop*Tests` beside this one.
@Suite(.serialized, .enabled(if: VRRPInteropPrerequisites.met, VRRPInteropPrerequisites.skipMessage))
struct VRRPInteropTests {
    /// Baton is the higher priority, then keepalived is: each time the higher one holds the VIP
    /// and the other stays Backup; each Master killed hands the VIP over within
    /// `Master_Down_Interval`; Baton's SIGTERM hands it over within about `Skew_Time`.
    @Test(arguments: VRRPSetup.both)
    func batonAndKeepalivedElectOneMasterAndHandOver(_ setup: VRRPSetup) async throws {
        let lab = VRRPLab()
        defer { lab.down() }
        try lab.up()
        try await VRRPInteropTests.electAndHandOver(lab, setup)
    }

    /// The election and handover scenario, shared with the unicast and IPv6 suites. Host 1 runs
    /// Baton, host 2 keepalived.
    static func electAndHandOver(_ lab: VRRPLab, _ setup: VRRPSetup) async throws {
        let low = 100, high = 150
        let down = setup.masterDownInterval(priority: low)
        let slack = 0.5 + setup.advertInterval
        let line = VRRPLab.notifyLine

        // 1. Baton higher: Baton is Master; keepalived, started next, stays Backup (for longer
        //    than its Master_Down_Interval, so it must be hearing Baton).
        try lab.start(.baton, host: 1, setup: setup, priority: high)
        try await lab.waitForHolder(1, within: .seconds(setup.masterDownInterval(priority: high) + slack))
        try lab.start(.keepalived, host: 2, setup: setup, priority: low)
        try await lab.waitStarted(2)
        try await lab.expectHolderStays(1, for: .seconds(down + 2 * setup.advertInterval))
        try await lab.waitForNotifications(host: 1, [line("BACKUP", high), line("MASTER", high)])
        try await lab.waitForNotifications(host: 2, [line("BACKUP", low)])

        // 2. Baton killed: keepalived takes over within its Master_Down_Interval.
        var taken = try await lab.stop(host: 1, signal: SIGKILL, thenWaitForHolder: 2, within: .seconds(down + slack))
        lab.report("\(setup): Baton master SIGKILLed -> keepalived MASTER after \(taken) (keepalived's Master_Down_Interval \(down) s)")
        #expect(taken <= .seconds(down + slack))
        try lab.clearVIP(host: 1)

        // 3. Baton back, higher: it preempts keepalived. Then SIGTERM: its priority-0 advert makes
        //    keepalived take over within about Skew_Time, well under Master_Down_Interval.
        lab.clearNotifications(host: 1)
        try lab.start(.baton, host: 1, setup: setup, priority: high)
        try await lab.waitForHolder(1, within: .seconds(setup.masterDownInterval(priority: high) + slack))
        taken = try await lab.stop(host: 1, signal: SIGTERM, thenWaitForHolder: 2, within: .seconds(down + slack))
        let skew = setup.skewTime(priority: low)
        lab.report("\(setup): Baton master SIGTERMed -> keepalived MASTER after \(taken) (keepalived's Skew_Time \(skew) s, Master_Down_Interval \(down) s)")
        // The handover came from the priority-0 advert (keepalived logs it), not from a timeout:
        // at VRRPv3's 0.2 s the two differ by less than a loaded machine's scheduling jitter.
        #expect(lab.log(host: 2).contains(VRRPLab.keepalivedSawPriorityZero), "keepalived never took Baton's priority-0 advert")
        #expect(taken < .seconds(down), "a graceful stop must hand over within about Skew_Time")
        #expect(try !lab.holdsVIP(1), "Baton left its VIP behind after SIGTERM")
        try await lab.waitForNotifications(host: 1, [line("BACKUP", high), line("MASTER", high), line("STOP", high)])

        // 4. keepalived higher: Baton alone is Master, keepalived joins and preempts it; then
        //    keepalived killed: Baton takes over within its Master_Down_Interval.
        try lab.reset()
        try lab.start(.baton, host: 1, setup: setup, priority: low)
        try await lab.waitForHolder(1, within: .seconds(down + slack))
        try lab.start(.keepalived, host: 2, setup: setup, priority: high)
        try await lab.waitForHolder(2, within: .seconds(setup.masterDownInterval(priority: high) + slack))
        try await lab.expectHolderStays(2, for: .seconds(down + 2 * setup.advertInterval))
        taken = try await lab.stop(host: 2, signal: SIGKILL, thenWaitForHolder: 1, within: .seconds(down + slack))
        lab.report("\(setup): keepalived master SIGKILLed -> Baton MASTER after \(taken) (Baton's Master_Down_Interval \(down) s)")
        #expect(taken <= .seconds(down + slack))
        try await lab.waitForNotifications(host: 1, [line("BACKUP", low), line("MASTER", low), line("BACKUP", low), line("MASTER", low)])
    }
}
