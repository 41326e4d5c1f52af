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

        // The fast watcher keeps up while the slow one reads nothing.
        let fastReader = Task { try await take(30, from: fast) }
        for i in 0..<30 { _ = try await store.create(Fixture.route("r\(i)")) }
        #expect(try await fastReader.value.map(\.revision) == Array(1...30))
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
