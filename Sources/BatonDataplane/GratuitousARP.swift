import BatonAPI
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Gratuitous ARP, sent from Swift on an `AF_PACKET` socket (no fork of `arping`): a broadcast
/// ARP request whose sender and target are both the EIP, with the interface's MAC, so every
/// host on the LAN updates its ARP cache to the new holder at once.
///
/// One packet socket serves the whole process, opened at the first send and kept: closing a
/// packet socket waits for an RCU grace period (`synchronize_net`, milliseconds), which a VRRP
/// Master that announces on every lower-priority advertisement cannot afford.
public enum GratuitousARP {
    private static let shared = Mutex<Int32?>(nil)

    /// The process's ARP packet socket (unbound: each send names its interface).
    static func packetSocket() throws -> Int32 {
        try shared.withLock { fd in
            if let fd { return fd }
            let opened = socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard opened >= 0 else { throw DataplaneCommandError("cannot open a packet socket (needs CAP_NET_RAW): errno \(errno)") }
            fd = opened
            return opened
        }
    }

    /// Sends one gratuitous ARP for `ip` on `interface`. Needs CAP_NET_RAW.
    public static func send(_ ip: IPAddress, interface: String) throws {
        guard ip.family == .v4 else { return }  // IPv6 announces with unsolicited NA (not built yet)
        let index = if_nametoindex(interface)
        guard index != 0 else { throw DataplaneCommandError("no interface \(interface)") }
        let mac = try hardwareAddress(interface)
        let ethPARP: UInt16 = 0x0806
        let fd = try packetSocket()

        let v4 = UInt32(truncatingIfNeeded: ip.value)
        let ipBytes: [UInt8] = [UInt8(v4 >> 24), UInt8((v4 >> 16) & 0xff), UInt8((v4 >> 8) & 0xff), UInt8(v4 & 0xff)]
        var frame: [UInt8] = Array(repeating: 0xff, count: 6) + mac + [0x08, 0x06]
        frame += [0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]  // Ethernet, IPv4, sizes, request
        frame += mac + ipBytes + Array(repeating: 0, count: 6) + ipBytes
        frame += Array(repeating: 0, count: max(0, 60 - frame.count))  // minimum Ethernet payload

        let address = linkAddress(index: index, protocol: ethPARP, destination: [UInt8](repeating: 0xff, count: 6))
        let sent = frame.withUnsafeBytes { buf in
            address.withUnsafeBytes { a in
                sendto(fd, buf.baseAddress, buf.count, 0, a.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(20))
            }
        }
        guard sent == frame.count else { throw DataplaneCommandError("cannot send gratuitous ARP for \(ip) on \(interface): errno \(errno)") }
    }

    /// A `struct sockaddr_ll` (linux/if_packet.h), laid out by hand: family, protocol (network
    /// order), ifindex, hatype, pkttype, halen, addr[8]; 20 bytes.
    static func linkAddress(index: UInt32, protocol: UInt16, destination: [UInt8]) -> [UInt8] {
        var address = [UInt8](repeating: 0, count: 20)
        withUnsafeBytes(of: UInt16(AF_PACKET)) { for i in 0..<2 { address[i] = $0[i] } }
        withUnsafeBytes(of: `protocol`.bigEndian) { for i in 0..<2 { address[2 + i] = $0[i] } }
        withUnsafeBytes(of: Int32(index)) { for i in 0..<4 { address[4 + i] = $0[i] } }
        address[11] = UInt8(destination.count)
        for (i, b) in destination.prefix(8).enumerated() { address[12 + i] = b }
        return address
    }

    /// The interface's MAC address (SIOCGIFHWADDR).
    public static func hardwareAddress(_ interface: String) throws -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw DataplaneCommandError("cannot open a socket: errno \(errno)") }
        defer { close(fd) }
        var request = ifreq()
        withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { raw in
            for (i, b) in interface.utf8.prefix(Int(IFNAMSIZ) - 1).enumerated() { raw[i] = b }
        }
        guard ioctl(fd, UInt(SIOCGIFHWADDR), &request) == 0 else {
            throw DataplaneCommandError("cannot read the MAC address of \(interface): errno \(errno)")
        }
        return withUnsafeBytes(of: request.ifr_ifru.ifru_hwaddr.sa_data) { Array($0.prefix(6)) }
    }
}
