/// A set of virtual IPs that the selected nodes keep alive among themselves with VRRP, as
/// OpenShift's ipfailover (keepalived) does. Each field is one `OPENSHIFT_HA_*` variable;
/// `docs/ipfailover.md` has the mapping. Absent fields take OpenShift's defaults through the
/// `effective…` accessors; the defaults are never written into the stored spec.
///
/// VRRP instances: one per virtual IP, or `vipGroups` instances sharing the addresses between
/// them. Instance `n` (from 1) has VRID `vrrpIDOffset + n`, which must stay within 1–255.
public struct IPFailoverSpec: Sendable, Hashable, Codable {
    /// `OPENSHIFT_HA_VIRTUAL_IPS`: `1.2.3.4-6,1.2.3.9`, `fd00::10-1f`.
    public var virtualIPs: String
    /// `OPENSHIFT_HA_VIP_GROUPS`.
    public var vipGroups: Int64?
    /// `OPENSHIFT_HA_NETWORK_INTERFACE`.
    public var interface: String?
    /// `OPENSHIFT_HA_MONITOR_PORT`; 0 turns the TCP check off.
    public var monitorPort: Int64?
    /// The deployment's node selector: which nodes take part. Absent selects every node.
    public var nodeSelector: LabelSelector?
    /// `OPENSHIFT_HA_REPLICA_COUNT`.
    public var replicas: Int64?
    /// `OPENSHIFT_HA_VRRP_ID_OFFSET`.
    public var vrrpIDOffset: Int64?
    /// `OPENSHIFT_HA_IPTABLES_CHAIN`: the chain that gets a rule admitting VRRP. Baton writes an
    /// nftables rule into this chain of its own table; an empty string adds no rule.
    public var iptablesChain: String?
    /// `OPENSHIFT_HA_CHECK_SCRIPT`: an absolute path; exit 0 means the service is up.
    public var checkScript: String?
    /// `OPENSHIFT_HA_CHECK_INTERVAL`, in seconds.
    public var checkInterval: Int64?
    /// `OPENSHIFT_HA_NOTIFY_SCRIPT`: run with `group|instance`, the name, and the new state.
    public var notifyScript: String?
    /// `OPENSHIFT_HA_PREEMPTION`: `preempt_delay N` (seconds) or `nopreempt`.
    public var preemption: String?
    /// `OPENSHIFT_HA_UNICAST_PEERS` (setting it implies `OPENSHIFT_HA_USE_UNICAST=true`): send
    /// adverts to these node addresses instead of multicasting to 224.0.0.18 / ff02::12.
    public var unicastPeers: [String]?

    public init(virtualIPs: String) { self.virtualIPs = virtualIPs }

    public static let defaultInterface = "eth0"
    public static let defaultMonitorPort: Int64 = 80
    public static let defaultReplicas: Int64 = 2
    public static let defaultVRRPIDOffset: Int64 = 10
    public static let defaultIPTablesChain = "INPUT"
    public static let defaultCheckInterval: Int64 = 2
    public static let defaultPreemption = "preempt_delay 300"
    /// The most VRRP instances (VRIDs 1...255) one IPFailover has: `vrrpIDOffset + instances`
    /// stays within 255.
    public static let maxInstances = 255
    /// The most IPv4 VIPs one instance carries: an advertisement's address count is 8 bits. At a
    /// 1500-byte MTU the frame has room for more, so the count is the limit.
    public static let maxIPv4AddressesPerInstance = 255
    /// The most IPv6 VIPs one instance carries at a 1500-byte MTU, counted as keepalived 2.2.7
    /// counts them (it sends more as unadvertised "eVIPs" that a peer does not check): (1500 −
    /// 14 Ethernet − 40 IPv6 − 8 VRRP) / 16 = 89.
    public static let maxIPv6AddressesPerInstance = 89
    /// The most addresses one IPFailover may hold: 255 instances × 255 IPv4 addresses = 65,025
    /// (offset 0, `vipGroups` 255); for IPv6, 255 × 89 = 22,695. This is what Baton's VRRP
    /// speaker handles (`VRRPCapacity` in BatonVRRP computes the same numbers). OpenShift
    /// stops at 254 VIPs without groups (one VRID each).
    public static let maxVirtualIPs = maxInstances * maxIPv4AddressesPerInstance

    /// The most VIPs of `family` one instance carries.
    public static func maxAddressesPerInstance(_ family: IPAddress.Family) -> Int {
        family == .v4 ? maxIPv4AddressesPerInstance : maxIPv6AddressesPerInstance
    }

