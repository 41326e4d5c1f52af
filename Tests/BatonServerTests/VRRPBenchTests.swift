@testable import BatonAgent
import Testing

/// `baton lab bench vrrp`'s arithmetic: the outage and takeover of one failover from the
/// client's send log, false failovers from a notify log, percentiles, the tables and the
/// keepalived configuration. No sockets.
@Suite struct VRRPBenchTests {
    static let master = "192.168.88.11", backup = "192.168.88.12"
    static let interval: UInt64 = 5_000_000, start: UInt64 = 9_000_000_000

    /// 40 probes every 5 ms; `answer(seq)` says who answered (nil: nobody).
    static func log(_ answer: (Int) -> String?) -> [SenderRecord] {
        (0..<40).map { seq in
            let sent = start + UInt64(seq) * interval
            return answer(seq).map { SenderRecord(seq: seq, sent: sent, received: sent + 200_000, source: $0) } ?? SenderRecord(seq: seq, sent: sent)
        }
    }

    static func at(_ seq: Int) -> UInt64 { start + UInt64(seq) * interval }

    /// A link cut: the master answers up to probe 9, nobody from 10 to 17, the backup from 18.
    @Test func aLinkCutIsAnOutageAndATakeover() {
        let records = Self.log { $0 < 10 ? Self.master : $0 < 18 ? nil : Self.backup }
        let failure = Self.at(10) - 1_000_000   // between probe 9 and probe 10
        let trial = VRRPBenchTrial(records: records.reversed(), failureAt: failure, backup: Self.backup)
        #expect(trial.outage == .milliseconds(40))       // probes 10...17 unanswered: from 10's sending to 18's
        #expect(trial.takeover == .milliseconds(41))     // from the failure to probe 18's sending
        #expect(trial.lost == 8)
    }

    /// A killed or frozen speaker: its host still answers until the backup's gratuitous ARP
    /// moves the client, so no probe is lost but the takeover still counts.
    @Test func aMasterWhoseHostStillAnswersHasNoOutageButATakeover() {
        let records = Self.log { $0 < 16 ? Self.master : Self.backup }
        let trial = VRRPBenchTrial(records: records, failureAt: Self.at(10), backup: Self.backup)
        #expect(trial.outage == .zero)
        #expect(trial.takeover == .milliseconds(30))
        #expect(trial.lost == 0)
    }

    /// Losses before the failure (the client still resolving the VIP, say) are not the failover's,
    /// even when longer; a later, shorter run is.
    @Test func lossesBeforeTheFailureDoNotCount() {
        let records = Self.log { seq in
            switch seq {
            case 0..<6: nil
            case 6..<20: Self.master
            case 20..<22: nil
            default: Self.backup
            }
        }
        let trial = VRRPBenchTrial(records: records, failureAt: Self.at(20), backup: Self.backup)
        #expect(trial.outage == .milliseconds(10))
        #expect(trial.takeover == .milliseconds(10))
        #expect(trial.lost == 8)
    }

    /// Answers that come back after the outage from the old master (a freeze ends) are answers; a
    /// backup that never answers leaves no takeover, and the outage runs to the last probe.
    @Test func aBackupThatNeverAnswersHasNoTakeover() {
        let records = Self.log { $0 < 10 ? Self.master : nil }
        let trial = VRRPBenchTrial(records: records, failureAt: Self.at(10) - 1, backup: Self.backup)
        #expect(trial.takeover == nil)
        #expect(trial.outage == .milliseconds(145))      // probe 10 to probe 39
        #expect(trial.lost == 30)

        let back = Self.log { $0 < 10 || $0 >= 30 ? Self.master : nil }
        let frozen = VRRPBenchTrial(records: back, failureAt: Self.at(10) - 1, backup: Self.backup)
        #expect(frozen.takeover == nil)
        #expect(frozen.outage == .milliseconds(100))
    }

    @Test func notifyLogsCountTransitions() {
        let log = NotifyLog("BACKUP\nMASTER\n\nBACKUP\n MASTER \nFAULT\n")
        #expect(log.states == ["BACKUP", "MASTER", "BACKUP", "MASTER", "FAULT"])
        #expect(log.count("MASTER") == 2)
        #expect(log.count("STOP") == 0)
        #expect(NotifyLog("").states.isEmpty)
    }

