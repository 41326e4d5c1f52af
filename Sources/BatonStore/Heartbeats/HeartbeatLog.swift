import BatonAPI

/// One node's newest heartbeat as a `HeartbeatLog` reader sees it.
public struct HeartbeatRecord: Sendable, Hashable {
    public var node: String
    /// The agent's own wall-clock time when it sent the heartbeat, as it reported it (RFC 3339),
    /// for display only: no decision reads it.
    public var agentTime: String?

    public init(node: String, agentTime: String?) {
        self.node = node
        self.agentTime = agentTime
    }
}

/// Where agents' heartbeats go: a small renewal per node, not an object write.
///
/// A heartbeat must not cost what an object update costs (JSON, a change-log row, a watch event
/// to every watcher): 1,000 agents at `tunnelUpdatePeriod` 0.2 s send 5,000 a second. Every API
/// replica records the heartbeats it receives here; the leader's controller reads which nodes
/// beat since its last read and stamps them with its own monotonic clock.
///
/// The contract the fencing argument needs: `record` returns only once the heartbeat is visible
/// to `read` in every process sharing the log, so a heartbeat an agent saw acknowledged is
/// observed by the leader no earlier than it was sent.
public protocol HeartbeatLog: Sendable {
    /// Records a heartbeat from `node`; returns once a `read` in any process sees it.
    func record(node: String, agentTime: String?) async throws

    /// The nodes that beat after `cursor` (one record per node, with its newest agent time), and
    /// the cursor to pass next time. A nil cursor returns no records, only the current cursor.
    func read(after cursor: Int64?) async throws -> (records: [HeartbeatRecord], cursor: Int64)

    /// The leadership term of the log's store as of the newest successful `read` (etcd's raft
    /// term), or nil for a store without one (SQLite). When it grows from one read to the next,
    /// the store may have been without a leader in between, even if no read failed; the
    /// controller then treats the silence since its last read as an outage (`grantGrace`),
    /// since heartbeats may have been answered `StoreWithoutQuorum` meanwhile.
    var lastReadTerm: Int64? { get }

    /// Removes the record of every node not in `nodes` (their tunnels were deleted); returns how
    /// many it removed. A removal is not a heartbeat: `read` never returns a removed node.
    func prune(keeping nodes: Set<String>) async throws -> Int
}

extension HeartbeatLog {
    public var lastReadTerm: Int64? { nil }
}

extension APIError {
    /// The 503 a heartbeat gets when the store has provably lost quorum (`StoreWithoutQuorum`):
    /// no replica can record it, and none can move an EIP either, until the store is back.
    public static func storeWithoutQuorum(_ m: String) -> APIError {
        APIError(code: 503, reason: .storeWithoutQuorum, message: m)
    }
}
