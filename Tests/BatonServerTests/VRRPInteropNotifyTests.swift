import BatonAPI
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Notify scripts: for the same scenario, Baton's notify script gets the same arguments as
/// keepalived 2.2.7's (`INSTANCE NAME STATE PRIORITY`, as its `notify_script_exec` passes them) in
/// the same order. The scenario runs twice, Baton as the first router and keepalived as the
/// second, then the other way round; each router's lines must be the same whichever
/// implementation it was:
/// 1. the first router starts alone: BACKUP (init), then MASTER when its down timer runs out;
/// 2. the second, higher, joins and preempts: first BACKUP; second BACKUP, MASTER;
/// 3. the second is stopped (SIGTERM): second STOP (no BACKUP first: keepalived releases its
///    addresses and sends priority 0 without a notify, then notifies STOP); first MASTER;
/// 4. the first is stopped: first STOP.
@Suite(.serialized, .enabled(if: VRRPInteropPrerequisites.met, VRRPInteropPrerequisites.skipMessage))
struct VRRPInteropNotifyTests {
    @Test(arguments: VRRPSetup.both)
    func bothNotifyTheSameArgumentsInTheSameOrder(_ setup: VRRPSetup) async throws {
        let first = 100, second = 150
        let line = VRRPLab.notifyLine
        let expectedFirst = [line("BACKUP", first), line("MASTER", first), line("BACKUP", first), line("MASTER", first), line("STOP", first)]
        let expectedSecond = [line("BACKUP", second), line("MASTER", second), line("STOP", second)]
        var seen: [VRRPSpeakerKind: (first: [String], second: [String])] = [:]
        for firstKind in VRRPSpeakerKind.allCases {
            let lab = VRRPLab()
            defer { lab.down() }
            try lab.up()
            let slack = 0.5 + setup.advertInterval
            try lab.start(firstKind, host: 1, setup: setup, priority: first)
            try await lab.waitForHolder(1, within: .seconds(setup.masterDownInterval(priority: first) + slack))
            try await lab.waitForNotifications(host: 1, Array(expectedFirst.prefix(2)))
            try lab.start(firstKind.other, host: 2, setup: setup, priority: second)
            try await lab.waitForHolder(2, within: .seconds(setup.masterDownInterval(priority: second) + slack))
            try await lab.waitForNotifications(host: 1, Array(expectedFirst.prefix(3)))
            try await lab.waitForNotifications(host: 2, Array(expectedSecond.prefix(2)))
            let taken = try await lab.stop(host: 2, signal: SIGTERM, thenWaitForHolder: 1, within: .seconds(setup.masterDownInterval(priority: first) + slack))
            lab.report("\(setup): \(firstKind.other) master SIGTERMed -> \(firstKind) MASTER after \(taken) (Skew_Time \(setup.skewTime(priority: first)) s)")
            try await lab.waitForNotifications(host: 1, Array(expectedFirst.prefix(4)))
            try lab.stop(host: 1, signal: SIGTERM)
            // Each script's whole record, once every call has had time to land.
            try await lab.waitForNotifications(host: 1, expectedFirst)
            try await lab.waitForNotifications(host: 2, expectedSecond)
            seen[firstKind] = (lab.notifications(host: 1), lab.notifications(host: 2))
        }
        let batonFirst = try #require(seen[.baton]), keepalivedFirst = try #require(seen[.keepalived])
        VRRPLab.report("\(setup): first router's notify lines: Baton \(batonFirst.first), keepalived \(keepalivedFirst.first)")
        VRRPLab.report("\(setup): second router's notify lines: Baton \(keepalivedFirst.second), keepalived \(batonFirst.second)")
        #expect(batonFirst.first == keepalivedFirst.first)
        #expect(batonFirst.second == keepalivedFirst.second)
    }
}
