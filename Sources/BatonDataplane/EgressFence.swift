import BatonAPI

/// The kernel half of fencing: what keeps a node from answering for an EIP after its agent
/// can no longer be trusted with it (killed, frozen, cut off), when no agent is left to withdraw.
///
/// A `netdev` table with an egress hook on the parent interface holds two sets:
/// - `held`: the EIPs Baton bound on this node;
/// - `live`: the EIPs the agent may announce, each with a timeout. The agent renews them on
///   every acknowledged heartbeat so that they expire at its fence deadline (last acknowledged
///   send + eipEvictionTimeout − margin), before the controller can evict the node.
///
/// A frame that leaves the parent interface with a held EIP that is not live as its IPv4 or ARP
/// sender address is dropped: no ARP reply or gratuitous ARP for the EIP, and no packet with
/// the EIP as its source. The kernel enforces this on its own, so it holds while the agent is
/// SIGKILLed or SIGSTOPped and the address is still bound.
///
/// The table is declared additively (`table … { set … }` keeps existing elements), and its chain
/// is flushed and refilled in the same transaction, so re-applying it never resets `live`.
public enum EgressFence {
    public static let table = "baton_fence"

    /// Declares the table (keeping `live`), its rules, and `held` = `eips`.
    public static func render(held eips: Set<IPAddress>, config: EgressDatapathConfig) -> String {
        let v4 = eips.filter { $0.family == .v4 }.sorted()
        var out = "table netdev \(table) {\n"
        out += "    set held {\n        type ipv4_addr\n    }\n"
        out += "    set live {\n        type ipv4_addr\n        flags timeout\n    }\n"
        out += "    chain egress {\n        type filter hook egress device \(EgressRuleset.quote(config.parent)) priority 0; policy accept;\n    }\n"
        out += "}\n"
        out += "flush chain netdev \(table) egress\n"
        out += "add rule netdev \(table) egress ip saddr @held ip saddr != @live drop\n"
        out += "add rule netdev \(table) egress arp saddr ip @held arp saddr ip != @live drop\n"
        out += "flush set netdev \(table) held\n"
        if !v4.isEmpty { out += "add element netdev \(table) held { \(v4.map(\.description).joined(separator: ", ")) }\n" }
        return out
    }

    /// Sets each EIP's `live` element to expire after `timeout` (whether or not it was there:
    /// `add` then `delete` clears an old one, since `add` alone keeps an old timeout). One line,
    /// so one transaction for `nft -i` as well as `nft -f`.
    public static func renew(_ eips: Set<IPAddress>, timeout: Duration) -> String? {
        let v4 = eips.filter { $0.family == .v4 }.sorted()
        let ms = milliseconds(timeout)
        guard !v4.isEmpty, ms > 0 else { return nil }
        let list = v4.map(\.description).joined(separator: ", ")
        return "add element netdev \(table) live { \(list) } ; delete element netdev \(table) live { \(list) } ; "
            + "add element netdev \(table) live { \(v4.map { "\($0) timeout \(ms)ms" }.joined(separator: ", ")) }\n"
    }

    /// Removes the EIPs from `live` (present or not).
    public static func expire(_ eips: Set<IPAddress>) -> String? {
        let v4 = eips.filter { $0.family == .v4 }.sorted()
        guard !v4.isEmpty else { return nil }
        let list = v4.map(\.description).joined(separator: ", ")
        return "add element netdev \(table) live { \(list) } ; delete element netdev \(table) live { \(list) }\n"
    }

    /// Deletes the table (and nothing else).
    public static func removal() -> String { "table netdev \(table) {\n}\ndelete table netdev \(table)\n" }

    /// Whole milliseconds, rounded down (a lease is never made longer than it was).
    static func milliseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}
