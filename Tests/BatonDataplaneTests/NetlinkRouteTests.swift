import BatonAPI
@testable import BatonDataplane
import Testing

/// The rtnetlink route messages, read back by the same parser that reads the kernel's dumps.
@Suite struct NetlinkRouteTests {
    static func p(_ s: String) -> IPPrefix { IPSyntax.destination(s)! }
    static func a(_ s: String) -> IPAddress { IPAddress(s)! }

    static func parsed(_ m: [UInt8], family: IPAddress.Family) -> NetlinkRoute.Entry? {
        NetlinkRoute.parse(Array(m[16...]), family: family)
    }

    @Test(arguments: [
        ("34.160.111.145", ["10.116.0.4"], UInt32(254)),
        ("0.0.0.0/0", ["10.116.0.4", "10.116.0.12"], UInt32(217)),
        ("2001:db8::/32", ["fd00::1"], UInt32(254)),
        ("::/0", ["fd00::1", "fd00::2", "fd00::3"], UInt32(217)),
    ])
    func aReplaceCarriesBatonsMarkAndEveryGateway(destination: String, gateways: [String], table: UInt32) throws {
        let d = Self.p(destination)
        let m = NetlinkRoute.replaceMessage(d, via: gateways.map(Self.a), table: table, metric: 7, sequence: 9)
        // nlmsghdr: length, RTM_NEWROUTE, request|ack|create|replace, sequence.
        #expect(NetlinkAddress.u32(m, 0) == UInt32(m.count))
        #expect(NetlinkAddress.u16(m, 4) == 24)
        #expect(NetlinkAddress.u16(m, 6) == 0x1 | 0x4 | 0x400 | 0x100)
        #expect(NetlinkAddress.u32(m, 8) == 9)
        let e = try #require(Self.parsed(m, family: d.address.family))
        #expect(e.destination == d)
        #expect(e.gateways == gateways.map(Self.a))
        #expect(e.table == table && e.metric == 7 && e.isBaton && e.type == 1)
    }

    @Test func aDeleteNamesOnlyBatonsRoute() throws {
        let m = NetlinkRoute.deleteMessage(Self.p("10.42.0.0/16"), table: 254, metric: 0, sequence: 3)
        #expect(NetlinkAddress.u16(m, 4) == 25)
        #expect(NetlinkAddress.u16(m, 6) == 0x1 | 0x4)
        let e = try #require(Self.parsed(m, family: .v4))
        #expect(e.destination == Self.p("10.42.0.0/16") && e.protocolNumber == NetlinkRoute.batonProtocol && e.gateways.isEmpty)
    }
}
