import BatonAPI

/// Hands each EgressTunnel a unique packet mark, tunnel addresses and MAC. Values are derived
/// from the node name (so a tunnel that is recreated usually gets the same ones back) and probed
/// forward on collision, so they are unique among the tunnels this allocator knows.
///
/// Not thread-safe: the egress controller's loop owns it.
struct EgressTunnelAllocator {
    struct Allocation: Sendable, Hashable {
        var mark: String
        var mac: String
        var ipv4: String?
        var ipv6: String?
    }

    let markBase: UInt32
    let ipv4Hosts: IPRange?
    let ipv6Hosts: IPRange?

    private(set) var byNode: [String: Allocation] = [:]
    private var marks: Set<UInt32> = []
    private var macs: Set<String> = []
    private var ips: Set<IPAddress> = []

    init(settings: FeatureSettings) {
        markBase = settings.markBase
        ipv4Hosts = Self.hosts(settings.tunnelIpv4Subnet, family: .v4)
        ipv6Hosts = Self.hosts(settings.tunnelIpv6Subnet, family: .v6)
    }

    /// The usable addresses of a subnet: without the network and broadcast addresses when it has more than two.
    static func hosts(_ cidr: String, family: IPAddress.Family) -> IPRange? {
        guard let prefix = IPPrefix(cidr), prefix.address.family == family else { return nil }
        let r = prefix.range
        guard r.count > 2 else { return r }
        return IPRange(first: IPAddress(family: family, value: r.first.value + 1),
                       last: IPAddress(family: family, value: r.last.value - 1))
    }

    /// Records what a stored tunnel already holds, so nobody else gets it. Returns the allocation
    /// the tunnel still lacks parts of (filled in), or nil when the stored status is complete.
    mutating func reconcile(node: String, status: EgressTunnelStatus?) -> Allocation? {
        if let existing = byNode[node] {
            return Self.isComplete(status, as: existing, needV4: ipv4Hosts != nil, needV6: ipv6Hosts != nil) ? nil : existing
        }
        var a = Allocation(mark: "", mac: "", ipv4: nil, ipv6: nil)
        // Keep what the store shows when it is free; otherwise allocate.
        if let v = status?.markValue, !marks.contains(v) { a.mark = status!.mark! }
        if let mac = status?.tunnel?.mac, !mac.isEmpty, !macs.contains(mac.lowercased()) { a.mac = mac }
        if let t = status?.tunnel?.ipv4, let ip = IPAddress(t), !ips.contains(ip) { a.ipv4 = t }
        if let t = status?.tunnel?.ipv6, let ip = IPAddress(t), !ips.contains(ip) { a.ipv6 = t }
        let h = Self.hash(node)
        if a.mark.isEmpty {
            var off = UInt32(truncatingIfNeeded: h) & 0x00FF_FFFF
            while marks.contains(markBase &+ off) { off = (off &+ 1) & 0x00FF_FFFF }
            a.mark = "0x" + String(markBase &+ off, radix: 16)
        }
        if a.mac.isEmpty {
            var x = h >> 24
            var mac: String
            repeat {
                // 0x66: locally administered, unicast (as egressgateway's tunnels show).
                let bytes = [0x66] + (0..<5).map { UInt8(truncatingIfNeeded: x >> (8 * UInt64($0))) }
                mac = bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: ":")
                x &+= 1
            } while macs.contains(mac)
            a.mac = mac
        }
        if a.ipv4 == nil, let r = ipv4Hosts { a.ipv4 = allocateIP(in: r, hash: h)?.description }
        if a.ipv6 == nil, let r = ipv6Hosts { a.ipv6 = allocateIP(in: r, hash: h >> 7)?.description }
        reserve(node, a)
        return Self.isComplete(status, as: a, needV4: ipv4Hosts != nil, needV6: ipv6Hosts != nil) ? nil : a
    }

    /// Frees a deleted tunnel's values.
    mutating func release(_ node: String) {
        guard let a = byNode.removeValue(forKey: node) else { return }
        if let v = UInt32(a.mark.dropFirst(2), radix: 16) { marks.remove(v) }
        macs.remove(a.mac.lowercased())
        for t in [a.ipv4, a.ipv6] { if let t, let ip = IPAddress(t) { ips.remove(ip) } }
    }

    private mutating func reserve(_ node: String, _ a: Allocation) {
        byNode[node] = a
        if let v = UInt32(a.mark.dropFirst(2), radix: 16) { marks.insert(v) }
        macs.insert(a.mac.lowercased())
        for t in [a.ipv4, a.ipv6] { if let t, let ip = IPAddress(t) { ips.insert(ip) } }
    }

    private func allocateIP(in r: IPRange, hash: UInt64) -> IPAddress? {
        let count = r.count
        guard count > 0, count != UInt128.max else { return r.first }
        var off = UInt128(hash) % count
        for _ in 0..<min(count, 1 << 20) {
            let ip = IPAddress(family: r.family, value: r.first.value + off)
            if !ips.contains(ip) { return ip }
            off = (off + 1) % count
        }
        return nil
    }

    static func isComplete(_ s: EgressTunnelStatus?, as a: Allocation, needV4: Bool, needV6: Bool) -> Bool {
        guard let s else { return false }
        return s.mark == a.mark && s.tunnel?.mac == a.mac && (!needV4 || s.tunnel?.ipv4 == a.ipv4)
            && (!needV6 || s.tunnel?.ipv6 == a.ipv6)
    }

    /// FNV-1a, 64-bit: stable across processes (unlike `Hasher`).
    static func hash(_ s: String) -> UInt64 { StableHash.fnv1a(s) }
}
