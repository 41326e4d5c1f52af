import BatonAPI
import BatonVRRP
import Testing

/// Malformed input never crashes the codec: truncations of every keepalived packet, and seeded
/// random mutations and random bytes (deterministic, bounded).
@Suite struct VRRPFuzzTests {
    @Test func everyTruncationIsRefused() {
        for fixture in KeepalivedFixture.all {
            let packet = bytes(fixture.payload)
            for length in 0..<packet.count {
                #expect(throws: VRRPPacketError.self) {
                    try VRRPAdvertisement.decode(packet[0..<length], source: ip(fixture.source),
                                                 destination: ip(fixture.destination))
                }
            }
            if let datagram = fixture.ipv4Datagram.map(bytes) {
                for length in 0..<datagram.count {
                    #expect(throws: VRRPPacketError.self) { try IPv4Header.parse(datagram[0..<length]) }
                }
            }
        }
    }

    @Test func randomMutationsNeverCrash() {
        var rng = SplitMix64(seed: 0x5EED_BA70)
        for round in 0..<20_000 {
            let fixture = KeepalivedFixture.all[round % KeepalivedFixture.all.count]
            var packet = bytes(fixture.payload)
            switch rng.next() % 4 {
            case 0: // overwrite a few bytes
                for _ in 0...(rng.next() % 3) { packet[Int(rng.next() % UInt64(packet.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            case 1: // random length of random bytes
                packet = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            case 2: // extend
                packet += (0..<Int(1 + rng.next() % 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            default: // a plausible header over random bytes
                packet = [0x21 + UInt8(rng.next() % 2) * 0x10] + (0..<Int(rng.next() % 48)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            if let decoded = try? VRRPAdvertisement.decode(packet, source: ip(fixture.source), destination: ip(fixture.destination)) {
                // Whatever is accepted is a valid advertisement that encodes again.
                #expect((try? decoded.advertisement.encode(source: ip(fixture.source), destination: ip(fixture.destination),
                                                           checksumMode: decoded.checksumMode)) != nil)
            }
            _ = try? IPv4Header.parse(packet)
        }
    }
}

/// A small seeded generator, so a failing round can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
