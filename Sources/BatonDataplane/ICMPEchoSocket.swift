import BatonAPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An ICMP or ICMPv6 echo socket connected to one address (so the kernel hands it only that
/// address's packets): an unprivileged ping socket where `net.ipv4.ping_group_range` allows
/// one, else a raw socket (CAP_NET_RAW). The agent's gateway probes (`GatewayProber`) and the
/// server's probe of a silent node (`ReachabilityProber`) both send through it. Blocking: use
/// it from a thread of its own, not from the cooperative pool.
public final class ICMPEchoSocket {
    let fd: Int32
    public let family: IPAddress.Family
    /// A raw socket sees every echo reply of the namespace (IPv4 ones with their IP header);
    /// a ping socket only its own.
    public let raw: Bool
    let identifier: UInt16
    var buffer = [UInt8](repeating: 0, count: 2048)

    /// - Throws: `DataplaneCommandError` when no ICMP socket can be opened or connected.
    public init(_ target: IPAddress) throws {
        family = target.family
        let domain = family == .v4 ? AF_INET : AF_INET6
        let proto = family == .v4 ? Int32(IPPROTO_ICMP) : Int32(IPPROTO_ICMPV6)
        var fd = socket(domain, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), proto)
        var raw = false
        if fd < 0 {
            fd = socket(domain, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), proto)
            raw = true
        }
        guard fd >= 0 else { throw DataplaneCommandError("cannot open an ICMP socket: errno \(errno)") }
        self.fd = fd
        self.raw = raw
        self.identifier = UInt16(truncatingIfNeeded: getpid() &* 31 &+ fd)
        guard GatewayProber.withSockaddr(target, port: 0, { Glibc.connect(fd, $0, $1) }) == 0 else {
            close(fd)
            throw DataplaneCommandError("cannot connect an ICMP socket to \(target): errno \(errno)")
        }
    }
    deinit { close(fd) }

    /// Sends echo request `sequence` and waits up to `timeout` for a reply.
    ///
    /// - Parameter acceptingEarlier: also take a reply to an earlier request of this socket
    ///   (any answer shows the address is alive); otherwise replies to earlier requests that
    ///   came too late are discarded first, and only this request's reply counts.
    public func probe(sequence: UInt16, timeout: Duration, acceptingEarlier: Bool = false) -> Bool {
        if !acceptingEarlier {
            while recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0 {}
        }
        let request = Self.echoRequest(v6: family == .v6, identifier: identifier, sequence: sequence)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else { return false }
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, left > .zero ? GatewayProber.milliseconds(left) : 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            let got = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if got > 0, Self.isReply(buffer[0..<got], family: family, raw: raw, identifier: identifier,
                                     sequence: acceptingEarlier ? nil : sequence) {
                return true
            }
            if left <= .zero { return false }
        }
    }

    /// Whether `bytes` (as the socket received them) is an echo reply to `identifier`, and to
    /// `sequence` when one is given. A raw IPv4 socket's packets start with the IP header; a
    /// ping socket's identifier is the kernel's choice, and it delivers only its own replies.
    public static func isReply(_ bytes: ArraySlice<UInt8>, family: IPAddress.Family, raw: Bool, identifier: UInt16,
                               sequence: UInt16?) -> Bool {
        var icmp = bytes
        if raw && family == .v4 {
            guard let first = bytes.first else { return false }
            icmp = bytes.dropFirst(Int(first & 0x0f) * 4)
        }
        guard icmp.count >= 8 else { return false }
        let s = icmp.startIndex
        let replyType: UInt8 = family == .v4 ? 0 : 129
        guard icmp[s] == replyType else { return false }
        let id = UInt16(icmp[s + 4]) << 8 | UInt16(icmp[s + 5])
        let seq = UInt16(icmp[s + 6]) << 8 | UInt16(icmp[s + 7])
        return (sequence.map { seq == $0 } ?? true) && (!raw || id == identifier)
    }

    /// An echo request; IPv4 with its checksum, IPv6 without (the kernel fills it in).
    public static func echoRequest(v6: Bool, identifier: UInt16, sequence: UInt16) -> [UInt8] {
        var packet: [UInt8] = [v6 ? 128 : 8, 0, 0, 0, UInt8(identifier >> 8), UInt8(identifier & 0xff), UInt8(sequence >> 8), UInt8(sequence & 0xff)]
        packet += Array("baton-gw".utf8)
        if !v6 {
            var sum: UInt32 = 0
            for i in stride(from: 0, to: packet.count, by: 2) { sum += UInt32(packet[i]) << 8 | UInt32(packet[i + 1]) }
            while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
            let checksum = ~UInt16(sum)
            packet[2] = UInt8(checksum >> 8)
            packet[3] = UInt8(checksum & 0xff)
        }
        return packet
    }
}
