import BatonAPI

// What OpenShift's ipfailover pod does with its environment, read in openshift/images at
// 13118bff (2026-07-25), ipfailover/keepalived/:
//
// - conf/settings.sh reads the variables. Where its fallbacks differ from the seed
//   (the OpenShift 4 documentation), Baton takes the seed's, as the kind IPFailover does:
//   NETWORK_INTERFACE "" (auto-detect) vs seed eth0; REPLICA_COUNT 1 vs seed 2;
//   IPTABLES_CHAIN "" vs seed INPUT. VRRP_ID_OFFSET is 10 in both since OCPBUGS-48318
//   (it was 0 before).
// - lib/utils.sh `expand_ip_ranges` expands `1.2.3.4-6,fd00::10-1f` in order written;
//   `scrub` keeps [A-Za-z0-9_-] and turns '-' into '_'; `generate_vrrp_instance_name` names
//   instance n `<scrubbed OPENSHIFT_HA_CONFIG_NAME>_VIP_<n>`.
// - lib/config-generators.sh `generate_failover_config` cuts the VIPs into instances and picks
//   each instance's priority and initial state; `generate_vrrpd_instance_config` numbers the
//   VRIDs and writes `auth_type PASS` with `auth_pass <OPENSHIFT_HA_CONFIG_NAME>`;
//   `generate_script_config` writes the check.
//
// keepalived 2.2.7 then adjusts what it was given (keepalived/vrrp/vrrp.c,
// `vrrp_complete_instance`; keepalived/vrrp/vrrp_parser.c): auth_pass is cut to 8 bytes;
// IPv6 instances use version 3 and drop the password; `state MASTER` clears
// `preempt_delay`; priority 0 is replaced by 100. Baton reproduces the outcome, which is what
// a keepalived peer on the LAN actually runs.

extension VRRPSpeakerConfiguration {
    /// `OPENSHIFT_HA_CONFIG_NAME`'s default in conf/settings.sh. The documented deployment
    /// sets it to `ipfailover`.
    public static let defaultOpenShiftConfigName = "OpenShift-IPFailover"

