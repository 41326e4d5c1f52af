import BatonAPI
import BatonCore
import Logging
import ServiceLifecycle

/// `baton vrrp`'s engine: runs one `VRRPInstance` per configured virtual router and carries out
/// its decisions on the wire and on the host. It decides nothing itself: the instance says when
/// to advertise, to take or release the addresses, and to notify.
///
/// Per instance: a thread reads the raw socket and also wakes at the instance's `nextDeadline`
/// (so a timer is as precise as `ppoll`), and one task feeds what it delivers, in order, to the
/// instance and performs the actions. Notify scripts run in the background, one at a time per
/// instance, in order.
///
/// Health checks (`health`) run in one more thread on `VRRPHealthMonitor`'s schedule; every
/// verdict goes to every instance: none starts before each FAULT check has answered once, a
/// failed FAULT check sends them all to FAULT, and a weighted one moves their priorities.
///
/// Around the instances it sets up, and removes after, what they need on the host: the
/// nftables table admitting VRRP (`admitChain`) and the `--vmac` instances' macvlans
/// (`VRRPSpeaker.Resources`).
///
/// On graceful shutdown (SIGTERM through the `ServiceGroup`) every instance gets `.shutdown`: a
/// Master sends its priority-0 advertisement (a Backup takes over within `Skew_Time`) and
/// removes its addresses, and every instance's notify script gets STOP before `run` returns.
/// Then the macvlans, the sysctls changed for them and the nftables table go. `run` removes
/// them too when it fails after setting them up (a socket that cannot open), so that a stopped
/// speaker leaves no VIP, rule or macvlan behind.
public final class VRRPSpeaker: Service, Sendable {
    public let instances: [InstanceConfiguration]
    public let health: VRRPHealthSettings
    /// The chain of the nftables table admitting VRRP; nil adds no table.
    public let admitChain: String?
    let clock: any BatonClock
    let host: any VRRPHost
    let logger: Logger

    /// - Parameters:
    ///   - health: the checks every instance tracks; `.none` starts them at once.
    ///   - admitChain: the chain name of the table admitting VRRP (`OPENSHIFT_HA_IPTABLES_CHAIN`);
    ///     nil adds none.
    ///   - clock: the instances' time line; `MonotonicClock` in production.
    ///   - host: adds and removes the addresses, announces them and runs notify scripts;
    ///     `LinuxVRRPHost` in production.
    public init(instances: [InstanceConfiguration], health: VRRPHealthSettings = .none, admitChain: String? = nil,
                clock: any BatonClock = MonotonicClock(),
                host: any VRRPHost = LinuxVRRPHost(), logger: Logger) throws(ConfigurationError) {
        for instance in instances { try instance.validate() }
        var seen: [String: String] = [:]
        for instance in instances {
            let key = "\(instance.interface)/\(instance.family)/\(instance.vrid)"
            if let other = seen[key] {
                throw ConfigurationError(.conflicting, "instances \(other) and \(instance.name) both use vrid \(instance.vrid) on \(instance.interface)")
            }
            seen[key] = instance.name
        }
        if let admitChain, !VRRPConfigSyntax.isChainName(admitChain) {
            throw ConfigurationError(.outOfRange, "admitChain \"\(admitChain)\" is not an nftables chain name")
        }
        self.instances = instances
        self.health = health
        self.admitChain = admitChain
        self.clock = clock
        self.host = host
        self.logger = logger
    }

    public func run() async throws {
        var resources = Resources(instances: instances, admitChain: admitChain, host: host, logger: logger)
        defer { resources.tearDown() }
        try resources.setUp()
        // Open every socket first: a missing interface or CAP_NET_RAW fails the whole speaker.
        let initial: VRRPHealthMonitor.Verdict? = health.checks.isEmpty ? .healthy : nil
        var runners: [VRRPInstanceRunner] = []
        for configuration in instances {
            var logger = logger
            logger[metadataKey: "instance"] = "\(configuration.name)"
            runners.append(try VRRPInstanceRunner(configuration: configuration, virtualMAC: resources.virtualMACs[configuration.name],
                                                  initialVerdict: initial, clock: clock, host: host, logger: logger))
        }
        let checks: VRRPHealthRunner? = health.checks.isEmpty ? nil : VRRPHealthRunner(
            settings: health, clock: clock, logger: logger,
            publish: { [runners] verdict in for runner in runners { runner.deliver(verdict) } })
        await withTaskGroup(of: Void.self) { group in
            for runner in runners { group.addTask { await runner.run() } }
            if let checks { group.addTask { await checks.run() } }
            try? await gracefulShutdown()
            logger.notice("shutting down: leaving every virtual router")
            checks?.requestStop()
            for runner in runners { runner.requestShutdown() }
            await group.waitForAll()
        }
    }
}
