import BatonAPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Interface addresses changed over rtnetlink from this process: the `RTM_NEWADDR` /
/// `RTM_DELADDR` requests `ip address replace|del` sends, without forking `ip` (4 ms here, which
/// a VRRP Master taking over at a 10 ms advert interval cannot spare). One request and its
/// acknowledgement per address, on a socket opened for the batch.
public enum NetlinkAddress {
    public enum Change: Sendable {
        /// `ip address replace`: add, or keep what is there.
        case replace
        /// `ip address del`: an address that is not there is no error.
        case delete
    }

    /// One address change, as `ip address replace|del ADDRESS/PREFIX dev IF [label L] [nodad]`.
    public struct Request: Sendable, Equatable {
        public var change: Change
        public var address: IPAddress
        public var prefixLength: Int
        public var label: String?
        /// IPv6: skip duplicate address detection (IFA_F_NODAD).
        public var noDAD: Bool

        public init(_ change: Change, _ address: IPAddress, prefixLength: Int, label: String? = nil, noDAD: Bool = false) {
            self.change = change
            self.address = address
            self.prefixLength = prefixLength
            self.label = label
            self.noDAD = noDAD
        }
    }

    static let rtmNewAddr: UInt16 = 20, rtmDelAddr: UInt16 = 21, nlmsgError: UInt16 = 2
    static let request: UInt16 = 0x1, ack: UInt16 = 0x4, replaceFlag: UInt16 = 0x100, create: UInt16 = 0x400
    static let ifaAddress: UInt16 = 1, ifaLocal: UInt16 = 2, ifaLabel: UInt16 = 3
    static let ifaFNoDAD: UInt8 = 0x02

    /// The netlink message for `request` on interface `index` (host byte order, as netlink wants).
    public static func message(_ r: Request, index: UInt32, sequence: UInt32) -> [UInt8] {
        let bytes = r.address.networkBytes
        var body: [UInt8] = [r.address.family == .v4 ? UInt8(AF_INET) : UInt8(AF_INET6), UInt8(r.prefixLength),
                             r.noDAD && r.address.family == .v6 ? ifaFNoDAD : 0, 0]   // family, prefix, flags, scope universe
        body += native(index)
        body += attribute(ifaLocal, bytes)
        body += attribute(ifaAddress, bytes)
        if let label = r.label, r.address.family == .v4, r.change == .replace { body += attribute(ifaLabel, Array(label.utf8) + [0]) }
        let type = r.change == .replace ? rtmNewAddr : rtmDelAddr
        let flags = r.change == .replace ? request | ack | create | replaceFlag : request | ack
        return native(UInt32(16 + body.count)) + native(type) + native(flags) + native(sequence) + native(UInt32(0)) + body
    }

    /// The error an acknowledgement carries: 0 for success, else a positive errno; nil when
    /// `reply` is not an acknowledgement of `sequence`.
    public static func acknowledgement(_ reply: ArraySlice<UInt8>, sequence: UInt32) -> Int32? {
        let r = Array(reply)
        guard r.count >= 20, u16(r, 4) == nlmsgError, u32(r, 8) == sequence else { return nil }
        return -Int32(bitPattern: u32(r, 16))
    }

    /// Carries out `requests` on `interface`, in order; the first failure throws, naming the
    /// address. Needs CAP_NET_ADMIN in the interface's namespace.
    public static func apply(_ requests: [Request], interface: String) throws {
        guard !requests.isEmpty else { return }
        let index = if_nametoindex(interface)
        guard index != 0 else { throw DataplaneCommandError("no interface \(interface)") }
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0 /* NETLINK_ROUTE */)
        guard fd >= 0 else { throw DataplaneCommandError("cannot open a netlink socket: errno \(errno)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 8192)
        for (i, r) in requests.enumerated() {
            let sequence = UInt32(i + 1)
            let what = "\(r.change == .replace ? "add" : "delete") \(r.address)/\(r.prefixLength) on \(interface)"
            let m = message(r, index: index, sequence: sequence)
            guard send(fd, m, m.count, 0) == m.count else { throw DataplaneCommandError("cannot \(what): netlink send failed, errno \(errno)") }
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                guard n > 0 else { throw DataplaneCommandError("cannot \(what): no answer from the kernel, errno \(errno)") }
                guard let error = acknowledgement(buffer[0..<n], sequence: sequence) else { continue }
                if error == 0 || (r.change == .delete && (error == EADDRNOTAVAIL || error == ENOENT || error == ENODEV)) { break }
                throw DataplaneCommandError("cannot \(what): \(String(cString: strerror(error)))")
            }
        }
    }

    static func attribute(_ type: UInt16, _ data: [UInt8]) -> [UInt8] {
        let length = 4 + data.count
        return native(UInt16(length)) + native(type) + data + [UInt8](repeating: 0, count: (4 - length % 4) % 4)
    }

    /// Host byte order, netlink's.
    static func native<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
    static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt16.self) } }
    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 { b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) } }
}

extension IPAddress {
    /// The address in network byte order: 4 bytes for IPv4, 16 for IPv6.
    var networkBytes: [UInt8] {
        let count = family == .v4 ? 4 : 16
        return (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * (count - 1 - $0))) }
    }
}
