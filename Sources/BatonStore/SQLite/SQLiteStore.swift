import BatonAPI
import Foundation
import GRDB
import Logging
import Synchronization

/// The embedded `ResourceStore`: one SQLite file (`DATA_DIR/baton.sqlite`) in WAL mode.
///
/// Every write bumps the global revision, writes the object row and appends a row to the
/// change log, all in one savepoint; the revision is the object's `resourceVersion`. Writes that
/// arrive together are committed together, in one transaction and one fsync (`GroupCommitter`).
/// Watches are served from the change log by one tailer per store, which a local commit wakes
/// at once and which also polls the file (`Configuration.pollInterval`), so several
/// `baton server` processes may share one file and see each other's writes.
///
/// The file is opened with a GRDB `DatabasePool` rather than a `DatabaseQueue`: writes are
/// serialized by SQLite either way, and the pool lets lists, gets and watch replays read a
/// consistent snapshot on their own connections while a write is in progress, instead of
/// queueing behind it.
///
/// Call `close()` when done: it ends every watch, stops the tailer and closes the file.
/// Errors are `APIError`s; SQLite failures (disk full, the lock held by another process past
/// `busyTimeout`, I/O errors) become 503 Service Unavailable.
public final class SQLiteStore: ResourceStore, Sendable {
    /// The file name of the database inside a data dir.
    public static let fileName = "baton.sqlite"

    /// The database file, or nil for an in-memory store.
    public let path: String?
    public let configuration: Configuration

    let writer: any DatabaseWriter
    let hub: WatchHub
    let committer: GroupCommitter
    let logger: Logger
    let now: @Sendable () -> Date
    private let tailer: Mutex<Task<Void, Never>?>
    private let isClosed = Atomic<Bool>(false)

