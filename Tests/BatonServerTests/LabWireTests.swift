@testable import BatonAgent
import Testing

/// The failover measurement's parsers and arithmetic: `baton lab watch` frames and logs,
/// `baton lab send` logs, and the outage computed from them. No sockets.
@Suite struct LabWireTests {
    static let eip: [UInt8] = [10, 99, 0, 200]
    static let nodeMAC: [UInt8] = [0x02, 0x0a, 0xbb, 0x01, 0xfe, 0x00]
    static let broadcast = [UInt8](repeating: 0xff, count: 6)

    static func arp(op: UInt8, sender: [UInt8], target: [UInt8]) -> [UInt8] {
        var f = broadcast + nodeMAC + [0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, op]
        f += nodeMAC + sender + [UInt8](repeating: 0, count: 6) + target
        return f + [UInt8](repeating: 0, count: 60 - f.count)
    }

    /// IPv4 UDP from 10.99.0.2 to `port`, with `options` 4-byte words of IP options.
    static func udp(port: UInt16, options: Int = 0, fragmentOffset: UInt16 = 0) -> [UInt8] {
        var f = [0x02, 0, 0, 0, 0, 1] + nodeMAC + [0x08, 0x00]
        f += [0x45 + UInt8(options), 0, 0, 40, 0, 1, UInt8(fragmentOffset >> 8), UInt8(fragmentOffset & 0xff), 64, 17, 0, 0]
        f += [10, 99, 0, 2, 10, 99, 0, 1]
        f += [UInt8](repeating: 1, count: options * 4)  // NOP options
        f += [0xc3, 0x50, UInt8(port >> 8), UInt8(port & 0xff), 0, 12, 0, 0] + Array("42\n\n".utf8)
        return f
    }

    @Test(arguments: [
        (arp(op: 2, sender: eip, target: [10, 99, 0, 1]), "arp reply 02:0a:bb:01:fe:00"),
        (arp(op: 1, sender: eip, target: eip), "arp garp 02:0a:bb:01:fe:00"),
        (arp(op: 1, sender: eip, target: [10, 99, 0, 1]), "arp request 02:0a:bb:01:fe:00"),
        (arp(op: 2, sender: [10, 99, 0, 2], target: [10, 99, 0, 1]), nil),  // another address's ARP
        (udp(port: 9000), "udp 02:0a:bb:01:fe:00 10.99.0.2"),
        (udp(port: 9000, options: 2), "udp 02:0a:bb:01:fe:00 10.99.0.2"),  // IHL 7: ports after the options
        (udp(port: 9001), nil),
        (udp(port: 9000, fragmentOffset: 0x0010), nil),  // a later fragment has no UDP header
        (Array(udp(port: 9000).prefix(30)), nil),  // cut short
    ] as [([UInt8], String?)])
    func frames(frame: [UInt8], line: String?) {
        #expect(LabWire.describe(frame: frame[...], eip: Self.eip, udpPort: 9000) == line)
    }

