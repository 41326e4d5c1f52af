import BatonAPI
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A raw `IPPROTO_VRRP` (112) socket on one interface, for one address family: bound to the
/// interface (`SO_BINDTODEVICE`), joined to 224.0.0.18 or ff02::12 there, sending with TTL / hop
/// limit 255 and multicast loop off, and reading with the TTL / hop limit and the destination
/// each datagram arrived with. Needs CAP_NET_RAW.
///
/// One thread reads (``receive(timeout:)``) while others send (``send(_:to:)``) and wake the
/// reader (``wake()``): the three are safe to call concurrently. ``close()`` once nobody reads.
public final class VRRPSocket: Sendable {
    /// One datagram as it arrived: the VRRP message (the IP payload), the IP source and
    /// destination, and the TTL (IPv4) or hop limit (IPv6). Not yet checked.
    public struct Datagram: Sendable, Hashable {
        public var message: [UInt8]
        public var source: IPAddress
        public var destination: IPAddress
        public var ttl: UInt8
        /// When the kernel received it (`SO_TIMESTAMPNS`: CLOCK_REALTIME nanoseconds); nil when
        /// not known.
        public var receivedAt: Int64?

        public init(message: [UInt8], source: IPAddress, destination: IPAddress, ttl: UInt8, receivedAt: Int64? = nil) {
            self.message = message
            self.source = source
            self.destination = destination
            self.ttl = ttl
            self.receivedAt = receivedAt
        }
    }

    /// What ``receive(timeout:)`` saw.
    public enum Reception: Sendable, Hashable {
        case datagram(Datagram)
        /// The timeout ran out with nothing to read.
        case timedOut
        /// ``wake()`` was called (or a datagram could not be read and was skipped).
        case woken
    }

    public let family: IPAddress.Family
    public let interface: String
    public let interfaceIndex: UInt32
    /// The source of every advertisement sent: the interface's primary IPv4 address, or its IPv6
    /// link-local address (as keepalived sends). The other routers' tie-break and the
    /// pseudo-header use it.
    public let sourceAddress: IPAddress
    private let fd: Int32
    /// A pipe: ``wake()`` writes a byte, ``receive(timeout:)`` polls the read end.
    private let wakeFD: Int32
    private let wakeWriteFD: Int32
    private let closed = Mutex(false)

    /// Opens the socket on `interface` for `family`, joined to the VRRP group there. Throws a
    /// ``VRRPSocketError`` naming the step and errno when the interface is missing, has no
    /// address of the family, or the process lacks CAP_NET_RAW.
    ///
    /// - Parameter sourceInterface: where the source address comes from, when not `interface`
    ///   (a virtual MAC interface has no address of its own: its parent's is used, as keepalived does).
    public init(family: IPAddress.Family, interface: String, sourceInterface: String? = nil,
                excluding virtualAddresses: Set<IPAddress> = []) throws(VRRPSocketError) {
        let index = if_nametoindex(interface)
        guard index != 0 else { throw VRRPSocketError(.interface, "no interface \(interface)") }
        let sourceInterface = sourceInterface ?? interface
        guard let source = InterfaceAddresses.source(family: family, interface: sourceInterface, excluding: virtualAddresses) else {
            let kind = family == .v4 ? "IPv4 address" : "IPv6 link-local address"
            throw VRRPSocketError(.interface, "interface \(sourceInterface) has no \(kind) to send VRRP advertisements from")
        }
        let domain = family == .v4 ? AF_INET : AF_INET6
        let fd = socket(domain, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(VRRPWire.ipProtocol))
        guard fd >= 0 else { throw VRRPSocketError(.socket, "cannot open a raw VRRP socket (needs CAP_NET_RAW)", errno: errno) }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            Glibc.close(fd)
            throw VRRPSocketError(.socket, "cannot open a pipe", errno: errno)
        }
        for end in pipeFDs {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        do {
            try Self.configure(fd, family: family, interface: interface, index: index)
        } catch {
            Glibc.close(fd)
            for end in pipeFDs { Glibc.close(end) }
            throw error
        }
        self.family = family
        self.interface = interface
        self.interfaceIndex = index
        self.sourceAddress = source
        self.fd = fd
        self.wakeFD = pipeFDs[0]
        self.wakeWriteFD = pipeFDs[1]
    }

