import BatonAPI
import BatonCore
import Foundation

/// Carries out `EgressDatapathPlan`s on the Linux network namespace it runs in: one nftables
/// table replaced atomically (`nft -f -`), and the tunnel, rules, routes, neighbours and EIP
/// addresses through one `ip -batch -` and one `bridge -batch -`, each computed as the
/// difference from what the kernel holds, so applying the same plan again changes nothing.
/// Decides nothing; not thread-safe (the agent applies plans one at a time).
public final class LinuxEgressDataplane: @unchecked Sendable {
    public let config: EgressDatapathConfig
    private var appliedRuleset: String?
    private var appliedFence: String?
    private var lastBound: Set<IPAddress>?
    private var appliedTunnel: TunnelState?
    /// Renews the fence's `live` timeouts without a fork (every acknowledged heartbeat).
    private let shell = NftShell()
    /// EIPs the last `apply` bound although another machine still answered ARP for them after
    /// `config.conflictWait` (a host holding the address by mistake), for the caller to report.
    public private(set) var conflicts: Set<IPAddress> = []

    /// What the tunnel part of a plan consists of; re-applied only when it changes.
    struct TunnelState: Equatable {
        var mac: String?
        var tunnelIPv4: IPAddress?
        var nodeIPv4: IPAddress?
        var prefix: Int
        var peers: [EgressDatapathPlan.Peer]
    }

    public init(config: EgressDatapathConfig) { self.config = config }

    /// Makes the namespace match `plan`. `lease`: how long newly bound EIPs may be announced
    /// before the kernel fences them (`EgressFence`), until `renew` extends it; nil or zero
    /// binds them fenced. Returns the EIPs that were newly bound (to announce).
    @discardableResult
    public func apply(_ plan: EgressDatapathPlan, lease: Duration?) throws -> Set<IPAddress> {
        let tunnel = TunnelState(mac: plan.mac, tunnelIPv4: plan.tunnelIPv4, nodeIPv4: plan.nodeIPv4,
                                 prefix: plan.tunnelPrefix, peers: plan.peers)
        if tunnel != appliedTunnel {
            try applyTunnel(tunnel)
            appliedTunnel = tunnel
        }
        // New EIPs: rules first (SNAT ready), then the address. Released EIPs: address first.
        // What is bound is read from the kernel only when the plan's EIPs differ from what this
        // process last left bound (the first apply, or a change): a re-apply forks nothing.
        let bound = plan.eips == lastBound ? plan.eips : try boundEIPs()
        let added = plan.eips.subtracting(bound), removed = bound.subtracting(plan.eips)
        // A new EIP waits until no other machine answers for it, before anything of the new plan
        // changes: until then the old plan (its traffic tunnelled to the previous holder) stands.
        conflicts = try waitUntilUnanswered(added)
        var ip: [String] = []
        for eip in removed { ip.append("address del \(eip)/32 dev \(config.parent)") }
        if !ip.isEmpty { try Command.run("ip", ["-batch", "-"], input: ip.joined(separator: "\n") + "\n") }
        // One transaction: the policy table, the fence's `held` set, and the `live` leases of
        // the EIPs about to be bound (so their gratuitous ARP passes the fence) or just released.
        let ruleset = EgressRuleset.render(plan, config: config)
        let fence = EgressFence.render(held: plan.eips, config: config)
        var script = ""
        if ruleset != appliedRuleset { script += ruleset }
        if fence != appliedFence { script += fence }
        if let lease, let renew = EgressFence.renew(added, timeout: lease) { script += renew }
        if let expire = EgressFence.expire(removed) { script += expire }
        if !script.isEmpty {
            _ = try Command.run("nft", ["-f", "-"], input: script)
            appliedRuleset = ruleset
            appliedFence = fence
        }
        ip = added.sorted().map { eip in
            "address add \(eip)/32 dev \(config.parent)" + (config.eipLabel.map { " label \($0)" } ?? "")
        }
        if !ip.isEmpty { try Command.run("ip", ["-batch", "-"], input: ip.joined(separator: "\n") + "\n") }
        lastBound = plan.eips
        for eip in added.sorted() { try? GratuitousARP.send(eip, interface: config.parent) }
        return added
    }

    /// Probes `eips` with ARP (`ARPProbe`) until no other machine answers for them, for at most
    /// `config.conflictWait`: the previous holder answers until its fence ends its lease. Returns
    /// those still answered for when the wait ran out. A probe that cannot be sent waits for nothing.
    func waitUntilUnanswered(_ eips: Set<IPAddress>) throws -> Set<IPAddress> {
        var pending = eips.filter { $0.family == .v4 }
        let giveUp = ContinuousClock.now + config.conflictWait
        while !pending.isEmpty {
            guard let answered = try? ARPProbe.answered(pending, interface: config.parent, wait: config.probeWait) else { return [] }
            if answered.isEmpty || ContinuousClock.now >= giveUp { return answered }
            pending = answered
        }
        return []
    }