    public var effectiveInterface: String { interface ?? Self.defaultInterface }
    public var effectiveMonitorPort: Int64 { monitorPort ?? Self.defaultMonitorPort }
    public var effectiveReplicas: Int64 { replicas ?? Self.defaultReplicas }
    public var effectiveVRRPIDOffset: Int64 { vrrpIDOffset ?? Self.defaultVRRPIDOffset }
    public var effectiveIPTablesChain: String { iptablesChain ?? Self.defaultIPTablesChain }
    public var effectiveCheckInterval: Int64 { checkInterval ?? Self.defaultCheckInterval }
    public var effectivePreemption: Preemption {
        Preemption(preemption ?? Self.defaultPreemption) ?? .delay(seconds: 300)
    }
    /// Whether adverts go unicast.
    public var usesUnicast: Bool { !(unicastPeers ?? []).isEmpty }

    /// The virtual IP ranges, or nil when `virtualIPs` does not parse.
    public var virtualIPRanges: [IPRange]? { try? IPSyntax.vipList(virtualIPs).get() }

    /// Every virtual IP, in the order written. Call only on a validated spec (at most
    /// `maxVirtualIPs` addresses).
    public var addresses: [IPAddress] {
        (virtualIPRanges ?? []).flatMap { r in
            (0..<r.count).compactMap { r.first.advanced(by: $0) }
        }
    }

    /// How many VRRP instances: one per address, or with `vipGroups` G and N addresses,
    /// min(G, N), as OpenShift's `generate_failover_config` cuts them.
    public var instanceCount: Int {
        let n = addresses.count
        guard let g = vipGroups, g > 0 else { return n }
        return Int(min(g, Int64(n)))
    }

    /// The VRIDs the instances use, `offset+1 ... offset+instances`.
    public var vrids: ClosedRange<Int64>? {
        let n = Int64(instanceCount)
        return n == 0 ? nil : (effectiveVRRPIDOffset + 1)...(effectiveVRRPIDOffset + n)
    }

    /// The addresses of each instance, OpenShift's way: groups as equal as possible, the first
    /// groups taking one more (7 VIPs in 3 groups: 3, 2, 2).
    public var groups: [[IPAddress]] {
        let all = addresses
        let n = max(1, instanceCount)
        let base = all.count / n, extra = all.count % n
        var out: [[IPAddress]] = []
        var start = 0
        for g in 0..<n {
            let size = base + (g < extra ? 1 : 0)
            out.append(Array(all[start..<min(all.count, start + size)]))
            start += size
        }
        return out
    }

    /// `OPENSHIFT_HA_PREEMPTION`, parsed.
    public enum Preemption: Sendable, Hashable {
        case delay(seconds: Int)
        case never

        /// Parses `preempt_delay N` (0–1000 seconds, keepalived's range) or `nopreempt`.
        public init?(_ text: String) {
            let words = text.split(separator: " ", omittingEmptySubsequences: true)
            if words == ["nopreempt"] { self = .never; return }
            guard words.count == 2, words[0] == "preempt_delay", words[1].allSatisfy(\.isNumber),
                  let n = Int(words[1]), (0...1000).contains(n) else { return nil }
            self = .delay(seconds: n)
        }
    }
}

/// Each node's VRRP state, as its agent reports it: `nodes` maps a node's name to its entry.
/// Each agent writes only its own entry (a merge patch of `status.nodes.NODE`), so agents never
/// contend for the object, and removes it when the node stops running the IPFailover.
public struct IPFailoverStatus: Sendable, Hashable, Codable {
    public struct NodeState: Sendable, Hashable, Codable {
        /// The spec generation the node runs.
        public var observedGeneration: Int64?
        public var instances: [InstanceState]?
        /// When an instance of this node last changed state.
        public var lastTransitionTime: String?
        /// Why the node does not run the IPFailover as written (the speaker refused it or
        /// cannot start); absent when it runs.
        public var message: String?
        public init(observedGeneration: Int64? = nil, instances: [InstanceState]? = nil,
                    lastTransitionTime: String? = nil, message: String? = nil) {
            self.observedGeneration = observedGeneration
            self.instances = instances
            self.lastTransitionTime = lastTransitionTime
            self.message = message
        }
    }
    /// One VRRP instance on one node.
    public struct InstanceState: Sendable, Hashable, Codable {
        /// keepalived's instance name, `<name>_VIP_<n>`: the notify script's `$2`.
        public var name: String?
        public var vrid: Int64
        /// `init`, `backup`, `master` or `fault`: the words keepalived passes to the notify
        /// script. `init`: configured, not (yet) speaking VRRP.
        public var state: String
        public var priority: Int64?
        public init(name: String? = nil, vrid: Int64, state: String, priority: Int64? = nil) {
            self.name = name
            self.vrid = vrid
            self.state = state
            self.priority = priority
        }
    }
    public var nodes: [String: NodeState]?
    public init(nodes: [String: NodeState]? = nil) { self.nodes = nodes }
}

