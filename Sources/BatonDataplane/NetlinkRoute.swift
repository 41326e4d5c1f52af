import BatonAPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Routes changed and read over rtnetlink from this process: `ip route replace|del|show`
/// without forking `ip`. Every route Baton installs carries its own routing protocol number,
/// 217 (unassigned in the kernel's list; 186-192 are the routing daemons'), which is how it
/// tells its routes from everyone else's: it never deletes or replaces a route without it.
public enum NetlinkRoute {
    /// `rtm_protocol` of Baton's routes (`ip route show proto 217`).
    public static let batonProtocol: UInt8 = 217
    public static let mainTable: UInt32 = 254

    /// One route as the kernel reports it.
    public struct Entry: Sendable, Hashable, CustomStringConvertible {
        public var destination: IPPrefix
        public var gateways: [IPAddress]
        public var table: UInt32
        public var protocolNumber: UInt8
        public var metric: UInt32
        public var interfaceIndex: UInt32
        public var type: UInt8

        public var isBaton: Bool { protocolNumber == NetlinkRoute.batonProtocol }
        public var description: String {
            "\(destination) via \(gateways.map(\.description).joined(separator: ",")) table \(table) proto \(protocolNumber) metric \(metric)"
        }
    }

    static let rtmNewRoute: UInt16 = 24, rtmDelRoute: UInt16 = 25, rtmGetRoute: UInt16 = 26
    static let nlmsgError: UInt16 = 2, nlmsgDone: UInt16 = 3
    static let request: UInt16 = 0x1, ack: UInt16 = 0x4, dump: UInt16 = 0x300, replaceFlag: UInt16 = 0x100, create: UInt16 = 0x400
    static let rtaDst: UInt16 = 1, rtaOif: UInt16 = 4, rtaGateway: UInt16 = 5, rtaPriority: UInt16 = 6, rtaMultipath: UInt16 = 9, rtaTable: UInt16 = 15

    static func family(_ f: IPAddress.Family) -> UInt8 { f == .v4 ? UInt8(AF_INET) : UInt8(AF_INET6) }

    /// `ip route replace DEST via G [nexthop via G2 …] table T proto 217 metric M`: adds the
    /// route, or swaps the gateways of the one there in one step (no moment without a route).
    public static func replaceMessage(_ destination: IPPrefix, via gateways: [IPAddress], table: UInt32, metric: UInt32, sequence: UInt32) -> [UInt8] {
        var body = header(destination, table: table, protocolNumber: batonProtocol)
        body += attributes(destination, table: table, metric: metric)
        if gateways.count == 1 {
            body += NetlinkAddress.attribute(rtaGateway, gateways[0].networkBytes)
        } else {
            var nexthops: [UInt8] = []
            for g in gateways {
                let gw = NetlinkAddress.attribute(rtaGateway, g.networkBytes)
                // struct rtnexthop: len, flags, hops, ifindex (0: the kernel finds the on-link device).
                nexthops += NetlinkAddress.native(UInt16(8 + gw.count)) + [0, 0] + NetlinkAddress.native(UInt32(0)) + gw
            }
            body += NetlinkAddress.attribute(rtaMultipath, nexthops)
        }
        return envelope(rtmNewRoute, flags: request | ack | create | replaceFlag, sequence: sequence, body: body)
    }

    /// `ip route del DEST table T proto 217 metric M`: only a route with Baton's mark matches.
    public static func deleteMessage(_ destination: IPPrefix, table: UInt32, metric: UInt32, sequence: UInt32) -> [UInt8] {
        var body = header(destination, table: table, protocolNumber: batonProtocol)
        body += attributes(destination, table: table, metric: metric)
        return envelope(rtmDelRoute, flags: request | ack, sequence: sequence, body: body)
    }

    static func header(_ d: IPPrefix, table: UInt32, protocolNumber: UInt8) -> [UInt8] {
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope (universe), type (unicast), flags.
        [family(d.address.family), UInt8(d.length), 0, 0, table < 256 ? UInt8(table) : 252, protocolNumber, 0, 1] + NetlinkAddress.native(UInt32(0))
    }

    static func attributes(_ d: IPPrefix, table: UInt32, metric: UInt32) -> [UInt8] {
        var out = NetlinkAddress.attribute(rtaTable, NetlinkAddress.native(table))
        if d.length > 0 { out += NetlinkAddress.attribute(rtaDst, d.address.networkBytes) }
        out += NetlinkAddress.attribute(rtaPriority, NetlinkAddress.native(metric))
        return out
    }

    static func envelope(_ type: UInt16, flags: UInt16, sequence: UInt32, body: [UInt8]) -> [UInt8] {
        NetlinkAddress.native(UInt32(16 + body.count)) + NetlinkAddress.native(type) + NetlinkAddress.native(flags)
            + NetlinkAddress.native(sequence) + NetlinkAddress.native(UInt32(0)) + body
    }

    public enum Change: Sendable, Hashable {
        case replace(IPPrefix, via: [IPAddress])
        case delete(IPPrefix)
    }

    /// Carries out `changes` in `table` at `metric`, in order. A delete of a route that is not
    /// there is no error. Returns one error message per change that failed (the others are done).
    public static func apply(_ changes: [Change], table: UInt32, metric: UInt32) throws -> [IPPrefix: String] {
        guard !changes.isEmpty else { return [:] }
        let socket = try Socket()
        var failed: [IPPrefix: String] = [:]
        for (i, c) in changes.enumerated() {
            let sequence = UInt32(i + 1)
            switch c {
            case .replace(let d, let gateways):
                let e = try socket.exchange(replaceMessage(d, via: gateways, table: table, metric: metric, sequence: sequence), sequence: sequence)
                if e != 0 { failed[d] = "cannot route \(d) via \(gateways.map(\.description).joined(separator: ", ")): \(String(cString: strerror(e)))" }
            case .delete(let d):
                let e = try socket.exchange(deleteMessage(d, table: table, metric: metric, sequence: sequence), sequence: sequence)
                if e != 0 && e != ESRCH && e != ENOENT { failed[d] = "cannot delete the route to \(d): \(String(cString: strerror(e)))" }
            }
        }
        return failed
    }