    /// Extends the kernel lease of `eips` to `timeout` from now (`EgressFence`).
    public func renew(_ eips: Set<IPAddress>, timeout: Duration) throws {
        if let line = EgressFence.renew(eips, timeout: timeout) { try shell.run(line) }
    }

    /// Deletes the tracked connections whose original source is in `sources` (IPv4), one
    /// `conntrack -D` per range: only when a policy's action changed on this node, never per
    /// packet or heartbeat. A range that is not a CIDR is widened to the smallest one covering it.
    public func forgetConnections(from sources: [IPRange]) throws {
        let tool = try Command.locate("conntrack")
        for r in sources where r.family == .v4 {
            let length = 32 - (UInt32(truncatingIfNeeded: r.first.value ^ r.last.value)).bitWidthNeeded
            let mask = length == 0 ? UInt32(0) : UInt32.max << (32 - length)
            let network = IPAddress(family: .v4, value: UInt128(UInt32(truncatingIfNeeded: r.first.value) & mask))
            let maskText = IPAddress(family: .v4, value: UInt128(mask)).description
            // Exit 1 with "0 flow entries have been deleted" is not a failure.
            _ = try? Command.run(tool, ["-D", "--orig-src", network.description, "--mask-src", maskText])
        }
    }

    /// Sends one more gratuitous ARP for each EIP still bound.
    public func reannounce(_ eips: Set<IPAddress>) {
        guard let bound = try? boundEIPs() else { return }
        for eip in eips.intersection(bound).sorted() { try? GratuitousARP.send(eip, interface: config.parent) }
    }

    /// Removes everything Baton added: its table, its rules and their tables, the tunnel device
    /// (with its neighbours, FDB and routes), and the EIP addresses it bound.
    public func cleanup() throws {
        shell.stop()
        _ = try? Command.run("nft", ["-f", "-"], input: EgressRuleset.removal(config: config) + EgressFence.removal())
        var ip: [String] = []
        let ruleTable = try ruleTable()
        for (mark, table) in rules(in: ruleTable) {
            ip.append("rule del fwmark \(EgressRuleset.hex(mark)) lookup \(table) priority \(config.rulePriority)")
            ip.append("route flush table \(table)")
        }
        for d in directRules(in: ruleTable) { ip.append("rule del to \(d) lookup main priority \(config.rulePriority - 1)") }
        if try linkExists(config.vxlanName) { ip.append("link del \(config.vxlanName)") }
        for eip in try boundEIPs() { ip.append("address del \(eip)/32 dev \(config.parent)") }
        if !ip.isEmpty { _ = try Command.run("ip", ["-force", "-batch", "-"], input: ip.joined(separator: "\n") + "\n") }
        appliedRuleset = nil
        appliedFence = nil
        appliedTunnel = nil
        lastBound = nil
    }

    // MARK: Tunnel

    func applyTunnel(_ t: TunnelState) throws {
        let dev = config.vxlanName
        var ip: [String] = []
        var fdb: [String] = []
        let existed = try linkExists(dev)
        var present = existed
        let ruleTable = try ruleTable()
        if let mac = t.mac, let tip = t.tunnelIPv4, let nip = t.nodeIPv4 {
            present = true
            if !existed {
                ip.append("link add \(dev) type vxlan id \(config.vxlanID) dstport \(config.vxlanPort) local \(nip) dev \(config.parent) nolearning")
            }
            ip.append("link set \(dev) address \(mac)")
            ip.append("link set \(dev) up")
            ip.append("address replace \(tip)/\(t.prefix) dev \(dev)")
            let wantNeigh = Set(t.peers.map { "\($0.tunnelIPv4)" })
            for n in try existed ? neighbours(dev) : [] where !wantNeigh.contains(n) { ip.append("neigh del \(n) dev \(dev)") }
            for p in t.peers {
                ip.append("neigh replace \(p.tunnelIPv4) lladdr \(p.mac) dev \(dev) nud permanent")
                ip.append("route replace default via \(p.tunnelIPv4) dev \(dev) onlink table \(p.mark)")
            }
            let wantFDB = Set(t.peers.map { $0.mac.lowercased() })
            for entry in try existed ? fdbEntries(dev) : [] where !wantFDB.contains(entry) { fdb.append("fdb del \(entry) dev \(dev) self") }
            for p in t.peers { fdb.append("fdb replace \(p.mac) dev \(dev) dst \(p.nodeIPv4) self permanent") }
        }
        let want = Set(t.peers.map(\.mark))
        let have = rules(in: ruleTable)
        for (mark, table) in have where !want.contains(mark) {
            ip.append("rule del fwmark \(EgressRuleset.hex(mark)) lookup \(table) priority \(config.rulePriority)")
            ip.append("route flush table \(table)")
        }
        let marked = Set(have.map(\.mark))
        for p in t.peers where !marked.contains(p.mark) {
            ip.append("rule add fwmark \(EgressRuleset.hex(p.mark)) lookup \(p.mark) priority \(config.rulePriority)")
        }
        // The tunnel's own UDP packets carry the inner packet's mark, so their route lookup would
        // follow the fwmark rule back into the tunnel: a rule just before sends traffic to the
        // other nodes' addresses by the main table.
        let wantDirect = Set(t.peers.map { "\($0.nodeIPv4)" })
        let haveDirect = directRules(in: ruleTable)
        for d in haveDirect.subtracting(wantDirect) { ip.append("rule del to \(d) lookup main priority \(config.rulePriority - 1)") }
        for d in wantDirect.subtracting(haveDirect).sorted() { ip.append("rule add to \(d) lookup main priority \(config.rulePriority - 1)") }
        if !ip.isEmpty { _ = try Command.run("ip", ["-batch", "-"], input: ip.joined(separator: "\n") + "\n") }
        if !fdb.isEmpty { _ = try Command.run("bridge", ["-batch", "-"], input: fdb.joined(separator: "\n") + "\n") }
        // Replies of tunnelled connections arrive from the tunnel with an outside source: loose
        // reverse-path filtering on the tunnel device only.
        if present {
            try? "2\n".write(toFile: "/proc/sys/net/ipv4/conf/\(dev)/rp_filter", atomically: false, encoding: .utf8)
        }
    }

