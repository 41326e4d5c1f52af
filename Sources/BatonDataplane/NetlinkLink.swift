import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One interface as an rtnetlink `RTM_NEWLINK` or `RTM_DELLINK` message describes it: what
/// `ip link` prints as `<UP,LOWER_UP>` and `state UP`.
public struct LinkStatus: Sendable, Hashable, CustomStringConvertible {
    /// RFC 2863's operational state, as `IFLA_OPERSTATE` carries it.
    public enum OperState: UInt8, Sendable, Hashable {
        case unknown = 0, notPresent, down, lowerLayerDown, testing, dormant, up
    }

    public static let iffUp: UInt32 = 0x1
    public static let iffRunning: UInt32 = 0x40
    public static let iffLowerUp: UInt32 = 0x10000

    public var index: UInt32
    public var name: String
    /// `ifi_flags`: `IFF_UP`, `IFF_RUNNING`, `IFF_LOWER_UP`...
    public var flags: UInt32
    public var operState: OperState
    /// An `RTM_DELLINK`: the interface is gone.
    public var deleted: Bool

    public init(index: UInt32, name: String, flags: UInt32, operState: OperState, deleted: Bool = false) {
        self.index = index
        self.name = name
        self.flags = flags
        self.operState = operState
        self.deleted = deleted
    }

    /// Whether packets can go out and come in: administratively up (`IFF_UP`), operationally up
    /// (`IFF_RUNNING`) and with a carrier (`IFF_LOWER_UP`), as keepalived requires before it
    /// leaves FAULT.
    public var isUp: Bool {
        !deleted && flags & Self.iffUp != 0 && flags & Self.iffRunning != 0 && flags & Self.iffLowerUp != 0
    }

    /// Why the interface is not up, as an operator reads it: `deleted`, `administratively down`,
    /// `no carrier`, `not running (dormant)`; `up` when it is.
    public var condition: String {
        if deleted { return "deleted" }
        if flags & Self.iffUp == 0 { return "administratively down" }
        if flags & Self.iffLowerUp == 0 { return "no carrier" }
        if flags & Self.iffRunning == 0 { return "not running (\(operState))" }
        return "up"
    }

    public var description: String { "\(name) (index \(index)): \(condition)" }
}

/// rtnetlink's link messages: the dump request (`ip link show`) and the parsing of what the
/// kernel sends back or broadcasts to `RTMGRP_LINK`. Host byte order, as netlink has it.
public enum NetlinkLink {
    static let rtmNewLink: UInt16 = 16, rtmDelLink: UInt16 = 17, rtmGetLink: UInt16 = 18
    static let nlmsgDone: UInt16 = 3, nlmsgError: UInt16 = 2
    static let request: UInt16 = 0x1, dump: UInt16 = 0x300
    static let iflaIfname: UInt16 = 3, iflaOperstate: UInt16 = 16
    /// The multicast group of link changes.
    public static let rtmgrpLink: UInt32 = 0x1

    /// `RTM_GETLINK` with `NLM_F_DUMP`: every interface of the namespace.
    public static func dumpRequest(sequence: UInt32) -> [UInt8] {
        let body = [UInt8](repeating: 0, count: 16)   // ifinfomsg, AF_UNSPEC
        return NetlinkAddress.native(UInt32(16 + body.count)) + NetlinkAddress.native(rtmGetLink)
            + NetlinkAddress.native(request | dump) + NetlinkAddress.native(sequence) + NetlinkAddress.native(UInt32(0)) + body
    }

    /// What one datagram read from a route netlink socket holds.
    public struct Parsed: Sendable, Equatable {
        /// Every link message, in order.
        public var links: [LinkStatus] = []
        /// `NLMSG_DONE` (or an error) for this sequence number ended a dump.
        public var doneSequences: [UInt32] = []
    }

    /// Parses every message of a datagram (`NLMSG_NEXT`); a truncated message ends the walk.
    public static func parse(_ datagram: ArraySlice<UInt8>) -> Parsed {
        let b = Array(datagram)
        var parsed = Parsed()
        var at = 0
        while at + 16 <= b.count {
            let length = Int(NetlinkAddress.u32(b, at))
            guard length >= 16, at + length <= b.count else { break }
            let type = NetlinkAddress.u16(b, at + 4)
            let sequence = NetlinkAddress.u32(b, at + 8)
            switch type {
            case rtmNewLink, rtmDelLink:
                if let link = link(b, from: at + 16, to: at + length, deleted: type == rtmDelLink) { parsed.links.append(link) }
            case nlmsgDone, nlmsgError:
                parsed.doneSequences.append(sequence)
            default:
                break
            }
            at += (length + 3) & ~3   // NLMSG_ALIGN
        }
        return parsed
    }

