import BatonAPI
import BatonCore

/// The virtual MAC interface of a `--vmac` instance, as keepalived 2.2.7's `use_vmac` makes it
/// (`vrrp_vmac.c`, `vrrp_if_config.c`): a macvlan in private mode on the instance's interface,
/// with the VRRP virtual MAC 00:00:5e:00:01:VRID (IPv4) or 00:00:5e:00:02:VRID (IPv6), no
/// address of its own generated, named `vrrp.VRID`. The virtual addresses live on it, and the
/// advertisements and gratuitous ARPs / unsolicited NAs leave from it, so the LAN learns the
/// virtual MAC and a failover changes no ARP or neighbour cache. Pure: what to create, not
/// creating it.
public struct VRRPVirtualMAC: Sendable, Hashable, CustomStringConvertible {
    /// The macvlan's name.
    public let name: String
    /// The interface it sits on (the instance's `interface`).
    public let parent: String
    public let vrid: UInt8
    public let family: IPAddress.Family

    /// RFC 9568 §7.3: 00-00-5E-00-01-{VRID} for IPv4, 00-00-5E-00-02-{VRID} for IPv6.
    public var address: [UInt8] { [0x00, 0x00, 0x5E, 0x00, family == .v4 ? 0x01 : 0x02, vrid] }

    /// `00:00:5e:00:01:33`.
    public var addressText: String {
        address.map { b in let h = String(b, radix: 16); return h.count == 1 ? "0" + h : h }.joined(separator: ":")
    }

    public var description: String { "\(name) (\(addressText) on \(parent))" }

    /// The macvlans of the instances that use one, by instance name, named as keepalived names
    /// them (`create_vmac_name`): `vrrp.VRID`; when an earlier instance of this speaker already
    /// took that name, `vrrp6.VRID` for IPv6 (keepalived's second choice), then `vrrp1.VRID`,
    /// `vrrp2.VRID`, ...
    public static func plan(_ instances: [VRRPSpeaker.InstanceConfiguration]) -> [String: VRRPVirtualMAC] {
        var taken: Set<String> = []
        var plan: [String: VRRPVirtualMAC] = [:]
        for instance in instances where instance.virtualMAC {
            var candidates = ["vrrp.\(instance.vrid)"]
            if instance.family == .v6 { candidates.append("vrrp6.\(instance.vrid)") }
            candidates += (1...99).filter { instance.family == .v4 || $0 != 6 }.map { "vrrp\($0).\(instance.vrid)" }
            let name = candidates.first { !taken.contains($0) }!
            taken.insert(name)
            plan[instance.name] = VRRPVirtualMAC(name: name, parent: instance.interface, vrid: instance.vrid, family: instance.family)
        }
        return plan
    }

    /// The `ip -batch` lines that create it and bring it up: macvlan mode private (so that it
    /// also receives frames with its own source MAC), the virtual MAC, `addrgenmode none` (no
    /// link-local address derived from the virtual MAC, RFC 9568 §7.4). For IPv6, `linkLocal`
    /// (the parent's link-local address, the advertisements' source) is added to it, as
    /// keepalived does.
    public func addCommands(linkLocal: IPAddress?) -> [String] {
        var lines = [
            "link add link \(parent) name \(name) address \(addressText) type macvlan mode private",
            "link set dev \(name) addrgenmode none",
            "link set dev \(name) up",
        ]
        if family == .v6, let linkLocal { lines.append("address add \(linkLocal)/64 dev \(name) nodad") }
        return lines
    }

    /// The sysctls (paths under /proc/sys) keepalived sets on an IPv4 virtual MAC interface:
    /// answer ARP for its own addresses only (`arp_ignore` 1), accept packets from a local
    /// source, no reverse-path filter (the advertisements it receives come from hosts routed
    /// through the parent), promote secondaries; and no IPv6 (nothing of that family on it).
    public var sysctls: [(path: String, value: String)] {
        guard family == .v4 else { return [] }
        return [
            ("net/ipv4/conf/\(name)/arp_ignore", "1"),
            ("net/ipv4/conf/\(name)/accept_local", "1"),
            ("net/ipv4/conf/\(name)/rp_filter", "0"),
            ("net/ipv4/conf/\(name)/promote_secondaries", "1"),
            ("net/ipv6/conf/\(name)/disable_ipv6", "1"),
        ]
    }

