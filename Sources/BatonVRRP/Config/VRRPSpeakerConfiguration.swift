import BatonAPI

/// What `baton vrrp`, the standalone speaker, runs: its VRRP instances and the settings the
/// whole speaker shares (the health check, the notify script, the rule admitting VRRP). Pure:
/// building one opens no socket and starts no process.
///
/// Three ways in:
/// - `fromEnvironment(_:nodeAddress:)`: the `OPENSHIFT_HA_*` variables of OpenShift's
///   ipfailover pod, with the seed's defaults and OpenShift's way of turning VIPs into
///   instances (`VRRPSpeakerConfiguration+Environment.swift`);
/// - `fromFlags(...)`: one instance from keepalived-style flags
///   (`VRRPSpeakerConfiguration+Flags.swift`);
/// - this initializer, from instances built with `VRRPInstanceSettings.init`.
///
/// A value in hand is valid: every instance is, and together they hold no VIP twice, no name
/// twice and no VRID twice on one interface and family.
public struct VRRPSpeakerConfiguration: Sendable, Hashable {
    public let instances: [VRRPInstanceSettings]
    /// A command run every `checkInterval`; exit 0 means the service is up. When set, it
    /// replaces the TCP check of `monitorPort`, as in OpenShift's `generate_script_config`
    /// (ipfailover/keepalived/lib/config-generators.sh).
    public let checkScript: String?
    /// How often the check runs.
    public let checkInterval: Duration
    /// Run on every state change with `INSTANCE`, the instance's name and `MASTER`, `BACKUP`
    /// or `FAULT`, as keepalived calls its `notify` script.
    public let notifyScript: String?
    /// The TCP port of the built-in connect check; 0 turns it off. OpenShift's generated check
    /// connects to this port on the node's own address on the interface
    /// (`</dev/tcp/<node address>/<port>`, 127.0.0.1 when the node has none), not on each VIP
    /// as the documentation says.
    public let monitorPort: UInt16
    /// Every check the speaker runs and how their outcomes count: the script, else the TCP
    /// check of `monitorPort` (unless 0), then any other built-in check given. A failed check
    /// sends every instance to FAULT unless `health.weight` is set.
    public let health: VRRPHealthSettings
    /// `OPENSHIFT_HA_IPTABLES_CHAIN`'s name kept: the chain of Baton's own nftables table that
    /// gets a rule admitting VRRP (224.0.0.18, ff02::12, or the unicast peers). nil adds no rule.
    public let iptablesChain: String?
    /// `OPENSHIFT_HA_REPLICA_COUNT`: how many nodes run this configuration. It only steers which
    /// instances this node prefers (see `fromEnvironment`); the protocol itself does not use it.
    public let replicaCount: Int

    /// Builds a configuration, refusing: no instance; two instances with one name, or with one
    /// VRID on one interface and family; a VIP in two instances; an empty or multi-line check or
    /// notify command; a check interval that is not positive; a monitor port outside 0...65535;
    /// a chain name nftables would not take; a negative replica count; a check timeout,
    /// weight, rise or fall out of range (`VRRPHealthSettings`).
    ///
    /// - Parameters:
    ///   - monitorAddress: where the `monitorPort` check connects: the node's address on the
    ///     interface; nil connects to 127.0.0.1, as OpenShift's generator does without one.
    ///   - otherChecks: built-in checks tracked besides the script or the monitor port.
    public init(
        instances: [VRRPInstanceSettings],
        checkScript: String? = nil,
        checkInterval: Duration = .seconds(1),
        notifyScript: String? = nil,
        monitorPort: Int = 0,
        iptablesChain: String? = nil,
        replicaCount: Int = 1,
        monitorAddress: IPAddress? = nil,
        otherChecks: [VRRPHealthCheck] = [],
        checkTimeout: Duration? = nil,
        checkWeight: Int = 0,
        checkRise: Int = 1,
        checkFall: Int = 1
    ) throws(VRRPConfigError) {
        guard !instances.isEmpty else {
            throw VRRPConfigError(.missing, "no VRRP instance: give at least one virtual IP")
        }
        var names: Set<String> = []
        var vrids: [String: String] = [:]
        var owners: [IPAddress: String] = [:]
        for i in instances {
            guard names.insert(i.name).inserted else {
                throw VRRPConfigError(.name, "instance name \(i.name) is used twice")
            }
            let key = "\(i.interface) \(i.family) \(i.vrid)"
            if let other = vrids[key] {
                throw VRRPConfigError(.vrid,
                    "instance \(i.name): vrid \(i.vrid) on \(i.interface) is also the vrid of instance \(other); a VRID is unique per interface and address family")
            }
            vrids[key] = i.name
            for vip in i.vips {
                if let other = owners[vip.address] {
                    throw VRRPConfigError(.vipOverlap,
                        "instance \(i.name): vip \(vip) is also a vip of instance \(other); a VIP belongs to one instance")
                }
                owners[vip.address] = i.name
            }
        }
        for (field, command) in [("check script", checkScript), ("notify script", notifyScript)] {
            if let command, !VRRPConfigSyntax.isCommand(command) {
                throw VRRPConfigError(.script, "\(field) \"\(command)\" must be a command: not empty, on one line")
            }
        }
        guard checkInterval > .zero else {
            throw VRRPConfigError(.number, "check interval \(VRRPConfigSyntax.describe(checkInterval)) must be more than 0 s")
        }
        guard (0...65535).contains(monitorPort) else {
            throw VRRPConfigError(.number, "monitor port \(monitorPort) is not in 0...65535 (0 disables the check)")
        }
        if let c = iptablesChain, !VRRPConfigSyntax.isChainName(c) {
            throw VRRPConfigError(.chain, "iptables chain \"\(c)\" must be an nftables chain name: 1-64 characters, a letter or '_' first, then letters, digits, '_', '-', '.' or '/'")
        }
        guard replicaCount >= 0 else {
            throw VRRPConfigError(.number, "replica count \(replicaCount) is negative")
        }
        var checks: [VRRPHealthCheck] = []
        if let checkScript {
            checks.append(.script(VRRPConfigSyntax.trim(checkScript)))
        } else if monitorPort != 0 {
            checks.append(.tcpConnect(host: monitorAddress ?? IPAddress("127.0.0.1")!, port: UInt16(monitorPort)))
        }
        health = try VRRPHealthSettings(checks: checks + otherChecks, interval: checkInterval, timeout: checkTimeout,
                                        weight: checkWeight, rise: checkRise, fall: checkFall)
        self.instances = instances
        self.checkScript = checkScript
        self.checkInterval = checkInterval
        self.notifyScript = notifyScript
        self.monitorPort = UInt16(monitorPort)
        self.iptablesChain = iptablesChain
        self.replicaCount = replicaCount
    }

    /// Every VIP of every instance.
    public var virtualIPCount: Int { instances.reduce(0) { $0 + $1.vips.count } }
}
