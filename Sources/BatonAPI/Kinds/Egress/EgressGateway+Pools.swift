/// EIP pool arithmetic with egressgateway's reading of a pool entry.
public enum EgressPool {
    /// The addresses one pool entry stands for: a single IP, a range `a-b` (a <= b), or a CIDR.
    /// As in egressgateway, an IPv4 CIDR of more than two addresses leaves out its network and
    /// broadcast addresses (`10.6.1.0/30` is 10.6.1.1-10.6.1.2); an IPv6 CIDR keeps them all.
    public static func entry(_ text: String) -> IPRange? {
        guard let r = IPSyntax.poolEntry(text) else { return nil }
        if text.contains("/"), r.family == .v4, r.count > 2 {
            return IPRange(first: IPAddress(family: .v4, value: r.first.value + 1),
                           last: IPAddress(family: .v4, value: r.last.value - 1))
        }
        return r
    }

    /// Sorted, non-overlapping, non-adjacent ranges covering exactly the addresses of `ranges`.
    public static func merge(_ ranges: [IPRange]) -> [IPRange] {
        var out: [IPRange] = []
        for r in ranges.sorted(by: { ($0.family == .v4 ? 0 : 1, $0.first.value) < ($1.family == .v4 ? 0 : 1, $1.first.value) }) {
            if let last = out.last, last.family == r.family,
               last.last.value == UInt128.max || r.first.value <= last.last.value + 1 {
                if r.last.value > last.last.value { out[out.count - 1] = IPRange(first: last.first, last: r.last)! }
            } else {
                out.append(r)
            }
        }
        return out
    }

    /// How many addresses `ranges` hold (after merging), saturating at UInt128.max.
    public static func size(_ ranges: [IPRange]) -> UInt128 {
        var total: UInt128 = 0
        for r in merge(ranges) {
            let (sum, overflow) = total.addingReportingOverflow(r.count)
            total = overflow ? UInt128.max : sum
        }
        return total
    }

    /// The first address that both range lists hold, if any.
    public static func firstOverlap(_ a: [IPRange], _ b: [IPRange]) -> IPAddress? {
        var best: IPAddress?
        for x in a {
            for y in b where x.overlaps(y) {
                let start = x.first.value > y.first.value ? x.first : y.first
                if best.map({ start < $0 }) ?? true { best = start }
            }
        }
        return best
    }
}

extension EgressGatewaySpec {
    /// The entries of one family's pool, as written.
    public func poolEntries(family: IPAddress.Family) -> [String] {
        (family == .v4 ? ippools?.ipv4 : ippools?.ipv6) ?? []
    }

    /// The pool of one family as merged ranges. Malformed entries and entries of the other
    /// family are left out (validation refuses them).
    public func poolRanges(family: IPAddress.Family) -> [IPRange] {
        EgressPool.merge(poolEntries(family: family).compactMap(EgressPool.entry).filter { $0.family == family })
    }

    /// How many EIPs the family's pool holds.
    public func poolSize(family: IPAddress.Family) -> UInt128 {
        EgressPool.size(poolRanges(family: family))
    }

    /// Whether `ip` is in the pool of its family.
    public func contains(_ ip: IPAddress) -> Bool {
        poolRanges(family: ip.family).contains { $0.contains(ip) }
    }

    /// Whether the gateway has pools of both families.
    public var isDualStack: Bool { !poolEntries(family: .v4).isEmpty && !poolEntries(family: .v6).isEmpty }

    /// The family's default EIP: `ipv4DefaultEIP`/`ipv6DefaultEIP` when set, otherwise the pool's
    /// lowest address (egressgateway's mutating webhook picks one at random and writes it into
    /// the spec; Baton leaves the spec as applied and picks deterministically).
    public func defaultEIP(family: IPAddress.Family) -> IPAddress? {
        let written = family == .v4 ? ippools?.ipv4DefaultEIP : ippools?.ipv6DefaultEIP
        if let written, !written.isEmpty { return IPAddress(written) }
        return poolRanges(family: family).first?.first
    }

    /// `status.ipUsage` for these pools when the addresses in `allocated` are taken. Addresses
    /// outside the pools, and repeats, do not count. Sizes beyond `Int.max` print as `Int.max`.
    public func ipUsage(allocated: some Sequence<IPAddress>) -> EgressGatewayStatus.IPUsage {
        // Each family's pool is parsed once, not once per address.
        let ranges4 = poolRanges(family: .v4), ranges6 = poolRanges(family: .v6)
        var used4 = Set<IPAddress>(), used6 = Set<IPAddress>()
        for ip in allocated {
            if ip.family == .v4 {
                if ranges4.contains(where: { $0.contains(ip) }) { used4.insert(ip) }
            } else if ranges6.contains(where: { $0.contains(ip) }) {
                used6.insert(ip)
            }
        }
        func clamp(_ n: UInt128) -> Int { n > UInt128(Int.max) ? Int.max : Int(n) }
        let v4 = EgressPool.size(ranges4), v6 = EgressPool.size(ranges6)
        let n4 = UInt128(used4.count), n6 = UInt128(used6.count)
        return EgressGatewayStatus.IPUsage(ipv4Total: clamp(v4), ipv4Free: clamp(v4 - min(v4, n4)),
                                          ipv6Total: clamp(v6), ipv6Free: clamp(v6 - min(v6, n6)))
    }
}