    /// An `ifinfomsg` and its attributes (`RTA_NEXT`), between `start` and `end`.
    static func link(_ b: [UInt8], from start: Int, to end: Int, deleted: Bool) -> LinkStatus? {
        guard start + 16 <= end else { return nil }
        let index = NetlinkAddress.u32(b, start + 4)
        let flags = NetlinkAddress.u32(b, start + 8)
        var name = ""
        var operState = LinkStatus.OperState.unknown
        var at = start + 16
        while at + 4 <= end {
            let length = Int(NetlinkAddress.u16(b, at))
            guard length >= 4, at + length <= end else { break }
            let type = NetlinkAddress.u16(b, at + 2) & 0x3fff   // without NLA_F_NESTED / NLA_F_NET_BYTEORDER
            let value = b[(at + 4)..<(at + length)]
            switch type {
            case iflaIfname:
                name = String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
            case iflaOperstate where !value.isEmpty:
                operState = LinkStatus.OperState(rawValue: value.first!) ?? .unknown
            default:
                break
            }
            at += (length + 3) & ~3   // RTA_ALIGN
        }
        return LinkStatus(index: index, name: name, flags: flags, operState: operState, deleted: deleted)
    }
}

/// A route netlink socket subscribed to link changes (`RTMGRP_LINK`): the kernel tells it when
/// an interface goes up or down, loses or regains its carrier, or disappears, with no polling.
/// One thread reads (``next()``) while another may ``wake()`` it; ``close()`` once nobody reads.
/// Needs no privilege. Reads the namespace the process is in.
public final class LinkWatch: Sendable {
    private let fd: Int32
    private let wakeFD: Int32
    private let wakeWriteFD: Int32
    private let sequence = Mutex<UInt32>(0)
    private let closed = Mutex(false)

    /// Opens the socket and joins the group; changes are queued from here on.
    public init() throws {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0 /* NETLINK_ROUTE */)
        guard fd >= 0 else { throw DataplaneCommandError("cannot open a netlink socket: errno \(errno)") }
        var buffer: Int32 = 1 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, socklen_t(MemoryLayout<Int32>.size))
        // sockaddr_nl: family, padding, port id (0: the kernel assigns), groups.
        let address = NetlinkAddress.native(UInt16(AF_NETLINK)) + NetlinkAddress.native(UInt16(0))
            + NetlinkAddress.native(UInt32(0)) + NetlinkAddress.native(NetlinkLink.rtmgrpLink)
        let bound = address.withUnsafeBytes { bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(address.count)) }
        guard bound == 0 else {
            let e = errno
            Glibc.close(fd)
            throw DataplaneCommandError("cannot join rtnetlink's link group: errno \(e)")
        }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw DataplaneCommandError("cannot open a pipe: errno \(e)")
        }
        for end in pipeFDs {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        self.fd = fd
        wakeFD = pipeFDs[0]
        wakeWriteFD = pipeFDs[1]
    }

    /// Every interface's state now (`RTM_GETLINK` dump), followed by any change that arrived
    /// while the dump was read, in the order received: the last entry for an index is current.
    public func dump() throws -> [LinkStatus] {
        let seq = sequence.withLock { $0 += 1; return $0 }
        let request = NetlinkLink.dumpRequest(sequence: seq)
        guard send(fd, request, request.count, 0) == request.count else {
            throw DataplaneCommandError("cannot ask rtnetlink for the interfaces: errno \(errno)")
        }
        var links: [LinkStatus] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ENOBUFS { return try dump() }
                throw DataplaneCommandError("cannot read the interfaces from rtnetlink: errno \(errno)")
            }
            let parsed = NetlinkLink.parse(buffer[0..<n])
            links += parsed.links
            if parsed.doneSequences.contains(seq) { return links }
        }
    }

    /// Blocks until the kernel reports link changes and returns them in order; nil when woken
    /// (``wake()``) or closed. When the kernel dropped changes (the socket's buffer overflowed,
    /// `ENOBUFS`), returns a fresh dump instead, so no change is lost for good.
    public func next() throws -> [LinkStatus]? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            guard !closed.withLock({ $0 }) else { return nil }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                throw DataplaneCommandError("cannot wait on rtnetlink: errno \(errno)")
            }
            if fds[1].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                while read(wakeFD, &drain, drain.count) > 0 {}
                return nil
            }
            guard fds[0].revents != 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                if errno == ENOBUFS { return try dump() }
                throw DataplaneCommandError("cannot read rtnetlink: errno \(errno)")
            }
            let links = NetlinkLink.parse(buffer[0..<n]).links
            if !links.isEmpty { return links }
        }
    }

    /// Makes a blocked ``next()`` return nil. Harmless after ``close()``.
    public func wake() {
        closed.withLock { closed in
            guard !closed else { return }   // the descriptor number may belong to someone else now
            var byte: UInt8 = 1
            _ = write(wakeWriteFD, &byte, 1)
        }
    }

    /// Idempotent; call it once no thread is in ``next()`` or ``dump()``.
    public func close() {
        closed.withLock { closed in
            guard !closed else { return }
            closed = true
            Glibc.close(fd)
            Glibc.close(wakeFD)
            Glibc.close(wakeWriteFD)
        }
    }
}
