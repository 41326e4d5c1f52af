import Foundation
import Logging
import Synchronization

/// Where an agent's announce and withdraw orders go. The Linux data plane (addresses,
/// GARP/NA, VXLAN, nftables) comes with issue 4; `--dataplane none` uses `RecordingDataplane`.
public protocol EgressDataplane: Sendable {
    func announce(_ eips: Set<String>) async throws
    func withdraw(_ eips: Set<String>) async throws
    /// The announced EIPs may stay announced for `remaining` from now (the agent's fence
    /// deadline), whatever becomes of the agent: a data plane that can enforce it in the kernel
    /// does (`EgressFence`). Called before each announce and after each acknowledged heartbeat.
    func renew(for remaining: Duration) async throws
    /// The agent knows its placement for the first time: whatever it found announced at start
    /// and was not told to announce can go.
    func settle() async throws
}

extension EgressDataplane {
    public func renew(for remaining: Duration) async throws {}
    public func settle() async throws {}
}

/// Touches no network: it keeps the set of EIPs it was told to announce and logs every change.
/// For tests, simulations and many agents on one machine.
///
/// With a journal file, each change is also appended as one line, `NANOS announce|withdraw
/// EIP,EIP`, where NANOS is `CLOCK_MONOTONIC`, one clock for every process on the machine: a
/// test compares the journals of several agents to prove that two never announced one EIP at
/// the same time. An announce is stamped before it takes effect and a withdraw after, so the
/// journal never makes two announcements look further apart than they were.
public final class RecordingDataplane: EgressDataplane {
    let logger: Logger
    let state = Mutex<Set<String>>([])
    let journal: FileHandle?
    /// Called after each change with the EIPs and whether they were announced (simulations).
    let onChange: (@Sendable (_ eips: Set<String>, _ announced: Bool) -> Void)?

    public init(logger: Logger, journal path: String? = nil,
                onChange: (@Sendable (_ eips: Set<String>, _ announced: Bool) -> Void)? = nil) throws {
        self.logger = logger
        self.onChange = onChange
        if let path {
            if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
            guard let handle = FileHandle(forWritingAtPath: path) else {
                throw DataplaneError("cannot open the data-plane journal \(path) for writing")
            }
            handle.seekToEndOfFile()
            journal = handle
        } else {
            journal = nil
        }
    }

    public var announced: Set<String> { state.withLock { $0 } }

    public func announce(_ eips: Set<String>) async throws {
        record("announce", eips)  // stamped before: the announcement starts no later than this
        state.withLock { $0.formUnion(eips) }
        logger.notice("announcing EIPs", metadata: ["eips": "\(eips.sorted().joined(separator: ","))"])
        onChange?(eips, true)
    }

    public func withdraw(_ eips: Set<String>) async throws {
        state.withLock { $0.subtract(eips) }
        record("withdraw", eips)  // stamped after: the withdrawal is complete by this
        logger.notice("withdrew EIPs", metadata: ["eips": "\(eips.sorted().joined(separator: ","))"])
        onChange?(eips, false)
    }

    func record(_ what: String, _ eips: Set<String>) {
        record(what, eips.sorted().joined(separator: ","))
    }

    /// Appends `NANOS WHAT DETAIL` to the journal, if there is one (the IPFailover speakers of
    /// `--dataplane none` record what they would run here too).
    public func record(_ what: String, _ detail: String) {
        guard let journal else { return }
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let nanos = Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
        journal.write(Data("\(nanos) \(what) \(detail)\n".utf8))
    }
}

/// A data plane that could not do what it was told.
public struct DataplaneError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
