import BatonAPI
import BatonDataplane
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Unicast VRRP between Baton (`--unicast-peer`) and keepalived 2.2.7 (`unicast_src_ip` and
/// `unicast_peer {}`), VRRPv2 and VRRPv3: each hears the other (a lower priority stays Backup),
/// and each takes over from the other. An nftables rule in each host drops and counts the
/// multicast VRRP it sends, so the election can only have run over unicast; the counters must
/// stay at zero. (Counted on output: a host only takes multicast in if it joined the group.)
@Suite(.serialized, .enabled(if: VRRPInteropPrerequisites.met, VRRPInteropPrerequisites.skipMessage))
struct VRRPInteropUnicastTests {
    @Test(arguments: VRRPSetup.both.map(\.unicastVariant))
    func unicastElectionAndTakeoverBothWays(_ setup: VRRPSetup) async throws {
        let lab = VRRPLab()
        defer { lab.down() }
        try lab.up()
        for i in 1...2 { try Self.countMulticastVRRP(lab, host: i) }
        try await Self.electAndTakeOver(lab, setup)
        for i in 1...2 {
            #expect(try Self.multicastVRRPCount(lab, host: i) == 0, "host \(i) sent multicast VRRP in unicast mode")
        }
    }

    /// Baton on host 1, keepalived on host 2, unicast to each other:
    /// 1. Baton higher is Master; keepalived stays Backup past its Master_Down_Interval (it hears Baton);
    /// 2. Baton SIGTERMed: keepalived takes over within about Skew_Time (the priority-0 advert, unicast);
    /// 3. Baton back, lower: it stays Backup (it hears keepalived);
    /// 4. keepalived SIGKILLed: Baton takes over within its Master_Down_Interval.
    static func electAndTakeOver(_ lab: VRRPLab, _ setup: VRRPSetup) async throws {
        let low = 100, high = 150
        let down = setup.masterDownInterval(priority: low)
        let slack = 0.5 + setup.advertInterval
        try lab.start(.baton, host: 1, setup: setup, priority: high)
        try await lab.waitForHolder(1, within: .seconds(setup.masterDownInterval(priority: high) + slack))
        try lab.start(.keepalived, host: 2, setup: setup, priority: low)
        try await lab.waitStarted(2)
        try await lab.expectHolderStays(1, for: .seconds(down + setup.advertInterval))

        var taken = try await lab.stop(host: 1, signal: SIGTERM, thenWaitForHolder: 2, within: .seconds(down + slack))
        let skew = setup.skewTime(priority: low)
        lab.report("\(setup): Baton master SIGTERMed -> keepalived MASTER after \(taken) (Skew_Time \(skew) s)")
        #expect(lab.log(host: 2).contains(VRRPLab.keepalivedSawPriorityZero), "keepalived never took Baton's priority-0 advert")
        #expect(taken < .seconds(down), "a graceful stop must hand over within about Skew_Time")

        try lab.start(.baton, host: 1, setup: setup, priority: low)
        try await lab.expectHolderStays(2, for: .seconds(down + setup.advertInterval))

        taken = try await lab.stop(host: 2, signal: SIGKILL, thenWaitForHolder: 1, within: .seconds(down + slack))
        lab.report("\(setup): keepalived master SIGKILLed -> Baton MASTER after \(taken) (Master_Down_Interval \(down) s)")
        #expect(taken <= .seconds(down + slack))
    }

    static func countMulticastVRRP(_ lab: VRRPLab, host i: Int) throws {
        let rules = """
            table inet vrrplab {
                chain output {
                    type filter hook output priority 0; policy accept;
                    ip protocol 112 ip daddr 224.0.0.0/4 counter drop
                    ip6 nexthdr 112 ip6 daddr ff00::/8 counter drop
                }
            }

            """
        _ = try Command.run("ip", ["netns", "exec", lab.host(i), "nft", "-f", "-"], input: rules)
    }

    /// The multicast VRRP packets the host tried to send (and its rules dropped).
    static func multicastVRRPCount(_ lab: VRRPLab, host i: Int) throws -> Int {
        let out = try Command.run("ip", ["netns", "exec", lab.host(i), "nft", "list", "table", "inet", "vrrplab"])
        return out.split(separator: "\n").compactMap { line -> Int? in
            guard let range = line.range(of: "packets ") else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }.reduce(0, +)
    }
}
