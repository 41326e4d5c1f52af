import BatonAPI
import BatonEtcd
import Foundation
import Synchronization

/// `HeartbeatLog` on etcd, shared by every `baton server` replica on the cluster: one key per
/// node, `PREFIX/heartbeats/NODE`, holding the agent's reported time.
///
/// A batch of heartbeats is one etcd txn of puts (at most `maxBatch`, etcd's default
/// `--max-txn-ops` of 128), so the batch takes one etcd revision and every key in it gets that
/// revision as its `mod_revision`. As with `SQLiteHeartbeatLog`, heartbeats that arrive while a
/// txn is in flight go together in the next one, and nobody is answered before the txn holding
/// their heartbeat has committed: a linearizable read anywhere then sees it. The leader reads
/// the keys whose `mod_revision` is after its cursor (a range with `min_mod_revision`) and takes
/// the read's revision as its next cursor.
///
/// What it costs etcd: one txn (one raft entry, fsynced on a quorum of members) per batch, and
/// one range per read (etcd scans the node keys and returns those changed since the cursor).
/// Each batch also adds a revision to etcd's history, so the store's history must be compacted
/// (`EtcdCompactor`, run by the leader). Why not an etcd lease per agent, kept alive on each
/// heartbeat: a lease's TTL is whole seconds with a floor of 1.5 × etcd's election timeout
/// (2 s by default), too coarse for a 0.7 s `eipEvictionTimeout`, and a keep-alive leaves
/// nothing a leader on another replica could read without asking etcd about every lease.
public final class EtcdHeartbeatLog: HeartbeatLog, Sendable {
    /// The most heartbeats one txn carries (etcd's default `--max-txn-ops`).
    public static let maxBatch = 128
    /// How many txns may be in flight at once when heartbeats queue up faster than one commits.
    public static let maxConcurrentBatches = 4

    private struct Pending: Sendable {
        var node: String
        var agentTime: String?
        var done: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var queue: [Pending] = []
        var draining = 0
        var closed = false
        /// When a drain last took a batch.
        var lastTake: ContinuousClock.Instant?
    }

    /// A txn in flight for longer than this (etcd is changing leader, or has lost quorum and not
    /// noticed yet) does not hold back the heartbeats that arrive after it: another batch starts,
    /// whose answer ("no leader") may come at once.
    public static let stallAfter = Duration.milliseconds(100)

    public let client: EtcdClient
    /// Every node's key starts with this.
    public let keyPrefix: String
    private let state = Mutex(State())
    private let term = Mutex<Int64?>(nil)

    public var lastReadTerm: Int64? { term.withLock { $0 } }

    /// - Parameter prefix: the store's key prefix (`EtcdStore.Configuration.prefix`).
    public init(client: EtcdClient, prefix: String = "/baton/") {
        self.client = client
        self.keyPrefix = prefix + "heartbeats/"
    }

    public func record(node: String, agentTime: String?) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            let start = state.withLock { s -> Bool? in
                if s.closed { return nil }
                s.queue.append(Pending(node: node, agentTime: agentTime, done: done))
                // One more drain when none runs, or when a full batch waits or the batches in
                // flight have stalled, and fewer than the most run.
                let now = ContinuousClock.now
                let stalled = s.lastTake.map { now - $0 > Self.stallAfter } ?? false
                guard s.draining == 0 || ((s.queue.count >= Self.maxBatch || stalled) && s.draining < Self.maxConcurrentBatches) else {
                    return false
                }
                s.draining += 1
                s.lastTake = now
                return true
            }
            switch start {
            case nil: done.resume(throwing: APIError.unavailable("the heartbeat log is closed"))
            case true?: Task { await self.drain() }
            case false?: break
            }
        }
    }

    public func read(after cursor: Int64?) async throws -> (records: [HeartbeatRecord], cursor: Int64) {
        let end = EtcdJSON.prefixEnd(keyPrefix)
        do {
            guard let cursor else {
                let range = try await client.range(keyPrefix, rangeEnd: end, countOnly: true)
                noteTerm(range.raftTerm)
                return ([], range.revision)
            }
            let range = try await client.range(keyPrefix, rangeEnd: end, minModRevision: cursor + 1)
            noteTerm(range.raftTerm)
            let records = range.kvs.map { kv in
                HeartbeatRecord(node: String(kv.key.dropFirst(keyPrefix.count)),
                                agentTime: kv.value.isEmpty ? nil : String(decoding: kv.value, as: UTF8.self))
            }
            return (records, max(cursor, range.revision))
        } catch {
            throw APIError.unavailable("cannot read the heartbeat log: \(error)")
        }
    }

    public func prune(keeping nodes: Set<String>) async throws -> Int {
        do {
            let keys = try await client.range(keyPrefix, rangeEnd: EtcdJSON.prefixEnd(keyPrefix), keysOnly: true).kvs.map(\.key)
            let stale = keys.filter { !nodes.contains(String($0.dropFirst(keyPrefix.count))) }
            var start = stale.startIndex
            while start < stale.endIndex {
                let end = min(start + Self.maxBatch, stale.endIndex)
                _ = try await client.txn(compare: [], success: stale[start..<end].map { EtcdTxn.delete($0, prevKV: false) })
                start = end
            }
            return stale.count
        } catch {
            throw APIError.unavailable("cannot prune the heartbeat log: \(error)")
        }
    }

    private func noteTerm(_ t: Int64) {
        guard t > 0 else { return }
        term.withLock { $0 = max($0 ?? 0, t) }
    }

    /// Fails what is queued and refuses later heartbeats.
    public func close() {
        let queued = state.withLock { s -> [Pending] in
            s.closed = true
            defer { s.queue = [] }
            return s.queue
        }
        for p in queued { p.done.resume(throwing: APIError.unavailable("the heartbeat log is closed")) }
    }

    private func drain() async {
        while true {
            let batch = state.withLock { s -> [Pending] in
                let batch = Array(s.queue.prefix(Self.maxBatch))
                s.queue.removeFirst(batch.count)
                if batch.isEmpty { s.draining -= 1 } else { s.lastTake = ContinuousClock.now }
                return batch
            }
            if batch.isEmpty { return }
            // A node twice in one batch: its newest time, one put (etcd refuses a txn that puts a
            // key twice).
            var newest: [String: String?] = [:]
            for p in batch { newest[p.node] = p.agentTime }
            let puts = newest.map { node, time in EtcdTxn.put(keyPrefix + node, Data((time ?? "").utf8)) }
            do {
                _ = try await client.txn(compare: [], success: puts)
                for p in batch { p.done.resume() }
            } catch {
                let e = (error as? EtcdError)?.code == .noQuorum
                    ? APIError.storeWithoutQuorum("cannot record the heartbeat: \(error)")
                    : APIError.unavailable("cannot record the heartbeat: \(error)")
                for p in batch { p.done.resume(throwing: e) }
            }
        }
    }
}
