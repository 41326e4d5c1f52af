import BatonAPI
import BatonStore
import Foundation
import Logging

/// Writes Events for controllers and agents. A repeat of the same reason and message for the
/// same object bumps `count` and `lastTimestamp` on one record, as Kubernetes aggregates them,
/// so a flapping condition cannot flood the store.
public struct EventRecorder: Sendable {
    let store: any ResourceStore
    let component: String
    let host: String?
    let now: @Sendable () -> Date
    let logger: Logger

    public init(store: any ResourceStore, component: String, host: String? = nil,
                now: @escaping @Sendable () -> Date = { Date() }, logger: Logger) {
        self.store = store
        self.component = component
        self.host = host
        self.now = now
        self.logger = logger
    }

    /// Namespace of the events of a cluster-scoped object, as Kubernetes uses.
    public static let clusterScopedNamespace = "default"

    /// Records (or aggregates) one event about `object`. Failures are logged, not thrown: an
    /// event must never fail the decision it describes.
    @discardableResult
    public func record(_ object: Resource, reason: String, message: String, type: String = "Normal") async -> Resource? {
        let ref = EventRecord.ObjectReference(apiVersion: object.apiVersion, kind: object.kind, name: object.name,
                                              namespace: object.namespace, uid: object.metadata.uid)
        return await record(ref, reason: reason, message: message, type: type)
    }

    @discardableResult
    public func record(_ ref: EventRecord.ObjectReference, reason: String, message: String, type: String = "Normal") async -> Resource? {
        let ns = ref.namespace ?? Self.clusterScopedNamespace
        let name = Self.eventName(ref: ref, reason: reason, message: message)
        let stamp = Timestamp.format(now())
        for _ in 0..<5 {
            do {
                if var existing = try? await store.get(kind: "Event", namespace: ns, name: name) {
                    let count = (existing.body["count"]?.intValue ?? 1) + 1
                    existing.body["count"] = .int(count)
                    existing.body["lastTimestamp"] = .string(stamp)
                    return try await store.update(existing)
                }
                let record = EventRecord(involvedObject: ref, reason: reason, message: message, type: type,
                                         source: .init(component: component, host: host),
                                         firstTimestamp: stamp, lastTimestamp: stamp, count: 1)
                guard case .object(let body) = try JSONValue(encoding: record) else { return nil }
                let event = Resource(apiVersion: KindInfo.event.apiVersion, kind: "Event",
                                     metadata: ObjectMeta(name: name, namespace: ns), body: body)
                return try await store.create(event)
            } catch let e as APIError where e.code == 409 {
                continue  // raced with another writer of the same event: read it again
            } catch {
                logger.warning("cannot record event", metadata: ["reason": "\(reason)", "object": "\(ref.kind)/\(ref.name)", "error": "\(error)"])
                return nil
            }
        }
        return nil
    }

    /// `OBJECT.HASH`: one record per (object, reason, message).
    static func eventName(ref: EventRecord.ObjectReference, reason: String, message: String) -> String {
        let h = StableHash.fnv1a("\(ref.kind)\u{0}\(ref.name)\u{0}\(reason)\u{0}\(message)")
        let base = ref.name.count > 200 ? String(ref.name.prefix(200)) : ref.name
        return "\(base).\(String(h, radix: 16))"
    }
}
