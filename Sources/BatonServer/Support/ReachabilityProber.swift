import BatonAPI
import BatonDataplane
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
/// decides; none within `interval` after the last means unreachable. The echoes go through
/// BatonDataplane's `ICMPEchoSocket` (a ping socket, else a raw one); with neither, every node
/// counts as reachable.
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

    /// Sends up to `count` echo requests to `ip`, `interval` apart; true at the first reply to
    /// any of them (a late answer to an earlier one still shows the node is alive). A machine
    /// where no ICMP socket can be opened reports true (no evidence, so no early eviction).
    static func echo(_ ip: IPAddress, count: Int, interval: Duration) -> Bool {
        guard let socket = try? ICMPEchoSocket(ip) else { return true }
        for sequence in 0..<max(1, count) where socket.probe(sequence: UInt16(sequence), timeout: interval, acceptingEarlier: true) {
            return true
        }
        return false
    }
}
