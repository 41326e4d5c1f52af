import BatonAPI

extension VRRPSpeakerConfiguration {
    /// What a node runs for an IPFailover in the agent's managed mode: exactly what the
    /// ipfailover pod's keepalived would run on that node with the same settings. The spec is
    /// turned into the pod's environment (`openShiftEnvironment`) and read by
    /// `fromEnvironment`, so both modes share one mapping: VRIDs from the offset, VIP groups
    /// (min(G, N)), priorities and preferred instances from the node's address and
    /// `replicas`, checks, notify script, preemption, unicast peers, interface, the chain.
    ///
    /// The IPFailover's name plays `OPENSHIFT_HA_CONFIG_NAME`, as `oc adm ipfailover NAME` set
    /// it: the instances are named `<name, scrubbed>_VIP_<n>` (`web-vips` → `web_vips_VIP_1`),
    /// the notify script's `$2`, and IPv4 instances authenticate with the first 8 bytes of
    /// the name (`auth_pass`). A keepalived ipfailover pod whose `OPENSHIFT_HA_CONFIG_NAME` is
    /// the IPFailover's name and whose other variables carry the same settings is a peer on
    /// the wire.
    ///
    /// The backup priorities' random part (bash's `$RANDOM % 32`) is drawn from a generator
    /// seeded with `seed` (the node's and the IPFailover's names), so the same node computes
    /// the same priorities each time.
    ///
    /// Refusals name the spec's fields (`spec.vipGroups`), not the variables.
    ///
    /// - Parameter nodeAddress: the node's IPv4 address on the interface, which sets its slot.
    public static func fromIPFailover(name: String, spec: IPFailoverSpec, nodeAddress: IPAddress?,
                                      seed: String) throws(VRRPConfigError) -> VRRPSpeakerConfiguration {
        var generator = SeededGenerator(seed: seed)
        do {
            return try fromEnvironment(openShiftEnvironment(name: name, spec: spec), nodeAddress: nodeAddress, using: &generator)
        } catch {
            var message = error.message
            for (variable, field) in fieldNames { message = message.replacing(variable, with: field) }
            throw VRRPConfigError(error.code, "IPFailover \(name): \(message)")
        }
    }

    /// The ipfailover pod's environment for an IPFailover: each field that is set becomes its
    /// variable, and `OPENSHIFT_HA_CONFIG_NAME` is the IPFailover's name. An empty
    /// `iptablesChain` stays empty (no rule).
    public static func openShiftEnvironment(name: String, spec: IPFailoverSpec) -> [String: String] {
        var env = ["OPENSHIFT_HA_CONFIG_NAME": name, "OPENSHIFT_HA_VIRTUAL_IPS": spec.virtualIPs]
        env["OPENSHIFT_HA_VIP_GROUPS"] = spec.vipGroups.map(String.init)
        env["OPENSHIFT_HA_NETWORK_INTERFACE"] = spec.interface
        env["OPENSHIFT_HA_MONITOR_PORT"] = spec.monitorPort.map(String.init)
        env["OPENSHIFT_HA_REPLICA_COUNT"] = spec.replicas.map(String.init)
        env["OPENSHIFT_HA_VRRP_ID_OFFSET"] = spec.vrrpIDOffset.map(String.init)
        env["OPENSHIFT_HA_IPTABLES_CHAIN"] = spec.iptablesChain
        env["OPENSHIFT_HA_CHECK_SCRIPT"] = spec.checkScript
        env["OPENSHIFT_HA_CHECK_INTERVAL"] = spec.checkInterval.map(String.init)
        env["OPENSHIFT_HA_NOTIFY_SCRIPT"] = spec.notifyScript
        env["OPENSHIFT_HA_PREEMPTION"] = spec.preemption
        if let peers = spec.unicastPeers, !peers.isEmpty {
            env["OPENSHIFT_HA_UNICAST_PEERS"] = peers.joined(separator: ",")
        }
        return env
    }

    /// Each variable and the field it comes from, longest first (`..._PEERS` before a prefix).
    static let fieldNames: [(String, String)] = [
        ("OPENSHIFT_HA_VIRTUAL_IPS", "spec.virtualIPs"),
        ("OPENSHIFT_HA_VIP_GROUPS", "spec.vipGroups"),
        ("OPENSHIFT_HA_NETWORK_INTERFACE", "spec.interface"),
        ("OPENSHIFT_HA_MONITOR_PORT", "spec.monitorPort"),
        ("OPENSHIFT_HA_REPLICA_COUNT", "spec.replicas"),
        ("OPENSHIFT_HA_VRRP_ID_OFFSET", "spec.vrrpIDOffset"),
        ("OPENSHIFT_HA_IPTABLES_CHAIN", "spec.iptablesChain"),
        ("OPENSHIFT_HA_CHECK_SCRIPT", "spec.checkScript"),
        ("OPENSHIFT_HA_CHECK_INTERVAL", "spec.checkInterval"),
        ("OPENSHIFT_HA_NOTIFY_SCRIPT", "spec.notifyScript"),
        ("OPENSHIFT_HA_PREEMPTION", "spec.preemption"),
        ("OPENSHIFT_HA_UNICAST_PEERS", "spec.unicastPeers"),
    ]
}

/// A small deterministic generator (SplitMix64) seeded from text with FNV-1a: the same seed
/// gives the same sequence in every process.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: String) { state = StableHash.fnv1a(seed) }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
