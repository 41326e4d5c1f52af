@testable import BatonVRRP
import BatonAPI
import Testing

/// The Internet checksum and the pseudo-headers, against RFC 1071's example and an independent
/// reference written out field by field.
@Suite struct VRRPChecksumTests {
    @Test func rfc1071Example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2, so the checksum is 220d.
        #expect(InternetChecksum.of([0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]) == 0x220D)
    }

    @Test func oddLengthIsPaddedWithZero() {
        #expect(InternetChecksum.of([0x12, 0x34, 0x56]) == InternetChecksum.of([0x12, 0x34, 0x56, 0x00]))
    }

    @Test func carriesFold() {
        // Enough 0xffff words to carry many times: the sum is still 0xffff, the checksum 0.
        #expect(InternetChecksum.of([UInt8](repeating: 0xFF, count: 70_000)) == 0)
        #expect(InternetChecksum.of([]) == 0xFFFF)
    }

    @Test func aMessageWithItsChecksumSumsToZero() throws {
        for fixture in KeepalivedFixture.all where fixture.checksumMode == .vrrpOnly {
            #expect(InternetChecksum.of(bytes(fixture.payload)) == 0)
        }
    }

    @Test(arguments: [("10.77.0.1", "224.0.0.18"), ("10.77.0.1", "10.77.0.2"), ("fe80::77:ff:fe00:1", "ff02::12"),
                      ("2001:db8::1", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")])
    func pseudoHeaderMatchesTheReference(source: String, destination: String) {
        let message: [UInt8] = [0x31, 0x01, 0x64, 0x01, 0x00, 0x64, 0x00, 0x00] + ip(source).wireBytes
        var sum = InternetChecksum.pseudoHeaderSum(source: ip(source), destination: ip(destination), length: message.count)
        InternetChecksum.add(message, to: &sum)
        #expect(InternetChecksum.finish(sum)
            == referenceChecksum(message, source: source, destination: destination, mode: .withPseudoHeader))
    }

    @Test func everyFormOfV3OverIPv4IsAccepted() throws {
        let advert = try VRRPAdvertisement(version: .v3, vrid: 9, priority: 50, maxAdvertIntervalCentiseconds: 5,
                                           addresses: [ip("198.51.100.7")])
        var seen: Set<UInt16> = []
        for mode in VRRPChecksumMode.allCases {
            let packet = try advert.encode(source: ip("198.51.100.1"), destination: ip("198.51.100.2"), checksumMode: mode)
            seen.insert(UInt16(packet[6]) << 8 | UInt16(packet[7]))
            let decoded = try VRRPAdvertisement.decode(packet, source: ip("198.51.100.1"), destination: ip("198.51.100.2"))
            #expect(decoded.checksumMode == mode)
        }
        #expect(seen.count == 3)
    }

    @Test func aFlippedBitInKeepalivedsPacketsIsCaught() {
        // Ones'-complement sums catch every single-bit error; with three accepted forms, check
        // that no flip happens to land on another form.
        for fixture in KeepalivedFixture.all {
            let original = bytes(fixture.payload)
            for index in original.indices {
                for bit in 0..<8 {
                    var packet = original
                    packet[index] ^= 1 << bit
                    let result = Result { () throws(VRRPPacketError) in
                        try VRRPAdvertisement.decode(packet, source: ip(fixture.source), destination: ip(fixture.destination))
                    }
                    if case .success = result {
                        Issue.record("\(fixture.name): byte \(index) bit \(bit) flipped and still accepted")
                    }
                }
            }
        }
    }
}

/// An independent checksum for the tests: the pseudo-header laid out byte by byte as RFC 768
/// and RFC 8200 8.1 draw it, then RFC 1071's sum, ignoring the checksum field.
func referenceChecksum(_ message: [UInt8], source: String, destination: String, mode: VRRPChecksumMode) -> UInt16 {
    var m = message
    m[6] = 0
    m[7] = 0
    let s = ip(source), d = ip(destination)
    var data: [UInt8] = []
    func be(_ a: IPAddress) -> [UInt8] {
        let n = a.family == .v4 ? 4 : 16
        return (0..<n).map { UInt8((a.value >> UInt128((n - 1 - $0) * 8)) & 0xFF) }
    }
    switch mode {
    case .vrrpOnly:
        break
    case .withPseudoHeader, .pseudoHeaderWithGroupDestination:
        let dst = mode == .withPseudoHeader ? d : (s.family == .v4 ? ip("224.0.0.18") : ip("ff02::12"))
        if s.family == .v4 {
            data = be(s) + be(dst) + [0, 112, UInt8(m.count >> 8), UInt8(m.count & 0xFF)]
        } else {
            data = be(s) + be(dst) + [0, 0, UInt8(m.count >> 8), UInt8(m.count & 0xFF), 0, 0, 0, 112]
        }
    }
    data += m
    if data.count % 2 == 1 { data.append(0) }
    var sum = 0
    for i in stride(from: 0, to: data.count, by: 2) { sum += Int(data[i]) << 8 | Int(data[i + 1]) }
    while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
    return ~UInt16(sum)
}
