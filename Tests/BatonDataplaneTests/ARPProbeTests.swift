@testable import BatonDataplane
import Testing

/// The conflict probe reads another machine's ARP answer for the EIP, and nothing else.
@Suite struct ARPProbeTests {
    static let own: [UInt8] = [0x02, 0, 0, 0, 0, 0x01]
    static let other: [UInt8] = [0x02, 0, 0, 0, 0, 0x02]

    static func frame(op: UInt8, senderMAC: [UInt8], senderIP: [UInt8], ethertype: [UInt8] = [0x08, 0x06]) -> ArraySlice<UInt8> {
        var f: [UInt8] = own + senderMAC + ethertype
        f += [0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, op]
        f += senderMAC + senderIP + own + [0, 0, 0, 0]
        return f[...]
    }

    @Test func anotherMachinesReplyNamesTheAddress() {
        #expect(ARPProbe.answer(Self.frame(op: 2, senderMAC: Self.other, senderIP: [192, 168, 77, 200]), ownMAC: Self.own) == [192, 168, 77, 200])
    }

    @Test func requestsOurOwnFramesAndProbesAreNotAnswers() {
        #expect(ARPProbe.answer(Self.frame(op: 1, senderMAC: Self.other, senderIP: [192, 168, 77, 200]), ownMAC: Self.own) == nil, "a request")
        #expect(ARPProbe.answer(Self.frame(op: 2, senderMAC: Self.own, senderIP: [192, 168, 77, 200]), ownMAC: Self.own) == nil, "our own")
        #expect(ARPProbe.answer(Self.frame(op: 2, senderMAC: Self.other, senderIP: [0, 0, 0, 0]), ownMAC: Self.own) == nil, "no sender address")
        #expect(ARPProbe.answer(Self.frame(op: 2, senderMAC: Self.other, senderIP: [192, 168, 77, 200], ethertype: [0x08, 0x00]), ownMAC: Self.own) == nil, "not ARP")
        #expect(ARPProbe.answer(Self.frame(op: 2, senderMAC: Self.other, senderIP: [192, 168, 77, 200]).prefix(30), ownMAC: Self.own) == nil, "short")
    }
}
