import BatonAPI
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// VRRPv3 over IPv6 between Baton and keepalived 2.2.7: election and takeover both ways to
/// ff02::12, with tcpdump on Baton's bridge port showing that Baton advertises from its
/// link-local address with hop limit 255 and sends an unsolicited NA for the VIP (its MAC,
/// Override set, hop limit 255) on becoming Master; and the same over IPv6 unicast, where
/// keepalived sends with the kernel's default hop limit (64) and checks none.
@Suite(.serialized, .enabled(if: VRRPInteropPrerequisites.met, VRRPInteropPrerequisites.skipMessage))
struct VRRPInteropIPv6Tests {
    static let setup = VRRPSetup(version: 3, advertInterval: 0.2, ipv6: true)

    @Test(.enabled(if: VRRPInteropPrerequisites.canCapture, VRRPInteropPrerequisites.captureSkipMessage))
    func multicastElectionTakeoverAndUnsolicitedNA() async throws {
        let lab = VRRPLab(ipv6: true)
        defer { lab.down() }
        try lab.up()
        let capture = try await lab.capture(host: 1, filter: "ip6 proto 112 or icmp6")
        let batonLinkLocal = try lab.linkLocal(1), batonMAC = try lab.mac(1)
        let keepalivedLinkLocal = try lab.linkLocal(2)

        try await VRRPInteropTests.electAndHandOver(lab, Self.setup)

        let lines = lab.captured(capture)
        let batonAdverts = lines.filter { $0.contains("\(batonLinkLocal) > ff02::12:") && $0.contains("VRRPv3") }
        let keepalivedAdverts = lines.filter { $0.contains("\(keepalivedLinkLocal) > ff02::12:") && $0.contains("VRRPv3") }
        #expect(!batonAdverts.isEmpty && !keepalivedAdverts.isEmpty, "captured:\n\(lines.suffix(20).joined(separator: "\n"))")
        #expect(batonAdverts.allSatisfy { $0.contains("hlim 255") }, "\(batonAdverts.first { !$0.contains("hlim 255") } ?? "")")
        #expect(batonAdverts.contains { $0.contains("prio 0") }, "Baton's SIGTERM sends a priority-0 advert")
        let announcements = lines.filter {
            $0.isSent(fromMAC: batonMAC) && $0.contains("neighbor advertisement") && $0.contains("tgt is \(lab.vip)")
        }
        // Baton became Master three times (steps 1, 3 and 4), 5 NAs each at once.
        #expect(announcements.count >= 15, "Baton's unsolicited NAs:\n\(announcements.joined(separator: "\n"))")
        #expect(announcements.allSatisfy { $0.contains("hlim 255") && $0.contains("> ff02::1:") })
        VRRPLab.report("\(Self.setup): \(batonAdverts.count) Baton adverts (hop limit 255, from \(batonLinkLocal)), \(announcements.count) unsolicited NAs for \(lab.vip)")
    }

    @Test func unicastElectionAndTakeoverBothWays() async throws {
        let lab = VRRPLab(ipv6: true)
        defer { lab.down() }
        try lab.up()
        let setup = Self.setup.unicastVariant
        for i in 1...2 { try VRRPInteropUnicastTests.countMulticastVRRP(lab, host: i) }
        try await VRRPInteropUnicastTests.electAndTakeOver(lab, setup)
        for i in 1...2 {
            #expect(try VRRPInteropUnicastTests.multicastVRRPCount(lab, host: i) == 0, "host \(i) sent multicast VRRP in unicast mode")
        }
    }
}

private extension String {
    /// tcpdump -e starts a line with the time, then the source MAC.
    func isSent(fromMAC mac: String) -> Bool {
        split(separator: " ", maxSplits: 2).dropFirst().first.map { $0 == mac } ?? false
    }
}
