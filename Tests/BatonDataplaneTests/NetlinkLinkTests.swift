@testable import BatonDataplane
import Testing

/// rtnetlink's link messages as the VRRP speaker reads them to go to FAULT on a link down:
/// the dump request byte by byte, `RTM_NEWLINK` / `RTM_DELLINK` parsed from bytes, and a real
/// dump of this namespace (no privilege needed).
@Suite struct NetlinkLinkTests {
    static func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
    static func u16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }

    /// One RTM_NEWLINK (or DELLINK) for `index`, named `name`, with `flags` and IFLA_OPERSTATE.
    static func linkMessage(type: UInt16 = 16, index: UInt32, name: String, flags: UInt32, operState: UInt8, sequence: UInt32 = 0) -> [UInt8] {
        let nameBytes = Array(name.utf8) + [0]
        let nameAttribute = u16(UInt16(4 + nameBytes.count)) + u16(3) + nameBytes + [UInt8](repeating: 0, count: (4 - (4 + nameBytes.count) % 4) % 4)
        let mtu = u16(8) + u16(4) + u32(1500)                                   // IFLA_MTU, skipped
        let operAttribute = u16(5) + u16(16) + [operState] + [0, 0, 0]        // IFLA_OPERSTATE, padded
        let body = [0, 0] + u16(1) + u32(index) + u32(flags) + u32(0xffff_ffff) + mtu + nameAttribute + operAttribute
        return u32(UInt32(16 + body.count)) + u16(type) + u16(0) + u32(sequence) + u32(0) + body
    }

    @Test func theDumpRequestAsksForEveryInterface() {
        let m = NetlinkLink.dumpRequest(sequence: 9)
        #expect(m == Self.u32(32) + Self.u16(18) + Self.u16(0x301) + Self.u32(9) + Self.u32(0) + [UInt8](repeating: 0, count: 16))
    }

    @Test func aDatagramOfLinkMessagesParsesInOrderUpToTheDone() {
        let upFlags: UInt32 = 0x1 | 0x2 | 0x40 | 0x1000 | 0x10000                // UP BROADCAST RUNNING MULTICAST LOWER_UP
        let noCarrier: UInt32 = 0x1 | 0x2 | 0x1000                              // UP, no RUNNING, no LOWER_UP
        let done = Self.u32(20) + Self.u16(3) + Self.u16(2) + Self.u32(4) + Self.u32(0) + Self.u32(0)
        let datagram = Self.linkMessage(index: 2, name: "eth0", flags: upFlags, operState: 6)
            + Self.linkMessage(index: 2, name: "eth0", flags: noCarrier, operState: 2)
            + Self.linkMessage(type: 17, index: 3, name: "vrrp.51", flags: upFlags, operState: 6)
            + done
        let parsed = NetlinkLink.parse(datagram[...])
        #expect(parsed.links == [
            LinkStatus(index: 2, name: "eth0", flags: upFlags, operState: .up),
            LinkStatus(index: 2, name: "eth0", flags: noCarrier, operState: .down),
            LinkStatus(index: 3, name: "vrrp.51", flags: upFlags, operState: .up, deleted: true),
        ])
        #expect(parsed.doneSequences == [4])
        #expect(parsed.links.map(\.isUp) == [true, false, false])
        #expect(parsed.links.map(\.condition) == ["up", "no carrier", "deleted"])
    }

    @Test func conditionsNameWhatIsMissing() {
        #expect(LinkStatus(index: 1, name: "e", flags: 0x2, operState: .down).condition == "administratively down")
        #expect(LinkStatus(index: 1, name: "e", flags: 0x1 | 0x10000, operState: .dormant).condition == "not running (dormant)")
        #expect(!LinkStatus(index: 1, name: "e", flags: 0x1 | 0x10000, operState: .dormant).isUp)
    }

    @Test func aTruncatedMessageEndsTheWalk() {
        let whole = Self.linkMessage(index: 2, name: "eth0", flags: 0x1, operState: 6)
        #expect(NetlinkLink.parse(whole.dropLast(4)).links == [])
        #expect(NetlinkLink.parse((whole + [1, 2, 3])[...]).links.count == 1)
    }

    /// The kernel's own answer: this namespace's loopback is there and up.
    @Test func aRealDumpListsTheLoopbackUp() throws {
        let watch = try LinkWatch()
        defer { watch.close() }
        let lo = try #require(try watch.dump().last { $0.name == "lo" })
        #expect(lo.index == 1)
        #expect(lo.isUp, "\(lo)")
    }
}
