import BatonAPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Address conflict detection before an EIP is bound (RFC 5227's probe): an ARP request for the
/// EIP with sender address 0.0.0.0, so no host's cache changes, then a short wait for any other
/// machine answering for it. The old holder of an EIP answers until its own fence ends its lease
/// (`EgressFence`), so a new holder that waits for silence never puts a second node on the EIP,
/// whatever made the controller move it early. Needs CAP_NET_RAW.
public enum ARPProbe {
    /// The EIPs among `ips` (IPv4; others are ignored) that another MAC answered for on `interface`
    /// within `wait` of one probe each.
    public static func answered(_ ips: Set<IPAddress>, interface: String, wait: Duration) throws -> Set<IPAddress> {
        let targets = Dictionary(uniqueKeysWithValues: ips.filter { $0.family == .v4 }.map { (bytes($0), $0) })
        guard !targets.isEmpty else { return [] }
        let index = if_nametoindex(interface)
        guard index != 0 else { throw DataplaneCommandError("no interface \(interface)") }
        let mac = try GratuitousARP.hardwareAddress(interface)
        let ethPARP: UInt16 = 0x0806
        let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), Int32(ethPARP.bigEndian))
        guard fd >= 0 else { throw DataplaneCommandError("cannot open a packet socket (needs CAP_NET_RAW): errno \(errno)") }
        defer { close(fd) }
        var link = GratuitousARP.linkAddress(index: index, protocol: ethPARP, destination: [UInt8](repeating: 0xff, count: 6))
        let bound = link.withUnsafeMutableBytes { bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(20)) }
        guard bound == 0 else { throw DataplaneCommandError("cannot bind a packet socket to \(interface): errno \(errno)") }

        for target in targets.keys {
            var frame: [UInt8] = Array(repeating: 0xff, count: 6) + mac + [0x08, 0x06]
            frame += [0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]  // Ethernet, IPv4, sizes, request
            frame += mac + [0, 0, 0, 0] + Array(repeating: 0, count: 6) + target
            frame += Array(repeating: 0, count: max(0, 60 - frame.count))
            let sent = frame.withUnsafeBytes { buf in
                link.withUnsafeBytes { a in
                    sendto(fd, buf.baseAddress, buf.count, 0, a.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(20))
                }
            }
            guard sent == frame.count else { throw DataplaneCommandError("cannot send an ARP probe on \(interface): errno \(errno)") }
        }

        var found: Set<IPAddress> = []
        let deadline = ContinuousClock.now + wait
        var buffer = [UInt8](repeating: 0, count: 2048)
        while ContinuousClock.now < deadline, found.count < targets.count {
            let left = max(1, Int32((deadline - ContinuousClock.now) / .milliseconds(1)))
            var waiting = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&waiting, 1, left) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0, let ip = answer(buffer[0..<n], ownMAC: mac).flatMap({ targets[$0] }) else { continue }
            found.insert(ip)
        }
        return found
    }

    /// The sender address of an ARP reply (or request) in `frame` from a MAC other than `ownMAC`.
    static func answer(_ frame: ArraySlice<UInt8>, ownMAC: [UInt8]) -> [UInt8]? {
        let f = Array(frame)
        guard f.count >= 42, f[12] == 0x08, f[13] == 0x06, f[20] == 0x00, f[21] == 0x02 else { return nil }
        guard Array(f[22..<28]) != ownMAC else { return nil }
        let sender = Array(f[28..<32])
        return sender == [0, 0, 0, 0] ? nil : sender
    }

    static func bytes(_ ip: IPAddress) -> [UInt8] {
        let v4 = UInt32(truncatingIfNeeded: ip.value)
        return [UInt8(v4 >> 24), UInt8((v4 >> 16) & 0xff), UInt8((v4 >> 8) & 0xff), UInt8(v4 & 0xff)]
    }
}
