import BatonAPI
import BatonEtcd
import Foundation
import Logging
import Synchronization

/// The `ResourceStore` for several `baton server` replicas on several machines: objects live in
/// etcd v3 (the store Kubernetes itself uses), reached through etcd's JSON gateway
/// (`EtcdClient` says why the gateway rather than gRPC).
///
/// - Each object is one key, `PREFIX/objects/KIND/NAMESPACE/NAME` (NAMESPACE empty for
///   cluster-scoped kinds), whose value is the object's JSON without `resourceVersion`.
/// - `resourceVersion` is the key's etcd `mod_revision`; the store revision is etcd's revision.
///   Revisions are strictly increasing but not consecutive: other writers to the same etcd
///   (other prefixes, the heartbeat log, leases) take revisions too.
/// - Create is a txn that puts only if the key's `create_revision` is 0. Update, status update
///   and a conditional delete are txns that compare the key's `mod_revision` with the revision
///   read (or the caller's `resourceVersion`); an update without a `resourceVersion` that loses
///   the race reads again and retries.
/// - A write that etcd did not confirm (its member died mid-request) is read back: if the key
///   holds what was written, the write succeeded; otherwise the caller gets 503.
/// - Watches share one etcd watch on `PREFIX/objects/` (`EtcdWatchHub`), which resumes from
///   its last revision on another endpoint when its member dies and keeps the latest changes in
///   memory, so a watch that starts from a recent revision (a list's) costs no etcd stream of its
///   own. A watch from an older revision gets its own etcd watch. A compacted revision is 410
///   Gone, as in `SQLiteStore`.
/// - Label selection happens here, after reading the kind's keys, as in `SQLiteStore`.
///
/// Errors are `APIError`s: etcd unreachable or without quorum is 503 with a message that names
/// etcd and each endpoint tried. Call `close()` when done: it ends every watch. The client
/// belongs to the caller, who shuts it down after closing the store.
public final class EtcdStore: ResourceStore, Sendable {
    public struct Configuration: Sendable {
        /// The key prefix everything lives under; ends with "/". Defaults to "/baton/".
        public var prefix = "/baton/"
        /// How many of the latest changes the shared watch keeps in memory for watches that
        /// start a little behind it. Defaults to 5,000.
        public var watchCacheSize = 5_000
        /// How many changes one watcher may have waiting before it is dropped with 410 Gone (it
        /// resumes from the last revision it received). Defaults to 10,000.
        public var watchBufferLimit = 10_000
        /// How long a watch may go without any etcd endpoint serving it before its watchers get
        /// 503 (they watch again once etcd is back). Defaults to 10 s.
        public var watchOutageLimit: Duration = .seconds(10)

        public init() {}
    }

    public let client: EtcdClient
    public let configuration: Configuration
    let keys: EtcdKeys
    let logger: Logger
    let now: @Sendable () -> Date
    let hub: EtcdWatchHub
    private let isClosed = Atomic<Bool>(false)

    /// - Throws: 400 when `configuration.prefix` does not start and end with "/".
    public init(client: EtcdClient, configuration: Configuration = Configuration(),
                logger: Logger = SQLiteStore.silentLogger, now: @escaping @Sendable () -> Date = { Date() }) throws {
        guard configuration.prefix.hasPrefix("/"), configuration.prefix.hasSuffix("/"), configuration.prefix.count > 1 else {
            throw APIError.badRequest("etcd key prefix \"\(configuration.prefix)\" must start and end with \"/\", for example /baton/")
        }
        self.client = client
        self.configuration = configuration
        self.keys = EtcdKeys(prefix: configuration.prefix)
        self.logger = logger
        self.now = now
        self.hub = EtcdWatchHub(client: client, keys: keys, configuration: configuration, logger: logger)
    }

    deinit {
        hub.cancel()
    }

    /// Ends every watch (their streams finish normally). Later calls fail with 503.
    public func close() async {
        guard !isClosed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        await hub.close()
    }

    /// How many watch streams are open.
    public var watcherCount: Int { hub.subscriberCount }

    func checkOpen() throws(APIError) {
        if isClosed.load(ordering: .acquiring) { throw APIError.unavailable("the store is closed") }
    }

    // MARK: - Reads

    public func get(kind: String, namespace: String?, name: String) async throws -> Resource {
        try checkOpen()
        let key = keys.object(kind: kind, namespace: namespace, name: name)
        let range = try await etcd("get") { try await self.client.range(key) }
        guard let kv = range.kvs.first else { throw APIError.notFound(kind: kind, name: name) }
        return try decode(kv)
    }

    public func exists(kind: String, namespace: String?, name: String) async throws -> Bool {
        try checkOpen()
        let key = keys.object(kind: kind, namespace: namespace, name: name)
        return try await etcd("exists") { try await self.client.range(key, countOnly: true) }.count > 0
    }