    /// The speaker as OpenShift's ipfailover pod would run it on this node, from the pod's
    /// environment. Defaults are the seed's (`IPFailoverSpec.default…`): interface `eth0`,
    /// monitor port 80, VRRP id offset 10, check interval 2 s, `preempt_delay 300`, 2 replicas,
    /// chain `INPUT`. As in the pod's shell (`${VAR:-default}`), an empty variable counts as
    /// unset, except `OPENSHIFT_HA_IPTABLES_CHAIN=""`, which adds no rule.
    ///
    /// **Variables.** `OPENSHIFT_HA_VIRTUAL_IPS` (required), `_VIP_GROUPS`, `_NETWORK_INTERFACE`,
    /// `_MONITOR_PORT`, `_VRRP_ID_OFFSET`, `_CHECK_SCRIPT`, `_CHECK_INTERVAL`, `_NOTIFY_SCRIPT`,
    /// `_PREEMPTION`, `_REPLICA_COUNT`, `_IPTABLES_CHAIN` (and `_NFTABLES_RULE`, its newer name
    /// since NE-2715: when set, the rule is added even if `IPTABLES_CHAIN` is empty, in the
    /// chain `IPTABLES_CHAIN` names or `INPUT`), `_UNICAST_PEERS`, `_CONFIG_NAME`, and `HA_EXCLUDED_VRRP_IDS`
    /// (no prefix: the image reads it as it is). `OPENSHIFT_HA_USE_UNICAST` is ignored, as the
    /// image ignores it: peers mean unicast.
    ///
    /// **Instances** (`generate_failover_config`). The VIPs are expanded in the order written.
    /// Without `OPENSHIFT_HA_VIP_GROUPS` (or with 0), each VIP is one instance. With G groups,
    /// the N VIPs are cut into min(G, N) consecutive slices, the first N mod G of them one VIP
    /// longer: 7 VIPs in 3 groups are 3, 2, 2. Instance n (from 1) is named
    /// `<config name>_VIP_<n>` and gets VRID `offset + n`, skipping any VRID in
    /// `HA_EXCLUDED_VRRP_IDS` (each skip moves every later VRID up by one).
    ///
    /// **Priorities and preferred instances.** The node's slot is the last octet of its IPv4
    /// address on the interface, mod 128 (0 without an IPv4 address, as the pod computes it from
    /// empty text). With `k = slot mod replicas + 1`, the node prefers every instance whose
    /// number is a multiple of k. A preferred instance starts as MASTER (not under `nopreempt`,
    /// since OCPBUGS-33629) with priority `255 − slot`, and the next preferred one gets
    /// `slot + 1`, alternating (under `nopreempt` the alternation never starts: every preferred
    /// instance gets `255 − slot`). Every other instance starts as BACKUP with
    /// `slot mod 64 + random(0..<32)`. So nodes prefer different instances only as far as their
    /// slots differ; OpenShift promises no even spread.
    ///
    /// **What keepalived makes of it**, reproduced: VRRP version 2 with `auth_pass` = the first
    /// 8 bytes of the config name's first word for IPv4 instances (`ipfailover` → `ipfailov`),
    /// version 3 without authentication for IPv6 ones; advert interval 1 s; a MASTER-start
    /// instance preempts at once (keepalived clears its `preempt_delay`), the others wait the
    /// delay. Priorities are kept within 1...254: `255 − slot` for slot 0 would claim to be the
    /// address owner, which an ipfailover node never is (its VIPs are used for nothing else),
    /// and a random 0 is raised to 1 where keepalived would silently use 100.
    ///
    /// **Checks.** `OPENSHIFT_HA_CHECK_SCRIPT` replaces the TCP check of `MONITOR_PORT`
    /// (`generate_script_config`), which connects to `nodeAddress` (127.0.0.1 without one). Either
    /// runs every `CHECK_INTERVAL` seconds, and a failure sends every instance to FAULT: the
    /// generated `vrrp_script` has no `weight`, `rise`, `fall` or `timeout`, so keepalived's
    /// defaults apply (FAULT, 1, 1, the interval). See `health`.
    ///
    /// **Where Baton is stricter.** It refuses what the pod would run wrongly: numbers that do
    /// not parse (the pod strips non-digits from the monitor port), repeated or overlapping
    /// VIPs, more VIPs than VRIDs or adverts can carry (`VRRPCapacity`), a group mixing IPv4 and
    /// IPv6, unicast peers of a family no instance uses (keepalived skips them), and scripts
    /// that are not full paths.
    ///
    /// - Parameters:
    ///   - env: the process environment (`ProcessInfo.processInfo.environment`).
    ///   - nodeAddress: this node's IPv4 address on the interface, which sets its slot.
    public static func fromEnvironment(_ env: [String: String], nodeAddress: IPAddress? = nil) throws(VRRPConfigError) -> VRRPSpeakerConfiguration {
        var generator = SystemRandomNumberGenerator()
        return try fromEnvironment(env, nodeAddress: nodeAddress, using: &generator)
    }

