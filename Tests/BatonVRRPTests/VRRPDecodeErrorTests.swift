import BatonAPI
import BatonVRRP
import Testing

/// Every way the decoder refuses a packet, with the message an operator would read.
@Suite struct VRRPDecodeErrorTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var payload: String
        var source = "10.77.0.1"
        var destination = "224.0.0.18"
        var code: VRRPPacketError.Code
        var message: String
        var testDescription: String { name }
    }

    // Built from keepalived's packets (KeepalivedFixture) with one field changed. The checksum
    // is checked last, so earlier checks fire even though the change broke it.
    static let cases: [Case] = [
        Case(name: "empty", payload: "", code: .truncated,
             message: "length 0 is shorter than the 8-byte VRRP header"),
        Case(name: "7 bytes", payload: "31347801006460", code: .truncated,
             message: "length 7 is shorter than the 8-byte VRRP header"),
        Case(name: "version 4", payload: "41347801006460ce0a4d006e", code: .version,
             message: "version 4 is not VRRP 2 or 3"),
        Case(name: "version 1", payload: "11347801006460ce0a4d006e", code: .version,
             message: "version 1 is not VRRP 2 or 3"),
        Case(name: "version 0", payload: "01347801006460ce0a4d006e", code: .version,
             message: "version 0 is not VRRP 2 or 3"),
        Case(name: "version 15", payload: "f1347801006460ce0a4d006e", code: .version,
             message: "version 15 is not VRRP 2 or 3"),
        Case(name: "version 2 over IPv6", payload: "21378c0100324677fd770000000000000000000000000110",
             source: "fe80::77:ff:fe00:1", destination: "ff02::12", code: .version,
             message: "version 2 over IPv6: VRRP 2 is IPv4 only"),
        Case(name: "type 2", payload: "32347801006460ce0a4d006e", code: .type,
             message: "type 2 is not 1 (advertisement)"),
        Case(name: "type 0", payload: "30347801006460ce0a4d006e", code: .type,
             message: "type 0 is not 1 (advertisement)"),
        Case(name: "vrid 0", payload: "31007801006460ce0a4d006e", code: .vrid,
             message: "virtual router id 0 is not in 1...255"),
        Case(name: "count 0", payload: "31347800006460ce", code: .addressCount,
             message: "address count 0: an advertisement names at least one virtual address"),
        Case(name: "count 0 with an address", payload: "31347800006460ce0a4d006e", code: .addressCount,
             message: "address count 0: an advertisement names at least one virtual address"),
        Case(name: "v2 auth type 2 (AH)", payload: "2139640102026ff40a4d00820000000000000000", code: .authentication,
             message: "auth type 2 (IP Authentication Header) is not supported: use none or PASS"),
        Case(name: "v2 auth type 3", payload: "2139640103026ff40a4d00820000000000000000", code: .authentication,
             message: "auth type 3 is not 0 (none) or 1 (simple password)"),
        Case(name: "v2 auth type 255", payload: "21396401ff026ff40a4d00820000000000000000", code: .authentication,
             message: "auth type 255 is not 0 (none) or 1 (simple password)"),
        Case(name: "v2 interval 0", payload: "2139640100006ff40a4d00820000000000000000", code: .interval,
             message: "advert interval 0 seconds is not in 1...255"),
        Case(name: "v3 interval 0", payload: "31347801000060ce0a4d006e", code: .interval,
             message: "max advert interval 0 centiseconds is not in 1...4095"),
        Case(name: "v3 interval 0 under reserved bits", payload: "313478017000" + "60ce0a4d006e", code: .interval,
             message: "max advert interval 0 centiseconds is not in 1...4095"),
        Case(name: "count 2, one address", payload: "31347802006460ce0a4d006e", code: .length,
             message: "length 12 does not fit 2 IPv4 addresses (expected 16 bytes)"),
        Case(name: "trailing bytes", payload: "31347801006460ce0a4d006e00000000", code: .length,
             message: "length 16 does not fit 1 IPv4 address (expected 12 bytes)"),
        Case(name: "v2 without authentication data", payload: "2139640100026ff40a4d0082", code: .length,
             message: "length 12 does not fit 1 IPv4 address (expected 20 bytes)"),
        Case(name: "IPv4-sized address over IPv6", payload: "31378c0100324677fd770000",
             source: "fe80::77:ff:fe00:1", destination: "ff02::12", code: .length,
             message: "length 12 does not fit 1 IPv6 address (expected 24 bytes)"),
        Case(name: "count 255, three addresses", payload: "3135c8ff0032fb5d0a4d00780a4d00790a4d007a", code: .length,
             message: "length 20 does not fit 255 IPv4 addresses (expected 1028 bytes)"),
        Case(name: "IPv4 source, IPv6 destination", payload: "31347801006460ce0a4d006e",
             destination: "ff02::12", code: .addressFamily,
             message: "source 10.77.0.1 and destination ff02::12 are not both IPv4"),
        Case(name: "IPv6 source, IPv4 destination", payload: "31347801006460ce0a4d006e",
             source: "fe80::1", code: .addressFamily,
             message: "source fe80::1 and destination 224.0.0.18 are not both IPv6"),
        Case(name: "v2 checksum", payload: "2139640100021234" + "0a4d00820000000000000000", code: .checksum,
             message: "checksum 0x1234 does not match (expected 0x6ff4)"),
        Case(name: "v2 PASS, password changed", payload: "213396020101bb600a4d00640a4d00656261746f6e343300", code: .checksum,
             message: "checksum 0xbb60 does not match (expected 0xba60)"),
        Case(name: "v3 IPv4 multicast checksum", payload: "313478010064" + "1234" + "0a4d006e", code: .checksum,
             message: "checksum 0x1234 does not match (expected 0x60ce with the IPv4 pseudo-header, 0x4bab without a pseudo-header)"),
        Case(name: "v3 IPv4 unicast checksum", payload: "31386e010064" + "1234" + "0a4d008c",
             destination: "10.77.0.2", code: .checksum,
             message: "checksum 0x1234 does not match (expected 0x4070 with the IPv4 pseudo-header, 0x5589 without a pseudo-header, 0x6aac with the IPv4 pseudo-header to 224.0.0.18)"),
        Case(name: "v3 IPv4 from another source", payload: "31347801006460ce0a4d006e",
             source: "10.77.0.2", code: .checksum,
             message: "checksum 0x60ce does not match (expected 0x60cd with the IPv4 pseudo-header, 0x4bab without a pseudo-header)"),
        Case(name: "v3 IPv6 checksum", payload: "31378c010032" + "0000" + "fd770000000000000000000000000110",
             source: "fe80::77:ff:fe00:1", destination: "ff02::12", code: .checksum,
             message: "checksum 0x0000 does not match (expected 0x4677)"),
        Case(name: "v3 IPv6 from another source", payload: "31378c0100324677fd770000000000000000000000000110",
             source: "fe80::77:ff:fe00:2", destination: "ff02::12", code: .checksum,
             message: "checksum 0x4677 does not match (expected 0x4676)"),
    ]

    @Test(arguments: cases)
    func refuses(_ c: Case) {
        #expect {
            _ = try VRRPAdvertisement.decode(bytes(c.payload), source: ip(c.source), destination: ip(c.destination))
        } throws: { error in
            guard let error = error as? VRRPPacketError else { return false }
            #expect(error.code == c.code)
            #expect(error.message == c.message)
            #expect(error.description == c.message)
            return error.code == c.code && error.message == c.message
        }
    }
}
