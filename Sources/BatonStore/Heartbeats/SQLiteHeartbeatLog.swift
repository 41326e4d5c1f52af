import BatonAPI
import Foundation
import GRDB
import Synchronization

/// `HeartbeatLog` for the embedded store: `DATA_DIR/heartbeats.sqlite`, a file of its own
/// beside `baton.sqlite`, shared by every `baton server` on that data dir.
///
/// One row per node: `(node, seq, agent_time)`. A batch of heartbeats is one IMMEDIATE
/// transaction that takes the next `seq` (from `heartbeat_clock`, which never goes back, even
/// when `prune` removes the rows holding the largest) and upserts each node's row with it, so sequence
/// numbers are committed in increasing order and a reader that remembers the largest `seq` it
/// saw finds exactly the nodes that beat since (`seq > cursor`, an index range scan).
///
/// Heartbeats are not worth an fsync: the file runs with `synchronous = OFF`. Losing the last
/// ones in a power cut costs nothing, because a controller that starts gives every node a full
/// `eipEvictionTimeout` of grace anyway. Like the store's group commit, heartbeats that arrive
/// while a batch is being written go together in the next one, and nobody is answered before
/// the batch holding their heartbeat has committed.
public final class SQLiteHeartbeatLog: HeartbeatLog, Sendable {
    public static let fileName = "heartbeats.sqlite"

    private struct Pending: Sendable {
        var node: String
        var agentTime: String?
        var done: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var queue: [Pending] = []
        var draining = false
        var closed = false
    }

    private let writer: any DatabaseWriter
    private let state = Mutex(State())

    /// Opens (creating if needed) `directory/heartbeats.sqlite`.
    public convenience init(directory: String, busyTimeout: Duration = .seconds(5)) throws {
        let path = URL(fileURLWithPath: directory).appendingPathComponent(Self.fileName).path
        var config = GRDB.Configuration()
        config.busyMode = .timeout(SQLiteStore.seconds(busyTimeout))
        config.label = "baton.heartbeats"
        do {
            let pool = try DatabasePool(path: path, configuration: config)
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = OFF") }
            try self.init(writer: pool)
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.unavailable("cannot open the heartbeat log \(path): \(error)")
        }
    }

    /// A log in memory, for tests and single-process use.
    public static func inMemory() throws -> SQLiteHeartbeatLog {
        do {
            return try SQLiteHeartbeatLog(writer: try DatabaseQueue())
        } catch {
            throw APIError.unavailable("cannot open an in-memory heartbeat log: \(error)")
        }
    }

    private init(writer: any DatabaseWriter) throws {
        self.writer = writer
        try writer.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS heartbeat (
                    node TEXT PRIMARY KEY NOT NULL,
                    seq INTEGER NOT NULL,
                    agent_time TEXT
                ) WITHOUT ROWID;
                CREATE INDEX IF NOT EXISTS heartbeat_seq ON heartbeat(seq);
                CREATE TABLE IF NOT EXISTS heartbeat_clock (
                    id INTEGER PRIMARY KEY CHECK (id = 0),
                    seq INTEGER NOT NULL
                );
                INSERT OR IGNORE INTO heartbeat_clock(id, seq) SELECT 0, coalesce(max(seq), 0) FROM heartbeat;
                """)
        }
    }

    public func record(node: String, agentTime: String?) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            let start = state.withLock { s -> Bool? in
                if s.closed { return nil }
                s.queue.append(Pending(node: node, agentTime: agentTime, done: done))
                defer { s.draining = true }
                return !s.draining
            }
            switch start {
            case nil: done.resume(throwing: APIError.unavailable("the heartbeat log is closed"))
            case true?: writer.asyncWriteWithoutTransaction { db in self.drain(db) }
            case false?: break
            }
        }
    }

    public func read(after cursor: Int64?) async throws -> (records: [HeartbeatRecord], cursor: Int64) {
        do {
            return try await writer.read { db in
                guard let cursor else {
                    return ([], try Int64.fetchOne(db, sql: "SELECT seq FROM heartbeat_clock WHERE id = 0") ?? 0)
                }
                var records: [HeartbeatRecord] = []
                var newest = cursor
                let rows = try Row.fetchCursor(db, sql: "SELECT node, seq, agent_time FROM heartbeat WHERE seq > ? ORDER BY seq",
                                               arguments: [cursor])
                while let row = try rows.next() {
                    records.append(HeartbeatRecord(node: row[0], agentTime: row[2]))
                    newest = max(newest, row[1])
                }
                return (records, newest)
            }
        } catch {
            throw APIError.unavailable("cannot read the heartbeat log: \(error)")
        }
    }

    public func prune(keeping nodes: Set<String>) async throws -> Int {
        do {
            return try await writer.write { db in
                let stale = try String.fetchAll(db, sql: "SELECT node FROM heartbeat").filter { !nodes.contains($0) }
                for node in stale { try db.execute(sql: "DELETE FROM heartbeat WHERE node = ?", arguments: [node]) }
                return stale.count
            }
        } catch {
            throw APIError.unavailable("cannot prune the heartbeat log: \(error)")
        }
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

    private func drain(_ db: Database) {
        while true {
            let batch = state.withLock { s -> [Pending] in
                let batch = s.queue
                s.queue = []
                if batch.isEmpty { s.draining = false }
                return batch
            }
            if batch.isEmpty { return }
            do {
                try db.inTransaction(.immediate) {
                    // From its own row, not max(seq): a pruned node's row may have held the
                    // largest, and a sequence number must never go back below a reader's cursor.
                    let seq = (try Int64.fetchOne(db, sql: "SELECT seq FROM heartbeat_clock WHERE id = 0") ?? 0) + 1
                    try db.execute(sql: "UPDATE heartbeat_clock SET seq = ? WHERE id = 0", arguments: [seq])
                    let upsert = try db.cachedStatement(sql: """
                        INSERT INTO heartbeat(node, seq, agent_time) VALUES (?, ?, ?)
                        ON CONFLICT(node) DO UPDATE SET seq = excluded.seq, agent_time = excluded.agent_time
                        """)
                    for p in batch { try upsert.execute(arguments: [p.node, seq, p.agentTime]) }
                    return .commit
                }
                for p in batch { p.done.resume() }
            } catch {
                let e = APIError.unavailable("cannot record the heartbeat: \(error)")
                for p in batch { p.done.resume(throwing: e) }
            }
        }
    }
}