    /// `fromEnvironment(_:nodeAddress:)` with the source of the backup priorities' random
    /// part (bash's `$RANDOM % 32`), so that tests can fix it.
    public static func fromEnvironment(
        _ env: [String: String],
        nodeAddress: IPAddress?,
        using generator: inout some RandomNumberGenerator
    ) throws(VRRPConfigError) -> VRRPSpeakerConfiguration {
        let e = OpenShiftEnvironment(env)

        let configName = e.value("OPENSHIFT_HA_CONFIG_NAME") ?? defaultOpenShiftConfigName
        let interface = e.value("OPENSHIFT_HA_NETWORK_INTERFACE") ?? IPFailoverSpec.defaultInterface
        guard VRRPConfigSyntax.isInterfaceName(interface) else {
            throw VRRPConfigError(.interface,
                "OPENSHIFT_HA_NETWORK_INTERFACE \"\(interface)\" is not a network interface name (1-15 characters, no '/', ':' or whitespace)")
        }
        let monitorPort = try e.integer("OPENSHIFT_HA_MONITOR_PORT", default: Int(IPFailoverSpec.defaultMonitorPort),
                                        in: 0...65535, expected: "a port number in 0...65535 (0 disables the check)")
        let offset = try e.integer("OPENSHIFT_HA_VRRP_ID_OFFSET", default: Int(IPFailoverSpec.defaultVRRPIDOffset),
                                   in: 0...255, expected: "a number in 0...255")
        let checkInterval = try e.integer("OPENSHIFT_HA_CHECK_INTERVAL", default: Int(IPFailoverSpec.defaultCheckInterval),
                                          in: 1...86_400, expected: "a whole number of seconds in 1...86400")
        let replicas = try e.integer("OPENSHIFT_HA_REPLICA_COUNT", default: Int(IPFailoverSpec.defaultReplicas),
                                     in: 0...1_000_000, expected: "a whole number, 0 or more")
        let groups = try e.integer("OPENSHIFT_HA_VIP_GROUPS", default: 0, in: 0...1_000_000,
                                   expected: "a whole number (unset or 0: one VRRP instance per VIP)")
        let checkScript = try e.path("OPENSHIFT_HA_CHECK_SCRIPT")
        let notifyScript = try e.path("OPENSHIFT_HA_NOTIFY_SCRIPT")

        let preemptionText = e.value("OPENSHIFT_HA_PREEMPTION") ?? IPFailoverSpec.defaultPreemption
        guard let preemption = IPFailoverSpec.Preemption(preemptionText) else {
            throw VRRPConfigError(.preemption,
                "OPENSHIFT_HA_PREEMPTION \"\(preemptionText)\" must be \"nopreempt\" or \"preempt_delay N\" with N from 0 to 1000 seconds")
        }

        // The image adds its rule when OPENSHIFT_HA_NFTABLES_RULE or else IPTABLES_CHAIN is
        // non-empty, into a table and chain of its own whatever the value. Baton names the
        // chain of its own table after IPTABLES_CHAIN, so NFTABLES_RULE only turns the rule on.
        let chain: String?
        if let raw = env["OPENSHIFT_HA_IPTABLES_CHAIN"] {
            let t = VRRPConfigSyntax.trim(raw)
            chain = t.isEmpty ? (e.value("OPENSHIFT_HA_NFTABLES_RULE") == nil ? nil : IPFailoverSpec.defaultIPTablesChain) : t
        } else {
            chain = IPFailoverSpec.defaultIPTablesChain
        }
        if let chain, !VRRPConfigSyntax.isChainName(chain) {
            throw VRRPConfigError(.chain,
                "OPENSHIFT_HA_IPTABLES_CHAIN \"\(chain)\" must be an nftables chain name: 1-64 characters, a letter or '_' first, then letters, digits, '_', '-', '.' or '/'")
        }

        let excluded = try e.excludedVRIDs()
        let peers = try e.unicastPeers()
        let vips = try e.virtualIPs()

        // Cut into instances, as generate_failover_config does.
        let count = vips.count
        let instanceCount = groups == 0 ? count : min(groups, count)
        let base = count / instanceCount, longer = count % instanceCount
        var slices: [ArraySlice<VRRPVirtualAddress>] = []
        var start = 0
        for g in 0..<instanceCount {
            let size = base + (g < longer ? 1 : 0)
            slices.append(vips[start..<(start + size)])
            start += size
        }

        // VRIDs: offset + n, skipping the excluded ones.
        var vrids: [Int] = []
        var next = offset + 1
        for _ in 0..<instanceCount {
            while excluded.contains(next) { next += 1 }
            vrids.append(next)
            next += 1
        }
        if let last = vrids.last, last > 255 {
            let what = groups == 0 ? "\(instanceCount) virtual IPs (one VRRP instance each)" : "\(instanceCount) VIP groups"
            let skipped = last - offset - instanceCount
            let skips = skipped > 0 ? " + \(skipped) skipped by HA_EXCLUDED_VRRP_IDS" : ""
            let fix = groups == 0 ? "lower the offset or set OPENSHIFT_HA_VIP_GROUPS" : "lower the offset or OPENSHIFT_HA_VIP_GROUPS"
            throw VRRPConfigError(.vrid,
                "OPENSHIFT_HA_VRRP_ID_OFFSET \(offset): VRID \(last) is above 255: offset \(offset) + \(what)\(skips) must be at most 255; \(fix)")
        }

        let scrubbed = scrub(configName)
        let names = (1...instanceCount).map { "\(scrubbed)_VIP_\($0)" }

        // One family per instance, and what one advert carries.
        for (g, slice) in slices.enumerated() {
            let first = slice.first!
            if let other = slice.first(where: { $0.family != first.family }) {
                throw VRRPConfigError(.addressFamily,
                    "OPENSHIFT_HA_VIP_GROUPS \(groups): instance \(names[g]) would hold \(first) (\(VRRPConfigSyntax.familyName(first.family))) and \(other) (\(VRRPConfigSyntax.familyName(other.family))); VRRP carries one address family per instance, so order OPENSHIFT_HA_VIRTUAL_IPS and choose the groups so that none holds both")
            }
            let limit = VRRPCapacity.maxAddressesPerInstance(first.family)
            if slice.count > limit {
                let family = VRRPConfigSyntax.familyName(first.family)
                let needed = (count + limit - 1) / limit
                let room = 255 - offset
                let advice = needed <= room
                    ? "use at least \(needed) groups"
                    : "\(needed) groups would be needed, but VRIDs \(offset + 1)...255 leave room for \(room) instances: Baton handles at most \(room) × \(limit) = \(room * limit) \(family) VIPs at offset \(offset)"
                throw VRRPConfigError(.capacity,
                    "OPENSHIFT_HA_VIP_GROUPS \(groups): instance \(names[g]) would hold \(slice.count) \(family) VIPs, more than the \(limit) one advertisement carries on a \(VRRPCapacity.standardMTU)-byte MTU; \(advice)")
            }
        }

        // Unicast peers: each instance sends to the peers of its own family.
        let families = Set(slices.map { $0.first!.family })
        if let stray = peers.first(where: { !families.contains($0.family) }) {
            throw VRRPConfigError(.addressFamily,
                "OPENSHIFT_HA_UNICAST_PEERS: \(stray) is \(VRRPConfigSyntax.familyName(stray.family)), but every VIP is \(VRRPConfigSyntax.familyName(stray.family == .v4 ? .v6 : .v4))")
        }
        if !peers.isEmpty, let lonely = families.first(where: { f in !peers.contains { $0.family == f } }) {
            throw VRRPConfigError(.addressFamily,
                "OPENSHIFT_HA_UNICAST_PEERS has no \(VRRPConfigSyntax.familyName(lonely)) address for the \(VRRPConfigSyntax.familyName(lonely)) VIPs; each instance sends to the peers of its own family")
        }

        let authPass = keepalivedAuthPass(configName)
        var plan = OpenShiftPriorityPlan(nodeAddress: nodeAddress, replicaCount: replicas)
        var instances: [VRRPInstanceSettings] = []
        for (g, slice) in slices.enumerated() {
            let family = slice.first!.family
            let choice = plan.next(instance: g + 1, nopreempt: preemption == .never,
                                   jitter: Int.random(in: 0..<32, using: &generator))
            let preempt: VRRPPreemption
            switch preemption {
            case .never: preempt = .nopreempt
            case .delay(let s): preempt = .preempt(delay: choice.state == .master ? .zero : .seconds(s))
            }
            instances.append(try VRRPInstanceSettings(
                name: names[g], vrid: vrids[g], priority: choice.priority, advertInterval: .seconds(1),
                version: family == .v4 ? .v2 : .v3, interface: interface, vips: Array(slice),
                unicastPeers: peers.filter { $0.family == family },
                authPass: family == .v4 ? authPass : nil, preempt: preempt, useVMAC: false,
                initialState: choice.state))
        }

        // generate_script_config's vrrp_script has no weight, rise, fall or timeout: keepalived's
        // defaults (FAULT, 1, 1, the interval) apply.
        return try VRRPSpeakerConfiguration(
            instances: instances, checkScript: checkScript, checkInterval: .seconds(checkInterval),
            notifyScript: notifyScript, monitorPort: monitorPort, iptablesChain: chain, replicaCount: replicas,
            monitorAddress: nodeAddress.flatMap { $0.family == .v4 ? $0 : nil })
    }

