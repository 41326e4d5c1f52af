import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What the lab's LAN carries for one EIP, seen from one namespace's interface: who answers ARP
/// for the EIP (two holders answering at once is a split brain) and which MAC the echo service's
/// datagrams arrive from. Timestamps are CLOCK_MONOTONIC nanoseconds, the clock `LabEcho` and
/// `LabSender` log with, so the three logs merge into one failover timeline.
public enum LabWire {
    /// Logs, one line per frame, until the process is killed (needs CAP_NET_RAW):
    ///
    ///     NANOS arp reply|garp|request SENDER_MAC    ARP whose sender IP is `eip`
    ///     NANOS udp SOURCE_MAC SOURCE_IP             IPv4 UDP to `udpPort`
    ///
    /// Frames `interface` itself sent are not logged. With a `probeInterval`, a second thread
    /// broadcasts "who-has EIP tell OWN_IPV4" from the interface's MAC at that period, so every
    /// node that answers for the EIP shows up as an `arp reply` line.
    public static func watch(interface: String, eip: String, udpPort: UInt16, probeInterval: Duration?) throws -> Never {
        var eipAddress = in_addr()
        guard inet_pton(AF_INET, eip, &eipAddress) == 1 else { throw LabError("\(eip) is not an IPv4 address") }
        let eipBytes = withUnsafeBytes(of: eipAddress) { Array($0) }
        let index = if_nametoindex(interface)
        guard index != 0 else { throw LabError("no interface \(interface) in this namespace") }

        let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), Int32(ethPAll.bigEndian))
        guard fd >= 0 else { throw LabError("cannot open a packet socket (needs CAP_NET_RAW): errno \(errno)") }
        let address = linkAddress(protocol: ethPAll, index: index, destination: nil)
        let rc = address.withUnsafeBytes { bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(address.count)) }
        guard rc == 0 else { throw LabError("cannot bind a packet socket to \(interface): errno \(errno)") }

        if let probeInterval {
            let period = LabSender.nanos(probeInterval)
            guard period > 0 else { throw LabError("the ARP probe interval must be positive") }
            let frame = try probeFrame(interface: interface, eip: eipBytes)
            let probe = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), Int32(ethPARP.bigEndian))
            guard probe >= 0 else { throw LabError("cannot open a packet socket (needs CAP_NET_RAW): errno \(errno)") }
            let destination = linkAddress(protocol: ethPARP, index: index, destination: broadcast)
            let thread = Thread { probeForever(fd: probe, frame: frame, address: destination, period: period) }
            thread.name = "arp-probe"
            thread.start()
        }

        var buffer = [UInt8](repeating: 0, count: 512)  // headers only; longer frames are cut
        var from = [UInt8](repeating: 0, count: 128)    // sockaddr_ll, with room for long hardware addresses
        while true {
            var fromLength = socklen_t(from.count)
            let n = buffer.withUnsafeMutableBytes { b in
                from.withUnsafeMutableBytes { f in
                    recvfrom(fd, b.baseAddress, b.count, 0, f.baseAddress!.assumingMemoryBound(to: sockaddr.self), &fromLength)
                }
            }
            let now = LabEcho.monotonicNanos()
            guard n > 0 else { continue }
            guard fromLength < 11 || from[10] != packetOutgoing else { continue }  // sll_pkttype
            guard let line = describe(frame: buffer[0..<n], eip: eipBytes, udpPort: udpPort) else { continue }
            FileHandle.standardOutput.write(Data("\(now) \(line)\n".utf8))
        }
    }

    /// The log line (without its timestamp) for one Ethernet frame, or nil when the frame is not
    /// ARP from `eip` or IPv4 UDP to `udpPort`.
    static func describe(frame: ArraySlice<UInt8>, eip: [UInt8], udpPort: UInt16) -> String? {
        let f = Array(frame)
        guard f.count >= 14 else { return nil }
        switch UInt16(f[12]) << 8 | UInt16(f[13]) {
        case ethPARP:
            // Ethernet/IPv4 ARP: htype, ptype, hlen, plen, oper, sha, spa, tha, tpa.
            guard f.count >= 42, f[18] == 6, f[19] == 4, Array(f[28..<32]) == eip else { return nil }
            let op = UInt16(f[20]) << 8 | UInt16(f[21])
            let kind = op == 2 ? "reply" : (op == 1 && f[28..<32] == f[38..<42] ? "garp" : "request")
            return "arp \(kind) \(mac(f[22..<28]))"
        case 0x0800:
            guard f.count >= 34, f[14] >> 4 == 4, f[23] == 17 else { return nil }
            let headerLength = Int(f[14] & 0x0f) * 4
            let fragmentOffset = (UInt16(f[20]) << 8 | UInt16(f[21])) & 0x1fff
            let udp = 14 + headerLength
            guard headerLength >= 20, fragmentOffset == 0, f.count >= udp + 4 else { return nil }
            guard UInt16(f[udp + 2]) << 8 | UInt16(f[udp + 3]) == udpPort else { return nil }
            return "udp \(mac(f[6..<12])) \(f[26]).\(f[27]).\(f[28]).\(f[29])"
        default:
            return nil
        }
    }

    /// A broadcast ARP request "who-has EIP tell OWN_IPV4" from the interface's MAC.
    static func probeFrame(interface: String, eip: [UInt8]) throws -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw LabError("cannot open a socket: errno \(errno)") }
        defer { close(fd) }
        var request = ifreq()
        withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { raw in
            for (i, b) in interface.utf8.prefix(Int(IFNAMSIZ) - 1).enumerated() { raw[i] = b }
        }
        guard ioctl(fd, UInt(SIOCGIFHWADDR), &request) == 0 else {
            throw LabError("cannot read the MAC address of \(interface): errno \(errno)")
        }
        let ownMAC = withUnsafeBytes(of: request.ifr_ifru.ifru_hwaddr.sa_data) { Array($0.prefix(6)) }
        guard ioctl(fd, UInt(SIOCGIFADDR), &request) == 0 else {
            throw LabError("\(interface) has no IPv4 address to send ARP probes from: errno \(errno)")
        }
        // sockaddr_in inside struct sockaddr: family (2), port (2), address (4).
        let ownIP = withUnsafeBytes(of: request.ifr_ifru.ifru_addr) { Array($0[4..<8]) }

        var frame = broadcast + ownMAC + [0x08, 0x06]
        frame += [0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]  // Ethernet, IPv4, sizes, request
        frame += ownMAC + ownIP + Array(repeating: 0, count: 6) + eip
        frame += Array(repeating: 0, count: max(0, 60 - frame.count))  // minimum Ethernet payload
        return frame
    }

    /// Sends `frame` every `period` nanoseconds on absolute CLOCK_MONOTONIC deadlines, forever.
    /// Reports on stderr when sending starts failing (for example while the link is down).
    static func probeForever(fd: Int32, frame: [UInt8], address: [UInt8], period: UInt64) -> Never {
        var deadline = LabEcho.monotonicNanos()
        var failing = false
        while true {
            let sent = frame.withUnsafeBytes { buf in
                address.withUnsafeBytes { a in
                    sendto(fd, buf.baseAddress, buf.count, 0, a.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(a.count))
                }
            }
            if sent != frame.count, !failing {
                FileHandle.standardError.write(Data("ARP probe not sent: errno \(errno)\n".utf8))
            }
            failing = sent != frame.count
            deadline += period
            LabSender.sleep(until: deadline)
        }
    }

    /// struct sockaddr_ll (linux/if_packet.h), laid out by hand: family, protocol (network
    /// order), ifindex, hatype, pkttype, halen, addr[8]; 20 bytes.
    static func linkAddress(protocol: UInt16, index: UInt32, destination: [UInt8]?) -> [UInt8] {
        var address = [UInt8](repeating: 0, count: 20)
        withUnsafeBytes(of: UInt16(AF_PACKET)) { for i in 0..<2 { address[i] = $0[i] } }
        withUnsafeBytes(of: `protocol`.bigEndian) { for i in 0..<2 { address[2 + i] = $0[i] } }
        withUnsafeBytes(of: Int32(index)) { for i in 0..<4 { address[4 + i] = $0[i] } }
        if let destination {
            address[11] = UInt8(destination.count)
            for (i, b) in destination.enumerated() { address[12 + i] = b }
        }
        return address
    }

    static func mac(_ bytes: ArraySlice<UInt8>) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }

    static let ethPAll: UInt16 = 0x0003
    static let ethPARP: UInt16 = 0x0806
    static let packetOutgoing: UInt8 = 4
    static let broadcast = [UInt8](repeating: 0xff, count: 6)
}

