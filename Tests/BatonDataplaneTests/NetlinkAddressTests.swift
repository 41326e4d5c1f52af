import BatonAPI
@testable import BatonDataplane
import Testing

/// The rtnetlink messages that change a VIP (what `ip address replace|del` sends), byte by
/// byte, and the acknowledgement read back. No socket.
@Suite struct NetlinkAddressTests {
    /// netlink's host byte order (little-endian on every platform Baton runs on).
    static func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
    static func u16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }

    @Test func replacingAnIPv4AddressCarriesItsLabel() throws {
        let r = NetlinkAddress.Request(.replace, try #require(IPAddress("192.168.1.10")), prefixLength: 24, label: "eth0:vrrp")
        let m = NetlinkAddress.message(r, index: 3, sequence: 7)
        let expected: [UInt8] = Self.u32(56) + Self.u16(20) + Self.u16(0x505) + Self.u32(7) + Self.u32(0)
            + [2, 24, 0, 0] + Self.u32(3)                               // AF_INET, /24, no flags, scope universe, ifindex
            + Self.u16(8) + Self.u16(2) + [192, 168, 1, 10]             // IFA_LOCAL
            + Self.u16(8) + Self.u16(1) + [192, 168, 1, 10]             // IFA_ADDRESS
            + Self.u16(14) + Self.u16(3) + Array("eth0:vrrp".utf8) + [0, 0, 0]   // IFA_LABEL, NUL, padded to 4
        #expect(m == expected)
    }

    @Test func anIPv6AddressSkipsDuplicateAddressDetection() throws {
        let r = NetlinkAddress.Request(.replace, try #require(IPAddress("fd00::10")), prefixLength: 64, label: "ignored", noDAD: true)
        let m = NetlinkAddress.message(r, index: 2, sequence: 1)
        #expect(m.count == 16 + 8 + 20 + 20)                            // no label for IPv6
        #expect(Array(m[16..<20]) == [10, 64, 0x02, 0])                 // AF_INET6, /64, IFA_F_NODAD
        #expect(Array(m[28..<44]) == [0xfd, 0] + [UInt8](repeating: 0, count: 13) + [0x10])
    }

    @Test func deletingAsksOnlyForAnAcknowledgement() throws {
        let r = NetlinkAddress.Request(.delete, try #require(IPAddress("10.0.0.1")), prefixLength: 32, label: "eth0:vrrp")
        let m = NetlinkAddress.message(r, index: 4, sequence: 2)
        #expect(Array(m[4..<8]) == Self.u16(21) + Self.u16(0x5))       // RTM_DELADDR, REQUEST | ACK
        #expect(m.count == 16 + 8 + 8 + 8)                              // no label on delete
    }

    @Test func acknowledgementsCarryTheErrno() {
        let ok = Self.u32(36) + Self.u16(2) + Self.u16(0) + Self.u32(5) + Self.u32(0) + Self.u32(0) + [UInt8](repeating: 0, count: 16)
        #expect(NetlinkAddress.acknowledgement(ok[...], sequence: 5) == 0)
        #expect(NetlinkAddress.acknowledgement(ok[...], sequence: 6) == nil)
        let refused = Self.u32(36) + Self.u16(2) + Self.u16(0) + Self.u32(5) + Self.u32(0) + Self.u32(UInt32(bitPattern: -99)) + [UInt8](repeating: 0, count: 16)
        #expect(NetlinkAddress.acknowledgement(refused[...], sequence: 5) == 99)   // EADDRNOTAVAIL
        let other = Self.u32(20) + Self.u16(20) + Self.u16(0) + Self.u32(5) + Self.u32(0)
        #expect(NetlinkAddress.acknowledgement(other[...], sequence: 5) == nil)
        #expect(NetlinkAddress.acknowledgement([1, 2, 3][...], sequence: 5) == nil)
    }
}