    /// utils.sh `scrub`: keep ASCII letters, digits, `-` and `_`, then turn `-` into `_`.
    static func scrub(_ name: String) -> String {
        String(name.unicodeScalars.compactMap { s -> Character? in
            guard s.isASCII, s.properties.isAlphabetic || ("0"..."9").contains(s) || s == "-" || s == "_" else { return nil }
            return s == "-" ? "_" : Character(s)
        })
    }

    /// What keepalived sends for `auth_pass <config name>`: the first word (keepalived splits
    /// its configuration on whitespace), cut to 8 bytes (`vrrp_auth_pass_handler`), here on a
    /// character boundary.
    static func keepalivedAuthPass(_ configName: String) -> String {
        let word = configName.split(whereSeparator: \.isWhitespace).first.map(String.init) ?? defaultOpenShiftConfigName
        var out = ""
        for c in word where !c.unicodeScalars.contains("\0") {
            if out.utf8.count + c.utf8.count > 8 { break }
            out.append(c)
        }
        return out.isEmpty ? "OpenShif" : out
    }
}

/// generate_failover_config's priorities and initial states for one node, instance by instance.
struct OpenShiftPriorityPlan {
    /// The last octet of the node's IPv4 address, mod 128.
    let slot: Int
    /// The node prefers instances whose number is a multiple of this.
    let preferEvery: Int
    /// Whether the last preferred instance got the high priority (`previous == "master"`).
    private var lastWasHigh = false

