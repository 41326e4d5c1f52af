import BatonAPI
@testable import BatonStore
import Foundation
import GRDB
import Testing

/// What only the SQLite store does: files, compaction, several stores on one file,
/// slow watchers, errors from SQLite.
@Suite("SQLiteStore")
struct SQLiteStoreTests {
    @Test func restartLosesNothingAcknowledged() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var acknowledged: [String: Resource] = [:]
        let first = try SQLiteStore(directory: dir.path)
        for i in 0..<50 {
            let r = try await first.create(Fixture.route("r\(i)"))
            acknowledged[r.name] = r
        }
        for i in stride(from: 0, to: 50, by: 5) {
            var r = acknowledged["r\(i)"]!
            r.spec?["gateway"] = "10.5.5.5"
            acknowledged[r.name] = try await first.update(r)
        }
        for i in stride(from: 1, to: 50, by: 7) {
            _ = try await first.delete(kind: "StaticRoute", namespace: nil, name: "r\(i)", expectedRevision: nil)
            acknowledged["r\(i)"] = nil
        }
        let revision = try await first.currentRevision()
        await first.close()

        let second = try SQLiteStore(directory: dir.path)
        #expect(FileManager.default.fileExists(atPath: dir.path + "/baton.sqlite"))
        let listed = try await second.list(kind: "StaticRoute", namespace: nil, selector: nil)
        #expect(listed.revision == revision)
        #expect(listed.items == acknowledged.values.sorted { $0.name < $1.name })
        let history = try await take(Int(revision), from: try await second.watch(kind: nil, namespace: nil, since: 0))
        #expect(history.map(\.revision) == Array(1...revision))
        let next = try await second.create(Fixture.route("after-restart"))
        #expect(next.metadata.revision == revision + 1)
        await second.close()
    }

    @Test func watchFromCompactedRevisionIsGone() async throws {
        var config = SQLiteStore.Configuration()
        config.retainedRevisions = 5
        config.compactionInterval = 1
        let store = try SQLiteStore.inMemory(configuration: config)
        for i in 0..<20 { _ = try await store.create(Fixture.route("r\(i)")) }

        await expectAPIError(410, "too old resource version: 0 (15)") {
            _ = try await store.watch(kind: nil, namespace: nil, since: 0)
        }
        await expectAPIError(410, "too old resource version: 14 (15)") {
            _ = try await store.watch(kind: "StaticRoute", namespace: nil, since: 14)
        }
        #expect(store.watcherCount == 0)
        let kept = try await take(5, from: try await store.watch(kind: nil, namespace: nil, since: 15))
        #expect(kept.map(\.revision) == [16, 17, 18, 19, 20])
        // Objects are untouched by compaction.
        #expect(try await store.list(kind: "StaticRoute", namespace: nil, selector: nil).items.count == 20)
        await store.close()
    }

    @Test func compactionKeepsTheLogBounded() async throws {
        var config = SQLiteStore.Configuration()
        config.retainedRevisions = 100
        config.compactionInterval = 50
        let store = try SQLiteStore.inMemory(configuration: config)
        for i in 0..<1_000 { _ = try await store.create(Fixture.route("r\(i)")) }
        let (rows, compacted) = try await store.writer.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM changes")!, try ChangeLog.state(db).compacted)
        }
        #expect(rows == 100)
        #expect(compacted == 900)
        await store.close()
    }

    @Test func writesThroughOneStoreReachWatchesOnAnotherOnTheSameFile() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var config = SQLiteStore.Configuration()
        config.synchronous = .normal
        config.pollInterval = .milliseconds(20)
        let a = try SQLiteStore(directory: dir.path, configuration: config)
        let b = try SQLiteStore(directory: dir.path, configuration: config)

        let watchOnB = try await b.watch(kind: "StaticRoute", namespace: nil, since: 0)
        let created = try await a.create(Fixture.route("from-a"))
        let first = try await take(1, from: watchOnB)
        #expect(first.map(\.object) == [created])
        #expect(try await b.get(kind: "StaticRoute", namespace: nil, name: "from-a") == created)

        // Both write at once: revisions stay unique and a watch on either sees all of them once.
        let since = try await a.currentRevision()
        let watchOnA = try await a.watch(kind: nil, namespace: nil, since: since)
        let watchOnB2 = try await b.watch(kind: nil, namespace: nil, since: since)
        let committed = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for (index, store) in [a, b].enumerated() {
                group.addTask {
                    var revisions: [Int64] = []
                    for i in 0..<100 {
                        revisions.append(try await store.create(Fixture.route("s\(index)-\(i)")).metadata.revision)
                    }
                    return revisions
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(Set(committed).count == 200)
        let seenOnA = try await take(200, from: watchOnA).map(\.revision)
        let seenOnB = try await take(200, from: watchOnB2).map(\.revision)
        #expect(seenOnA == committed.sorted())
        #expect(seenOnB == committed.sorted())
        await a.close()
        await b.close()
    }

    @Test func slowWatcherIsDroppedWithGoneAndCanResume() async throws {
        var config = SQLiteStore.Configuration()
        config.watchBufferLimit = 10
        let store = try SQLiteStore.inMemory(configuration: config)
        let slow = try await store.watch(kind: nil, namespace: nil, since: 0)
        let fast = try await store.watch(kind: nil, namespace: nil, since: 0)
        #expect(store.watcherCount == 2)

        // The fast watcher reads each change before the next write (so even a loaded machine
        // cannot make it lag), while the slow one reads nothing.
        var fastIterator = fast.makeAsyncIterator()
        var fastSeen: [Int64] = []
        for i in 0..<30 {
            _ = try await store.create(Fixture.route("r\(i)"))
            if let e = try await fastIterator.next() { fastSeen.append(e.revision) }
        }
        #expect(fastSeen == Array(1...30))
        try await waitUntil("the slow watcher to be dropped") { store.watcherCount <= 1 }

        // The slow watcher gets what was queued, then 410, and resumes from where it stopped.
        var received: [Int64] = []
        do {
            for try await event in slow { received.append(event.revision) }
            Issue.record("the slow watcher's stream ended without an error")
        } catch let error as APIError {
            #expect(error.code == 410)
            #expect(error.message.contains("more than 10 changes behind"))
        }
        #expect(received == Array(1...10))
        let rest = try await take(20, from: try await store.watch(kind: nil, namespace: nil, since: received.last!))
        #expect(rest.map(\.revision) == Array(11...30))
        await store.close()
    }

    @Test func watcherIsRemovedWhenTheConsumerStops() async throws {
        let store = try SQLiteStore.inMemory()
        for i in 0..<3 { _ = try await store.create(Fixture.route("r\(i)")) }

        // Leaving the loop and dropping the stream.
        do {
            let stream = try await store.watch(kind: nil, namespace: nil, since: 0)
            #expect(store.watcherCount == 1)
            for try await _ in stream { break }
        }
        #expect(store.watcherCount == 0)

        // Cancelling the task that waits for live changes.
        let live = try await store.watch(kind: nil, namespace: nil, since: 3)
        let reader = Task {
            for try await _ in live {}
        }
        #expect(store.watcherCount == 1)
        reader.cancel()
        try await reader.value
        #expect(store.watcherCount == 0)
        await store.close()
    }

    @Test func closeEndsWatchesAndRefusesCalls() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try SQLiteStore(directory: dir.path)
        let stream = try await store.watch(kind: nil, namespace: nil, since: 0)
        let reader = Task { () -> Int in
            var n = 0
            for try await _ in stream { n += 1 }
            return n
        }
        _ = try await store.create(Fixture.route("r"))
        try await waitUntil("the watch to see the create") { try await store.currentRevision() == 1 }
        await store.close()
        #expect(try await withTimeout(10, "the watch to end") { try await reader.value } <= 1)
        await expectAPIError(503, "the store is closed") { _ = try await store.get(kind: "StaticRoute", namespace: nil, name: "r") }
        await expectAPIError(503) { _ = try await store.create(Fixture.route("x")) }
        await expectAPIError(503) { _ = try await store.watch(kind: nil, namespace: nil, since: 0) }
        await store.close()
    }

    @Test func lockHeldByAnotherProcessIsUnavailable() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var config = SQLiteStore.Configuration()
        config.busyTimeout = .milliseconds(100)
        let store = try SQLiteStore(directory: dir.path, configuration: config)
        _ = try await store.create(Fixture.route("r"))

        // Another connection (as another process would) holds the write lock.
        var holder = GRDB.Configuration()
        holder.allowsUnsafeTransactions = true
        let other = try DatabaseQueue(path: dir.path + "/" + SQLiteStore.fileName, configuration: holder)
        try await other.writeWithoutTransaction { db in try db.execute(sql: "BEGIN IMMEDIATE") }
        do {
            _ = try await store.create(Fixture.route("blocked"))
            Issue.record("the write succeeded while another connection held the lock")
        } catch let error as APIError {
            #expect(error.code == 503)
            #expect(error.message.hasPrefix("storage busy: create waited more than 0.1 seconds"))
        }
        // Reads still work (WAL), and writes resume once the lock is released.
        #expect(try await store.get(kind: "StaticRoute", namespace: nil, name: "r").name == "r")
        try await other.writeWithoutTransaction { db in try db.execute(sql: "ROLLBACK") }
        try other.close()
        #expect(try await store.create(Fixture.route("unblocked")).metadata.revision == 2)
        await store.close()
    }

    @Test(arguments: [SQLiteStore.Configuration.Synchronous.full, .normal])
    func synchronousModeIsApplied(_ mode: SQLiteStore.Configuration.Synchronous) async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var config = SQLiteStore.Configuration()
        config.synchronous = mode
        let store = try SQLiteStore(directory: dir.path, configuration: config)
        let (synchronous, journal) = try await store.writer.write { db in
            (try Int.fetchOne(db, sql: "PRAGMA synchronous")!, try String.fetchOne(db, sql: "PRAGMA journal_mode")!)
        }
        #expect(synchronous == (mode == .full ? 2 : 1))
        #expect(journal == "wal")
        await store.close()
    }
    @Test func largeListKeepsOrderAndFilters() async throws {
        let store = try SQLiteStore.inMemory()
        let names = (0..<1_200).map { String(format: "r%05d", $0) }
        for (i, name) in names.shuffled().enumerated() {
            _ = try await store.create(Fixture.route(name, labels: ["even": i.isMultiple(of: 2) ? "yes" : "no"]))
        }
        let all = try await store.list(kind: "StaticRoute", namespace: nil, selector: nil)
        #expect(all.items.map(\.name) == names)
        let even = try await store.list(kind: "StaticRoute", namespace: nil, selector: try LabelSelector.parse("even=yes"))
        #expect(even.items.count == 600)
        #expect(even.items.map(\.name) == even.items.map(\.name).sorted())
        #expect(even.items.allSatisfy { $0.labels["even"] == "yes" })
        await store.close()
    }

    /// Concurrent bursts mixing writes that succeed with writes that must fail (stale
    /// resourceVersion, already exists, not found), so that both land in the same group-commit
    /// batches: each failure gets its own error without touching the others, and the change log
    /// and a watch hold each success exactly once at gap-free revisions.
    @Test func groupCommitKeepsEachWritesOutcomeItsOwn() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var config = SQLiteStore.Configuration()
        config.synchronous = .full  // slow commits, so bursts queue up behind them
        let store = try SQLiteStore(directory: dir.path, configuration: config)
        let count = 32
        var current: [Resource] = []
        var stale: [String] = []
        for i in 0..<count {
            let created = try await store.create(Fixture.route("r\(i)"))
            stale.append(created.metadata.resourceVersion!)
            var next = created
            next.spec?["gateway"] = "10.9.9.9"
            current.append(try await store.update(next))
        }
        let base = try await store.currentRevision()
        let watch = try await store.watch(kind: nil, namespace: nil, since: base)

        enum Outcome: Sendable { case ok(WatchEventType, String, Int64), failed(expected: Int, got: Int) }
        var outcomes: [Outcome] = []
        for round in 0..<6 {
            let snapshot = current
            let staleVersions = stale
            let results = try await withThrowingTaskGroup(of: (Int?, Outcome).self) { group in
                func attempt(_ index: Int? = nil, expecting code: Int? = nil,
                             _ write: @escaping @Sendable () async throws -> (WatchEventType, Resource)) {
                    group.addTask {
                        do {
                            let (type, object) = try await write()
                            return (index, code == nil ? .ok(type, object.name, object.metadata.revision) : .failed(expected: code!, got: 200))
                        } catch let error as APIError {
                            return (index, .failed(expected: code ?? 200, got: error.code))
                        }
                    }
                }
                for i in 0..<count {
                    var fresh = snapshot[i]
                    fresh.spec?["gateway"] = .string("10.0.\(round).\(i)")
                    attempt(i) { [fresh] in (.modified, try await store.update(fresh)) }
                    if i % 3 == 0 {
                        var old = fresh
                        old.metadata.resourceVersion = staleVersions[i]
                        attempt(expecting: 409) { [old] in (.modified, try await store.update(old)) }
                    }
                    if i % 5 == 0 {
                        var old = snapshot[i]
                        old.metadata.resourceVersion = staleVersions[i]
                        old.body["status"] = ["phase": "Stale"]
                        attempt(expecting: 409) { [old] in (.modified, try await store.updateStatus(old)) }
                    }
                }
                for k in 0..<4 {
                    attempt { (.added, try await store.create(Fixture.route("new-\(round)-\(k)"))) }
                    attempt(expecting: 409) { (.added, try await store.create(Fixture.route("r\(k)"))) }
                    attempt(expecting: 404) {
                        (.deleted, try await store.delete(kind: "StaticRoute", namespace: nil, name: "missing-\(k)", expectedRevision: nil))
                    }
                }
                if round > 0 {
                    attempt(expecting: 409) {
                        (.deleted, try await store.delete(kind: "StaticRoute", namespace: nil, name: "new-\(round - 1)-0",
                                                          expectedRevision: 1))
                    }
                    attempt { (.deleted, try await store.delete(kind: "StaticRoute", namespace: nil, name: "new-\(round - 1)-1",
                                                                expectedRevision: nil)) }
                }
                var results: [(Int?, Outcome)] = []
                for try await result in group { results.append(result) }
                return results
            }
            stale = snapshot.map { $0.metadata.resourceVersion! }
            for (index, outcome) in results {
                outcomes.append(outcome)
                if let index, case .ok = outcome {
                    current[index] = try await store.get(kind: "StaticRoute", namespace: nil, name: "r\(index)")
                }
            }
        }

        for case let .failed(expected, got) in outcomes { #expect(got == expected) }
        let successes = outcomes.compactMap { outcome -> (WatchEventType, String, Int64)? in
            if case let .ok(type, name, revision) = outcome { return (type, name, revision) }
            return nil
        }.sorted { $0.2 < $1.2 }
        let last = try await store.currentRevision()
        #expect(successes.map(\.2) == Array((base + 1)...last))  // unique and gap-free
        let logged = try await store.writer.read { db in
            try Int64.fetchAll(db, sql: "SELECT revision FROM changes WHERE revision > ? ORDER BY revision", arguments: [base])
        }
        #expect(logged == Array((base + 1)...last))
        let events = try await take(successes.count, from: watch)
        #expect(events.map { "\($0.type) \($0.object.name) \($0.revision)" } == successes.map { "\($0.0) \($0.1) \($0.2)" })
        // Nothing more arrives: each success was delivered exactly once.
        _ = try await store.create(Fixture.route("sentinel"))
        #expect(try await take(1, from: watch).map(\.object.name) == ["sentinel"])
        await store.close()
    }

    @Test func compactionRunsWhenItsRevisionIsReachedInsideABatch() async throws {
        var config = SQLiteStore.Configuration()
        config.retainedRevisions = 100
        config.compactionInterval = 50
        let store = try SQLiteStore.inMemory(configuration: config)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<16 {
                group.addTask {
                    for i in 0..<50 {
                        _ = try await store.create(Fixture.route("w\(w)-\(i)"))
                        // A failing write in the batch must not swallow the compaction revision.
                        await expectAPIError(409) { _ = try await store.create(Fixture.route("w\(w)-\(i)")) }
                    }
                }
            }
            try await group.waitForAll()
        }
        let (rows, compacted, revision) = try await store.writer.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM changes")!, try ChangeLog.state(db).compacted,
             try ChangeLog.state(db).revision)
        }
        #expect(revision == 800)
        #expect(rows == 100)
        #expect(compacted == 700)
        await store.close()
    }

    @Test func closeFailsQueuedWritesWithoutHanging() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        // The blocked write waits for the lock for the whole test. Under a loaded CI machine the
        // 20 queued writes and close() can take longer than the default 5 s busy timeout, which
        // would fail the blocked write with "storage busy" instead of letting it commit.
        var config = SQLiteStore.Configuration()
        config.busyTimeout = .seconds(120)
        let store = try SQLiteStore(directory: dir.path, configuration: config)
        _ = try await store.create(Fixture.route("r"))
        // Another connection holds the write lock, so the next batch blocks and later writes queue.
        var holder = GRDB.Configuration()
        holder.allowsUnsafeTransactions = true
        let other = try DatabaseQueue(path: dir.path + "/" + SQLiteStore.fileName, configuration: holder)
        try await other.writeWithoutTransaction { db in try db.execute(sql: "BEGIN IMMEDIATE") }
        let blocked = Task { try await store.create(Fixture.route("blocked")) }
        // Wait until it has left the queue for a batch, which now waits for the lock.
        try await waitUntil("the blocked write to enter a batch") { store.committer.isDraining && store.committer.queuedCount == 0 }
        #expect(store.committer.queuedCount == 0)
        let queued = (0..<20).map { i in Task { try await store.create(Fixture.route("q\(i)")) } }
        try await waitUntil("the writes to queue") { store.committer.queuedCount == 20 }

        let closing = Task { await store.close() }
        for task in queued {
            await expectAPIError(503, "the store is closed") { _ = try await withTimeout(10) { try await task.value } }
        }
        // The batch in progress still commits once the lock is free, and close() then returns.
        try await other.writeWithoutTransaction { db in try db.execute(sql: "ROLLBACK") }
        try other.close()
        #expect(try await withTimeout(10, "the blocked write") { try await blocked.value }.metadata.revision == 2)
        try await withTimeout(10, "close") { await closing.value }

        let reopened = try SQLiteStore(directory: dir.path)
        #expect(try await reopened.list(kind: "StaticRoute", namespace: nil, selector: nil).items.map(\.name) == ["blocked", "r"])
        await reopened.close()
    }

    @Test func numberRepresentationIsNotAChange() async throws {
        let store = try SQLiteStore.inMemory()
        var input = Fixture.route("r")
        input.spec?["weight"] = .int(50)
        let v1 = try await store.create(input)
        var same = v1
        same.spec?["weight"] = .double(50)
        same.metadata.labels = ["touched": "yes"]
        let v2 = try await store.update(same)
        #expect(v2.metadata.generation == 1)
        #expect(v2.metadata.revision == v1.metadata.revision + 1)
        await store.close()
    }
}
