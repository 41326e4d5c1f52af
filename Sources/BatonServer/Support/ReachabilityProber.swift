import BatonAPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whether a node's own address answers ICMP echo: the controller's evidence for evicting a
/// silent node before `eipEvictionTimeout` (`HeartbeatMonitor.suspectAfter`).
///
/// It probes only an address on a subnet of one of this machine's interfaces, a node on the
/// server's own LAN, where "the server cannot reach it" means its link or its kernel is gone.
/// Any other address is reported reachable without a packet sent, so eviction waits for the
/// timeout as it would without probes. `count` echo requests go `interval` apart; the first reply
/// decides; none within `interval` after the last means unreachable. Uses an unprivileged ICMP
/// socket where `net.ipv4.ping_group_range` allows one, else a raw socket (CAP_NET_RAW); with
/// neither, every node counts as reachable.
public struct ReachabilityProber: Sendable {
    public var count: Int
    public var interval: Duration

    public init(count: Int = 3, interval: Duration = .milliseconds(25)) {
        self.count = count
        self.interval = interval
    }

    /// Probes `address` off the cooperative pool (the probe blocks for up to count × interval).
    public func reachable(_ address: String) async -> Bool {
        guard let ip = IPAddress(address), ip.family == .v4, Self.isOnLink(ip) else { return true }
        let count = count, interval = interval
        return await withCheckedContinuation { done in
            Thread.detachNewThread { done.resume(returning: Self.echo(ip, count: count, interval: interval)) }
        }
    }

    /// Whether `ip` lies in the subnet of an IPv4 address of one of this machine's interfaces.
    static func isOnLink(_ ip: IPAddress) -> Bool {
        let target = UInt32(truncatingIfNeeded: ip.value)
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return false }
        defer { freeifaddrs(list) }
        var entry: UnsafeMutablePointer<ifaddrs>? = first
        while let e = entry {
            defer { entry = e.pointee.ifa_next }
            guard let a = e.pointee.ifa_addr, a.pointee.sa_family == sa_family_t(AF_INET), let m = e.pointee.ifa_netmask else { continue }
            let address = a.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
            let mask = m.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
            if mask != 0, address & mask == target & mask { return true }
        }
        return false
    }

    /// Sends up to `count` echo requests to `ip`; true at the first reply. A machine where no
    /// ICMP socket can be opened reports true (no evidence, so no early eviction).
    static func echo(_ ip: IPAddress, count: Int, interval: Duration) -> Bool {
        var raw = false
        var fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), Int32(IPPROTO_ICMP))
        if fd < 0 {
            fd = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP))
            raw = true
        }
        guard fd >= 0 else { return true }
        defer { close(fd) }
        var peer = sockaddr_in()
        peer.sin_family = sa_family_t(AF_INET)
        peer.sin_addr.s_addr = UInt32(truncatingIfNeeded: ip.value).bigEndian
        let connected = withUnsafePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return true }
        let identifier = UInt16(truncatingIfNeeded: getpid() ^ Int32(truncatingIfNeeded: fd << 8))
        let step = Int32(interval / .milliseconds(1))
        for seq in 0..<max(1, count) {
            let request = echoRequest(identifier: identifier, sequence: UInt16(seq))
            _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            let deadline = ContinuousClock.now + interval
            while ContinuousClock.now < deadline {
                let left = max(1, Int32((deadline - ContinuousClock.now) / .milliseconds(1)))
                var waiting = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&waiting, 1, min(left, step)) > 0 else { continue }
                var buffer = [UInt8](repeating: 0, count: 1500)
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { continue }
                if isEchoReply(buffer[0..<n], raw: raw, identifier: identifier) { return true }
            }
        }
        return false
    }

    /// An ICMP echo request with its checksum (the kernel rewrites the identifier of an
    /// unprivileged ICMP socket, and accepts our checksum either way).
    static func echoRequest(identifier: UInt16, sequence: UInt16) -> [UInt8] {
        var packet: [UInt8] = [8, 0, 0, 0, UInt8(identifier >> 8), UInt8(identifier & 0xff), UInt8(sequence >> 8), UInt8(sequence & 0xff)]
        packet += Array("baton-hb".utf8)
        var sum: UInt32 = 0
        for i in stride(from: 0, to: packet.count, by: 2) { sum += UInt32(packet[i]) << 8 | UInt32(packet[i + 1]) }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        let checksum = ~UInt16(sum)
        packet[2] = UInt8(checksum >> 8)
        packet[3] = UInt8(checksum & 0xff)
        return packet
    }

    /// An echo reply: on a raw socket after the IPv4 header and with our identifier; on an
    /// unprivileged ICMP socket the kernel delivers only replies to this socket.
    static func isEchoReply(_ bytes: ArraySlice<UInt8>, raw: Bool, identifier: UInt16) -> Bool {
        var icmp = bytes
        if raw {
            guard let first = bytes.first else { return false }
            let headerLength = Int(first & 0x0f) * 4
            guard bytes.count >= headerLength + 8 else { return false }
            icmp = bytes.dropFirst(headerLength)
            let id = UInt16(icmp[icmp.startIndex + 4]) << 8 | UInt16(icmp[icmp.startIndex + 5])
            guard id == identifier else { return false }
        }
        return icmp.count >= 8 && icmp[icmp.startIndex] == 0
    }
}