    init(nodeAddress: IPAddress?, replicaCount: Int) {
        let octet = nodeAddress.map { $0.family == .v4 ? Int($0.value & 0xFF) : 0 } ?? 0
        slot = octet % 128
        preferEvery = slot % max(1, replicaCount) + 1
    }

    /// - Parameter jitter: 0..<32, bash's `$RANDOM % 32`.
    mutating func next(instance n: Int, nopreempt: Bool, jitter: Int) -> (priority: Int, state: VRRPInitialState) {
        guard n % preferEvery == 0 else {
            return (clamp(slot % 64 + jitter), .backup)
        }
        let state: VRRPInitialState = nopreempt ? .backup : .master
        if lastWasHigh {
            lastWasHigh = false
            return (clamp(slot + 1), state)
        }
        lastWasHigh = !nopreempt
        return (clamp(255 - slot), state)
    }

    private func clamp(_ p: Int) -> Int { min(254, max(1, p)) }
}

/// The environment, read the way the pod's shell reads it.
struct OpenShiftEnvironment {
    let env: [String: String]
    init(_ env: [String: String]) { self.env = env }

    /// The trimmed value, or nil when unset or empty (`${VAR:-default}`).
    func value(_ name: String) -> String? {
        guard let raw = env[name] else { return nil }
        let t = VRRPConfigSyntax.trim(raw)
        return t.isEmpty ? nil : t
    }

    func integer(_ name: String, default fallback: Int, in range: ClosedRange<Int>, expected: String) throws(VRRPConfigError) -> Int {
        guard let text = value(name) else { return fallback }
        guard let n = VRRPConfigSyntax.integer(text), range.contains(n) else {
            throw VRRPConfigError(.number, "\(name) \"\(text)\" is not \(expected)")
        }
        return n
    }

