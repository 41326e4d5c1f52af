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
/// On graceful shutdown (SIGTERM through the `ServiceGroup`) every instance gets `.shutdown`: a
/// Master sends its priority-0 advertisement (a Backup takes over within `Skew_Time`) and
/// removes its addresses, and every instance's notify script gets STOP before `run` returns.
public final class VRRPSpeaker: Service, Sendable {
    public let instances: [InstanceConfiguration]
    let clock: any BatonClock
    let host: any VRRPHost
    let logger: Logger

    /// - Parameters:
    ///   - clock: the instances' time line; `MonotonicClock` in production.
    ///   - host: adds and removes the addresses, announces them and runs notify scripts;
    ///     `LinuxVRRPHost` in production.
    public init(instances: [InstanceConfiguration], clock: any BatonClock = MonotonicClock(),
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
        self.instances = instances
        self.clock = clock
        self.host = host
        self.logger = logger
    }

    public func run() async throws {
        // Open every socket first: a missing interface or CAP_NET_RAW fails the whole speaker.
        var runners: [VRRPInstanceRunner] = []
        for configuration in instances {
            var logger = logger
            logger[metadataKey: "instance"] = "\(configuration.name)"
            runners.append(try VRRPInstanceRunner(configuration: configuration, clock: clock, host: host, logger: logger))
        }
        await withTaskGroup(of: Void.self) { group in
            for runner in runners { group.addTask { await runner.run() } }
            try? await gracefulShutdown()
            logger.notice("shutting down: leaving every virtual router")
            for runner in runners { runner.requestShutdown() }
            await group.waitForAll()
        }
    }
}