    /// Nearest rank, as `Samples` (baton bench api) computes it.
    @Test func percentilesAreNearestRank() {
        let figures = DurationFigures((1...20).reversed().map { Duration.milliseconds($0) })
        #expect(figures.percentile(50) == 10)
        #expect(figures.percentile(99) == 20)
        #expect(figures.percentile(5) == 1)
        #expect(DurationFigures([]).percentile(50) == nil)
        let one = DurationFigures([.microseconds(36_500)])
        #expect(one.percentile(50) == 36.5 && one.percentile(99) == 36.5)
    }

    @Test(arguments: [(1, 36_093), (2, 72_187), (10, 360_937), (100, 3_609_375)])
    func masterDownIntervalOfTheBackup(centiseconds: Int, microseconds: Int64) {
        #expect(VRRPBench.masterDownInterval(centiseconds) == .microseconds(microseconds))
    }

    static func results() -> VRRPBenchResults {
        var r = VRRPBenchResults(intervals: [2, 1], batonDefault: 1, modes: [.link, .kill])
        let fast = (1...20).map { VRRPBenchTrial(outage: .milliseconds(30 + $0 % 3), takeover: .milliseconds(35 + $0 % 5), lost: 6) }
        let slow = (1...20).map { VRRPBenchTrial(outage: .milliseconds(60 + $0), takeover: .milliseconds(70 + $0), lost: 12) }
        r.trials[.init(.baton, 1)] = [.link: fast, .kill: fast]
        r.trials[.init(.keepalived, 1)] = [.link: slow, .kill: slow + [VRRPBenchTrial(outage: .zero, takeover: nil, lost: 0)]]
        r.trials[.init(.baton, 2)] = [.link: slow]
        r.trials[.init(.keepalived, 2)] = [.link: fast]
        r.falseFailovers = [.init(.baton, 1): 0, .init(.keepalived, 1): 3, .init(.baton, 2): 0]
        r.staleClientARP = [.init(.baton, 2): 2]
        return r
    }

