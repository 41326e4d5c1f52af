import BatonAPI
import BatonCore
import Foundation

/// The leader lease as a lock holds it: the record that `LeaderLease` decides on, the version the
/// store gave the write (the token for the next compare-and-swap), and wall-clock times for an
/// operator reading the stored lease. The times are for people only: `LeaderLease` never reads them,
/// so clock skew between replicas cannot affect who leads.
public struct LeaseLockRecord: Sendable, Hashable {
    public var lease: LeaderLease.Record
    /// Opaque to callers: pass it back to `update`/`delete` unchanged. (A `resourceVersion` for
    /// `StoreLeaseLock`; an etcd `mod_revision` for an etcd lock.)
    public var version: String
    /// When the current holder took the lease, and when it last wrote it (the writer's clock).
    public var acquireTime: Date?
    public var renewTime: Date?

    public init(lease: LeaderLease.Record, version: String, acquireTime: Date? = nil, renewTime: Date? = nil) {
        self.lease = lease
        self.version = version
        self.acquireTime = acquireTime
        self.renewTime = renewTime
    }
}

/// Why a `LeaseLock` operation failed. `conflict` means another replica wrote (or created, or
/// deleted) the lease first: the caller lost the race and reads again. `unavailable` means the
/// store could not be reached or answered with something else; whether the write happened is
/// unknown.
public struct LeaseLockError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let conflict = Code(rawValue: "conflict")
        public static let unavailable = Code(rawValue: "unavailable")
        public var description: String { rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// One named leader lease in a shared store, with compare-and-swap writes: everything leader
/// election needs from a store, and no more, so an etcd store (a key, `mod_revision` compares in
/// a txn) implements it as easily as `StoreLeaseLock` does over a `ResourceStore`.
///
/// Every write is conditional. Errors are `LeaseLockError`s.
public protocol LeaseLock: Sendable {
    /// The lease's name (the `Lease` object's name in the store).
    var name: String { get }

    /// Who judges that a holder's lease has expired: the replicas, from when they last saw it
    /// change (`StoreLeaseLock`), or the store, which deletes the lease of a holder that stopped
    /// renewing (`EtcdLeaseLock`: an etcd lease's TTL). Defaults to `.observed`.
    var expiry: LeaderLease.Expiry { get }

    /// The stored lease, or nil when there is none.
    func get() async throws -> LeaseLockRecord?

    /// Stores the lease if none exists (else `conflict`).
    func create(_ lease: LeaderLease.Record) async throws -> LeaseLockRecord

    /// Replaces `current` with `lease` if the stored version is still `current.version` (else
    /// `conflict`, also when the lease was deleted). `current` also carries `acquireTime` over
    /// when the holder stays the same.
    func update(_ lease: LeaderLease.Record, replacing current: LeaseLockRecord) async throws -> LeaseLockRecord

    /// Deletes the lease if the stored version is still `version` (nil: any version). Deleting
    /// a lease that is gone is not an error.
    func delete(version: String?) async throws
}

extension LeaseLock {
    public var expiry: LeaderLease.Expiry { .observed }
}

/// A `LeaseLock` kept as a `Lease` object (`coordination.baton.io/v1`, cluster-scoped) in any
/// `ResourceStore`, named by the lock:
///
///     spec:
///       holderIdentity: server-a-4711-9f3c   # absent when released
///       leaseDurationSeconds: 2.0            # fractions allowed
///       acquireTime: 2026-11-24T01:23:38.123Z
///       renewTime: 2026-11-24T01:23:40.873Z
///       leaseTransitions: 3
///       renewCount: 812
///
/// Compare-and-swap is `update` with `metadata.resourceVersion` set; the store's 409 means the
/// race was lost. `Lease` is not an API kind (the API does not serve it); the store takes any kind.
public struct StoreLeaseLock: LeaseLock {
    public static let apiVersion = "coordination.baton.io/v1"
    public static let kind = "Lease"

    public let store: any ResourceStore
    public let name: String
    /// The wall clock for `acquireTime`/`renewTime` (display only).
    private let now: @Sendable () -> Date

    public init(store: any ResourceStore, name: String, now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.name = name
        self.now = now
    }

    public func get() async throws -> LeaseLockRecord? {
        do {
            return try Self.record(from: try await store.get(kind: Self.kind, namespace: nil, name: name))
        } catch let error as APIError where error.code == 404 {
            return nil
        } catch {
            throw Self.lockError(error, doing: "reading")
        }
    }

    public func create(_ lease: LeaderLease.Record) async throws -> LeaseLockRecord {
        let time = now()
        let object = resource(lease, acquireTime: lease.holderIdentity == nil ? nil : time, renewTime: time, version: nil)
        do {
            return try Self.record(from: try await store.create(object))
        } catch {
            throw Self.lockError(error, doing: "creating")
        }
    }

    public func update(_ lease: LeaderLease.Record, replacing current: LeaseLockRecord) async throws -> LeaseLockRecord {
        let time = now()
        let acquireTime: Date? = switch lease.holderIdentity {
        case nil: nil
        case current.lease.holderIdentity: current.acquireTime ?? time
        default: time
        }
        let object = resource(lease, acquireTime: acquireTime, renewTime: time, version: current.version)
        do {
            return try Self.record(from: try await store.update(object))
        } catch {
            throw Self.lockError(error, doing: "updating")
        }
    }

    public func delete(version: String?) async throws {
        do {
            _ = try await store.delete(kind: Self.kind, namespace: nil, name: name, expectedRevision: version.flatMap(Int64.init))
        } catch let error as APIError where error.code == 404 {
            return
        } catch {
            throw Self.lockError(error, doing: "deleting")
        }
    }

    // MARK: - Mapping

    func resource(_ lease: LeaderLease.Record, acquireTime: Date?, renewTime: Date, version: String?) -> Resource {
        var spec: [String: JSONValue] = [
            "leaseDurationSeconds": .double(Double(lease.leaseDuration.components.seconds)
                + Double(lease.leaseDuration.components.attoseconds) / 1e18),
            "leaseTransitions": .int(Int64(lease.leaderTransitions)),
            // UInt64 wraps in LeaderLease; store the bit pattern so the round trip is exact.
            "renewCount": .int(Int64(bitPattern: lease.renewCount)),
            "renewTime": .string(Timestamp.format(renewTime)),
        ]
        if let holder = lease.holderIdentity { spec["holderIdentity"] = .string(holder) }
        if let acquireTime { spec["acquireTime"] = .string(Timestamp.format(acquireTime)) }
        var metadata = ObjectMeta(name: name)
        metadata.resourceVersion = version
        return Resource(apiVersion: Self.apiVersion, kind: Self.kind, metadata: metadata, body: ["spec": .object(spec)])
    }

    static func record(from object: Resource) throws -> LeaseLockRecord {
        guard let version = object.metadata.resourceVersion, let spec = object.spec,
              let seconds = spec["leaseDurationSeconds"]?.doubleValue, seconds.isFinite, seconds >= 0 else {
            throw LeaseLockError(.unavailable, "Lease \(object.name): spec.leaseDurationSeconds and metadata.resourceVersion are required")
        }
        let holder = spec["holderIdentity"]?.stringValue
        let lease = LeaderLease.Record(
            holderIdentity: holder?.isEmpty == true ? nil : holder,
            leaseDuration: .seconds(seconds),
            leaderTransitions: Int(spec["leaseTransitions"]?.intValue ?? 0),
            renewCount: UInt64(bitPattern: spec["renewCount"]?.intValue ?? 0))
        return LeaseLockRecord(lease: lease, version: version,
                               acquireTime: spec["acquireTime"]?.stringValue.flatMap(Timestamp.parse),
                               renewTime: spec["renewTime"]?.stringValue.flatMap(Timestamp.parse))
    }

    static func lockError(_ error: any Error, doing what: String) -> LeaseLockError {
        if let lock = error as? LeaseLockError { return lock }
        if let api = error as? APIError, api.code == 409 || api.code == 404 {
            return LeaseLockError(.conflict, "\(what) the lease lost a race: \(api.message)")
        }
        return LeaseLockError(.unavailable, "\(what) the lease failed: \(error)")
    }
}
