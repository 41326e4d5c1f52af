import BatonAPI
import Foundation

/// What every `ResourceStore` does to an object on its way in, in one place, so that
/// `SQLiteStore` and `EtcdStore` cannot drift apart: which metadata the store owns, what
/// `update` and `updateStatus` keep, when `generation` goes up, and the 409 a stale
/// `resourceVersion` gets.
enum StoreSemantics {
    /// A new object as stored: a fresh `uid`, `creationTimestamp` from `now`, `generation` 1 and
    /// no `resourceVersion` yet (the store sets it to the write's revision).
    static func created(_ object: Resource, now: Date) -> Resource {
        var prepared = object
        prepared.metadata.uid = UUID().uuidString.lowercased()
        prepared.metadata.creationTimestamp = now.formatted(.iso8601)
        prepared.metadata.generation = 1
        prepared.metadata.resourceVersion = nil
        return prepared
    }

    /// `object` replacing `stored` through `update`: the store's metadata (namespace, uid,
    /// creation time) and the stored `status` are kept; `generation` goes up when anything but
    /// metadata and status changed. `resourceVersion` is left as the caller sent it.
    static func updated(_ object: Resource, over stored: Resource) -> Resource {
        var next = object
        next.metadata.namespace = stored.metadata.namespace
        next.metadata.uid = stored.metadata.uid
        next.metadata.creationTimestamp = stored.metadata.creationTimestamp
        next.body["status"] = stored.body["status"]
        let generation = stored.metadata.generation ?? 1
        next.metadata.generation = sameSpec(next, stored) ? generation : generation + 1
        return next
    }

    /// `stored` with `object`'s status and nothing else of it.
    static func statusUpdated(_ object: Resource, over stored: Resource) -> Resource {
        var next = stored
        next.body["status"] = object.body["status"]
        return next
    }

    /// Whether `next` (as `updated`/`statusUpdated` made it) would store exactly what is stored:
    /// such a write writes nothing and returns the stored object.
    static func unchanged(_ next: Resource, _ stored: Resource) -> Bool {
        var next = next
        next.metadata.resourceVersion = stored.metadata.resourceVersion
        return next == stored
    }

    /// Whether everything that counts for `generation` (the body without `status`) is the same.
    /// Values that differ only in how a number is held (`50` and `50.0`) are the same, as
    /// their JSON is.
    static func sameSpec(_ a: Resource, _ b: Resource) -> Bool {
        var x = a.body
        var y = b.body
        x["status"] = nil
        y["status"] = nil
        return x == y || JSONValue.object(x).jsonString() == JSONValue.object(y).jsonString()
    }

    /// Whether a caller's `resourceVersion` (nil or empty: no precondition) disagrees with the
    /// stored revision.
    static func isStale(_ resourceVersion: String?, stored revision: Int64) -> Bool {
        guard let resourceVersion, !resourceVersion.isEmpty else { return false }
        return Int64(resourceVersion) != revision
    }

    static func modified(kind: String, name: String) -> APIError {
        APIError.conflict(kind: kind, name: name,
                          "the object has been modified; please apply your changes to the latest version and try again")
    }

    static func tooOld(_ revision: Int64, compacted: Int64) -> APIError {
        APIError.gone("too old resource version: \(revision) (\(compacted))")
    }
}
