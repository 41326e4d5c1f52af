import BatonAPI
import BatonEtcd
import BatonStore
import BatonTesting
import Foundation
import Synchronization
import Testing

/// Makes a fresh, empty store for one test and tears it down afterwards. A conformance suite
/// runs once per factory, so another `ResourceStore` (etcd) joins by adding a factory here.
struct StoreFactory: Sendable, CustomTestStringConvertible {
    /// A store and how to dispose of it (close it, delete its files).
    struct Instance: Sendable {
        var store: any ResourceStore
        var tearDown: @Sendable () async -> Void
    }

    var name: String
    /// Whether each write takes exactly the next revision (SQLite). etcd's revisions only go up:
    /// other writers to the same etcd (here, the other tests sharing it) take revisions too.
    var consecutiveRevisions = true
    var make: @Sendable (_ now: @escaping @Sendable () -> Date) async throws -> Instance

    var testDescription: String { name }

    static let sqliteInMemory = StoreFactory(name: "SQLiteStore.inMemory") { now in
        let store = try SQLiteStore.inMemory(now: now)
        return Instance(store: store, tearDown: { await store.close() })
    }

    static let sqliteFile = StoreFactory(name: "SQLiteStore(file)") { now in
        let dir = TemporaryDirectory()
        var config = SQLiteStore.Configuration()
        config.synchronous = .normal  // durability is tested separately; keep the suite quick
        let store = try SQLiteStore(directory: dir.path, configuration: config, now: now)
        return Instance(store: store, tearDown: {
            await store.close()
            dir.remove()
        })
    }

    /// An `EtcdStore` on the test process's shared single-member etcd, under a key prefix of
    /// its own: a fresh, empty store per test without a fresh etcd per test.
    static let etcd = StoreFactory(name: "EtcdStore", consecutiveRevisions: false) { now in
        let cluster = try await SharedEtcd.cluster()
        let client = try EtcdClient(endpoints: cluster.endpoints)
        var config = EtcdStore.Configuration()
        config.prefix = "/test-\(UUID().uuidString.prefix(8))/"
        let store = try EtcdStore(client: client, configuration: config, now: now)
        let prefix = config.prefix
        return Instance(store: store, tearDown: {
            await store.close()
            _ = try? await client.txn(compare: [], success: [
                ["request_delete_range": ["key": .string(EtcdJSON.b64(prefix)),
                                          "range_end": .string(EtcdJSON.b64(EtcdJSON.prefixEnd(prefix)))]],
            ])
            await client.shutdown()
        })
    }

    /// Every store the conformance suite runs against; etcd only where it is installed (the
    /// etcd suites say so when they skip).
    static let all: [StoreFactory] = [.sqliteInMemory, .sqliteFile] + (LocalEtcdCluster.binary != nil ? [.etcd] : [])

    /// `revision` is the one right after `previous`: exactly (consecutive revisions), or later.
    func isNext(_ revision: Int64, after previous: Int64) -> Bool {
        consecutiveRevisions ? revision == previous + 1 : revision > previous
    }

    /// Runs `body` with a fresh store and tears it down, even when `body` throws.
    func with<T>(now: @escaping @Sendable () -> Date = TestClock.epoch.callAsFunction,
                 _ body: (any ResourceStore) async throws -> T) async throws -> T {
        let instance = try await make(now)
        do {
            let result = try await body(instance.store)
            await instance.tearDown()
            return result
        } catch {
            await instance.tearDown()
            throw error
        }
    }
}

/// A unique directory under the system's temporary directory.
struct TemporaryDirectory: Sendable {
    let path: String

    init() {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("baton-store-test-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A clock that tests set by hand.
final class TestClock: Sendable {
    private let date: Mutex<Date>

    init(_ date: Date) { self.date = Mutex(date) }

    /// 2025-01-02T03:04:05Z.
    static let epoch = TestClock(Date(timeIntervalSince1970: 1_735_787_045))

    func callAsFunction() -> Date { date.withLock { $0 } }
    func advance(by seconds: TimeInterval) { date.withLock { $0 += seconds } }
}

struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Runs `body`, cancelling it and failing if it takes longer than `seconds`.
func withTimeout<T: Sendable>(_ seconds: Double, _ what: String = "the operation",
                              _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw TimedOut(what: what)
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// Waits (polling, with a deadline) until `condition` holds.
func waitUntil(_ what: String, timeout: Double = 10, _ condition: @escaping @Sendable () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(timeout)
    while try await !condition() {
        if ContinuousClock.now > deadline { throw TimedOut(what: what) }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// The first `count` events of `stream`, failing after `timeout` seconds.
func take(_ count: Int, from stream: AsyncThrowingStream<WatchEvent, any Error>, timeout: Double = 10) async throws -> [WatchEvent] {
    guard count > 0 else { return [] }
    return try await withTimeout(timeout, "\(count) watch events") {
        var events: [WatchEvent] = []
        for try await event in stream {
            events.append(event)
            if events.count == count { break }
        }
        return events
    }
}

enum Fixture {
    /// A cluster-scoped object.
    static func route(_ name: String, gateway: String = "10.1.1.1", labels: [String: String]? = nil) -> Resource {
        Resource(apiVersion: "networking.digitalocean.com/v1", kind: "StaticRoute",
                 metadata: ObjectMeta(name: name, labels: labels),
                 body: ["spec": ["destinations": ["192.168.0.0/16"], "gateway": .string(gateway)]])
    }

    /// A namespaced object.
    static func policy(_ name: String, namespace: String, labels: [String: String]? = nil) -> Resource {
        Resource(apiVersion: "egressgateway.spidernet.io/v1beta1", kind: "EgressPolicy",
                 metadata: ObjectMeta(name: name, namespace: namespace, labels: labels),
                 body: ["spec": ["egressGatewayName": "default", "destSubnet": ["10.6.0.0/16"]]])
    }
}

/// Asserts that `body` throws an `APIError` with `code` (and `message`, when given).
func expectAPIError(_ code: Int, _ message: String? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                    _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected HTTP \(code), but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as APIError {
        #expect(error.code == code, "\(error.message)", sourceLocation: sourceLocation)
        if let message { #expect(error.message == message, sourceLocation: sourceLocation) }
    } catch {
        Issue.record("expected an APIError \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

/// The single-member etcd that every etcd-backed test in this process shares, started on first
/// use and stopped by PID when the process exits.
enum SharedEtcd {
    private static let starting = Mutex<Task<LocalEtcdCluster, any Error>?>(nil)

    static func cluster() async throws -> LocalEtcdCluster {
        let task = starting.withLock { t in
            if let t { return t }
            let made = Task { try await LocalEtcdCluster(size: 1) }
            t = made
            return made
        }
        return try await task.value
    }
}
