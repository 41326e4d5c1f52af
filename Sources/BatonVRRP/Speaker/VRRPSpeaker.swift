import BatonAPI
import BatonCore
import Logging
import ServiceLifecycle
import Synchronization

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
/// The instances' interfaces are watched over rtnetlink (`VRRPLinkWatcher`), as keepalived
/// watches them: an interface that goes down (administratively, or losing its carrier) puts
/// its instances in FAULT (a Master removes its VIPs; the notify script gets FAULT), and when it
/// comes back they leave FAULT as from a failed check: Backup, then Master by the normal rules,
/// with gratuitous ARP / unsolicited NA on becoming Master.
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
/// speaker leaves no VIP, rule or macvlan behind. `requestStop()` leaves the same way without a
/// `ServiceGroup` shutdown (the agent stops one IPFailover's speaker and keeps the others).
///
/// At start, before any instance runs, it removes the instances' VIPs that it finds already on
/// their interface (left by a speaker that was SIGKILLed), as keepalived does: a new instance
/// starts as Backup and must not answer for them until it is elected.
public final class VRRPSpeaker: Service, Sendable {
    /// One instance's new state, as its notify script receives it.
    public struct Transition: Sendable, Hashable {
        /// The instance's name (the notify script's `$2`).
        public var instance: String
        public var vrid: UInt8
        /// MASTER, BACKUP, FAULT, or STOP when the instance leaves.
        public var state: VRRPInstance.NotifyState
        /// The instance's priority then.
        public var priority: UInt8
    }

    public let instances: [InstanceConfiguration]
    public let health: VRRPHealthSettings
    /// The chain of the nftables table admitting VRRP; nil adds no table.
    public let admitChain: String?
    let clock: any BatonClock
    let host: any VRRPHost
    let logger: Logger
    /// Told each transition, in order per instance, as the notify script is (cheap: it runs on
    /// the instance's task).
    let onTransition: (@Sendable (Transition) -> Void)?
    private let stops: AsyncStream<Void>
    private let stopsIn: AsyncStream<Void>.Continuation

    /// - Parameters:
    ///   - health: the checks every instance tracks; `.none` starts them at once.
    ///   - admitChain: the chain name of the table admitting VRRP (`OPENSHIFT_HA_IPTABLES_CHAIN`);
    ///     nil adds none.
    ///   - clock: the instances' time line; `MonotonicClock` in production.
    ///   - host: adds and removes the addresses, announces them and runs notify scripts;
    ///     `LinuxVRRPHost` in production.
    ///   - onTransition: told every transition of every instance (the agent reports them).
    public init(instances: [InstanceConfiguration], health: VRRPHealthSettings = .none, admitChain: String? = nil,
                clock: any BatonClock = MonotonicClock(),
                host: any VRRPHost = LinuxVRRPHost(), logger: Logger,
                onTransition: (@Sendable (Transition) -> Void)? = nil) throws(ConfigurationError) {
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
        self.onTransition = onTransition
        (stops, stopsIn) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks `run` to leave as on a graceful shutdown: every instance sends its priority-0
    /// advertisement and drops its addresses, then the macvlans and the table go. Idempotent;
    /// `run` returns once it is done.
    public func requestStop() {
        stopsIn.yield()
    }

    /// The configured VIPs that are already on their interface, per interface, in the
    /// instances' order: what a speaker killed before it could leave left behind. Only
    /// addresses this speaker's instances configure count, and only on their own interface
    /// (a `--vmac` instance's macvlan is created again, so it has none).
    static func leftovers(_ instances: [InstanceConfiguration], present: (String) -> [IPAddress]) -> [(interface: String, addresses: [VirtualAddress])] {
        var out: [(interface: String, addresses: [VirtualAddress])] = []
        var cache: [String: Set<IPAddress>] = [:]
        for instance in instances where !instance.virtualMAC {
            let here = cache[instance.interface] ?? Set(present(instance.interface))
            cache[instance.interface] = here
            let found = instance.virtualAddresses.filter { here.contains($0.address) }
            guard !found.isEmpty else { continue }
            if let i = out.firstIndex(where: { $0.interface == instance.interface }) {
                out[i].addresses += found
            } else {
                out.append((instance.interface, found))
            }
        }
        return out
    }

    public func run() async throws {
        var resources = Resources(instances: instances, admitChain: admitChain, host: host, logger: logger)
        defer { resources.tearDown() }
        try resources.setUp()
        for (interface, addresses) in Self.leftovers(instances, present: host.addresses(interface:)) {
            logger.notice("removing virtual addresses left on the interface by an earlier run", metadata: [
                "interface": "\(interface)", "vips": "\(addresses.map(\.description).joined(separator: ","))"])
            try host.removeAddresses(addresses, interface: interface)
        }
        // Open every socket first: a missing interface or CAP_NET_RAW fails the whole speaker.
        let initial: VRRPHealthMonitor.Verdict? = health.checks.isEmpty ? .healthy : nil
        // The interfaces' link state, read before any instance starts; changes go to the
        // runners on that interface once they exist.
        let runnersBox = Mutex<[VRRPInstanceRunner]>([])
        let links: VRRPLinkWatcher?
        do {
            links = try VRRPLinkWatcher(interfaces: Set(instances.map(\.interface)), logger: logger) { state in
                for runner in runnersBox.withLock({ $0 }) where runner.configuration.interface == state.interface { runner.deliver(state) }
            }
        } catch {
            logger.error("cannot watch the interfaces' links over rtnetlink: a link going down will not put the instances in FAULT",
                         metadata: ["error": "\(error)"])
            links = nil
        }
        var runners: [VRRPInstanceRunner] = []
        defer { if runners.count < instances.count { links?.close() } }
        for configuration in instances {
            var logger = logger
            logger[metadataKey: "instance"] = "\(configuration.name)"
            runners.append(try VRRPInstanceRunner(configuration: configuration, virtualMAC: resources.virtualMACs[configuration.name],
                                                  initialVerdict: initial, initialLink: links?.initial[configuration.interface],
                                                  clock: clock, host: host, logger: logger,
                                                  onTransition: onTransition))
        }
        runnersBox.withLock { $0 = runners }
        let checks: VRRPHealthRunner? = health.checks.isEmpty ? nil : VRRPHealthRunner(
            settings: health, clock: clock, logger: logger,
            publish: { [runners] verdict in for runner in runners { runner.deliver(verdict) } })
        await withTaskGroup(of: Void.self) { group in
            for runner in runners { group.addTask { await runner.run() } }
            if let checks { group.addTask { await checks.run() } }
            if let links { group.addTask { await links.run() } }
            // A graceful shutdown of the service group, or `requestStop()`.
            await withTaskGroup(of: Void.self) { wait in
                wait.addTask { try? await gracefulShutdown() }
                wait.addTask { [stops] in for await _ in stops { return } }
                await wait.next()
                wait.cancelAll()
            }
            logger.notice("shutting down: leaving every virtual router")
            checks?.requestStop()
            links?.requestStop()
            for runner in runners { runner.requestShutdown() }
            await group.waitForAll()
        }
    }
}
