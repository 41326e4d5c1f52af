import BatonAPI
import BatonVRRP
import Testing

/// Building advertisements, and encode → decode round trips in every version, family and
/// checksum form.
@Suite struct VRRPAdvertisementTests {
    struct Invalid: Sendable, CustomTestStringConvertible {
        var name: String
        var version: VRRPVersion
        var vrid: UInt8 = 7
        var interval: UInt16 = 100
        var addresses: [String]
        var authentication: VRRPAuthentication = .none
        var code: VRRPPacketError.Code
        var message: String
        var testDescription: String { name }
    }

    static let invalid: [Invalid] = [
        Invalid(name: "vrid 0", version: .v3, vrid: 0, addresses: ["10.0.0.1"], code: .vrid,
                message: "virtual router id 0 is not in 1...255"),
        Invalid(name: "no address", version: .v3, addresses: [], code: .addressCount,
                message: "address count 0: an advertisement names at least one virtual address"),
        Invalid(name: "256 addresses", version: .v3, addresses: (0..<256).map { "10.1.\($0 / 256).\($0 % 256)" },
                code: .addressCount, message: "address count 256 is more than the 255 one advertisement can carry"),
        Invalid(name: "mixed families", version: .v3, addresses: ["10.0.0.1", "fd77::1"], code: .addressFamily,
                message: "address fd77::1 is not of the same family as 10.0.0.1"),
        Invalid(name: "v2 with IPv6", version: .v2, addresses: ["fd77::1"], code: .addressFamily,
                message: "address fd77::1 is IPv6, but VRRP 2 is IPv4 only"),
        Invalid(name: "v2 interval 1.5 s", version: .v2, interval: 150, addresses: ["10.0.0.1"], code: .interval,
                message: "advert interval 150 centiseconds is not whole seconds in 1...255, as VRRP 2 requires"),
        Invalid(name: "v2 interval 0", version: .v2, interval: 0, addresses: ["10.0.0.1"], code: .interval,
                message: "advert interval 0 centiseconds is not whole seconds in 1...255, as VRRP 2 requires"),
        Invalid(name: "v2 interval 256 s", version: .v2, interval: 25_600, addresses: ["10.0.0.1"], code: .interval,
                message: "advert interval 25600 centiseconds is not whole seconds in 1...255, as VRRP 2 requires"),
        Invalid(name: "v3 interval 0", version: .v3, interval: 0, addresses: ["10.0.0.1"], code: .interval,
                message: "max advert interval 0 centiseconds is not in 1...4095"),
        Invalid(name: "v3 interval 4096", version: .v3, interval: 4096, addresses: ["10.0.0.1"], code: .interval,
                message: "max advert interval 4096 centiseconds is not in 1...4095"),
        Invalid(name: "v3 with a password", version: .v3, addresses: ["10.0.0.1"],
                authentication: .password(VRRPPassword("secret")!), code: .authentication,
                message: "authentication PASS is not allowed with VRRP 3, which has none"),
    ]

