import ArgumentParser
import BatonAPI
import BatonCore
import BatonVRRP
import Foundation
import Logging
import ServiceLifecycle

/// `baton vrrp`: a standalone VRRP speaker, wire-compatible with keepalived. With flags it runs
/// one virtual router; without `--vrid`, and with `OPENSHIFT_HA_VIRTUAL_IPS` set, it runs what
/// OpenShift's ipfailover pod would run from its `OPENSHIFT_HA_*` environment.
struct VRRPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vrrp",
        abstract: "Run a VRRP virtual router (v2 or v3) that holds virtual IPs, as keepalived's vrrp_instance does.",
        discussion: "Needs CAP_NET_RAW and CAP_NET_ADMIN. SIGTERM leaves gracefully: a Master sends priority 0 and removes its addresses; the --vmac macvlan and the --nft-admit table go too. A failed check (--check-script, --check-tcp, --check-http) sends the instance to FAULT, or with --check-weight moves its priority, as keepalived's vrrp_script. Without --vrid and with OPENSHIFT_HA_VIRTUAL_IPS set, it reads the OPENSHIFT_HA_* variables of OpenShift's ipfailover pod instead of the flags (VIRTUAL_IPS, VIP_GROUPS, NETWORK_INTERFACE, VRRP_ID_OFFSET, MONITOR_PORT, CHECK_SCRIPT, CHECK_INTERVAL, PREEMPTION, REPLICA_COUNT, NOTIFY_SCRIPT, IPTABLES_CHAIN, UNICAST_PEERS, ...).")

    @Option(help: "The interface to speak VRRP on and add the virtual IPs to.") var interface: String?
    @Option(help: "The Virtual Router ID, 1-255 (without it: the OPENSHIFT_HA_* environment).") var vrid: Int?
    @Option(help: "This router's priority, 1-255 (255: the address owner).") var priority: Int = 100
    @Option(name: .customLong("advert-interval"), help: "Seconds between advertisements (whole seconds with --version 2, centiseconds with 3; default 0.01 with 3, 1 with 2).")
    var advertInterval: String?
    @Option(help: "The VRRP version, 2 or 3.") var version: Int = 3
    @Option(name: .customLong("vip"), help: "A virtual IP, ADDR[/PREFIX] or a range 10.0.0.5-9 (repeatable; one family).") var vips: [String] = []
    @Option(name: .customLong("unicast-peer"), help: "Send to this peer instead of the multicast group (repeatable).")
    var unicastPeers: [String] = []
    @Option(name: .customLong("auth-pass"), help: "keepalived's auth_type PASS password, 1-8 bytes (--version 2 only).")
    var authPass: String?
    @Option(help: "A script run as SCRIPT INSTANCE NAME MASTER|BACKUP|FAULT|STOP PRIORITY on each transition, as keepalived runs its notify.") var notify: String?
    @Option(name: .customLong("preempt-delay"), help: "Seconds a Backup waits before preempting a lower-priority Master (0-1000, fractions allowed).")
    var preemptDelay: String?
    @Flag(help: "Never preempt a lower-priority Master.") var nopreempt = false
    @Option(name: .customLong("check-script"), help: "A health check command (no shell); exit status 0 is up.")
    var checkScript: String?
    @Option(name: .customLong("check-tcp"), help: "A health check that connects to HOST:PORT (an IP address or localhost; [v6]:port).")
    var checkTCP: String?
    @Option(name: .customLong("check-http"), help: "A health check that GETs http://HOST[:PORT]/PATH; 2xx or 3xx is up.")
    var checkHTTP: String?
    @Option(name: .customLong("check-interval"), help: "Seconds between check runs (fractions allowed).")
    var checkInterval: String = "1"
    @Option(name: .customLong("check-timeout"), help: "Seconds a check run may take before it counts as failed (default: the interval).")
    var checkTimeout: String?
    @Option(name: .customLong("check-weight"), parsing: .unconditional,
            help: "0: a failed check means FAULT. Otherwise -253..253, added to the priority while a check fails (negative) or succeeds (positive).")
    var checkWeight: Int = 0
    @Option(name: .customLong("check-rise"), help: "Successes in a row that bring a failed check back.") var checkRise: Int = 1
    @Option(name: .customLong("check-fall"), help: "Failures in a row that fail a check that was up.") var checkFall: Int = 1
    @Flag(help: "Hold the virtual IPs on a macvlan vrrp.VRID with the virtual MAC 00:00:5e:00:01:VRID (keepalived's use_vmac).")
    var vmac = false
    @Flag(name: .customLong("nft-admit"), help: "Add an nftables table (chain INPUT on the input hook) accepting VRRP on the interface; removed on exit.")
    var nftAdmit = false
    @Option(help: "The instance name (the notify script's $2).") var name: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel: String = "info"
    @Option(name: .customLong("realtime-priority"), help: "Run under SCHED_RR at this priority, 1-99, as keepalived's vrrp_rt_priority (needs CAP_SYS_NICE; without it the speaker warns and runs normally).")
    var realtimePriority: Int = Self.defaultRealtimePriority
    @Flag(name: .customLong("no-realtime"), help: "Run under the normal scheduler.") var noRealtime = false

    /// The flags mode's advert interval with VRRPv3, in centiseconds: 10 ms. A Backup at
    /// priority 100 takes over 36 ms after the last advertisement (`Master_Down_Interval`), which
    /// `baton lab bench vrrp` measured as its p99 failover (README, BENCH-VRRP). VRRPv2 counts
    /// whole seconds: 1. The OpenShift mode keeps keepalived's timing (its peers are keepalived).
    static let defaultAdvertIntervalCentiseconds = 1
    /// SCHED_RR priority by default (keepalived leaves `vrrp_rt_priority` unset).
    static let defaultRealtimePriority = 10

    /// What the speaker runs: its instances, the checks they track and the chain admitting VRRP.
    struct Plan {
        var instances: [VRRPSpeaker.InstanceConfiguration]
        var health: VRRPHealthSettings
        var admitChain: String?
    }

    /// The speaker to run: from the flags, or (no `--vrid`, `OPENSHIFT_HA_VIRTUAL_IPS` set) from
    /// the environment as OpenShift's ipfailover pod reads it. Both go through
    /// `VRRPSpeakerConfiguration`, which refuses what cannot work; only what needs the file
    /// system (the scripts exist) is checked here.
    func plan(environment env: [String: String] = ProcessInfo.processInfo.environment) throws -> Plan {
        let configuration: VRRPSpeakerConfiguration
        if vrid == nil, env["OPENSHIFT_HA_VIRTUAL_IPS"] != nil {
            let device = env["OPENSHIFT_HA_NETWORK_INTERFACE"].flatMap { $0.isEmpty ? nil : $0 } ?? IPFailoverSpec.defaultInterface
            do {
                configuration = try VRRPSpeakerConfiguration.fromEnvironment(
                    env, nodeAddress: InterfaceAddresses.source(family: .v4, interface: device))
            } catch { throw ValidationError(error.message) }
        } else {
            configuration = try fromFlags()
        }
        return Plan(instances: VRRPSpeaker.instances(configuration), health: configuration.health, admitChain: configuration.iptablesChain)
    }

    /// One instance from the flags (`VRRPSpeakerConfiguration.fromFlags`).
    func fromFlags() throws -> VRRPSpeakerConfiguration {
        guard let vrid else {
            throw ValidationError("--vrid: missing (or leave it out and set OPENSHIFT_HA_VIRTUAL_IPS to run from the OPENSHIFT_HA_* environment)")
        }
        guard let interface else { throw ValidationError("--interface: missing") }
        let configuration: VRRPSpeakerConfiguration
        do {
            configuration = try VRRPSpeakerConfiguration.fromFlags(
                name: name ?? "VI_\(vrid)", vrid: vrid, priority: priority,
                advertInterval: advertInterval ?? (version == 2 ? "1" : String(format: "%.2f", Double(Self.defaultAdvertIntervalCentiseconds) / 100)),
                version: version,
                interface: interface, vips: vips, unicastPeers: unicastPeers, authPass: authPass, notifyScript: notify,
                checkScript: checkScript, checkTCP: checkTCP, checkHTTP: checkHTTP, checkInterval: checkInterval,
                checkTimeout: checkTimeout, checkWeight: checkWeight, checkRise: checkRise, checkFall: checkFall,
                preemptDelay: preemptDelay, nopreempt: nopreempt, vmac: vmac,
                iptablesChain: nftAdmit ? IPFailoverSpec.defaultIPTablesChain : nil)
        } catch { throw ValidationError(error.message) }
        for check in configuration.health.checks {
            if let program = check.scriptArguments.first, !FileManager.default.isExecutableFile(atPath: program) {
                throw ValidationError("--check-script: \(program) is not an executable file")
            }
        }
        if let notify, !FileManager.default.isExecutableFile(atPath: notify) {
            throw ValidationError("--notify: \(notify) is not an executable file")
        }
        return configuration
    }

    func validate() throws {
        _ = try plan()
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level: \"\(logLevel)\" is not trace, debug, info, notice, warning, error or critical")
        }
        guard (1...99).contains(realtimePriority) else { throw ValidationError("--realtime-priority: \(realtimePriority) is not in 1...99") }
    }

    func run() async throws {
        bootstrapLogging(logLevel)
        let logger = Logger(label: "baton.vrrp")
        let plan = try plan()
        if !noRealtime {
            do {
                try RealtimeScheduling.apply(priority: Int32(realtimePriority))
                logger.info("real-time scheduling", metadata: ["policy": "SCHED_RR", "priority": "\(realtimePriority)"])
            } catch {
                logger.warning("running without real-time scheduling: on a busy machine adverts may come late at short intervals (baton lab bench vrrp counted false failovers at 0.01 s without it)",
                               metadata: ["error": "\(error)"])
            }
        }
        let speaker = try VRRPSpeaker(instances: plan.instances, health: plan.health, admitChain: plan.admitChain, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [speaker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
