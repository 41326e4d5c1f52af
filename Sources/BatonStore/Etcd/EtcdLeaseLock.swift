import BatonAPI
import BatonCore
import BatonEtcd
import Foundation
import Synchronization

/// A `LeaseLock` on an etcd lease, as etcd's own election recipe does it: the leader is whoever
/// holds the key `PREFIX/leases/NAME`, and the key is attached to its holder's etcd lease.
///
/// - Campaign (`create`): grant an etcd lease with a TTL of `leaseDuration` (rounded up to whole
///   seconds; etcd may raise it to its minimum, 1.5 × its election timeout), then put the key
///   only if it does not exist (a txn comparing `create_revision` with 0). Losing the race
///   revokes the new lease.
/// - Renew (`update` by the holder): a keep-alive of the etcd lease; the key is not rewritten.
///   A keep-alive costs no raft write, so leading costs etcd one keep-alive per `retryPeriod`.
/// - Expiry: etcd's, by its leader's clock. When a holder dies, etcd deletes the key once the
///   lease's TTL runs out, and a follower's next campaign succeeds. `expiry` is `.store`, so a
///   follower never takes a key that still exists. A holder that cannot renew stops leading
///   after `renewDeadline` from the start of its last good keep-alive, and etcd cannot expire
///   the lease before TTL ≥ `leaseDuration` after that keep-alive arrived: the same margin as
///   `StoreLeaseLock`.
/// - Resign (`update` with no holder, or `delete`): revoke the etcd lease, which deletes the key
///   at once, so a standby takes over within one `retryPeriod`.
///
/// The key's value is the record as JSON (holder, lease duration, transitions, times). Since
/// the key goes away with each holder, `leaderTransitions` counts from the last time the key
/// was absent.
public final class EtcdLeaseLock: LeaseLock, Sendable {
    public let client: EtcdClient
    public let name: String
    /// The key holding the lease.
    public let key: String
    public var expiry: LeaderLease.Expiry { .store }
    private let now: @Sendable () -> Date
    /// The etcd lease this replica holds or campaigns with.
    private let held = Mutex<EtcdLease?>(nil)

    /// - Parameters:
    ///   - prefix: the store's key prefix (`EtcdStore.Configuration.prefix`).
    ///   - now: the wall clock for `acquireTime`/`renewTime` (display only).
    public init(client: EtcdClient, prefix: String = "/baton/", name: String, now: @escaping @Sendable () -> Date = { Date() }) {
        self.client = client
        self.name = name
        self.key = prefix + "leases/" + name
        self.now = now
    }

    /// The etcd lease this replica holds, if any (its ID and granted TTL).
    public var etcdLease: EtcdLease? { held.withLock { $0 } }

    public func get() async throws -> LeaseLockRecord? {
        let kv: EtcdKeyValue?
        do {
            kv = try await client.range(key).kvs.first
        } catch {
            throw Self.lockError(error, doing: "reading")
        }
        guard let kv else { return nil }
        return try Self.record(from: kv)
    }

    public func create(_ lease: LeaderLease.Record) async throws -> LeaseLockRecord {
        guard lease.holderIdentity != nil else {
            throw LeaseLockError(.conflict, "an etcd lease lock is only created by a replica taking it")
        }
        return try await campaign(lease)
    }

    public func update(_ lease: LeaderLease.Record, replacing current: LeaseLockRecord) async throws -> LeaseLockRecord {
        guard let holder = lease.holderIdentity else {
            // Release: revoking our etcd lease deletes the key.
            try await resign()
            return LeaseLockRecord(lease: lease, version: "0")
        }
        guard holder == current.lease.holderIdentity else {
            // Taking over: only when etcd has deleted the previous holder's key.
            return try await campaign(lease)
        }
        guard let mine = etcdLease else {
            throw LeaseLockError(.conflict, "renewing the lease \(name): this replica holds no etcd lease for it")
        }
        let ttl: Int64
        do {
            ttl = try await client.keepAlive(mine.id)
        } catch {
            throw Self.lockError(error, doing: "renewing")
        }
        guard ttl > 0 else {
            held.withLock { if $0?.id == mine.id { $0 = nil } }
            throw LeaseLockError(.conflict, "renewing the lease \(name): etcd lease \(mine.id) has expired")
        }
        return LeaseLockRecord(lease: lease, version: current.version, acquireTime: current.acquireTime, renewTime: now())
    }

