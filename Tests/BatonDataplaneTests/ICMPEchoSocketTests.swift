import BatonAPI
@testable import BatonDataplane
import Testing

/// What `ICMPEchoSocket` sends and which replies it takes: the agent's gateway probes and the
/// server's node probe both rest on it.
@Suite struct ICMPEchoSocketTests {
    @Test func theIPv4EchoRequestCarriesAValidChecksum() {
        let packet = ICMPEchoSocket.echoRequest(v6: false, identifier: 0xBEEF, sequence: 2)
        #expect(packet[0] == 8 && packet[1] == 0)
        #expect(packet[4] == 0xBE && packet[5] == 0xEF && packet[7] == 2)
        var sum: UInt32 = 0
        for i in stride(from: 0, to: packet.count, by: 2) { sum += UInt32(packet[i]) << 8 | UInt32(packet[i + 1]) }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        #expect(sum == 0xffff, "a packet with its checksum sums to all ones")
        // ICMPv6: type 128, checksum left to the kernel.
        let v6 = ICMPEchoSocket.echoRequest(v6: true, identifier: 0xBEEF, sequence: 2)
        #expect(v6[0] == 128 && v6[2] == 0 && v6[3] == 0)
    }

    @Test func onlyOurEchoRepliesCount() {
        let reply: [UInt8] = [0, 0, 0, 0, 0xBE, 0xEF, 0, 1]
        let request: [UInt8] = [8, 0, 0, 0, 0xBE, 0xEF, 0, 1]
        let ipv4Header: [UInt8] = [0x45] + [UInt8](repeating: 0, count: 19)
        func taken(_ bytes: [UInt8], raw: Bool, id: UInt16 = 0xBEEF, sequence: UInt16? = 1) -> Bool {
            ICMPEchoSocket.isReply(bytes[...], family: .v4, raw: raw, identifier: id, sequence: sequence)
        }
        #expect(taken(reply, raw: false))
        #expect(!taken(request, raw: false), "a request is not a reply")
        #expect(taken(ipv4Header + reply, raw: true))
        #expect(!taken(ipv4Header + reply, raw: true, id: 0x1234), "another process's reply")
        #expect(!taken(ipv4Header, raw: true), "too short")
        #expect(!taken(reply, raw: false, sequence: 2), "a reply to another request")
        #expect(taken(reply, raw: false, sequence: nil), "any of ours, when earlier ones count")
        let v6Reply: [UInt8] = [129, 0, 0, 0, 0xBE, 0xEF, 0, 1]
        #expect(ICMPEchoSocket.isReply(v6Reply[...], family: .v6, raw: true, identifier: 0xBEEF, sequence: 1))
        #expect(!ICMPEchoSocket.isReply(reply[...], family: .v6, raw: true, identifier: 0xBEEF, sequence: 1), "an ICMPv4 reply on ICMPv6")
    }
}
