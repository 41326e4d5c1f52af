import BatonAPI
import BatonCore

/// Names and numbers of the egress data plane on a node, egressgateway's defaults unless set.
public struct EgressDatapathConfig: Sendable, Hashable {
    /// The node's interface towards the LAN (the EgressTunnel's `tunnel.parent.name`).
    public var parent: String
    public var vxlanName = "egress.vxlan"
    public var vxlanID = 100
    public var vxlanPort = 7789
    /// The nftables table Baton owns (family ip).
    public var table = "baton_egress"
    /// The priority of the `fwmark → table` rules (egressgateway uses 99).
    public var rulePriority = 99
    /// How long one ARP probe of a new EIP listens for another machine answering (`ARPProbe`).
    public var probeWait: Duration = .milliseconds(15)
    /// How long a new EIP waits for its previous holder to fall silent before it is bound anyway.
    public var conflictWait: Duration = .seconds(1)

    public init(parent: String) { self.parent = parent }

    /// The label Baton puts on the EIP addresses it binds, so it can find them after a restart
    /// (nil when the interface name leaves no room: labels are at most 15 characters).
    public var eipLabel: String? { parent.count <= 12 ? "\(parent):be" : nil }
}

/// Renders a plan into one nftables script that replaces Baton's table atomically: `nft -f`
/// runs the whole file as one transaction, so packets see either the old rules or the new.
public enum EgressRuleset {
    public static func render(_ plan: EgressDatapathPlan, config: EgressDatapathConfig) -> String {
        let parent = quote(config.parent), vxlan = quote(config.vxlanName)
        var out = "table ip \(config.table) {\n}\ndelete table ip \(config.table)\ntable ip \(config.table) {\n"
        out += "    set cluster {\n        type ipv4_addr\n        flags interval\n"
        if !plan.cluster.isEmpty { out += "        elements = { \(plan.cluster.map(element).joined(separator: ", ")) }\n" }
        out += "    }\n"

        // Marks: replies of tunnelled connections go back to their origin; local pods' traffic for
        // an EIP on another node is marked for that node's table. First matching policy wins.
        out += "    chain pre {\n        type filter hook prerouting priority mangle; policy accept;\n"
        out += "        ct direction reply ct mark != 0 meta mark set ct mark\n"
        for peer in plan.peers {
            out += "        iifname \(vxlan) ct state new ether saddr \(peer.mac) ct mark set \(hex(peer.mark))\n"
        }
        for rule in plan.rules {
            let match = "iifname != { \(parent), \(vxlan) } \(matchText(rule))"
            switch rule.action {
            case .tunnel(let mark, let node): out += "        \(match) meta mark set \(hex(mark)) accept comment \(quote("\(rule.policy) via \(node)"))\n"
            default: out += "        \(match) accept comment \(quote("\(rule.policy)"))\n"
            }
        }
        out += "    }\n"

        out += "    chain postnat {\n        type nat hook postrouting priority srcnat; policy accept;\n"
        for rule in plan.rules {
            let match = "oifname \(parent) \(matchText(rule))"
            switch rule.action {
            case .snat(let eip): out += "        \(match) snat to \(eip) comment \(quote("\(rule.policy)"))\n"
            case .masquerade: out += "        \(match) masquerade comment \(quote("\(rule.policy)"))\n"
            case .tunnel, .drop: break
            }
        }
        out += "    }\n"

        // Whatever policy traffic would leave by the parent interface without SNAT is dropped.
        out += "    chain guard {\n        type filter hook postrouting priority srcnat + 10; policy accept;\n"
        for rule in plan.rules {
            out += "        oifname \(parent) \(matchText(rule)) ct status & snat == 0 drop comment \(quote("\(rule.policy)"))\n"
        }
        out += "    }\n}\n"
        return out
    }

    /// Deletes Baton's table (and nothing else).
    public static func removal(config: EgressDatapathConfig) -> String {
        "table ip \(config.table) {\n}\ndelete table ip \(config.table)\n"
    }

    static func matchText(_ rule: EgressDatapathPlan.Rule) -> String {
        var m = "ip saddr { \(rule.sources.map(element).joined(separator: ", ")) }"
        if rule.excludeCluster {
            m += " ip daddr != @cluster"
        } else {
            m += " ip daddr { \(rule.destinations.map(element).joined(separator: ", ")) }"
        }
        return m
    }

    /// A range as nftables writes it: a CIDR when it is one, else `a-b`, or one address.
    static func element(_ r: IPRange) -> String {
        if r.first == r.last { return r.first.description }
        let size = r.last.value - r.first.value + 1
        if size & (size - 1) == 0, r.first.value & (size - 1) == 0 {
            return "\(r.first)/\(r.first.bitWidth - size.trailingZeroBitCount)"
        }
        return "\(r.first)-\(r.last)"
    }

    static func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - s.count)) + s
    }

    static func quote(_ s: String) -> String { "\"\(s.replacingOccurrences(of: "\"", with: ""))\"" }
}
