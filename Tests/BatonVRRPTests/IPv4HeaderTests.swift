import BatonAPI
import BatonVRRP
import Testing

/// Reading the IPv4 datagrams a raw IPPROTO_VRRP socket delivers.
@Suite struct IPv4HeaderTests {
    /// keepalived's v3 advert (KeepalivedFixture "v3 IPv4 multicast") as received.
    static let datagram = "45c0002000010000ff70d04c0a4d0001e000001231347801006460ce0a4d006e"

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var datagram: String
        var message: String
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "empty", datagram: "", message: "length 0 is shorter than the 20-byte IPv4 header"),
        Case(name: "19 bytes", datagram: String(datagram.prefix(38)),
             message: "length 19 is shorter than the 20-byte IPv4 header"),
        Case(name: "IPv6", datagram: "65" + datagram.dropFirst(2), message: "IP version 6 is not 4"),
        Case(name: "IHL 4", datagram: "44" + datagram.dropFirst(2), message: "IHL 4 is below the minimum of 5 (20 bytes)"),
        Case(name: "IHL 15 in 32 bytes", datagram: "4f" + datagram.dropFirst(2),
             message: "IHL 15 (60 bytes) is longer than the total length 32"),
        Case(name: "total length past the end", datagram: "45c00024" + datagram.dropFirst(8),
             message: "total length 36 does not match the 32 bytes received"),
        Case(name: "total length short of the end", datagram: "45c0001c" + datagram.dropFirst(8),
             message: "total length 28 does not match the 32 bytes received"),
    ]

    @Test(arguments: cases)
    func refuses(_ c: Case) {
        #expect {
            _ = try IPv4Header.parse(bytes(c.datagram))
        } throws: { error in
            guard let error = error as? VRRPPacketError else { return false }
            #expect(error.message == c.message)
            return error.code == .ipHeader && error.message == c.message
        }
    }

    @Test func optionsAreSkipped() throws {
        // IHL 6: one 4-byte option (router alert, 94 04 00 00) before the payload.
        let d = bytes("46c0002400010000ff70d04c0a4d0001e0000012" + "94040000" + "31347801006460ce0a4d006e")
        let (header, payload) = try IPv4Header.parse(d)
        #expect(header.headerLength == 24)
        #expect(hexString(Array(payload)) == "31347801006460ce0a4d006e")
    }

    @Test func worksOnASliceWithAnOffsetStart() throws {
        let buffer = [0xAA, 0xBB] + bytes(Self.datagram)
        let (header, payload) = try IPv4Header.parse(buffer[2...])
        #expect(header.source == ip("10.77.0.1"))
        #expect(payload.startIndex == 22)
        #expect(hexString(Array(payload)) == "31347801006460ce0a4d006e")
    }

    @Test func ttlAndProtocolAreChecked() throws {
        var header = try IPv4Header.parse(bytes(Self.datagram)).header
        try header.checkVRRP()
        header.ttl = 64
        #expect { try header.checkVRRP() } throws: {
            ($0 as? VRRPPacketError) == VRRPPacketError(.ttl, "ttl 64 is not 255: the packet crossed a router")
        }
        header.ttl = 255
        header.ipProtocol = 51
        #expect { try header.checkVRRP() } throws: {
            ($0 as? VRRPPacketError) == VRRPPacketError(.ipProtocol, "IP protocol 51 is not 112 (VRRP)")
        }
    }

    @Test func wireConstants() {
        #expect(VRRPWire.ipProtocol == 112)
        #expect(VRRPWire.requiredTTL == 255)
        #expect(VRRPWire.ipv4Group == ip("224.0.0.18"))
        #expect(VRRPWire.ipv6Group == ip("ff02::12"))
        #expect(VRRPWire.group(.v6).description == "ff02::12")
    }
}