/// One line of a `LabWire.watch` log.
public struct WireEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case arpReply, garp, arpRequest, udp
    }
    /// CLOCK_MONOTONIC nanoseconds when the watcher read the frame.
    public var nanos: UInt64
    public var kind: Kind
    /// The ARP sender's MAC, or the UDP frame's Ethernet source: the node the frame came from.
    public var mac: String
    /// The IPv4 source of a UDP datagram; nil for ARP.
    public var sourceIP: String?

    public init(nanos: UInt64, kind: Kind, mac: String, sourceIP: String? = nil) {
        self.nanos = nanos
        self.kind = kind
        self.mac = mac
        self.sourceIP = sourceIP
    }
}

/// Reads what `baton lab watch` printed.
public struct WireLog {
    /// The events of a watch log, in the log's order. Only lines that end in a newline count:
    /// a last line without one is one the watcher had not finished writing, and is dropped.
    /// Lines that do not parse are skipped.
    public static func parse(_ text: String) -> [WireEvent] {
        completeLines(text).compactMap { line in
            let f = line.split(separator: " ")
            guard f.count == 4, let nanos = UInt64(f[0]) else { return nil }
            switch (f[1], f[2]) {
            case ("arp", let op):
                let kinds: [Substring: WireEvent.Kind] = ["reply": .arpReply, "garp": .garp, "request": .arpRequest]
                guard let kind = kinds[op], isMAC(f[3]) else { return nil }
                return WireEvent(nanos: nanos, kind: kind, mac: String(f[3]))
            case ("udp", let mac):
                guard isMAC(mac), isIPv4(f[3]) else { return nil }
                return WireEvent(nanos: nanos, kind: .udp, mac: String(mac), sourceIP: String(f[3]))
            default:
                return nil
            }
        }
    }

    static func isMAC(_ text: Substring) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 6 && parts.allSatisfy { $0.count == 2 && UInt8($0, radix: 16) != nil }
    }
}

/// The lines of `text` that end in a newline; the unfinished tail of a log still being written
/// is left out.
func completeLines(_ text: String) -> [Substring] {
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    lines.removeLast()  // after the last newline: empty, or an unfinished line
    return lines.filter { !$0.isEmpty }
}

func isIPv4(_ text: Substring) -> Bool {
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    return parts.count == 4 && parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && UInt8($0) != nil }
}