    deinit { close() }

    private static func configure(_ fd: Int32, family: IPAddress.Family, interface: String, index: UInt32) throws(VRRPSocketError) {
        func set<T>(_ level: Int32, _ name: Int32, _ value: T, _ what: String) throws(VRRPSocketError) {
            var v = value
            guard setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<T>.size)) == 0 else {
                throw VRRPSocketError(.socketOption, "cannot set \(what) on \(interface)", errno: errno)
            }
        }
        var name = Array(interface.utf8)
        name.append(0)
        guard setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, &name, socklen_t(name.count)) == 0 else {
            throw VRRPSocketError(.socketOption, "cannot bind to device \(interface)", errno: errno)
        }
        // The kernel's receive time on every datagram: the master-down timer runs from it.
        try set(SOL_SOCKET, soTimestampNS, Int32(1), "SO_TIMESTAMPNS")
        let ttl = Int32(VRRPWire.requiredTTL)
        switch family {
        case .v4:
            let ip = Int32(IPPROTO_IP)
            var request = ip_mreqn()
            request.imr_multiaddr.s_addr = UInt32(truncatingIfNeeded: VRRPWire.ipv4Group.value).bigEndian
            request.imr_ifindex = Int32(index)
            try set(ip, IP_ADD_MEMBERSHIP, request, "IP_ADD_MEMBERSHIP 224.0.0.18")
            var outgoing = ip_mreqn()
            outgoing.imr_ifindex = Int32(index)
            try set(ip, IP_MULTICAST_IF, outgoing, "IP_MULTICAST_IF")
            try set(ip, IP_MULTICAST_TTL, ttl, "IP_MULTICAST_TTL")
            try set(ip, IP_TTL, ttl, "IP_TTL")
            try set(ip, IP_MULTICAST_LOOP, Int32(0), "IP_MULTICAST_LOOP")
            try set(ip, IP_TOS, Int32(VRRPWire.keepalivedTrafficClass), "IP_TOS")
        case .v6:
            let ip6 = Int32(IPPROTO_IPV6)
            var request = ipv6_mreq()
            request.ipv6mr_multiaddr = in6_addr(VRRPWire.ipv6Group)
            request.ipv6mr_interface = index
            try set(ip6, IPV6_ADD_MEMBERSHIP, request, "IPV6_JOIN_GROUP ff02::12")
            try set(ip6, IPV6_MULTICAST_IF, Int32(index), "IPV6_MULTICAST_IF")
            try set(ip6, IPV6_MULTICAST_HOPS, ttl, "IPV6_MULTICAST_HOPS")
            try set(ip6, IPV6_UNICAST_HOPS, ttl, "IPV6_UNICAST_HOPS")
            try set(ip6, IPV6_MULTICAST_LOOP, Int32(0), "IPV6_MULTICAST_LOOP")
            try set(ip6, IPV6_RECVHOPLIMIT, Int32(1), "IPV6_RECVHOPLIMIT")
            try set(ip6, IPV6_RECVPKTINFO, Int32(1), "IPV6_RECVPKTINFO")
            try set(ip6, IPV6_TCLASS, Int32(VRRPWire.keepalivedTrafficClass), "IPV6_TCLASS")
        }
    }

    // MARK: Sending

    /// Sends one VRRP message (encoded with ``sourceAddress`` and `destination`) to the group or a
    /// unicast peer, from ``sourceAddress`` on the interface.
    public func send(_ message: [UInt8], to destination: IPAddress) throws(VRRPSocketError) {
        guard destination.family == family else {
            throw VRRPSocketError(.address, "destination \(destination) is not of the socket's family")
        }
        let sent: Int
        switch family {
        case .v4:
            var to = sockaddr_in()
            to.sin_family = sa_family_t(AF_INET)
            to.sin_addr.s_addr = UInt32(truncatingIfNeeded: destination.value).bigEndian
            var info = in_pktinfo()
            info.ipi_ifindex = Int32(interfaceIndex)
            info.ipi_spec_dst.s_addr = UInt32(truncatingIfNeeded: sourceAddress.value).bigEndian
            sent = Self.sendmsg(fd, message, to: &to, level: Int32(IPPROTO_IP), type: IP_PKTINFO, info: info)
        case .v6:
            var to = sockaddr_in6()
            to.sin6_family = sa_family_t(AF_INET6)
            to.sin6_addr = in6_addr(destination)
            to.sin6_scope_id = interfaceIndex
            let info = In6PacketInfo(address: in6_addr(sourceAddress), interfaceIndex: interfaceIndex)
            sent = Self.sendmsg(fd, message, to: &to, level: Int32(IPPROTO_IPV6), type: IPV6_PKTINFO, info: info)
        }
        guard sent == message.count else {
            throw VRRPSocketError(.send, "cannot send an advertisement to \(destination) on \(interface)", errno: errno)
        }
    }

    private static func sendmsg<Address, Info>(_ fd: Int32, _ message: [UInt8], to address: inout Address,
                                               level: Int32, type: Int32, info: Info) -> Int {
        var control = ControlMessage.encode(level: level, type: type, info)
        var message = message
        return message.withUnsafeMutableBytes { payload in
            control.withUnsafeMutableBytes { controlBytes in
                withUnsafeMutablePointer(to: &address) { addressPointer in
                    var iov = iovec(iov_base: payload.baseAddress, iov_len: payload.count)
                    return withUnsafeMutablePointer(to: &iov) { iovPointer in
                        var header = msghdr()
                        header.msg_name = UnsafeMutableRawPointer(addressPointer)
                        header.msg_namelen = socklen_t(MemoryLayout<Address>.size)
                        header.msg_iov = iovPointer
                        header.msg_iovlen = 1
                        header.msg_control = controlBytes.baseAddress
                        header.msg_controllen = controlBytes.count
                        return Glibc.sendmsg(fd, &header, 0)
                    }
                }
            }
        }
    }

    // MARK: Receiving

    /// Waits up to `timeout` (nil: until a datagram or ``wake()``) and reads one datagram. The
    /// timeout is rounded up to the microsecond and kept to the nanosecond by `ppoll` (at a
    /// 10 ms advertisement interval, `poll`'s millisecond would be a tenth of it).
    public func receive(timeout: Duration?) -> Reception {
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        let ready: Int32
        if let timeout {
            let (seconds, attoseconds) = max(timeout, .zero).components
            let microseconds = (attoseconds + 999_999_999_999) / 1_000_000_000_000
            var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int(microseconds * 1000))
            if ts.tv_nsec >= 1_000_000_000 { ts.tv_sec += 1; ts.tv_nsec -= 1_000_000_000 }
            ready = Self.ppoll(&fds, 2, &ts, nil)
        } else {
            ready = Self.ppoll(&fds, 2, nil, nil)
        }
        if ready == 0 { return .timedOut }
        if ready < 0 { return .woken }   // EINTR
        if fds[1].revents != 0 {
            var drain = [UInt8](repeating: 0, count: 64)
            while Glibc.read(wakeFD, &drain, drain.count) > 0 {}
        }
        guard fds[0].revents & Int16(POLLIN) != 0 else { return .woken }
        return readDatagram().map(Reception.datagram) ?? .woken
    }

    typealias PPoll = @convention(c) (UnsafeMutablePointer<pollfd>?, nfds_t, UnsafePointer<timespec>?, UnsafeRawPointer?) -> Int32

    /// glibc's `ppoll`, which Swift's Glibc module hides behind `_GNU_SOURCE`: looked up once.
    static let ppoll: PPoll = {
        guard let symbol = dlsym(nil, "ppoll") else { fatalError("glibc has no ppoll") }
        return unsafeBitCast(symbol, to: PPoll.self)
    }()

    /// Interrupts a ``receive(timeout:)`` in progress (or the next one).
    public func wake() {
        var one: UInt8 = 1
        _ = write(wakeWriteFD, &one, 1)
    }

    /// Closes the socket. Idempotent; call it once no thread is in ``receive(timeout:)``.
    public func close() {
        let wasOpen = closed.withLock { closed in
            defer { closed = true }
            return !closed
        }
        guard wasOpen else { return }
        Glibc.close(fd)
        Glibc.close(wakeFD)
        Glibc.close(wakeWriteFD)
    }

    /// `SO_TIMESTAMPNS` and its control message type, `SCM_TIMESTAMPNS` (glibc names them
    /// through macros Swift does not import).
    static let soTimestampNS: Int32 = 35

    /// The current CLOCK_REALTIME in nanoseconds, the clock of `Datagram.receivedAt`.
    public static func realtimeNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    private func readDatagram() -> Datagram? {
        // The largest VRRP packet (VRRPv3 over IPv6 with 255 addresses) is about 4.1 kB.
        var buffer = [UInt8](repeating: 0, count: 9216)
        var control = [UInt8](repeating: 0, count: 256)
        var from = sockaddr_in6()   // large enough for sockaddr_in too
        let (count, controlLength, fromLength): (Int, Int, socklen_t) = buffer.withUnsafeMutableBytes { payload in
            control.withUnsafeMutableBytes { controlBytes in
                withUnsafeMutablePointer(to: &from) { fromPointer in
                    var iov = iovec(iov_base: payload.baseAddress, iov_len: payload.count)
                    return withUnsafeMutablePointer(to: &iov) { iovPointer in
                        var header = msghdr()
                        header.msg_name = UnsafeMutableRawPointer(fromPointer)
                        header.msg_namelen = socklen_t(MemoryLayout<sockaddr_in6>.size)
                        header.msg_iov = iovPointer
                        header.msg_iovlen = 1
                        header.msg_control = controlBytes.baseAddress
                        header.msg_controllen = controlBytes.count
                        let n = recvmsg(fd, &header, Int32(MSG_DONTWAIT))
                        return (n, header.msg_controllen, header.msg_namelen)
                    }
                }
            }
        }
        guard count > 0 else { return nil }
        let receivedAt = ControlMessage.decode(control[..<controlLength]).first { $0.level == SOL_SOCKET && $0.type == Self.soTimestampNS && $0.data.count >= 16 }
            .map { _, _, data in
                data.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) * 1_000_000_000 + $0.loadUnaligned(fromByteOffset: 8, as: Int64.self) }
            }
        switch family {
        case .v4:
            // The IPv4 header comes first; its fields are checked by the caller.
            guard let (header, payload) = try? IPv4Header.parse(buffer[..<count]), header.ipProtocol == VRRPWire.ipProtocol else {
                return nil
            }
            return Datagram(message: Array(payload), source: header.source, destination: header.destination, ttl: header.ttl, receivedAt: receivedAt)
        case .v6:
            guard fromLength >= socklen_t(MemoryLayout<sockaddr_in6>.size) else { return nil }
            let source = IPAddress(from.sin6_addr)
            var destination: IPAddress? = nil
            var hopLimit: UInt8? = nil
            for (level, type, data) in ControlMessage.decode(control[..<controlLength]) where level == Int32(IPPROTO_IPV6) {
                if type == IPV6_PKTINFO, data.count >= 16 {
                    destination = IPAddress(family: .v6, wire: data.prefix(16))
                } else if type == IPV6_HOPLIMIT, data.count >= 4 {
                    let value = data.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
                    hopLimit = UInt8(clamping: value)
                }
            }
            guard let destination, let hopLimit else { return nil }
            return Datagram(message: Array(buffer[..<count]), source: source, destination: destination, ttl: hopLimit, receivedAt: receivedAt)
        }
    }
}