    // MARK: Reading the kernel's state

    func linkExists(_ name: String) throws -> Bool {
        let out = try Command.run("ip", ["-j", "link", "show"])
        return (try? JSONValue.parse(Data(out.utf8)))?.arrayValue?.contains { $0["ifname"]?.stringValue == name } ?? false
    }

    /// The IPv4 policy rules, as `ip -j rule show` prints them (one read serves both kinds below).
    func ruleTable() throws -> [JSONValue] {
        let out = try Command.run("ip", ["-j", "-4", "rule", "show"])
        return (try? JSONValue.parse(Data(out.utf8)))?.arrayValue ?? []
    }

    /// Baton's `fwmark → table` rules: mark and table.
    func rules(in items: [JSONValue]) -> [(mark: UInt32, table: String)] {
        items.compactMap { r in
            guard r["priority"]?.intValue == Int64(config.rulePriority), let m = r["fwmark"]?.stringValue,
                  let mark = UInt32(m.hasPrefix("0x") ? String(m.dropFirst(2)) : m, radix: m.hasPrefix("0x") ? 16 : 10),
                  let table = r["table"]?.stringValue else { return nil }
            return (mark, table)
        }
    }

    /// The `to NODE lookup main` rules that keep the tunnel's own packets out of the tunnel.
    func directRules(in items: [JSONValue]) -> Set<String> {
        Set(items.compactMap { r in
            r["priority"]?.intValue == Int64(config.rulePriority - 1) && r["table"]?.stringValue == "main" ? r["dst"]?.stringValue : nil
        })
    }

    /// The EIPs bound on the parent interface: Baton's label, or (without a label) none.
    public func boundEIPs() throws -> Set<IPAddress> {
        guard let label = config.eipLabel else { return [] }
        let out = try Command.run("ip", ["-j", "-4", "addr", "show", "dev", config.parent])
        var found: Set<IPAddress> = []
        for link in (try? JSONValue.parse(Data(out.utf8)))?.arrayValue ?? [] {
            for a in link["addr_info"]?.arrayValue ?? [] where a["label"]?.stringValue == label {
                if let ip = a["local"]?.stringValue.flatMap(IPAddress.init) { found.insert(ip) }
            }
        }
        return found
    }

    func neighbours(_ dev: String) throws -> [String] {
        let out = try Command.run("ip", ["-j", "-4", "neigh", "show", "dev", dev])
        return ((try? JSONValue.parse(Data(out.utf8)))?.arrayValue ?? []).compactMap { $0["dst"]?.stringValue }
    }

    func fdbEntries(_ dev: String) throws -> [String] {
        let out = try Command.run("bridge", ["-j", "fdb", "show", "dev", dev])
        return ((try? JSONValue.parse(Data(out.utf8)))?.arrayValue ?? []).compactMap { e in
            guard let mac = e["mac"]?.stringValue?.lowercased(), mac != "00:00:00:00:00:00", e["dst"] != nil else { return nil }
            return mac
        }
    }
}

extension UInt32 {
    /// Bits needed to write the value (0 for 0).
    var bitWidthNeeded: Int { 32 - leadingZeroBitCount }
}