extension KindInfo {
    static let vrrpStates = ["init", "backup", "master", "fault"]

    public static let ipFailover = KindInfo(
        group: "baton.io", version: "v1", kind: "IPFailover", plural: "ipfailovers", shortNames: ["ipf"], namespaced: false,
        schema: .object([
            "spec": .object([
                "virtualIPs": .string("OPENSHIFT_HA_VIRTUAL_IPS: ranges such as 1.2.3.4-6,1.2.3.9 (required)."),
                "vipGroups": .integer("OPENSHIFT_HA_VIP_GROUPS: how many VRRP instances share the VIPs.", minimum: 1),
                "interface": .string("OPENSHIFT_HA_NETWORK_INTERFACE (eth0)."),
                "monitorPort": .integer("OPENSHIFT_HA_MONITOR_PORT (80); 0 disables the TCP check."),
                "nodeSelector": LabelSelector.schema,
                "replicas": .integer("OPENSHIFT_HA_REPLICA_COUNT (2): steers each node's priorities; 0 stops the IPFailover on every node.", minimum: 0, maximum: 1_000_000),
                "vrrpIDOffset": .integer("OPENSHIFT_HA_VRRP_ID_OFFSET (10), 0-255."),
                "iptablesChain": .string("OPENSHIFT_HA_IPTABLES_CHAIN (INPUT): the chain of the rule admitting VRRP; empty adds none."),
                "checkScript": .string("OPENSHIFT_HA_CHECK_SCRIPT: absolute path."),
                "checkInterval": .integer("OPENSHIFT_HA_CHECK_INTERVAL (2), seconds.", minimum: 1, maximum: 86_400),
                "notifyScript": .string("OPENSHIFT_HA_NOTIFY_SCRIPT: absolute path."),
                "preemption": .string("OPENSHIFT_HA_PREEMPTION (preempt_delay 300): preempt_delay N or nopreempt."),
                "unicastPeers": .array(.string(), description: "OPENSHIFT_HA_UNICAST_PEERS: node addresses; set means unicast."),
            ], required: ["virtualIPs"]),
            "status": .object([
                "nodes": .map(.object([
                    "observedGeneration": .integer(),
                    "instances": .array(.object([
                        "name": .string(),
                        "vrid": .integer(minimum: 1, maximum: 255),
                        "state": .string(enum: vrrpStates),
                        "priority": .integer(minimum: 0, maximum: 255),
                    ], required: ["vrid", "state"])),
                    "lastTransitionTime": .string(format: "date-time"),
                    "message": .string(),
                ]), description: "Each node's VRRP instances, by node name; each node's agent writes its own entry."),
            ]),
        ], required: ["spec"]),
        columns: [
            PrinterColumn("VIPS", jsonPath: ".spec.virtualIPs"),
            PrinterColumn("INTERFACE", jsonPath: ".spec.interface"),
            PrinterColumn("REPLICAS", type: "integer", jsonPath: ".spec.replicas"),
            .age,
            PrinterColumn("OFFSET", type: "integer", jsonPath: ".spec.vrrpIDOffset", priority: 1),
            PrinterColumn("GROUPS", type: "integer", jsonPath: ".spec.vipGroups", priority: 1),
            PrinterColumn("MONITOR", type: "integer", jsonPath: ".spec.monitorPort", priority: 1),
            PrinterColumn("PREEMPTION", jsonPath: ".spec.preemption", priority: 1),
        ],
        relatedKinds: ["IPFailover"],
        validate: { new, _, context in
            guard let spec = try? new.decodeSpec(IPFailoverSpec.self) else {
                return [.invalid("spec", "", "cannot be read as an IPFailover spec")]
            }
            let others = context.list("IPFailover").filter { $0.name != new.name }
                .compactMap { o in (try? o.decodeSpec(IPFailoverSpec.self)).map { (o.name, $0) } }
            return IPFailoverValidation.check(spec, others: others)
        })
}