    @Test func wireLogParsesEveryKindAndDropsJunkAndTheUnfinishedLastLine() {
        let log = """
            1000 arp reply 02:0a:bb:01:fe:00
            1001 arp garp 02:0a:bb:01:fe:01
            1002 arp request 02:0a:bb:01:fe:00
            1003 udp 02:0a:bb:01:fe:01 10.99.0.200
            ARP probe not sent: errno 100
            1004 arp answer 02:0a:bb:01:fe:00
            1005 arp reply 02:0a:bb:01:fe

            1006 udp 02:0a:bb:01:fe:01 10.99.0.2
            """ + "\n1007 udp 02:0a:bb:01:fe:01 10.99.0.20"
        #expect(WireLog.parse(log) == [
            WireEvent(nanos: 1000, kind: .arpReply, mac: "02:0a:bb:01:fe:00"),
            WireEvent(nanos: 1001, kind: .garp, mac: "02:0a:bb:01:fe:01"),
            WireEvent(nanos: 1002, kind: .arpRequest, mac: "02:0a:bb:01:fe:00"),
            WireEvent(nanos: 1003, kind: .udp, mac: "02:0a:bb:01:fe:01", sourceIP: "10.99.0.200"),
            WireEvent(nanos: 1006, kind: .udp, mac: "02:0a:bb:01:fe:01", sourceIP: "10.99.0.2"),
        ])
        #expect(WireLog.parse("") == [])
        #expect(WireLog.parse("1000 arp reply 02:0a:bb:01:fe:00\n") == [WireEvent(nanos: 1000, kind: .arpReply, mac: "02:0a:bb:01:fe:00")])
    }

    @Test func senderLogParsesAnsweredAndUnansweredAndDropsTheUnfinishedLastLine() {
        let log = "0 5000 5300 10.99.0.200\n1 6000 - -\n2 x 7300 10.99.0.200\n3 8000 8300 10.99.0\n4 9000 9300 10.99.0.2"
        #expect(SenderLog.parse(log) == [
            SenderRecord(seq: 0, sent: 5000, received: 5300, source: "10.99.0.200"),
            SenderRecord(seq: 1, sent: 6000),
        ])
    }

    /// 30 datagrams every 10 ms: 3-4 unanswered, then 10-14 lost with 12 answered from the old
    /// source, then all fine. The longest run (10-14) is the outage: 50 ms.
    static func failover() -> [SenderRecord] {
        let interval: UInt64 = 10_000_000, start: UInt64 = 7_000_000_000
        return (0..<30).map { seq -> SenderRecord in
            let sent = start + UInt64(seq) * interval
            switch seq {
            case 3, 4, 10, 11, 13, 14: return SenderRecord(seq: seq, sent: sent)
            case 12: return SenderRecord(seq: seq, sent: sent, received: sent + 400_000, source: "10.99.0.2")
            default: return SenderRecord(seq: seq, sent: sent, received: sent + 400_000, source: "10.99.0.200")
            }
        }
    }

    @Test func outageIsTheLongestRunWithoutTheExpectedSource() {
        let o = LabSender.outage(Self.failover().reversed(), expectedSource: "10.99.0.200")
        #expect(o.outage == .milliseconds(50))
        #expect(o.lost == 7)
        #expect(o.wrongSource == 1)
        #expect(o.firstLostSeq == 10)
        #expect(o.recoveredSeq == 15)
    }

    @Test func outageFromAParsedLog() {
        let text = Self.failover().map { r in
            r.received.map { "\(r.seq) \(r.sent) \($0) \(r.source!)\n" } ?? "\(r.seq) \(r.sent) - -\n"
        }.joined()
        let o = LabSender.outage(SenderLog.parse(text), expectedSource: "10.99.0.200")
        #expect(o.outage == .milliseconds(50) && o.lost == 7 && o.wrongSource == 1 && o.firstLostSeq == 10 && o.recoveredSeq == 15)
    }

    @Test func noLossIsNoOutage() {
        let records = (0..<5).map { SenderRecord(seq: $0, sent: UInt64($0) * 10, received: UInt64($0) * 10 + 1, source: "10.99.0.200") }
        let o = LabSender.outage(records, expectedSource: "10.99.0.200")
        #expect(o.outage == .zero && o.lost == 0 && o.wrongSource == 0 && o.firstLostSeq == nil && o.recoveredSeq == nil)
    }

    @Test func aRunThatNeverRecoversLastsUntilTheLastDatagram() {
        let records = (0..<10).map { seq in
            seq < 6 ? SenderRecord(seq: seq, sent: UInt64(seq) * 10_000_000, received: UInt64(seq) * 10_000_000 + 1, source: "10.99.0.200")
                : SenderRecord(seq: seq, sent: UInt64(seq) * 10_000_000)
        }
        let o = LabSender.outage(records, expectedSource: "10.99.0.200")
        #expect(o.outage == .milliseconds(30) && o.lost == 4 && o.wrongSource == 0 && o.firstLostSeq == 6 && o.recoveredSeq == nil)
    }

    @Test func everyReplyFromTheWrongSourceIsAllLost() {
        let records = (0..<4).map { SenderRecord(seq: $0, sent: UInt64($0) * 10_000_000, received: UInt64($0) * 10_000_000 + 1, source: "10.99.0.2") }
        let o = LabSender.outage(records, expectedSource: "10.99.0.200")
        #expect(o.outage == .milliseconds(30) && o.lost == 4 && o.wrongSource == 4 && o.firstLostSeq == 0 && o.recoveredSeq == nil)
    }
}
