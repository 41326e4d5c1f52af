import BatonAPI
import BatonDataplane
#if canImport(Glibc)
import Glibc
#endif

/// The IPv6 counterpart of gratuitous ARP (RFC 4861 §7.2.6): an unsolicited Neighbor
/// Advertisement for a virtual address to all nodes (ff02::1), with the Override flag and the
/// interface's MAC as target link-layer address, hop limit 255. Sent on a raw ICMPv6 socket,
/// whose checksum the kernel computes. Needs CAP_NET_RAW.
public enum UnsolicitedNeighborAdvertisement {
    static let allNodes = IPAddress(family: .v6, value: 0xFF02_0000_0000_0000_0000_0000_0000_0001)

    /// The ICMPv6 message (checksum zero, for the kernel to fill in).
    public static func message(target: IPAddress, mac: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = [136, 0, 0, 0]        // type Neighbor Advertisement, code 0, checksum
        bytes += [0x20, 0, 0, 0]                   // R=0, S=0, O=1
        bytes += target.wireBytes
        bytes += [2, 1] + mac.prefix(6)            // option: target link-layer address, 8 bytes
        return bytes
    }

    /// Sends one advertisement for `target` on `interface`.
    public static func send(_ target: IPAddress, interface: String) throws(VRRPSocketError) {
        guard target.family == .v6 else { return }
        let index = if_nametoindex(interface)
        guard index != 0 else { throw VRRPSocketError(.interface, "no interface \(interface)") }
        let mac: [UInt8]
        do { mac = try GratuitousARP.hardwareAddress(interface) } catch {
            throw VRRPSocketError(.interface, "cannot read the MAC address of \(interface): \(error)")
        }
        let fd = socket(AF_INET6, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_ICMPV6))
        guard fd >= 0 else { throw VRRPSocketError(.socket, "cannot open a raw ICMPv6 socket (needs CAP_NET_RAW)", errno: errno) }
        defer { close(fd) }
        var hops: Int32 = 255
        var ifindex = Int32(index)
        guard setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_HOPS, &hops, 4) == 0,
              setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_IF, &ifindex, 4) == 0 else {
            throw VRRPSocketError(.socketOption, "cannot set the hop limit or interface of an ICMPv6 socket on \(interface)", errno: errno)
        }
        var to = sockaddr_in6()
        to.sin6_family = sa_family_t(AF_INET6)
        to.sin6_addr = in6_addr(allNodes)
        to.sin6_scope_id = index
        let bytes = message(target: target, mac: mac)
        let sent = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &to) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        }
        guard sent == bytes.count else {
            throw VRRPSocketError(.send, "cannot send an unsolicited neighbor advertisement for \(target) on \(interface)", errno: errno)
        }
    }
}
