import BatonCore
import BatonServer
import BatonStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// Two replicas, each with its own `SQLiteStore` on one file (as two processes would be),
/// campaigning for one `StoreLeaseLock`. Real time, short periods; conditions are awaited with
/// timeouts, never asserted after a fixed sleep.
@Suite("LeaderElection", .serialized)
struct LeaderElectionTests {
    /// Who is running a body now, the most that ever ran at once, and when each body started.
    final class Bodies: Sendable {
        private let state = Mutex<(running: Set<String>, maxConcurrent: Int, started: [String: ContinuousClock.Instant])>(([], 0, [:]))

        func body(_ name: String) -> @Sendable () async throws -> Void {
            { [self] in
                state.withLock {
                    $0.running.insert(name)
                    $0.maxConcurrent = max($0.maxConcurrent, $0.running.count)
                    $0.started[name] = ContinuousClock.now
                }
                defer { _ = state.withLock { $0.running.remove(name) } }
                while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(5)) }
            }
        }

        var running: Set<String> { state.withLock { $0.running } }
        var maxConcurrent: Int { state.withLock { $0.maxConcurrent } }
        func started(_ name: String) -> ContinuousClock.Instant? { state.withLock { $0.started[name] } }
    }

    /// Two stores opened on one file in a fresh directory; closed and removed afterwards.
    static func withTwoStores(_ test: (SQLiteStore, SQLiteStore) async throws -> Void) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("baton-lease-\(UUID().uuidString.prefix(8))").path
        let a = try SQLiteStore(directory: dir)
        let b = try SQLiteStore(directory: dir)
        do {
            try await test(a, b)
        } catch {
            await a.close(); await b.close()
            try? FileManager.default.removeItem(atPath: dir)
            throw error
        }
        await a.close(); await b.close()
        try? FileManager.default.removeItem(atPath: dir)
    }

    static func waitUntil(timeout: Duration, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return condition()
    }

    static let logger = Logger(label: "baton.test.election")

    @Test("exactly one replica runs its body; a crashed leader's lease expires and the other takes over")
    func crashTakeover() async throws {
        // Wide enough that a loaded CI machine does not miss a renewal (2 s of renew deadline: with
        // 1 s, three builds beside the suite once starved the leader into stepping down).
        let config = try LeaderLease.Configuration(leaseDuration: .milliseconds(3000), renewDeadline: .milliseconds(2000),
                                                   retryPeriod: .milliseconds(100))
        try await Self.withTwoStores { storeA, storeB in
            let bodies = Bodies()
            let a = LeaderElection(lock: StoreLeaseLock(store: storeA, name: "controller"), identity: "a",
                                   configuration: config, logger: Self.logger, whileLeader: bodies.body("a"))
            let b = LeaderElection(lock: StoreLeaseLock(store: storeB, name: "controller"), identity: "b",
                                   configuration: config, logger: Self.logger, whileLeader: bodies.body("b"))
            let taskA = Task { try await a.run() }
            let taskB = Task { try await b.run() }
            defer { taskA.cancel(); taskB.cancel() }

            // The first election is immediate on an idle machine; the full suite runs etcd clusters
            // and server processes beside this test, so allow for a starved scheduler.
            #expect(await Self.waitUntil(timeout: .seconds(10)) { bodies.running.count == 1 })
            // More than a lease duration of steady state: the follower never takes over.
            let first = try #require(bodies.running.first)
            try await Task.sleep(for: .seconds(4))
            #expect(bodies.running == [first])
            #expect(bodies.maxConcurrent == 1)

            // Crash the leader: cancel without a graceful shutdown, so the lease is not released.
            let (leaderTask, other) = first == "a" ? (taskA, "b") : (taskB, "a")
            let crashedAt = ContinuousClock.now
            leaderTask.cancel()
            _ = try? await leaderTask.value
            let lock = StoreLeaseLock(store: storeA, name: "controller")
            // It did not release: the lease still names the crashed replica (until the other takes it).
            let afterCrash = try #require(try await lock.get())
            #expect(afterCrash.lease.holderIdentity == first)

            #expect(await Self.waitUntil(timeout: .seconds(8)) { bodies.running == [other] })
            let takeover = try #require(bodies.started(other)) - crashedAt
            // Within leaseDuration + retryPeriod (+ slack for the writes and a loaded machine)...
            #expect(takeover < .milliseconds(3000 + 100 + 800))
            // ...and not before the lease could have expired (the leader renewed ≤ retryPeriod before the crash).
            #expect(takeover >= .milliseconds(3000 - 100 - 100))
            #expect(bodies.maxConcurrent == 1)
            #expect(try await lock.get()?.lease.holderIdentity == other)
        }
    }

    @Test("graceful shutdown cancels the body and releases the lease: takeover well inside the lease duration")
    func gracefulHandover() async throws {
        // A long lease, so a takeover inside it can only come from the release.
        let config = try LeaderLease.Configuration(leaseDuration: .seconds(3), renewDeadline: .seconds(2),
                                                   retryPeriod: .milliseconds(50))
        try await Self.withTwoStores { storeA, storeB in
            let bodies = Bodies()
            let b = LeaderElection(lock: StoreLeaseLock(store: storeB, name: "controller"), identity: "b",
                                   configuration: config, logger: Self.logger, whileLeader: bodies.body("b"))
            let group = ServiceGroup(services: [b], logger: Self.logger)
            let groupTask = Task { try await group.run() }
            defer { groupTask.cancel() }
            #expect(await Self.waitUntil(timeout: .seconds(10)) { bodies.running == ["b"] })

            let c = LeaderElection(lock: StoreLeaseLock(store: storeA, name: "controller"), identity: "c",
                                   configuration: config, logger: Self.logger, whileLeader: bodies.body("c"))
            let taskC = Task { try await c.run() }
            defer { taskC.cancel() }
            // c stands by, having seen b's lease, so only a release can let it in before 3 s.
            try await Task.sleep(for: .milliseconds(300))
            #expect(bodies.running == ["b"])
            #expect(!c.isLeader)

            let stoppedAt = ContinuousClock.now
            await group.triggerGracefulShutdown()
            try await groupTask.value
            #expect(!bodies.running.contains("b"))

            #expect(await Self.waitUntil(timeout: .seconds(3)) { bodies.running == ["c"] })
            let takeover = try #require(bodies.started("c")) - stoppedAt
            // Well inside the 3 s lease: only the release can explain it (about 0.1 s when the
            // machine is idle; the full suite's parallel load has stretched it to 1.1 s).
            #expect(takeover < .milliseconds(2000), "takeover took \(takeover); the lease is 3 s")
            #expect(bodies.maxConcurrent == 1)
            let lease = try #require(try await StoreLeaseLock(store: storeB, name: "controller").get())
            #expect(lease.lease.holderIdentity == "c")
            #expect(lease.lease.leaderTransitions == 2)
        }
    }

    @Test("a leader whose store writes hang stops its body once renewDeadline passes")
    func renewDeadlineWithHungStore() async throws {
        let config = try LeaderLease.Configuration(leaseDuration: .milliseconds(300), renewDeadline: .milliseconds(200),
                                                   retryPeriod: .milliseconds(50))
        try await Self.withTwoStores { store, _ in
            let bodies = Bodies()
            let lock = HangingLock(StoreLeaseLock(store: store, name: "controller"))
            let a = LeaderElection(lock: lock, identity: "a", configuration: config, logger: Self.logger, whileLeader: bodies.body("a"))
            let task = Task { try await a.run() }
            defer { task.cancel() }
            #expect(await Self.waitUntil(timeout: .seconds(3)) { bodies.running == ["a"] })

            lock.hang.withLock { $0 = true }
            let hungAt = ContinuousClock.now
            #expect(await Self.waitUntil(timeout: .seconds(2)) { bodies.running.isEmpty && !a.isLeader })
            // The last renewal started at most one retryPeriod before the hang.
            #expect(ContinuousClock.now - hungAt < .milliseconds(200 + 1000))  // slack for a loaded machine
        }
    }

    /// A lock whose every operation blocks (until cancelled) once `hang` is set: a store that stopped answering.
    final class HangingLock: LeaseLock {
        let inner: StoreLeaseLock
        let hang = Mutex(false)
        init(_ inner: StoreLeaseLock) { self.inner = inner }
        var name: String { inner.name }

        private func gate() async throws {
            while hang.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        }
        func get() async throws -> LeaseLockRecord? { try await gate(); return try await inner.get() }
        func create(_ lease: LeaderLease.Record) async throws -> LeaseLockRecord { try await gate(); return try await inner.create(lease) }
        func update(_ lease: LeaderLease.Record, replacing current: LeaseLockRecord) async throws -> LeaseLockRecord {
            try await gate(); return try await inner.update(lease, replacing: current)
        }
        func delete(version: String?) async throws { try await gate(); try await inner.delete(version: version) }
    }

    @Test("StoreLeaseLock: two writers racing on one version, one wins and one gets a conflict")
    func compareAndSwap() async throws {
        try await Self.withTwoStores { storeA, storeB in
            let lockA = StoreLeaseLock(store: storeA, name: "race")
            let lockB = StoreLeaseLock(store: storeB, name: "race")
            #expect(try await lockA.get() == nil)

            let created = try await lockA.create(LeaderLease.Record(holderIdentity: "a", leaseDuration: .milliseconds(1500), renewCount: 1))
            await #expect(throws: LeaseLockError.self) { _ = try await lockB.create(LeaderLease.Record(holderIdentity: "b", leaseDuration: .seconds(2))) }

            let read = try #require(try await lockB.get())
            #expect(read == created)
            #expect(read.lease.leaseDuration == .milliseconds(1500))
            #expect(read.acquireTime != nil && read.renewTime != nil)

            async let byA = Self.attempt { try await lockA.update(LeaderLease.Record(holderIdentity: "a", leaseDuration: .seconds(2), renewCount: 2), replacing: read) }
            async let byB = Self.attempt { try await lockB.update(LeaderLease.Record(holderIdentity: "b", leaseDuration: .seconds(2), leaderTransitions: 1, renewCount: 2), replacing: read) }
            let results = await [byA, byB]
            let wins = results.compactMap { try? $0.get() }
            let conflicts = results.compactMap { result -> LeaseLockError? in
                if case .failure(let e) = result { return e as? LeaseLockError } else { return nil }
            }
            #expect(wins.count == 1)
            #expect(conflicts.map(\.code) == [.conflict])
            let stored = try #require(try await lockA.get())
            #expect(stored == wins.first)
            #expect(stored.lease.renewCount == 2)

            // A stale delete is refused; a current one succeeds; deleting again is fine.
            await #expect(throws: LeaseLockError.self) { try await lockB.delete(version: read.version) }
            try await lockB.delete(version: stored.version)
            try await lockA.delete(version: nil)
            #expect(try await lockA.get() == nil)
        }
    }

    static func attempt(_ op: @Sendable () async throws -> LeaseLockRecord) async -> Result<LeaseLockRecord, any Error> {
        do { return .success(try await op()) } catch { return .failure(error) }
    }
}