/// Why a VRRP socket could not be opened or used: the step, and errno when there is one.
public struct VRRPSocketError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let interface = Code(rawValue: "interface")
        public static let socket = Code(rawValue: "socket")
        public static let socketOption = Code(rawValue: "socketOption")
        public static let send = Code(rawValue: "send")
        public static let address = Code(rawValue: "address")
        public var description: String { rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.message = errno.map { "\(message): \(String(cString: strerror($0))) (errno \($0))" } ?? message
    }

    public var description: String { message }
}

/// `cmsghdr` framing by hand (glibc's CMSG_* are macros Swift cannot import): a `size_t` length,
/// an `int` level and an `int` type, then the data, each message padded to `size_t` alignment.
enum ControlMessage {
    static let headerSize = MemoryLayout<Int>.size + 8
    static func align(_ n: Int) -> Int { (n + MemoryLayout<Int>.size - 1) & ~(MemoryLayout<Int>.size - 1) }

    static func encode<Info>(level: Int32, type: Int32, _ info: Info) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: headerSize + align(MemoryLayout<Info>.size))
        let length = headerSize + MemoryLayout<Info>.size
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: length, toByteOffset: 0, as: Int.self)
            raw.storeBytes(of: level, toByteOffset: MemoryLayout<Int>.size, as: Int32.self)
            raw.storeBytes(of: type, toByteOffset: MemoryLayout<Int>.size + 4, as: Int32.self)
            withUnsafeBytes(of: info) { source in
                for i in 0..<source.count { raw[headerSize + i] = source[i] }
            }
        }
        return bytes
    }

    static func decode(_ control: ArraySlice<UInt8>) -> [(level: Int32, type: Int32, data: [UInt8])] {
        let bytes = Array(control)
        var out: [(Int32, Int32, [UInt8])] = []
        var offset = 0
        while offset + headerSize <= bytes.count {
            let (length, level, type) = bytes.withUnsafeBytes { raw in
                (raw.loadUnaligned(fromByteOffset: offset, as: Int.self),
                 raw.loadUnaligned(fromByteOffset: offset + MemoryLayout<Int>.size, as: Int32.self),
                 raw.loadUnaligned(fromByteOffset: offset + MemoryLayout<Int>.size + 4, as: Int32.self))
            }
            guard length >= headerSize, offset + length <= bytes.count else { break }
            out.append((level, type, Array(bytes[(offset + headerSize)..<(offset + length)])))
            offset += align(length)
        }
        return out
    }
}