    public func list(kind: String, namespace: String?, selector: LabelSelector?) async throws -> ListResult {
        try checkOpen()
        let prefix = keys.objects(kind: kind, namespace: namespace)
        let range = try await etcd("list") { try await self.client.rangePrefix(prefix) }
        let selector = selector.flatMap { $0.isEmpty ? nil : $0 }
        var items: [(namespace: String, name: String, object: Resource)] = []
        items.reserveCapacity(range.kvs.count)
        for kv in range.kvs {
            let object = try decode(kv)
            if let selector, !selector.matches(object.labels) { continue }
            items.append((object.metadata.namespace ?? "", object.name, object))
        }
        // Keys sort by bytes ("ns-a/" before "ns/"); the protocol promises namespace, then name.
        items.sort { ($0.namespace, $0.name) < ($1.namespace, $1.name) }
        return ListResult(items: items.map(\.object), revision: range.revision)
    }

    public func currentRevision() async throws -> Int64 {
        try checkOpen()
        return try await etcd("reading the revision") { try await self.client.currentRevision() }
    }

    // MARK: - Writes

    public func create(_ object: Resource) async throws -> Resource {
        try checkOpen()
        let prepared = StoreSemantics.created(object, now: now())
        let key = keys.object(kind: prepared.kind, namespace: prepared.metadata.namespace, name: prepared.name)
        let value = encode(prepared)
        do {
            let txn = try await client.txn(compare: [EtcdTxn.createRevision(key, equals: 0)], success: [EtcdTxn.put(key, value)])
            guard txn.succeeded else { throw APIError.alreadyExists(kind: prepared.kind, name: prepared.name) }
            var created = prepared
            created.metadata.resourceVersion = String(txn.revision)
            return created
        } catch let error as EtcdError where error.code == .outcomeUnknown {
            // Read it back: our uid there means our create was applied.
            if let kv = try? await client.range(key).kvs.first, kv.createRevision == kv.modRevision, kv.value == value {
                return try decode(kv)
            }
            throw Self.apiError(error, doing: "create")
        } catch {
            throw Self.apiError(error, doing: "create")
        }
    }

    public func update(_ object: Resource) async throws -> Resource {
        try await replace(object, doing: "update") { StoreSemantics.updated(object, over: $0) }
    }

    public func updateStatus(_ object: Resource) async throws -> Resource {
        try await replace(object, doing: "status update") { StoreSemantics.statusUpdated(object, over: $0) }
    }

    public func delete(kind: String, namespace: String?, name: String, expectedRevision: Int64?) async throws -> Resource {
        try checkOpen()
        let key = keys.object(kind: kind, namespace: namespace, name: name)
        do {
            let txn: EtcdTxnResult
            if let expectedRevision {
                txn = try await client.txn(compare: [EtcdTxn.modRevision(key, equals: expectedRevision)],
                                           success: [EtcdTxn.delete(key)], failure: [EtcdTxn.range(key)])
                guard txn.succeeded else {
                    if txn.rangeKVs(0).isEmpty { throw APIError.notFound(kind: kind, name: name) }
                    throw StoreSemantics.modified(kind: kind, name: name)
                }
            } else {
                txn = try await client.txn(compare: [], success: [EtcdTxn.delete(key)])
            }
            guard let previous = txn.deletedKVs(0).first else { throw APIError.notFound(kind: kind, name: name) }
            var deleted = try decode(previous)
            deleted.metadata.resourceVersion = String(txn.revision)
            return deleted
        } catch {
            throw Self.apiError(error, doing: "delete")
        }
    }

    /// Read, check the caller's resourceVersion, compute, compare-and-swap on the revision read;
    /// again when another write came in between and the caller named no resourceVersion.
    private func replace(_ object: Resource, doing operation: String, _ next: (Resource) -> Resource) async throws -> Resource {
        try checkOpen()
        let key = keys.object(kind: object.kind, namespace: object.metadata.namespace, name: object.name)
        let conditional = !(object.metadata.resourceVersion ?? "").isEmpty
        var kv = try await etcd(operation) { try await self.client.range(key) }.kvs.first
        while true {
            try Task.checkCancellation()
            guard let current = kv else { throw APIError.notFound(kind: object.kind, name: object.name) }
            if StoreSemantics.isStale(object.metadata.resourceVersion, stored: current.modRevision) {
                throw StoreSemantics.modified(kind: object.kind, name: object.name)
            }
            let stored = try decode(current)
            let wanted = next(stored)
            if StoreSemantics.unchanged(wanted, stored) { return stored }
            let value = encode(wanted)
            do {
                let txn = try await client.txn(compare: [EtcdTxn.modRevision(key, equals: current.modRevision)],
                                               success: [EtcdTxn.put(key, value)], failure: [EtcdTxn.range(key)])
                if txn.succeeded {
                    var written = wanted
                    written.metadata.resourceVersion = String(txn.revision)
                    return written
                }
                kv = txn.rangeKVs(0).first
                if conditional, kv != nil { throw StoreSemantics.modified(kind: object.kind, name: object.name) }
            } catch let error as EtcdError where error.code == .outcomeUnknown {
                if let after = try? await client.range(key).kvs.first, after.modRevision > current.modRevision, after.value == value {
                    return try decode(after)
                }
                throw Self.apiError(error, doing: operation)
            } catch {
                throw Self.apiError(error, doing: operation)
            }
        }
    }