    public func delete(version: String?) async throws {
        if etcdLease != nil {
            try await resign()
            return
        }
        do {
            let compare = version.flatMap(Int64.init).map { [EtcdTxn.modRevision(key, equals: $0)] } ?? []
            _ = try await client.txn(compare: compare, success: [EtcdTxn.delete(key, prevKV: false)])
        } catch {
            throw Self.lockError(error, doing: "deleting")
        }
    }

    /// Revokes the etcd lease this replica holds, deleting the key with it.
    public func resign() async throws {
        guard let mine = held.withLock({ $0 }) else { return }
        do {
            try await client.revokeLease(mine.id)
            held.withLock { if $0?.id == mine.id { $0 = nil } }
        } catch {
            throw Self.lockError(error, doing: "releasing")
        }
    }

    /// Grants an etcd lease (or reuses ours while it lives) and creates the key on it if absent.
    private func campaign(_ lease: LeaderLease.Record) async throws -> LeaseLockRecord {
        let seconds = Double(lease.leaseDuration.components.seconds) + Double(lease.leaseDuration.components.attoseconds) / 1e18
        let ttl = max(1, Int64(seconds.rounded(.up)))
        let etcdLease: EtcdLease
        do {
            if let mine = self.etcdLease, try await client.keepAlive(mine.id) > 0 {
                etcdLease = mine
            } else {
                etcdLease = try await client.grantLease(ttl: ttl)
                held.withLock { $0 = etcdLease }
            }
        } catch {
            throw Self.lockError(error, doing: "campaigning for")
        }
        let time = now()
        let value = Self.value(lease, acquireTime: time, renewTime: time, etcdLease: etcdLease.id)
        let txn: EtcdTxnResult
        do {
            txn = try await client.txn(compare: [EtcdTxn.createRevision(key, equals: 0)],
                                       success: [EtcdTxn.put(key, value, lease: etcdLease.id)])
        } catch {
            throw Self.lockError(error, doing: "campaigning for")
        }
        guard txn.succeeded else {
            // Someone else holds it: give the lease back rather than keep it alive for nothing.
            held.withLock { if $0?.id == etcdLease.id { $0 = nil } }
            try? await client.revokeLease(etcdLease.id)
            throw LeaseLockError(.conflict, "campaigning for the lease \(name): another replica holds it")
        }
        return LeaseLockRecord(lease: lease, version: String(txn.revision), acquireTime: time, renewTime: time)
    }

    // MARK: - Mapping

    static func value(_ lease: LeaderLease.Record, acquireTime: Date, renewTime: Date, etcdLease: Int64) -> Data {
        let seconds = Double(lease.leaseDuration.components.seconds) + Double(lease.leaseDuration.components.attoseconds) / 1e18
        var fields: [String: JSONValue] = [
            "leaseDurationSeconds": .double(seconds),
            "leaseTransitions": .int(Int64(lease.leaderTransitions)),
            "renewCount": .int(Int64(bitPattern: lease.renewCount)),
            "acquireTime": .string(Timestamp.format(acquireTime)),
            "renewTime": .string(Timestamp.format(renewTime)),
            "etcdLease": .string(String(etcdLease, radix: 16)),
        ]
        if let holder = lease.holderIdentity { fields["holderIdentity"] = .string(holder) }
        return JSONValue.object(fields).jsonData()
    }

    static func record(from kv: EtcdKeyValue) throws -> LeaseLockRecord {
        guard let json = try? JSONValue.parse(kv.value), let seconds = json["leaseDurationSeconds"]?.doubleValue,
              seconds.isFinite, seconds >= 0 else {
            throw LeaseLockError(.unavailable, "etcd key \(kv.key): not a lease record (leaseDurationSeconds is required)")
        }
        let holder = json["holderIdentity"]?.stringValue
        let lease = LeaderLease.Record(
            holderIdentity: holder?.isEmpty == true ? nil : holder,
            leaseDuration: .seconds(seconds),
            leaderTransitions: Int(json["leaseTransitions"]?.intValue ?? 0),
            renewCount: UInt64(bitPattern: json["renewCount"]?.intValue ?? 0))
        return LeaseLockRecord(lease: lease, version: String(kv.modRevision),
                               acquireTime: json["acquireTime"]?.stringValue.flatMap(Timestamp.parse),
                               renewTime: json["renewTime"]?.stringValue.flatMap(Timestamp.parse))
    }

    static func lockError(_ error: any Error, doing what: String) -> LeaseLockError {
        if let lock = error as? LeaseLockError { return lock }
        return LeaseLockError(.unavailable, "\(what) the lease failed: \(error)")
    }
}