    /// The sysctls keepalived sets on the parent of an IPv4 virtual MAC interface (and restores
    /// when the last one goes): `arp_ignore` 1 and `arp_filter` 1, so that the parent stops
    /// answering ARP for the virtual addresses with its own MAC.
    public static func parentSysctls(_ parent: String) -> [(path: String, value: String)] {
        [("net/ipv4/conf/\(parent)/arp_ignore", "1"), ("net/ipv4/conf/\(parent)/arp_filter", "1")]
    }

    /// keepalived's `clear_rp_filter`: `net.ipv4.conf.all.rp_filter` overrides the virtual MAC
    /// interface's 0 (the kernel uses the larger), so when it is set, move it onto `default` and
    /// every interface (each keeps the larger of its own value and `all`'s) and clear `all`.
    /// - Parameter current: the values now, by path (`net/ipv4/conf/all/rp_filter`, ...).
    /// - Returns: the writes, in order; none when `all` is 0.
    public static func rpFilterWrites(current: [String: String]) -> [(path: String, value: String)] {
        let allPath = "net/ipv4/conf/all/rp_filter"
        guard let all = current[allPath].flatMap({ Int($0) }), all != 0 else { return [] }
        var writes: [(path: String, value: String)] = []
        for path in current.keys.sorted() where path != allPath {
            if let value = Int(current[path]!), value < all { writes.append((path, "\(all)")) }
        }
        return writes + [(allPath, "0")]
    }
}

/// The nftables table that admits VRRP for a speaker (OpenShift's `IPTABLES_CHAIN`, or
/// `--nft-admit`): a table of Baton's own in the `inet` family, with one base chain on the
/// input hook at priority −10 (before the usual filter chains at 0) whose rules accept IP
/// protocol 112 arriving on each instance's interface (and its virtual MAC interface), from the
/// unicast peers only when the instance has some. The policy is accept: the table adds, it
/// never drops.
///
/// nftables has no shared `INPUT` chain to insert into (iptables had one in `filter`), so the
/// chain's name is taken from `IPTABLES_CHAIN` (default `INPUT`) and the table is the speaker's
/// own: `baton_vrrp_<first instance name>`, so that two speakers in one network namespace never
/// remove each other's rules. An accept is final only within its own chain: a drop in another
/// table's input chain still drops, as with the ipfailover image's `inet keepalived` table.
public struct VRRPAdmitRuleset: Sendable, Hashable {
    public let table: String
    /// An nftables identifier (the configuration checked it): nft takes no quoted chain name.
    public let chain: String
    public let rules: [String]

    /// The family is `inet`: one table for IPv4 and IPv6.
    public static let family = "inet"
    public static let priority = -10

    public init(chain: String, instances: [VRRPSpeaker.InstanceConfiguration], virtualMACs: [String: VRRPVirtualMAC] = [:]) {
        let first = instances.first?.name ?? "speaker"
        let tail = String(first.unicodeScalars.map { s -> Character in
            s.isASCII && (s.properties.isAlphabetic || ("0"..."9").contains(s) || s == "_") ? Character(s) : "_"
        }.prefix(200))
        table = "baton_vrrp_" + tail
        self.chain = chain
        var rules: [String] = []
        for instance in instances {
            var interfaces = [instance.interface]
            if let vmac = virtualMACs[instance.name] { interfaces.append(vmac.name) }
            let iif = interfaces.count == 1 ? "iifname \(Self.quoted(interfaces[0]))"
                : "iifname { \(interfaces.map(Self.quoted).joined(separator: ", ")) }"
            let protocolMatch = instance.family == .v4 ? "ip protocol 112" : "meta nfproto ipv6 meta l4proto 112"
            let source = instance.unicastPeers.isEmpty ? ""
                : (instance.family == .v4 ? "ip saddr" : "ip6 saddr") + " { \(instance.unicastPeers.map(\.description).joined(separator: ", ")) } "
            let rule = "\(iif) \(source)\(protocolMatch) accept"
            if !rules.contains(rule) { rules.append(rule) }
        }
        self.rules = rules
    }

    /// The `nft -f` script that replaces the table in one transaction (creating it first makes
    /// the delete safe when it is not there).
    public var applyScript: String {
        """
        table \(Self.family) \(table)
        delete table \(Self.family) \(table)
        table \(Self.family) \(table) {
        \tchain \(chain) {
        \t\ttype filter hook input priority \(Self.priority); policy accept;
        \(rules.map { "\t\t" + $0 }.joined(separator: "\n"))
        \t}
        }

        """
    }

    /// The `nft -f` script that removes the table, whether or not it is there.
    public var deleteScript: String {
        "table \(Self.family) \(table)\ndelete table \(Self.family) \(table)\n"
    }

    static func quoted(_ name: String) -> String { "\"\(name)\"" }
}
