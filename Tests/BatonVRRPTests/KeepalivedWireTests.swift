import BatonAPI
import BatonVRRP
import Testing

/// keepalived's own packets (see ``KeepalivedFixture``): Baton must read each one and, from the
/// fields it read, write the same bytes back.
@Suite struct KeepalivedWireTests {
    @Test(arguments: KeepalivedFixture.all)
    func decodesWhatKeepalivedSent(_ fixture: KeepalivedFixture) throws {
        let decoded = try VRRPAdvertisement.decode(bytes(fixture.payload), source: ip(fixture.source),
                                                   destination: ip(fixture.destination))
        let advert = decoded.advertisement
        #expect(advert.version == fixture.version)
        #expect(advert.vrid == fixture.vrid)
        #expect(advert.priority == fixture.priority)
        #expect(advert.maxAdvertIntervalCentiseconds == fixture.intervalCentiseconds)
        #expect(advert.addresses == fixture.addresses.map(ip))
        #expect(decoded.checksumMode == fixture.checksumMode)
        switch advert.authentication {
        case .none: #expect(fixture.password == nil)
        case .password(let p): #expect(p.text == fixture.password)
        }
    }

    @Test(arguments: KeepalivedFixture.all)
    func encodesTheSameBytesFromTheDecodedFields(_ fixture: KeepalivedFixture) throws {
        let authentication: VRRPAuthentication = fixture.password.map { .password(VRRPPassword($0)!) } ?? .none
        let advert = try VRRPAdvertisement(version: fixture.version, vrid: fixture.vrid, priority: fixture.priority,
                                           maxAdvertIntervalCentiseconds: fixture.intervalCentiseconds,
                                           addresses: fixture.addresses.map(ip), authentication: authentication)
        // The default mode is keepalived's; the old unicast form needs asking for, as in keepalived.
        let mode: VRRPChecksumMode = fixture.checksumMode == .pseudoHeaderWithGroupDestination
            ? .pseudoHeaderWithGroupDestination : .keepalivedDefault
        let encoded = try advert.encode(source: ip(fixture.source), destination: ip(fixture.destination), checksumMode: mode)
        #expect(hexString(encoded) == fixture.payload)
    }

    @Test(arguments: KeepalivedFixture.all.filter { $0.ipv4Datagram != nil })
    func readsTheRawSocketDatagram(_ fixture: KeepalivedFixture) throws {
        let datagram = bytes(fixture.ipv4Datagram!)
        let (header, payload) = try IPv4Header.parse(datagram)
        #expect(header.source == ip(fixture.source))
        #expect(header.destination == ip(fixture.destination))
        #expect(header.ttl == 255)
        #expect(header.ipProtocol == 112)
        #expect(header.headerLength == 20)
        #expect(header.totalLength == datagram.count)
        try header.checkVRRP()
        #expect(hexString(Array(payload)) == fixture.payload)
        let decoded = try VRRPAdvertisement.decode(payload, source: header.source, destination: header.destination)
        #expect(decoded.advertisement.vrid == fixture.vrid)
    }

    @Test func theDefaultIsKeepalivedsPseudoHeaderForm() {
        #expect(VRRPChecksumMode.keepalivedDefault == .withPseudoHeader)
    }

    @Test func keepalivedsOldUnicastFormDiffersFromTheDefaultOnlyInTheChecksum() throws {
        let fixture = KeepalivedFixture.all.first { $0.checksumMode == .pseudoHeaderWithGroupDestination }!
        let advert = try VRRPAdvertisement.decode(bytes(fixture.payload), source: ip(fixture.source),
                                                  destination: ip(fixture.destination)).advertisement
        let current = try advert.encode(source: ip(fixture.source), destination: ip(fixture.destination))
        #expect(Array(current[0..<6]) == Array(bytes(fixture.payload)[0..<6]))
        #expect(Array(current[6..<8]) != Array(bytes(fixture.payload)[6..<8]))
    }
}