    /// Opens (creating if needed) `directory/baton.sqlite`, creating `directory` too.
    ///
    /// - Parameters:
    ///   - now: the clock for `creationTimestamp`; inject one to control it in tests.
    ///   - logger: where opening, compaction and dropped watchers are reported.
    public convenience init(
        directory: String,
        configuration: Configuration = Configuration(),
        logger: Logger = SQLiteStore.silentLogger,
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw APIError.unavailable("cannot create data dir \(directory): \(error.localizedDescription)")
        }
        let file = URL(fileURLWithPath: directory).appendingPathComponent(Self.fileName).path
        try self.init(path: file, configuration: configuration, logger: logger, now: now)
    }

    /// Opens (creating if needed) the database file at `path`. Several stores, in this
    /// process or others, may open the same file.
    public convenience init(
        path: String,
        configuration: Configuration = Configuration(),
        logger: Logger = SQLiteStore.silentLogger,
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        var grdb = GRDB.Configuration()
        grdb.busyMode = .timeout(Self.seconds(configuration.busyTimeout))
        grdb.maximumReaderCount = max(1, configuration.maximumReaderCount)
        grdb.label = "baton.store"
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: grdb)
            // GRDB sets NORMAL when it turns WAL on; this runs after, on the one writer connection.
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = \(configuration.synchronous.rawValue)")
            }
        } catch {
            throw Self.storageError(error, doing: "opening \(path)", configuration: configuration)
        }
        try self.init(writer: pool, path: path, configuration: configuration, logger: logger, now: now)
        logger.info("opened store", metadata: [
            "path": "\(path)", "synchronous": "\(configuration.synchronous.rawValue)",
            "revision": "\(hub.lastSeen)",
        ])
    }

    /// A store that lives in memory only, for tests. It behaves as a file-backed store
    /// (revisions, watch, compaction) but nothing survives it and no other process can share it.
    public static func inMemory(
        configuration: Configuration = Configuration(),
        logger: Logger = SQLiteStore.silentLogger,
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws -> SQLiteStore {
        var config = configuration
        config.pollInterval = nil  // nobody else can write an in-memory database
        let queue: DatabaseQueue
        do {
            queue = try DatabaseQueue()
        } catch {
            throw storageError(error, doing: "opening an in-memory database", configuration: config)
        }
        return try SQLiteStore(writer: queue, path: nil, configuration: config, logger: logger, now: now)
    }

    private init(
        writer: any DatabaseWriter, path: String?, configuration: Configuration,
        logger: Logger, now: @escaping @Sendable () -> Date
    ) throws {
        let revision: Int64
        do {
            try Self.migrator.migrate(writer)
            revision = try writer.read { db in try ChangeLog.state(db).revision }
        } catch {
            throw Self.storageError(error, doing: "preparing the schema", configuration: configuration)
        }
        self.writer = writer
        self.path = path
        self.configuration = configuration
        self.logger = logger
        self.now = now
        self.hub = WatchHub(lastSeen: revision, bufferLimit: max(1, configuration.watchBufferLimit), logger: logger)
        let hub = self.hub
        self.committer = GroupCommitter(writer: writer, didCommit: { hub.signal() })
        let poll = configuration.pollInterval
        self.tailer = Mutex(Task { await hub.runTailer(reader: writer, pollInterval: poll) })
    }

    deinit {
        tailer.withLock { $0?.cancel() }
        hub.close()
    }

    /// Ends every watch (their streams finish normally), stops the tailer and closes the file.
    /// Later calls fail with 503. Safe to call more than once.
    public func close() async {
        guard !isClosed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        committer.close(failing: APIError.unavailable("the store is closed"))
        hub.close()
        let task = tailer.withLock { t -> Task<Void, Never>? in
            defer { t = nil }
            return t
        }
        task?.cancel()
        await task?.value
        do {
            try writer.close()
        } catch {
            logger.warning("closing the store failed", metadata: ["error": "\(error)"])
        }
    }

    /// A logger that drops everything: the default when the caller passes none.
    public static let silentLogger = Logger(label: "baton.store", factory: { _ in SwiftLogNoOpLogHandler() })

    /// How many watch streams are open; a stream stops counting when its consumer stops
    /// iterating or its task is cancelled.
    public var watcherCount: Int { hub.subscriberCount }

    // MARK: - Reads

    public func get(kind: String, namespace: String?, name: String) async throws -> Resource {
        let key = ObjectKey(kind: kind, namespace: namespace, name: name)
        let row = try await read("get") { db in try ObjectRow.fetch(db, key) }
        guard let row else { throw APIError.notFound(kind: kind, name: name) }
        return try row.decode()
    }

    public func exists(kind: String, namespace: String?, name: String) async throws -> Bool {
        let key = ObjectKey(kind: kind, namespace: namespace, name: name)
        return try await read("exists") { db in try ObjectRow.exists(db, key) }
    }

    public func list(kind: String, namespace: String?, selector: LabelSelector?) async throws -> ListResult {
        let (revision, rows) = try await read("list") { db in
            (try ChangeLog.state(db).revision, try ObjectRow.fetchAll(db, kind: kind, namespace: namespace))
        }
        let selector = selector.flatMap { $0.isEmpty ? nil : $0 }
        return ListResult(items: try await Self.decode(rows, selector: selector), revision: revision)
    }

    /// Decodes rows (the bulk of a large list's cost) in a few parallel chunks, keeping order.
    static func decode(_ rows: [ObjectRow], selector: LabelSelector?) async throws -> [Resource] {
        func decodeChunk(_ chunk: ArraySlice<ObjectRow>) throws -> [Resource] {
            var items: [Resource] = []
            items.reserveCapacity(chunk.count)
            for row in chunk {
                let object = try row.decode()
                if let selector, !selector.matches(object.labels) { continue }
                items.append(object)
            }
            return items
        }
        let chunkSize = 1_000
        guard rows.count > chunkSize else { return try decodeChunk(rows[...]) }
        let chunks = stride(from: 0, to: rows.count, by: chunkSize).map { rows[$0..<min($0 + chunkSize, rows.count)] }
        var parts = [[Resource]](repeating: [], count: chunks.count)
        try await withThrowingTaskGroup(of: (Int, [Resource]).self) { group in
            for (index, chunk) in chunks.enumerated() {
                group.addTask { (index, try decodeChunk(chunk)) }
            }
            for try await (index, items) in group { parts[index] = items }
        }
        return parts.flatMap { $0 }
    }

    public func currentRevision() async throws -> Int64 {
        try await read("reading the revision") { db in try ChangeLog.state(db).revision }
    }

    // MARK: - Writes

    public func create(_ object: Resource) async throws -> Resource {
        let prepared = StoreSemantics.created(object, now: now())
        let key = ObjectKey(prepared)
        let config = configuration
        let candidate = prepared
        return try await write("create") { db in
            if try ObjectRow.exists(db, key) {
                throw APIError.alreadyExists(kind: key.kind, name: key.name)
            }
            var created = candidate
            let revision = try ChangeLog.nextRevision(db)
            created.metadata.resourceVersion = String(revision)
            let json = created.json.jsonString()
            try ObjectRow.insert(db, key, uid: created.metadata.uid ?? "", revision: revision, json: json)
            try ChangeLog.append(db, revision: revision, type: .added, key: key, json: json, configuration: config)
            return created
        }
    }

    public func update(_ object: Resource) async throws -> Resource {
        let key = ObjectKey(object)
        let config = configuration
        return try await write("update") { db in
            let stored = try Self.load(db, key, expecting: object.metadata.resourceVersion)
            let next = StoreSemantics.updated(object, over: stored.object)
            return try Self.replace(db, key, stored: stored, with: next, configuration: config)
        }
    }

    public func updateStatus(_ object: Resource) async throws -> Resource {
        let key = ObjectKey(object)
        let config = configuration
        return try await write("status update") { db in
            let stored = try Self.load(db, key, expecting: object.metadata.resourceVersion)
            let next = StoreSemantics.statusUpdated(object, over: stored.object)
            return try Self.replace(db, key, stored: stored, with: next, configuration: config)
        }
    }

    public func delete(kind: String, namespace: String?, name: String, expectedRevision: Int64?) async throws -> Resource {
        let key = ObjectKey(kind: kind, namespace: namespace, name: name)
        let config = configuration
        return try await write("delete") { db in
            let stored = try Self.load(db, key, expecting: expectedRevision.map { String($0) })
            var deleted = stored.object
            let revision = try ChangeLog.nextRevision(db)
            deleted.metadata.resourceVersion = String(revision)
            try ObjectRow.delete(db, key)
            try ChangeLog.append(db, revision: revision, type: .deleted, key: key, json: deleted.json.jsonString(),
                                 configuration: config)
            return deleted
        }
    }

    // MARK: - Watch

    /// See `ResourceStore.watch`. History is read from the change log page by page as the
    /// consumer pulls, so a long replay is paced by the consumer and does not count against
    /// `watchBufferLimit`; only live changes queue up. The stream is pull-based rather than
    /// fed through a continuation, which is why there is no `onTermination`: the watch is
    /// unregistered when its task is cancelled, when the stream ends, or when the stream is released.
    public func watch(kind: String?, namespace: String?, since revision: Int64) async throws -> AsyncThrowingStream<WatchEvent, any Error> {
        try checkOpen()
        let subscriber = try hub.register(kind: kind, namespace: namespace)
        let cursor = WatchCursor(subscriber: subscriber, hub: hub, reader: writer, since: max(0, revision),
                                 configuration: configuration)
        // The first page is read now so that a compacted revision fails the call itself.
        try await cursor.start()
        return AsyncThrowingStream(unfolding: { try await cursor.next() })
    }

    // MARK: - Helpers

    /// The stored row of `key`, decoded, after checking the caller's resourceVersion.
    static func load(_ db: Database, _ key: ObjectKey, expecting resourceVersion: String?) throws -> StoredObject {
        guard let row = try ObjectRow.fetch(db, key) else {
            throw APIError.notFound(kind: key.kind, name: key.name)
        }
        if StoreSemantics.isStale(resourceVersion, stored: row.revision) {
            throw StoreSemantics.modified(kind: key.kind, name: key.name)
        }
        return StoredObject(revision: row.revision, json: row.json, object: try row.decode())
    }

    /// Writes `next` over `stored` at a new revision, or nothing when it would store the same JSON.
    static func replace(_ db: Database, _ key: ObjectKey, stored: StoredObject, with next: Resource,
                        configuration: Configuration) throws -> Resource {
        if StoreSemantics.unchanged(next, stored.object) { return stored.object }
        var next = next
        let revision = try ChangeLog.nextRevision(db)
        next.metadata.resourceVersion = String(revision)
        let json = next.json.jsonString()
        try ObjectRow.update(db, key, revision: revision, json: json)
        try ChangeLog.append(db, revision: revision, type: .modified, key: key, json: json, configuration: configuration)
        return next
    }

    func checkOpen() throws(APIError) {
        if isClosed.load(ordering: .acquiring) { throw APIError.unavailable("the store is closed") }
    }

    func read<T: Sendable>(_ operation: String, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try checkOpen()
        do {
            return try await writer.read(body)
        } catch {
            throw Self.storageError(error, doing: operation, configuration: configuration)
        }
    }

    /// Runs `body` in its own savepoint of the next group-commit transaction and returns once
    /// that transaction has committed (the tailer is woken by then). When `body` throws, only
    /// its own changes are rolled back and only this call fails.
    func write<T: Sendable>(_ operation: String, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try checkOpen()
        let configuration = configuration
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let fail: @Sendable (any Error) -> Void = { error in
                continuation.resume(throwing: Self.storageError(error, doing: operation, configuration: configuration))
            }
            let entry = GroupCommitter.Entry(apply: { db in
                let outcome: Result<T, any Error>
                do {
                    var value: T?
                    try db.inSavepoint {
                        value = try body(db)
                        return .commit
                    }
                    outcome = .success(value!)
                } catch let error where db.isInsideTransaction {
                    outcome = .failure(error)  // the savepoint was rolled back; the batch goes on
                }
                return { batchError in
                    switch (batchError, outcome) {
                    case (nil, .success(let value)): continuation.resume(returning: value)
                    case (nil, .failure(let error)), (let error?, _): fail(error)
                    }
                }
            }, fail: fail)
            if !committer.submit(entry) { fail(APIError.unavailable("the store is closed")) }
        }
    }

    static func seconds(_ d: Duration) -> TimeInterval {
        let c = d.components
        return TimeInterval(c.seconds) + TimeInterval(c.attoseconds) / 1e18
    }

    /// Maps whatever a storage call threw to what a caller of the store may see.
    static func storageError(_ error: any Error, doing operation: String, configuration: Configuration) -> any Error {
        switch error {
        case let error as APIError:
            return error
        case let error as CancellationError:
            return error
        case let error as DatabaseError:
            let detail = error.message ?? "\(error.resultCode)"
            switch error.resultCode {
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                return APIError.unavailable(
                    "storage busy: \(operation) waited more than \(configuration.busyTimeout) for the database lock (\(detail))")
            case .SQLITE_FULL:
                return APIError.unavailable("storage full: \(operation) failed because the disk holding the database is full")
            case .SQLITE_IOERR:
                return APIError.unavailable("storage I/O error during \(operation): \(detail)")
            case .SQLITE_READONLY, .SQLITE_PERM, .SQLITE_CANTOPEN:
                return APIError.unavailable("storage not writable during \(operation): \(detail)")
            case .SQLITE_CORRUPT, .SQLITE_NOTADB:
                return APIError.unavailable("storage corrupt during \(operation): \(detail)")
            default:
                return APIError.unavailable("storage error during \(operation): \(detail)")
            }
        default:
            return APIError.unavailable("storage error during \(operation): \(error)")
        }
    }
}

/// The primary key of an object row; `namespace` is "" for cluster-scoped objects.
struct ObjectKey: Sendable, Hashable {
    var kind: String
    var namespace: String
    var name: String

    init(kind: String, namespace: String?, name: String) {
        self.kind = kind
        self.namespace = namespace ?? ""
        self.name = name
    }

    init(_ object: Resource) {
        self.init(kind: object.kind, namespace: object.metadata.namespace, name: object.metadata.name)
    }
}

/// An object as read inside a write transaction: its revision, its exact stored JSON, decoded.
struct StoredObject {
    var revision: Int64
    var json: String
    var object: Resource
}
