import Logging
import Synchronization

/// Where an agent's announce and withdraw orders go. The Linux data plane (addresses,
/// GARP/NA, VXLAN, nftables) comes with issue 4; `--dataplane none` uses `RecordingDataplane`.
public protocol EgressDataplane: Sendable {
    func announce(_ eips: Set<String>) async throws
    func withdraw(_ eips: Set<String>) async throws
}

/// Touches no network: it keeps the set of EIPs it was told to announce and logs every change.
/// For tests, simulations and many agents on one machine.
public final class RecordingDataplane: EgressDataplane {
    let logger: Logger
    let state = Mutex<Set<String>>([])

    public init(logger: Logger) { self.logger = logger }

    public var announced: Set<String> { state.withLock { $0 } }

    public func announce(_ eips: Set<String>) async throws {
        state.withLock { $0.formUnion(eips) }
        logger.notice("announcing EIPs", metadata: ["eips": "\(eips.sorted().joined(separator: ","))"])
    }

    public func withdraw(_ eips: Set<String>) async throws {
        state.withLock { $0.subtract(eips) }
        logger.notice("withdrew EIPs", metadata: ["eips": "\(eips.sorted().joined(separator: ","))"])
    }
}