    /// Every route of `family` in every table (`ip route show table all`).
    public static func list(_ family: IPAddress.Family) throws -> [Entry] {
        let socket = try Socket()
        // struct rtmsg with only the family set: a dump of every table.
        let body: [UInt8] = [Self.family(family), 0, 0, 0, 0, 0, 0, 0] + NetlinkAddress.native(UInt32(0))
        let m = envelope(rtmGetRoute, flags: request | dump, sequence: 1, body: body)
        var out: [Entry] = []
        try socket.send(m)
        while true {
            let chunk = try socket.receive()
            var at = 0
            while at + 16 <= chunk.count {
                let length = Int(NetlinkAddress.u32(chunk, at))
                let type = NetlinkAddress.u16(chunk, at + 4)
                guard length >= 16, at + length <= chunk.count else { break }
                if type == nlmsgDone { return out }
                if type == nlmsgError {
                    let e = -Int32(bitPattern: NetlinkAddress.u32(chunk, at + 16))
                    if e != 0 { throw DataplaneCommandError("cannot list routes: \(String(cString: strerror(e)))") }
                } else if type == rtmNewRoute, let entry = parse(Array(chunk[(at + 16)..<(at + length)]), family: family) {
                    out.append(entry)
                }
                at += (length + 3) & ~3
            }
        }
    }

    /// One `RTM_NEWROUTE` body (struct rtmsg and its attributes).
    static func parse(_ b: [UInt8], family: IPAddress.Family) -> Entry? {
        guard b.count >= 12 else { return nil }
        let dstLen = Int(b[1])
        var table = UInt32(b[4])
        let proto = b[5], type = b[7]
        var dst = IPAddress(family: family, value: 0)
        var gateways: [IPAddress] = []
        var metric: UInt32 = 0, oif: UInt32 = 0
        for (t, v) in attributes(b[12...]) {
            switch t {
            case rtaDst: dst = address(v, family) ?? dst
            case rtaGateway: if let a = address(v, family) { gateways.append(a) }
            case rtaTable where v.count >= 4: table = NetlinkAddress.u32(Array(v), 0)
            case rtaPriority where v.count >= 4: metric = NetlinkAddress.u32(Array(v), 0)
            case rtaOif where v.count >= 4: oif = NetlinkAddress.u32(Array(v), 0)
            case rtaMultipath:
                var hop = v.startIndex
                while hop + 8 <= v.endIndex {
                    let len = Int(NetlinkAddress.u16(Array(v[hop..<(hop + 2)]), 0))
                    guard len >= 8, hop + len <= v.endIndex else { break }
                    for (ht, hv) in attributes(v[(hop + 8)..<(hop + len)]) where ht == rtaGateway {
                        if let a = address(hv, family) { gateways.append(a) }
                    }
                    hop += (len + 3) & ~3
                }
            default: break
            }
        }
        return Entry(destination: IPPrefix(address: dst, length: dstLen), gateways: gateways, table: table,
                     protocolNumber: proto, metric: metric, interfaceIndex: oif, type: type)
    }

    static func attributes(_ b: ArraySlice<UInt8>) -> [(UInt16, ArraySlice<UInt8>)] {
        var out: [(UInt16, ArraySlice<UInt8>)] = []
        var at = b.startIndex
        while at + 4 <= b.endIndex {
            let head = Array(b[at..<(at + 4)])
            let len = Int(NetlinkAddress.u16(head, 0)), type = NetlinkAddress.u16(head, 2) & 0x3FFF
            guard len >= 4, at + len <= b.endIndex else { break }
            out.append((type, b[(at + 4)..<(at + len)]))
            at += (len + 3) & ~3
        }
        return out
    }

    static func address(_ v: ArraySlice<UInt8>, _ family: IPAddress.Family) -> IPAddress? {
        let n = family == .v4 ? 4 : 16
        guard v.count == n else { return nil }
        var value: UInt128 = 0
        for byte in v { value = value << 8 | UInt128(byte) }
        return IPAddress(family: family, value: value)
    }

    /// A NETLINK_ROUTE socket for one batch of requests.
    final class Socket {
        let fd: Int32
        var buffer = [UInt8](repeating: 0, count: 65536)

        init() throws {
            fd = Glibc.socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw DataplaneCommandError("cannot open a netlink socket: errno \(errno)") }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        deinit { close(fd) }

        func send(_ m: [UInt8]) throws {
            guard Glibc.send(fd, m, m.count, 0) == m.count else { throw DataplaneCommandError("netlink send failed, errno \(errno)") }
        }

        func receive() throws -> [UInt8] {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { throw DataplaneCommandError("no answer from the kernel, errno \(errno)") }
            return Array(buffer[0..<n])
        }

        /// Sends one request and returns its acknowledgement's errno (0: done).
        func exchange(_ m: [UInt8], sequence: UInt32) throws -> Int32 {
            try send(m)
            while true {
                let reply = try receive()
                if let e = NetlinkAddress.acknowledgement(reply[...], sequence: sequence) { return e }
            }
        }
    }
}