    @Test(arguments: invalid)
    func refusesWhatTheWireCannotCarry(_ c: Invalid) {
        #expect {
            _ = try VRRPAdvertisement(version: c.version, vrid: c.vrid, priority: 100,
                                      maxAdvertIntervalCentiseconds: c.interval,
                                      addresses: c.addresses.map(ip), authentication: c.authentication)
        } throws: { error in
            guard let error = error as? VRRPPacketError else { return false }
            #expect(error.message == c.message)
            return error.code == c.code && error.message == c.message
        }
    }

    struct Trip: Sendable, CustomTestStringConvertible {
        var name: String
        var version: VRRPVersion
        var interval: UInt16
        var addresses: [String]
        var authentication: VRRPAuthentication = .none
        var source: String
        var destination: String
        var mode: VRRPChecksumMode = .keepalivedDefault
        /// What the decoder reports.
        var reported: VRRPChecksumMode
        var testDescription: String { name }
    }

    static let trips: [Trip] = [
        Trip(name: "v2 no auth", version: .v2, interval: 100, addresses: ["192.0.2.10"],
             source: "192.0.2.1", destination: "224.0.0.18", reported: .vrrpOnly),
        Trip(name: "v2 PASS 8 bytes, max interval", version: .v2, interval: 25_500, addresses: ["192.0.2.10", "192.0.2.11"],
             authentication: .password(VRRPPassword("12345678")!), source: "192.0.2.1", destination: "224.0.0.18",
             reported: .vrrpOnly),
        Trip(name: "v2 unicast (the mode is ignored)", version: .v2, interval: 300, addresses: ["192.0.2.10"],
             source: "192.0.2.1", destination: "192.0.2.2", mode: .pseudoHeaderWithGroupDestination, reported: .vrrpOnly),
        Trip(name: "v3 IPv4 multicast, default", version: .v3, interval: 1, addresses: ["192.0.2.10"],
             source: "192.0.2.1", destination: "224.0.0.18", reported: .withPseudoHeader),
        Trip(name: "v3 IPv4 multicast, RFC 9568", version: .v3, interval: 4095, addresses: ["192.0.2.10"],
             source: "192.0.2.1", destination: "224.0.0.18", mode: .vrrpOnly, reported: .vrrpOnly),
        Trip(name: "v3 IPv4 multicast, old unicast form is the default form", version: .v3, interval: 2,
             addresses: ["192.0.2.10"], source: "192.0.2.1", destination: "224.0.0.18",
             mode: .pseudoHeaderWithGroupDestination, reported: .withPseudoHeader),
        Trip(name: "v3 IPv4 unicast, default", version: .v3, interval: 20, addresses: ["192.0.2.10"],
             source: "192.0.2.1", destination: "192.0.2.2", reported: .withPseudoHeader),
        Trip(name: "v3 IPv4 unicast, RFC 9568", version: .v3, interval: 20, addresses: ["192.0.2.10"],
             source: "192.0.2.1", destination: "192.0.2.2", mode: .vrrpOnly, reported: .vrrpOnly),
        Trip(name: "v3 IPv4 unicast, old form", version: .v3, interval: 20, addresses: ["192.0.2.10"],
             source: "192.0.2.1", destination: "192.0.2.2", mode: .pseudoHeaderWithGroupDestination,
             reported: .pseudoHeaderWithGroupDestination),
        Trip(name: "v3 IPv6 multicast (the mode is ignored)", version: .v3, interval: 100, addresses: ["2001:db8::10", "2001:db8::11"],
             source: "fe80::1", destination: "ff02::12", mode: .vrrpOnly, reported: .withPseudoHeader),
        Trip(name: "v3 IPv6 unicast", version: .v3, interval: 2, addresses: ["2001:db8::10"],
             source: "2001:db8::1", destination: "2001:db8::2", reported: .withPseudoHeader),
        Trip(name: "v3 IPv4 255 addresses", version: .v3, interval: 100, addresses: (0..<255).map { "10.9.0.\($0)" },
             source: "10.9.1.1", destination: "224.0.0.18", reported: .withPseudoHeader),
        Trip(name: "v3 IPv6 255 addresses", version: .v3, interval: 100, addresses: (0..<255).map { "fd00::\(String($0, radix: 16))" },
             source: "fe80::1", destination: "ff02::12", reported: .withPseudoHeader),
    ]

    @Test(arguments: trips, [UInt8(0), 100, 255])
    func roundTrips(_ t: Trip, priority: UInt8) throws {
        let advert = try VRRPAdvertisement(version: t.version, vrid: 200, priority: priority,
                                           maxAdvertIntervalCentiseconds: t.interval,
                                           addresses: t.addresses.map(ip), authentication: t.authentication)
        let encoded = try advert.encode(source: ip(t.source), destination: ip(t.destination), checksumMode: t.mode)
        let addressSize = advert.family == .v4 ? 4 : 16
        #expect(encoded.count == 8 + t.addresses.count * addressSize + (t.version == .v2 ? 8 : 0))
        #expect(encoded[0] == t.version.rawValue << 4 | 1)
        let decoded = try VRRPAdvertisement.decode(encoded, source: ip(t.source), destination: ip(t.destination))
        #expect(decoded.advertisement == advert)
        #expect(decoded.checksumMode == t.reported)
        #expect(referenceChecksum(encoded, source: t.source, destination: t.destination, mode: t.reported)
            == UInt16(encoded[6]) << 8 | UInt16(encoded[7]))
    }

    @Test func encodingRefusesAddressesOfAnotherFamily() throws {
        let advert = try VRRPAdvertisement(version: .v3, vrid: 1, priority: 100, maxAdvertIntervalCentiseconds: 100,
                                           addresses: [ip("10.0.0.1")])
        #expect {
            _ = try advert.encode(source: ip("fe80::1"), destination: ip("ff02::12"))
        } throws: { error in
            (error as? VRRPPacketError)?.message == "source fe80::1 and destination ff02::12 are not both IPv4"
        }
    }

    @Test func reservedBitsAreIgnoredOnReceiptAndZeroOnSend() throws {
        // keepalived's v3 IPv4 advert with the 4 reserved bits set, and its checksum fixed up.
        var packet = bytes("31347801006460ce0a4d006e")
        packet[4] |= 0xF0
        let sum = referenceChecksum(packet, source: "10.77.0.1", destination: "224.0.0.18", mode: .withPseudoHeader)
        packet[6] = UInt8(sum >> 8)
        packet[7] = UInt8(sum & 0xFF)
        let decoded = try VRRPAdvertisement.decode(packet, source: ip("10.77.0.1"), destination: ip("224.0.0.18"))
        #expect(decoded.advertisement.maxAdvertIntervalCentiseconds == 100)
        let encoded = try decoded.advertisement.encode(source: ip("10.77.0.1"), destination: ip("224.0.0.18"))
        #expect(hexString(encoded) == "31347801006460ce0a4d006e")
    }

    @Test func v2IgnoresAuthenticationDataWithoutAuthentication() throws {
        // RFC 3768 5.3.10: zero on send, ignored on receipt (the checksum still covers it).
        var packet = bytes("2139640100026ff40a4d00820000000000000000")
        packet[12] = 0x41
        let sum = referenceChecksum(packet, source: "10.77.0.1", destination: "224.0.0.18", mode: .vrrpOnly)
        packet[6] = UInt8(sum >> 8)
        packet[7] = UInt8(sum & 0xFF)
        let decoded = try VRRPAdvertisement.decode(packet, source: ip("10.77.0.1"), destination: ip("224.0.0.18"))
        #expect(decoded.advertisement.authentication == .none)
    }

    @Test func priorityZeroIsTheSameAdvertWithAnotherPriority() throws {
        let fixture = KeepalivedFixture.all[0]
        let advert = try VRRPAdvertisement.decode(bytes(fixture.payload), source: ip(fixture.source),
                                                  destination: ip(fixture.destination)).advertisement
        let leaving = try advert.withPriority(0).encode(source: ip(fixture.source), destination: ip(fixture.destination))
        #expect(hexString(leaving) == KeepalivedFixture.all[1].payload)
    }

    @Test func intervalAsDuration() throws {
        let advert = try VRRPAdvertisement(version: .v3, vrid: 1, priority: 1, maxAdvertIntervalCentiseconds: 2,
                                           addresses: [ip("10.0.0.1")])
        #expect(advert.maxAdvertInterval == .milliseconds(20))
        #expect(advert.family == .v4)
    }

    @Test(arguments: ["", "123456789", "a\u{0}b", "pässwört"])
    func passwordsKeepalivedCannotSendAreRefused(_ text: String) {
        #expect(VRRPPassword(text) == nil)
    }

    @Test func passwordIsZeroPaddedAndRedacted() throws {
        let password = try #require(VRRPPassword("baton42"))
        #expect(password.wire == Array("baton42".utf8) + [0])
        #expect(password.text == "baton42")
        #expect(password.description == "********")
        #expect(VRRPPassword("12345678")?.wire == Array("12345678".utf8))
        #expect(VRRPPassword("pässwö")?.wire.count == 8)
    }
}
