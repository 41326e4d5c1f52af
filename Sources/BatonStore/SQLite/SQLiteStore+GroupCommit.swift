import BatonAPI
import GRDB
import Synchronization

/// Group commit: concurrent writes share one transaction, so one fsync covers many of them.
///
/// Under `synchronous = FULL` every commit waits for an fsync, and SQLite allows one writer at
/// a time, so committing each write on its own caps throughput at about one write per fsync.
/// Instead, writes queue here, and one drain on GRDB's serial writer queue takes everything
/// waiting (up to `maxBatch`) and runs it in one IMMEDIATE transaction: each write in its own
/// SAVEPOINT, so a write that fails (404, 409, already exists) rolls back only itself and its
/// caller gets its own error, while the others commit. Revisions are taken inside the
/// transaction in queue order, so they stay gap-free and strictly increasing in commit order,
/// and a rolled-back write gives its revision back (compaction, which runs in the write that
/// reaches a multiple of `compactionInterval`, therefore still runs). No caller is answered
/// before the batch has committed: an acknowledged write is as durable as before.
///
/// There is no timer: a drain starts as soon as a write arrives while none is running, so a
/// lone write commits at once; batches form only from writes that arrive while a commit (its
/// fsync) is in progress. The drain runs as a GRDB write block, not a Swift task, so nothing
/// outlives the store: closing the file waits for it, and `close()` fails what is still queued.
final class GroupCommitter: Sendable {
    /// One queued write. `apply` runs it inside the batch transaction and returns how to answer
    /// its caller once the batch's fate is known (nil: committed, else the batch's error). It
    /// throws only when the write's error also ended the transaction (disk full, I/O error).
    struct Entry: Sendable {
        var apply: @Sendable (Database) throws -> @Sendable (_ batchError: (any Error)?) -> Void
        var fail: @Sendable (any Error) -> Void
    }

    /// The most writes one transaction commits.
    static let maxBatch = 256

    private struct State {
        var queue: [Entry] = []
        var draining = false
        var closed = false
    }

    private let writer: any DatabaseWriter
    private let didCommit: @Sendable () -> Void
    private let state = Mutex(State())

    /// `didCommit` runs after every committed batch (it wakes the watch tailer).
    init(writer: any DatabaseWriter, didCommit: @escaping @Sendable () -> Void) {
        self.writer = writer
        self.didCommit = didCommit
    }

    /// Queues `entry`, starting a drain unless one is running. False when closed.
    func submit(_ entry: Entry) -> Bool {
        let startDrain = state.withLock { s -> Bool? in
            if s.closed { return nil }
            s.queue.append(entry)
            defer { s.draining = true }
            return !s.draining
        }
        guard let startDrain else { return false }
        if startDrain {
            writer.asyncWriteWithoutTransaction { db in self.drain(db) }
        }
        return true
    }

    /// How many writes wait for the next batch.
    var queuedCount: Int { state.withLock { $0.queue.count } }
    /// Whether a batch is being written (tests use it to know a write left the queue).
    var isDraining: Bool { state.withLock { $0.draining } }

    /// Refuses later writes and fails the queued ones with `error`. A batch already being
    /// committed finishes normally.
    func close(failing error: any Error) {
        let queued = state.withLock { s -> [Entry] in
            s.closed = true
            defer { s.queue = [] }
            return s.queue
        }
        for entry in queued { entry.fail(error) }
    }

    private func drain(_ db: Database) {
        while true {
            let batch = state.withLock { s -> [Entry] in
                let batch = Array(s.queue.prefix(Self.maxBatch))
                s.queue.removeFirst(batch.count)
                if batch.isEmpty { s.draining = false }
                return batch
            }
            if batch.isEmpty { return }
            commit(batch, db)
        }
    }

    private func commit(_ batch: [Entry], _ db: Database) {
        var answers: [@Sendable ((any Error)?) -> Void] = []
        answers.reserveCapacity(batch.count)
        do {
            try db.inTransaction(.immediate) {
                for entry in batch { answers.append(try entry.apply(db)) }
                return .commit
            }
        } catch {
            // Rolled back (the commit failed, or a write's error ended the transaction):
            // nothing in the batch was written.
            for answer in answers { answer(error) }
            for entry in batch.dropFirst(answers.count) { entry.fail(error) }
            return
        }
        didCommit()
        for answer in answers { answer(nil) }
    }
}