    @Test func theTablesPutBothSpeakersSideBySide() {
        let r = Self.results()
        #expect(r.failoverTable == [
            "| failure | advert interval | trials | keepalived outage p50 / p99 ms | Baton outage p50 / p99 ms | keepalived takeover p50 / p99 ms | Baton takeover p50 / p99 ms |",
            "|---|---|---|---|---|---|---|",
            "| master's link cut | 0.02 s | 20 | 31 / 32 | 70 / 80 | 37 / 39 | 80 / 90 |",
            "| master's link cut | 0.01 s (Baton's default) | 20 | 70 / 80 | 31 / 32 | 80 / 90 | 37 / 39 |",
            "| master SIGKILLed | 0.02 s | 0 | - | - | - | - |",
            "| master SIGKILLed | 0.01 s (Baton's default) | 21 | 70 / 80 | 31 / 32 | 80 / 90 (1 never) | 37 / 39 |",
        ])
        #expect(r.loadTable == [
            "| advert interval | keepalived false failovers | Baton false failovers |",
            "|---|---|---|",
            "| 0.02 s | - | 0 |",
            "| 0.01 s (Baton's default) | 3 | 0 |",
        ])
    }

    @Test func theVerdictChecksTheGoals() {
        var r = Self.results()
        #expect(r.verdict == [
            "Baton's default: p99 takeover 39 ms over every failure (goal ≤ 50 ms): met",
            "Baton's default: 0 false failovers under load (goal 0): met",
            "slower than keepalived: master's link cut at 0.02 s, p99 takeover 90 ms against 39 ms (more than the 5 ms between probes)",
            "Baton at 0.02 s: 2 fail-backs left the client on the backup's MAC (the bench flushed its ARP entry)",
        ])
        r.trials[.init(.baton, 1)]?[.kill]?.append(VRRPBenchTrial(outage: .milliseconds(80), takeover: nil, lost: 16))
        r.falseFailovers[.init(.baton, 1)] = 1
        #expect(r.verdict.prefix(2) == [
            "Baton's default: p99 takeover 3600000 ms over every failure (goal ≤ 50 ms): NOT met",
            "Baton's default: 1 false failovers under load (goal 0): NOT met",
        ])
    }

    // MARK: The wire reaction

    static let vip = "192.168.88.101"

    /// An Ethernet frame: IPv4 VRRP (vrid 51, `priority`) from `source`, or an ARP whose sender is `sender`.
    static func vrrpFrame(priority: UInt8, source: [UInt8]) -> [UInt8] {
        let ethernet: [UInt8] = [0x01, 0, 0x5e, 0, 0, 0x12] + [2, 0, 0, 0, 0, 1] + [0x08, 0x00]
        let ip: [UInt8] = [0x45, 0, 0, 32, 0, 0, 0, 0, 255, 112, 0, 0] + source + [224, 0, 0, 18]
        return ethernet + ip + [0x31, 51, priority, 1, 0, 2, 0, 0] + [192, 168, 88, 101]
    }

    static func arpFrame(sender: [UInt8]) -> [UInt8] {
        let ethernet: [UInt8] = [UInt8](repeating: 0xff, count: 6) + [2, 0, 0, 0, 0, 2] + [0x08, 0x06]
        return ethernet + [0, 1, 0x08, 0x00, 6, 4, 0, 1] + [2, 0, 0, 0, 0, 2] + sender + [UInt8](repeating: 0, count: 6) + sender
    }

    @Test func wireFramesAreReadFromEthernet() {
        #expect(VRRPWireFrame.parse(Self.vrrpFrame(priority: 200, source: [192, 168, 88, 11])[...], nanos: 5, toBackup: true)
                == VRRPWireFrame(nanos: 5, toBackup: true, kind: .advertisement(vrid: 51, priority: 200, source: Self.master)))
        #expect(VRRPWireFrame.parse(Self.arpFrame(sender: [192, 168, 88, 101])[...], nanos: 6, toBackup: false)
                == VRRPWireFrame(nanos: 6, toBackup: false, kind: .arp(sender: Self.vip)))
        var udp = Self.vrrpFrame(priority: 200, source: [192, 168, 88, 11])
        udp[23] = 17
        #expect(VRRPWireFrame.parse(udp[...], nanos: 0, toBackup: true) == nil, "not VRRP")
        #expect(VRRPWireFrame.parse(Self.vrrpFrame(priority: 1, source: [1, 2, 3, 4]).prefix(30), nanos: 0, toBackup: true) == nil, "cut short")
    }

    /// The master advertises every 20 ms up to t = 100 ms; the backup's first advertisement goes
    /// out at 174.5 ms, its gratuitous ARP after: the reaction is 74.5 ms, whatever else the
    /// wire carried (another VRID, the master's traffic after, frames from the backup that are
    /// not a takeover).
    @Test func theReactionRunsFromTheMastersLastAdvertToTheBackupsFirstSign() {
        let ms: Int64 = 1_000_000
        var frames = (0...5).map { VRRPWireFrame(nanos: Int64($0) * 20 * ms, toBackup: true, kind: .advertisement(vrid: 51, priority: 200, source: Self.master)) }
        frames += [
            VRRPWireFrame(nanos: 130 * ms, toBackup: true, kind: .advertisement(vrid: 52, priority: 200, source: "192.168.88.13")),
            VRRPWireFrame(nanos: 140 * ms, toBackup: false, kind: .arp(sender: Self.backup)),
            VRRPWireFrame(nanos: 174_500_000, toBackup: false, kind: .advertisement(vrid: 51, priority: 100, source: Self.backup)),
            VRRPWireFrame(nanos: 175 * ms, toBackup: false, kind: .arp(sender: Self.vip)),
            VRRPWireFrame(nanos: 180 * ms, toBackup: true, kind: .advertisement(vrid: 51, priority: 200, source: Self.master)),
        ]
        let measure = { VRRPBenchReaction.measure($0, vrid: 51, master: Self.master, backup: Self.backup, vip: Self.vip) }
        #expect(measure(frames.reversed()) == .nanoseconds(74_500_000))
        // A backup whose gratuitous ARP goes first.
        frames[8].nanos = 170 * ms
        #expect(measure(frames) == .milliseconds(70))
        // No takeover seen, or no advertisement of the master before it: nothing to measure.
        #expect(measure(Array(frames.prefix(8))) == nil)
        #expect(measure(Array(frames.suffix(4))) == nil)
    }

    @Test func theWireTableShowsTheExcessOverMasterDownInterval() {
        var r = VRRPBenchResults(intervals: [2], batonDefault: 1, modes: [.link])
        r.trials[.init(.keepalived, 2)] = [.link: [73.0, 74.0, 75.5].map { VRRPBenchTrial(outage: .zero, takeover: nil, lost: 0, reaction: .microseconds(Int64($0 * 1000))) }]
        r.trials[.init(.baton, 2)] = [.link: [72.5, 73.0, 80.0].map { VRRPBenchTrial(outage: .zero, takeover: nil, lost: 0, reaction: .microseconds(Int64($0 * 1000))) }]
        #expect(r.reactionTable == [
            "| failure | advert interval | Master_Down_Interval ms | keepalived reaction p50 / p99 ms | Baton reaction p50 / p99 ms | keepalived excess p50 / p99 ms | Baton excess p50 / p99 ms |",
            "|---|---|---|---|---|---|---|",
            "| master's link cut | 0.02 s | 72.19 | 74.00 / 75.50 | 73.00 / 80.00 | 1.81 / 3.31 | 0.81 / 7.81 |",
        ])
        #expect(r.verdict.contains("on the wire, master's link cut at 0.02 s: Baton's backup reacts 0.81 ms after Master_Down_Interval (p50), keepalived's 1.81 ms: not slower"))
        r.trials[.init(.baton, 2)]?[.link]?[1].reaction = .microseconds(74_004)
        #expect(r.verdict.contains("on the wire, master's link cut at 0.02 s: Baton's backup reacts 1.82 ms after Master_Down_Interval (p50), keepalived's 1.81 ms: slower by 0.01 ms"))
    }

    @Test func keepalivedGetsRealtimeSchedulingOnlyWhenBatonDoes() {
        let on = VRRPBench.keepalivedConfiguration(router: "bvr-r1", vrid: 51, priority: 200, advertCentiseconds: 2,
                                                   vip: "192.168.88.101", notify: "/tmp/n.sh", realtimePriority: 10)
        #expect(on.contains("    vrrp_rt_priority 10\n    vrrp_rlimit_rttime 10000000\n}"))
        #expect(on.contains("advert_int 0.02\n"))
        #expect(on.contains("virtual_router_id 51\n") && on.contains("priority 200\n") && on.contains("state BACKUP\n"))
        #expect(on.contains("192.168.88.101/24 dev eth0") && on.contains("notify /tmp/n.sh") && on.contains("vrrp_version 3"))
        let off = VRRPBench.keepalivedConfiguration(router: "bvr-r1", vrid: 51, priority: 200, advertCentiseconds: 100,
                                                    vip: "192.168.88.101", notify: "/tmp/n.sh", realtimePriority: nil)
        #expect(!off.contains("rt_priority"))
        #expect(off.contains("advert_int 1.00\n"))
    }

    @Test func udpCountersFromProcNetSNMP() throws {
        let text = """
            Ip: Forwarding DefaultTTL
            Ip: 2 64
            Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
            Udp: 81630 0 0 81635 0 0 0 0 0
            UdpLite: InDatagrams NoPorts
            UdpLite: 7 0
            """
        #expect(UDPCounters(snmp: text)?.inDatagrams == 81630)
        #expect(UDPCounters(snmp: "Udp: InDatagrams NoPorts\n") == nil)
        #expect(UDPCounters(snmp: "") == nil)
    }

    @Test func cpuTimesFromProcStat() throws {
        let before = try #require(CPUTimes(procStat: "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n"))
        #expect(before == CPUTimes(busy: 150, total: 1000))
        let after = try #require(CPUTimes(procStat: "cpu  280 10 60 810 50 0 0 0 0 0\n"))
        #expect(after.busyFraction(since: before) == 200.0 / 210.0)
        #expect(CPUTimes(procStat: "intr 1 2 3\n") == nil)
    }
}
