import BatonAPI
import BatonCore
import BatonVRRP
import Foundation
import Logging
import Synchronization

/// One IPFailover's speaker on this node, as the managed mode runs it: `run` until
/// `requestStop()` (then it leaves gracefully and returns) or until it fails (it throws).
public protocol IPFailoverSpeaker: Sendable {
    func run() async throws
    /// Idempotent; `run` returns once the speaker has left.
    func requestStop()
}

extension VRRPSpeaker: IPFailoverSpeaker {}

/// Makes the speakers the managed mode runs: the real VRRP speaker (`--dataplane linux`) or one
/// that only records what it would run (`--dataplane none`).
public protocol IPFailoverSpeakerFactory: Sendable {
    /// The node's IPv4 address on `interface`, which sets its slot among the replicas (as the
    /// ipfailover pod reads it from the interface).
    func nodeAddress(interface: String) -> IPAddress?
    func makeSpeaker(name: String, configuration: VRRPSpeakerConfiguration, logger: Logger,
                     onTransition: @escaping @Sendable (VRRPSpeaker.Transition) -> Void) throws -> any IPFailoverSpeaker
}

/// `--dataplane linux`: `VRRPSpeaker` on raw sockets, adding the VIPs, the nftables table and
/// any macvlan on this host.
public struct LinuxIPFailoverSpeakers: IPFailoverSpeakerFactory {
    /// The node's own addresses (`--address`): the IPv4 one is the slot's fallback when the
    /// interface has no IPv4 address.
    public var addresses: [IPAddress]

    public init(addresses: [IPAddress]) { self.addresses = addresses }

    public func nodeAddress(interface: String) -> IPAddress? {
        InterfaceAddresses.source(family: .v4, interface: interface) ?? addresses.first { $0.family == .v4 }
    }

    public func makeSpeaker(name: String, configuration: VRRPSpeakerConfiguration, logger: Logger,
                            onTransition: @escaping @Sendable (VRRPSpeaker.Transition) -> Void) throws -> any IPFailoverSpeaker {
        try VRRPSpeaker(instances: VRRPSpeaker.instances(configuration), health: configuration.health,
                        admitChain: configuration.iptablesChain, logger: logger, onTransition: onTransition)
    }
}

/// `--dataplane none`: decides as the Linux speaker would (same configuration, same
/// priorities) and logs it, touching no network. With a journal it appends
/// `NANOS ipfailover-start NAME INSTANCE:VRID:PRIORITY:VIP,VIP;...` when it starts and
/// `NANOS ipfailover-stop NAME` when it stops, so a test can follow an agent without root.
public struct RecordingIPFailoverSpeakers: IPFailoverSpeakerFactory {
    public var addresses: [IPAddress]
    public var journal: (@Sendable (_ what: String, _ detail: String) -> Void)?

    public init(addresses: [IPAddress], journal: (@Sendable (_ what: String, _ detail: String) -> Void)? = nil) {
        self.addresses = addresses
        self.journal = journal
    }

    public func nodeAddress(interface: String) -> IPAddress? { addresses.first { $0.family == .v4 } }

    public func makeSpeaker(name: String, configuration: VRRPSpeakerConfiguration, logger: Logger,
                            onTransition: @escaping @Sendable (VRRPSpeaker.Transition) -> Void) throws -> any IPFailoverSpeaker {
        RecordingSpeaker(name: name, configuration: configuration, logger: logger, journal: journal)
    }

    /// One line per instance: `NAME:VRID:PRIORITY:VIP,VIP`.
    public static func describe(_ configuration: VRRPSpeakerConfiguration) -> String {
        configuration.instances.map { i in
            "\(i.name):\(i.vrid):\(i.priority):\(i.vips.map { "\($0.address)" }.joined(separator: ","))"
        }.joined(separator: ";")
    }

    final class RecordingSpeaker: IPFailoverSpeaker {
        let name: String
        let configuration: VRRPSpeakerConfiguration
        let logger: Logger
        let journal: (@Sendable (String, String) -> Void)?
        let stops: AsyncStream<Void>
        let stopsIn: AsyncStream<Void>.Continuation

        init(name: String, configuration: VRRPSpeakerConfiguration, logger: Logger, journal: (@Sendable (String, String) -> Void)?) {
            self.name = name
            self.configuration = configuration
            self.logger = logger
            self.journal = journal
            (stops, stopsIn) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        }

        func run() async throws {
            let described = RecordingIPFailoverSpeakers.describe(configuration)
            logger.notice("would run VRRP (--dataplane none)", metadata: [
                "ipfailover": "\(name)", "instances": "\(described)",
                "interface": "\(configuration.instances.first?.interface ?? "")",
            ])
            journal?("ipfailover-start", "\(name) \(described)")
            for await _ in stops { break }
            journal?("ipfailover-stop", name)
        }

        func requestStop() { stopsIn.yield() }
    }
}