    // MARK: - Watch

    /// See `ResourceStore.watch`. A watch from a revision the shared etcd watch still holds in
    /// memory (or a later one) is served from it; an older one gets an etcd watch of its own,
    /// after checking that etcd still has the history (else 410 at once).
    public func watch(kind: String?, namespace: String?, since revision: Int64) async throws -> AsyncThrowingStream<WatchEvent, any Error> {
        try checkOpen()
        let since = max(0, revision)
        let subscription = try await etcd("watch") { try await self.hub.subscribe(kind: kind, namespace: namespace, since: since) }
        let cursor = EtcdWatchCursor(subscription: subscription, since: since)
        return AsyncThrowingStream(unfolding: { try await cursor.next() })
    }

    // MARK: - Compaction

    /// Discards etcd's history up to `revision` (etcd compacts every key, not only this
    /// store's). Watches that still need it end with 410 and their clients list again.
    public func compact(upTo revision: Int64) async throws {
        try checkOpen()
        try await etcd("compaction") { try await self.client.compact(revision: revision) }
    }

    // MARK: - Encoding

    func encode(_ object: Resource) -> Data {
        var stored = object
        stored.metadata.resourceVersion = nil
        return stored.json.jsonData()
    }

    func decode(_ kv: EtcdKeyValue) throws(APIError) -> Resource {
        let value: JSONValue
        do {
            value = try JSONValue.parse(kv.value)
        } catch {
            throw APIError.internalError("etcd key \(kv.key) does not hold valid JSON: \(error)")
        }
        var object = try Resource(json: value)
        object.metadata.resourceVersion = String(kv.modRevision)
        return object
    }

    /// Runs an etcd call, turning its errors into `APIError`s.
    func etcd<T: Sendable>(_ operation: String, _ body: @Sendable () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw Self.apiError(error, doing: operation)
        }
    }

    /// What a caller of the store sees for an etcd failure.
    static func apiError(_ error: any Error, doing operation: String) -> any Error {
        switch error {
        case let error as APIError:
            return error
        case let error as CancellationError:
            return error
        case let error as EtcdError:
            switch error.code {
            case .compacted:
                return APIError.gone("too old resource version: \(error.message)")
            case .noQuorum:
                return APIError.storeWithoutQuorum("\(operation) failed: \(error.message)")
            case .failed where error.message.contains("request is too large") || error.message.contains("message larger than max"):
                // etcd's --max-request-bytes (1.5 MiB by default) is below the API's body limit.
                return APIError(code: 413, reason: .tooLarge,
                                message: "\(operation) failed: the object is larger than etcd takes in one request (its --max-request-bytes, 1.5 MiB by default, and 2 MiB at most through gRPC): \(error.message)")
            case .failed where error.grpcCode != 8 && error.grpcCode != 14:
                return APIError.internalError("\(operation): \(error.message)")
            default:
                return APIError.unavailable("\(operation) failed: \(error.message)")
            }
        default:
            return APIError.unavailable("\(operation) failed: etcd: \(error)")
        }
    }
}

/// Where `EtcdStore` keeps what, under its prefix.
struct EtcdKeys: Sendable {
    let prefix: String

    var objects: String { prefix + "objects/" }

    func object(kind: String, namespace: String?, name: String) -> String {
        objects + kind + "/" + (namespace ?? "") + "/" + name
    }

    /// Every object of `kind` (in `namespace`, when given).
    func objects(kind: String?, namespace: String?) -> String {
        guard let kind else { return objects }
        guard let namespace else { return objects + kind + "/" }
        return objects + kind + "/" + namespace + "/"
    }

    /// (kind, namespace, name) of an object key; namespace "" for cluster-scoped objects.
    func parse(_ key: String) -> (kind: String, namespace: String, name: String)? {
        guard key.hasPrefix(objects) else { return nil }
        let parts = key.dropFirst(objects.count).split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        return (String(parts[0]), String(parts[1]), String(parts[2]))
    }
}
