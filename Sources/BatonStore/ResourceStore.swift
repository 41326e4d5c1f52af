import BatonAPI
import Foundation
import Synchronization

/// The kind of change a watch reports, as Kubernetes spells it on the wire.
public enum WatchEventType: String, Sendable, Codable {
    case added = "ADDED"
    case modified = "MODIFIED"
    case deleted = "DELETED"
}

/// One change to one object. `object.metadata.resourceVersion` is the revision of the change
/// (for a deletion, the revision of the delete).
public struct WatchEvent: Sendable, Hashable {
    public var type: WatchEventType
    public var object: Resource
    public var revision: Int64
    /// Somewhere for whoever serves this event to many watchers to keep its encoding, so a
    /// change that fans out to a thousand watchers is encoded once. Not part of equality.
    public let encoding = EncodingMemo()
    /// Likewise for field selectors: the values a path selects, read once per event.
    public let selections = SelectionMemo()

    public init(type: WatchEventType, object: Resource, revision: Int64) {
        self.type = type
        self.object = object
        self.revision = revision
    }

    public static func == (a: WatchEvent, b: WatchEvent) -> Bool {
        a.type == b.type && a.object == b.object && a.revision == b.revision
    }

    public func hash(into h: inout Hasher) {
        h.combine(type)
        h.combine(object)
        h.combine(revision)
    }
}

/// A value computed once and shared by every copy of the struct that holds this box.
public final class EncodingMemo: Sendable {
    private let value = Mutex<[UInt8]?>(nil)

    public init() {}

    /// The stored bytes, computing them with `make` the first time.
    public func bytes(_ make: () -> [UInt8]) -> [UInt8] {
        if let v = value.withLock({ $0 }) { return v }
        let made = make()
        value.withLock { if $0 == nil { $0 = made } }
        return made
    }
}

/// Values selected from one object by path, computed once per path and shared by every copy
/// of the struct that holds this box.
public final class SelectionMemo: Sendable {
    private let values = Mutex<[String: [String]]>([:])

    public init() {}

    /// The values at `path`, computing them with `select` the first time.
    public func values(at path: String, _ select: () -> [String]) -> [String] {
        if let v = values.withLock({ $0[path] }) { return v }
        let made = select()
        values.withLock { $0[path] = $0[path] ?? made }
        return made
    }
}

/// A list and the store revision it was read at; a watch from that revision misses nothing.
public struct ListResult: Sendable {
    public var items: [Resource]
    public var revision: Int64

    public init(items: [Resource], revision: Int64) {
        self.items = items
        self.revision = revision
    }
}

/// Where objects live. Every write gets the next store revision, which becomes the object's
/// `resourceVersion`; revisions are global and strictly increasing, so a watch can resume from
/// any revision it has seen.
///
/// Objects are keyed by kind name (`EgressGateway`), namespace (nil for cluster-scoped kinds)
/// and name. Errors are `APIError`s: 404 not found, 409 already exists or stale
/// resourceVersion, 410 when a watch asks for a compacted revision, 503 when the backing store
/// cannot be reached.
public protocol ResourceStore: Sendable {
    /// Stores a new object. Sets `uid`, `resourceVersion`, `generation` (1) and
    /// `creationTimestamp`; keeps `status` as given.
    func create(_ object: Resource) async throws -> Resource

    func get(kind: String, namespace: String?, name: String) async throws -> Resource

    /// Whether the object exists, without reading it.
    func exists(kind: String, namespace: String?, name: String) async throws -> Bool

    /// The objects of `kind` that `selector` matches (nil or empty: all), in namespace then
    /// name order; `namespace` nil means every namespace. `revision` is the store revision the
    /// list was read at: a watch from it misses nothing and repeats nothing.
    func list(kind: String, namespace: String?, selector: LabelSelector?) async throws -> ListResult

    /// Replaces everything but `status`, which keeps its stored value. When
    /// `object.metadata.resourceVersion` is set it must equal the stored one (else 409).
    /// `generation` goes up when anything but metadata and status changed. An update that
    /// changes nothing writes nothing and returns the stored object.
    func update(_ object: Resource) async throws -> Resource

    /// Replaces `status` only, with the same resourceVersion rule as `update`.
    func updateStatus(_ object: Resource) async throws -> Resource

    /// Deletes and returns the object as it was, with the deletion's revision as its
    /// resourceVersion. `expectedRevision`, when given, must match (else 409).
    func delete(kind: String, namespace: String?, name: String, expectedRevision: Int64?) async throws -> Resource

    /// Every change after `revision` to objects of `kind` (nil: every kind) in `namespace`
    /// (nil: every namespace), in revision order, each exactly once, then live changes until
    /// the consumer stops iterating. `revision` 0 means from the beginning of the history.
    ///
    /// The call throws 410 Gone when `revision` is older than the store keeps (the client must
    /// list again). Leaving the loop or cancelling the consuming task ends the watch, and the
    /// stream finishes without an error. A stream can also end later with 410 Gone, after
    /// every change it had queued, when the watcher fell too far behind or the history it still
    /// needed was compacted; watching again from the last revision received then resumes
    /// without a gap (or fails with 410 at once, and the client lists again).
    func watch(kind: String?, namespace: String?, since revision: Int64) async throws -> AsyncThrowingStream<WatchEvent, any Error>

    /// The revision of the latest write.
    func currentRevision() async throws -> Int64
}

extension ResourceStore {
    public func exists(kind: String, namespace: String?, name: String) async throws -> Bool {
        do {
            _ = try await get(kind: kind, namespace: namespace, name: name)
            return true
        } catch let e as APIError where e.code == 404 {
            return false
        }
    }
}