/// The rules an IPFailover must pass besides its schema.
enum IPFailoverValidation {
    static func check(_ spec: IPFailoverSpec, others: [(name: String, spec: IPFailoverSpec)]) -> [FieldError] {
        var errors: [FieldError] = []
        let ranges: [IPRange]
        switch IPSyntax.vipList(spec.virtualIPs) {
        case .failure(let e):
            errors.append(.invalid("spec.virtualIPs", spec.virtualIPs,
                                   "\"\(e.item)\" is not an address or a range (1.2.3.4, 1.2.3.4-6, fd00::10-1f)"))
            ranges = []
        case .success(let r):
            ranges = r
            if r.isEmpty {
                errors.append(.required("spec.virtualIPs", "Required value: at least one virtual IP is required"))
            }
        }

        var total: UInt128 = 0
        for (i, r) in ranges.enumerated() {
            total = total.addingReportingOverflow(r.count).overflow ? UInt128.max : total + r.count
            if let j = ranges[..<i].firstIndex(where: { $0.overlaps(r) }) {
                errors.append(.duplicate("spec.virtualIPs", r.description, "overlaps \(ranges[j]) earlier in the list"))
            }
        }
        let most = IPFailoverSpec.maxVirtualIPs
        let tooMany = total > UInt128(most)
        if tooMany {
            errors.append(.invalid("spec.virtualIPs", spec.virtualIPs,
                                   "holds \(total) addresses; Baton handles at most \(most) virtual IPs in one IPFailover (\(IPFailoverSpec.maxInstances) VRRP instances × \(IPFailoverSpec.maxIPv4AddressesPerInstance) IPv4 addresses; \(IPFailoverSpec.maxInstances * IPFailoverSpec.maxIPv6AddressesPerInstance) for IPv6)"))
        }

        // VIP groups: min(G, N) instances, as OpenShift cuts them (more groups than VIPs is
        // one VIP per instance).
        let offset = spec.effectiveVRRPIDOffset
        let canCount = !tooMany && !ranges.isEmpty && errors.isEmpty
        let instances = canCount ? Int64(spec.instanceCount) : 0
        if !(0...255).contains(offset) {
            errors.append(.invalid("spec.vrrpIDOffset", String(offset), "must be between 0 and 255, inclusive"))
        } else if canCount, offset + instances > 255 {
            let what = spec.vipGroups == nil ? "\(instances) virtual IPs (one VRRP instance each)" : "\(instances) VIP groups"
            errors.append(.invalid("spec.vrrpIDOffset", String(offset),
                                   "VRID \(offset + instances) is above 255: offset \(offset) + \(what) must be at most 255; lower the offset or set vipGroups"))
        }

        // What each instance carries: one family, and no more than one advertisement holds.
        var families: Set<IPAddress.Family> = []
        var vipSet: Set<IPAddress> = []
        if canCount {
            let groups = spec.groups
            for (n, group) in groups.enumerated() {
                guard let first = group.first else { continue }
                families.insert(first.family)
                if let other = group.first(where: { $0.family != first.family }) {
                    errors.append(.invalid("spec.vipGroups", String(spec.vipGroups ?? 0),
                                           "VIP group \(n + 1) would hold \(first) and \(other): VRRP carries one address family per instance, so order virtualIPs and choose the groups so that none holds both"))
                    break
                }
                let limit = IPFailoverSpec.maxAddressesPerInstance(first.family)
                if group.count > limit {
                    let family = first.family == .v4 ? "IPv4" : "IPv6"
                    let needed = (Int(total) + limit - 1) / limit
                    errors.append(.invalid("spec.vipGroups", spec.vipGroups.map(String.init) ?? "",
                                           "VIP group \(n + 1) would hold \(group.count) \(family) VIPs, more than the \(limit) one VRRP advertisement carries; use at least \(needed) groups"))
                    break
                }
            }
            vipSet = Set(groups.joined())
        }
        if let p = spec.monitorPort, !(0...65535).contains(p) {
            errors.append(.invalid("spec.monitorPort", String(p), "must be between 0 and 65535, inclusive (0 disables the check)"))
        }
        if let p = spec.preemption, IPFailoverSpec.Preemption(p) == nil {
            errors.append(.invalid("spec.preemption", p, "must be \"nopreempt\" or \"preempt_delay N\" with N from 0 to 1000 seconds"))
        }
        if let i = spec.interface, !isInterfaceName(i) {
            errors.append(.invalid("spec.interface", i, "must be a network interface name: 1-15 characters, no '/', ':' or whitespace"))
        }
        if let c = spec.iptablesChain, !c.isEmpty, !isChainName(c) {
            errors.append(.invalid("spec.iptablesChain", c, "must be a chain name: up to 64 characters, a letter or '_' first, then letters, digits, '_', '-', '.' or '/' (empty adds no rule)"))
        }
        for (field, path) in [("spec.checkScript", spec.checkScript), ("spec.notifyScript", spec.notifyScript)] {
            if let path, !path.hasPrefix("/") {
                errors.append(.invalid(field, path, "must be an absolute path"))
            } else if let path, path.contains(where: { $0 == "\0" || $0.isNewline }) {
                errors.append(.invalid(field, path, "must be one line"))
            }
        }
        var peers: [IPAddress: Int] = [:]
        for (i, p) in (spec.unicastPeers ?? []).enumerated() {
            guard let a = IPAddress(p) else {
                errors.append(.invalid("spec.unicastPeers[\(i)]", p, "must be a valid IP address"))
                continue
            }
            if let first = peers[a] {
                errors.append(.duplicate("spec.unicastPeers[\(i)]", p, "the same peer as spec.unicastPeers[\(first)]"))
            }
            if vipSet.contains(a) {
                errors.append(.invalid("spec.unicastPeers[\(i)]", p, "is one of the virtual IPs; a peer is another node's own address"))
            }
            if !families.isEmpty, !families.contains(a.family) {
                errors.append(.invalid("spec.unicastPeers[\(i)]", p, "is \(a.family == .v4 ? "IPv4" : "IPv6"), but every virtual IP is \(a.family == .v4 ? "IPv6" : "IPv4"); each instance sends to the peers of its own family"))
            }
            peers[a] = i
        }
        if !peers.isEmpty, let lonely = families.sorted(by: { $0 == .v4 && $1 == .v6 }).first(where: { f in !peers.keys.contains { $0.family == f } }) {
            let family = lonely == .v4 ? "IPv4" : "IPv6"
            errors.append(.invalid("spec.unicastPeers", (spec.unicastPeers ?? []).joined(separator: ","),
                                   "has no \(family) address for the \(family) virtual IPs; each instance sends to the peers of its own family"))
        }
        if let s = spec.nodeSelector { errors += s.validate(field: "spec.nodeSelector") }

        // Another IPFailover's VIPs or VRIDs (on the same interface) may not be shared.
        let myVRIDs = errors.isEmpty ? spec.vrids : nil
        for (name, other) in others.sorted(by: { $0.name < $1.name }) {
            guard let theirs = other.virtualIPRanges else { continue }
            for r in ranges {
                if let o = theirs.first(where: { $0.overlaps(r) }) {
                    let shared = IPAddress(family: r.family, value: max(r.first.value, o.first.value))
                    errors.append(.duplicate("spec.virtualIPs", shared.description,
                                             "is also a virtual IP of IPFailover \"\(name)\" (\(other.virtualIPs))"))
                    break
                }
            }
            if let mine = myVRIDs, other.effectiveInterface == spec.effectiveInterface,
               let theirVRIDs = other.vrids, mine.overlaps(theirVRIDs) {
                errors.append(.invalid("spec.vrrpIDOffset", String(spec.effectiveVRRPIDOffset),
                                       "VRIDs \(mine.lowerBound)-\(mine.upperBound) overlap VRIDs \(theirVRIDs.lowerBound)-\(theirVRIDs.upperBound) of IPFailover \"\(name)\" on interface \(spec.effectiveInterface); choose offsets whose ranges do not overlap"))
            }
        }
        return errors
    }

    /// An nftables identifier, as Baton's table names its chain: 1-64 characters, an ASCII
    /// letter or `_` first, then ASCII letters, digits, `_`, `-`, `.` or `/`.
    static func isChainName(_ c: String) -> Bool {
        guard let first = c.unicodeScalars.first, c.unicodeScalars.count <= 64,
              first.isASCII, first.properties.isAlphabetic || first == "_" else { return false }
        return c.unicodeScalars.allSatisfy { s in
            s.isASCII && (s.properties.isAlphabetic || ("0"..."9").contains(s) || "_-./".unicodeScalars.contains(s))
        }
    }

    static func isInterfaceName(_ n: String) -> Bool {
        !n.isEmpty && n.utf8.count <= 15 && n != "." && n != ".."
            && !n.contains(where: { $0.isWhitespace || $0 == "/" || $0 == ":" || !$0.isASCII })
    }
}