/// `struct in6_pktinfo` (glibc declares it only with _GNU_SOURCE): the same layout.
struct In6PacketInfo {
    var address: in6_addr
    var interfaceIndex: UInt32
}

extension in6_addr {
    init(_ address: IPAddress) {
        self.init()
        let wire = address.wireBytes
        withUnsafeMutableBytes(of: &self) { raw in for i in 0..<16 { raw[i] = wire[i] } }
    }
}

extension IPAddress {
    init(_ address: in6_addr) {
        let bytes = withUnsafeBytes(of: address) { Array($0) }
        self.init(family: .v6, wire: bytes)
    }
}

/// The interface's own addresses, read with `getifaddrs`.
public enum InterfaceAddresses {
    /// The address advertisements go out from: for IPv4 the interface's first address (its
    /// primary; labelled aliases such as `eth0:vrrp` are another name to getifaddrs and are
    /// skipped), for IPv6 its link-local address. `excluding`: the virtual addresses, never a
    /// source.
    public static func source(family: IPAddress.Family, interface: String, excluding: Set<IPAddress> = []) -> IPAddress? {
        all(interface: interface).first { address in
            guard address.family == family, !excluding.contains(address) else { return false }
            return family == .v4 || address.value >> 118 == 0x3FA   // fe80::/10
        }
    }

    /// Every IPv4 and IPv6 address on `interface`, in the kernel's order. getifaddrs names an
    /// IPv4 address by its label: `includingLabels` also takes those labelled `INTERFACE:…`
    /// (Baton adds its VIPs as `eth0:vrrp`).
    public static func all(interface: String, includingLabels: Bool = false) -> [IPAddress] {
        var list: UnsafeMutablePointer<ifaddrs>? = nil
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var out: [IPAddress] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let cName = entry.pointee.ifa_name, let address = entry.pointee.ifa_addr else { continue }
            let name = String(cString: cName)
            guard name == interface || (includingLabels && name.hasPrefix(interface + ":")) else { continue }
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                let v4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                out.append(IPAddress(family: .v4, value: UInt128(UInt32(bigEndian: v4))))
            case AF_INET6:
                out.append(address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { IPAddress($0.pointee.sin6_addr) })
            default:
                break
            }
        }
        return out
    }
}