    /// A script's full path in the pod's filesystem, as the seed asks for.
    func path(_ name: String) throws(VRRPConfigError) -> String? {
        guard let text = value(name) else { return nil }
        guard text.hasPrefix("/"), VRRPConfigSyntax.isCommand(text) else {
            throw VRRPConfigError(.script,
                "\(name) \"\(text)\" must be the full path of a script in the pod's filesystem, such as /etc/keepalive/mycheckscript.sh")
        }
        return text
    }

    /// `HA_EXCLUDED_VRRP_IDS`: VRIDs separated by whitespace, as the image splits them.
    func excludedVRIDs() throws(VRRPConfigError) -> Set<Int> {
        guard let text = value("HA_EXCLUDED_VRRP_IDS") else { return [] }
        var out: Set<Int> = []
        for word in text.split(whereSeparator: \.isWhitespace) {
            guard let id = VRRPConfigSyntax.integer(String(word)), (1...255).contains(id) else {
                throw VRRPConfigError(.vrid,
                    "HA_EXCLUDED_VRRP_IDS: \"\(word)\" is not a VRID in 1...255 (separate VRIDs with spaces)")
            }
            out.insert(id)
        }
        return out
    }

    /// `OPENSHIFT_HA_UNICAST_PEERS`: addresses separated by commas.
    func unicastPeers() throws(VRRPConfigError) -> [IPAddress] {
        guard let text = value("OPENSHIFT_HA_UNICAST_PEERS") else { return [] }
        var out: [IPAddress] = []
        for raw in text.split(separator: ",") {
            let item = VRRPConfigSyntax.trim(String(raw))
            if item.isEmpty { continue }
            guard let a = IPAddress(item) else {
                throw VRRPConfigError(.unicastPeer, "OPENSHIFT_HA_UNICAST_PEERS: \"\(item)\" is not an IP address")
            }
            guard !out.contains(a) else {
                throw VRRPConfigError(.unicastPeer, "OPENSHIFT_HA_UNICAST_PEERS: \(a) is listed twice")
            }
            out.append(a)
        }
        return out
    }

    /// `OPENSHIFT_HA_VIRTUAL_IPS`, parsed, checked for overlaps and size, then expanded.
    func virtualIPs() throws(VRRPConfigError) -> [VRRPVirtualAddress] {
        let name = "OPENSHIFT_HA_VIRTUAL_IPS"
        guard let text = value(name) else {
            throw VRRPConfigError(.missing, "\(name) is required: the virtual IPs, such as 1.2.3.4-6,1.2.3.9")
        }
        let ranges: [IPRange]
        switch IPSyntax.vipList(text) {
        case .failure(let e):
            throw VRRPConfigError(.vipSyntax,
                "\(name): \"\(e.item)\" is not an address or a range (1.2.3.4, 1.2.3.4-6, fd00::10-1f)")
        case .success(let r):
            ranges = r
        }
        guard !ranges.isEmpty else {
            throw VRRPConfigError(.missing, "\(name) \"\(text)\" holds no address")
        }
        var total: UInt128 = 0
        for (i, r) in ranges.enumerated() {
            if let earlier = ranges[..<i].first(where: { $0.overlaps(r) }) {
                let shared = IPAddress(family: r.family, value: max(r.first.value, earlier.first.value))
                let where_ = r.count == 1 && earlier.count == 1 ? "" : ": in \(earlier) and in \(r)"
                throw VRRPConfigError(.vipOverlap,
                    "\(name): \(shared) is listed twice\(where_); each VIP may be listed once")
            }
            let (sum, overflow) = total.addingReportingOverflow(r.count)
            total = overflow ? .max : sum
        }
        let most = VRRPCapacity.maxIPv4VirtualIPs
        guard total <= UInt128(most) else {
            throw VRRPConfigError(.capacity,
                "\(name) holds \(total) addresses; Baton handles at most \(most) VIPs (\(VRRPCapacity.maxInstances) instances × \(VRRPCapacity.maxIPv4AddressesPerInstance) IPv4 addresses; \(VRRPCapacity.maxIPv6VirtualIPs) for IPv6)")
        }
        return ranges.flatMap(VRRPVirtualAddress.expand)
    }
}
