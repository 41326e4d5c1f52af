import BatonAPI
@testable import BatonServer
import Testing

/// The controller's probe of a silent node: what it sends, what counts as an answer, and which
/// addresses it will probe at all (only on-link ones: nothing leaves for a made-up address).
@Suite struct ReachabilityProberTests {
    @Test func theEchoRequestCarriesAValidChecksum() {
        let packet = ReachabilityProber.echoRequest(identifier: 0xBEEF, sequence: 2)
        #expect(packet[0] == 8 && packet[1] == 0)
        #expect(packet[4] == 0xBE && packet[5] == 0xEF && packet[7] == 2)
        var sum: UInt32 = 0
        for i in stride(from: 0, to: packet.count, by: 2) { sum += UInt32(packet[i]) << 8 | UInt32(packet[i + 1]) }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        #expect(sum == 0xffff, "a packet with its checksum sums to all ones")
    }

    @Test func onlyOurEchoRepliesCount() {
        let reply: [UInt8] = [0, 0, 0, 0, 0xBE, 0xEF, 0, 1]
        let request: [UInt8] = [8, 0, 0, 0, 0xBE, 0xEF, 0, 1]
        let ipv4Header: [UInt8] = [0x45] + [UInt8](repeating: 0, count: 19)
        #expect(ReachabilityProber.isEchoReply(reply[...], raw: false, identifier: 0xBEEF))
        #expect(!ReachabilityProber.isEchoReply(request[...], raw: false, identifier: 0xBEEF))
        #expect(ReachabilityProber.isEchoReply((ipv4Header + reply)[...], raw: true, identifier: 0xBEEF))
        #expect(!ReachabilityProber.isEchoReply((ipv4Header + reply)[...], raw: true, identifier: 0x1234), "another process's reply")
        #expect(!ReachabilityProber.isEchoReply(ipv4Header[...], raw: true, identifier: 0xBEEF), "too short")
    }

    @Test func probesOnlyAddressesOnOurOwnSubnets() async {
        #expect(ReachabilityProber.isOnLink(IPAddress("127.0.0.1")!))
        // TEST-NET-3 is on no interface of a test machine: reported reachable, with no packet sent.
        #expect(!ReachabilityProber.isOnLink(IPAddress("203.0.113.9")!))
        #expect(await ReachabilityProber().reachable("203.0.113.9"))
        #expect(await ReachabilityProber().reachable("fd00::1"), "IPv6 is not probed")
    }
}
