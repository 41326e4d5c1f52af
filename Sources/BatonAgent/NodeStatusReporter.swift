import BatonAPI
import BatonClient
import Foundation
import Logging
import Synchronization

/// An entry a node agent keeps in an object's `status.nodes` map: the StaticRoute agent's
/// routes, the IPFailover agent's VRRP instances.
protocol NodeStatusEntry: Encodable, Sendable {
    /// The kind whose objects carry the entries.
    static var kind: KindInfo { get }
    /// The entry's fields that may be absent: a patch names each of them (`null` when absent),
    /// so that it replaces the stored entry instead of merging into it.
    static var optionalFields: [String] { get }
}

extension StaticRouteStatus.NodeRoute: NodeStatusEntry {
    static var kind: KindInfo { .staticRoute }
    static var optionalFields: [String] {
        ["gateway", "gateways", "phase", "message", "observedGeneration", "health", "lastSwitchTime", "lastTransitionTime", "conflicts"]
    }
}

extension IPFailoverStatus.NodeState: NodeStatusEntry {
    static var kind: KindInfo { .ipFailover }
    static var optionalFields: [String] { ["observedGeneration", "instances", "lastTransitionTime", "message"] }
}

typealias StaticRouteStatusReporter = NodeStatusReporter<StaticRouteStatus.NodeRoute>
typealias IPFailoverStatusReporter = NodeStatusReporter<IPFailoverStatus.NodeState>

/// Writes this node's entry of each object's `status.nodes`, and the agent's events, latest
/// value wins: a merge patch `{"status": {"nodes": {"NODE": ENTRY}}}` (`null` removes it), which
/// the node's token may write and no other node contends for. Cheap by construction: one write
/// per change of an entry, and changes that come while a write is under way fold into the next
/// one. A failed write is tried again after `retryAfter`; an object that is gone (404) is
/// skipped.
final class NodeStatusReporter<Entry: NodeStatusEntry>: Sendable {
    /// An Event about one object of the kind.
    struct Event: Sendable {
        var name: String
        var uid: String?
        var reason: String
        var message: String
        var type: String
    }

    let client: BatonClient
    let node: String
    let logger: Logger
    let retryAfter: Duration
    /// Entries waiting to be written (nil removes the node's entry), and events to record.
    private let pending = Mutex<(entries: [String: Entry?], events: [Event])>(([:], []))
    private let wake: AsyncStream<Void>
    private let wakeIn: AsyncStream<Void>.Continuation
    /// The kind's name as log metadata keys spell it (`staticroute`).
    private var key: String { Entry.kind.kind.lowercased() }

    init(client: BatonClient, node: String, logger: Logger, retryAfter: Duration = .milliseconds(500)) {
        self.client = client
        self.node = node
        self.logger = logger
        self.retryAfter = retryAfter
        (wake, wakeIn) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues this node's entry of object `name` (nil: remove it).
    func set(_ name: String, _ entry: Entry?) {
        pending.withLock { $0.entries[name] = .some(entry) }
        wakeIn.yield()
    }

    /// Drops what is queued for `name` (the object is gone: there is nothing to write to).
    func forget(_ name: String) { _ = pending.withLock { $0.entries.removeValue(forKey: name) } }

    /// Queues an Event.
    func event(_ e: Event) {
        pending.withLock { $0.events.append(e) }
        wakeIn.yield()
    }

    /// Writes until `finish()`, then once more what is still queued (2 s at most per write).
    func run() async {
        for await _ in wake { await flush() }
        await flush(retrying: false)
    }

    func finish() { wakeIn.finish() }

    /// The merge patch's `status` for an entry: every field present (null when absent).
    static func patch(node: String, _ entry: Entry?) -> JSONValue {
        guard let entry, case .object(var fields)? = try? JSONValue(encoding: entry) else {
            return ["nodes": .object([node: .null])]
        }
        for key in Entry.optionalFields where fields[key] == nil { fields[key] = .null }
        return ["nodes": .object([node: .object(fields)])]
    }

    private func flush(retrying: Bool = true) async {
        let (batch, events) = pending.withLock { p in defer { p = ([:], []) }; return (p.entries, p.events) }
        var client = self.client
        // The last flush, at shutdown, must not hold the agent up if the server is away.
        if !retrying { client.timeout = .seconds(2) }
        var failed: [String: Entry?] = [:]
        for (name, entry) in batch.sorted(by: { $0.key < $1.key }) {
            logger.debug("writing this node's status entry", metadata: [key: "\(name)", "removed": "\(entry == nil)"])
            do {
                _ = try await client.mergeStatus(Entry.kind, name: name, namespace: nil, status: Self.patch(node: node, entry))
            } catch let e as APIError where e.code == 404 {
                logger.debug("the \(Entry.kind.kind) is gone; not writing its status", metadata: [key: "\(name)"])
                continue
            } catch {
                logger.debug("cannot write the \(Entry.kind.kind)'s status yet", metadata: [key: "\(name)", "error": "\(error)"])
                failed[name] = entry
            }
        }
        for e in events { await record(e, client: client) }
        guard retrying, !failed.isEmpty else { return }
        // Keep what failed unless a newer value came meanwhile, and come back later.
        pending.withLock { p in for (name, entry) in failed where p.entries[name] == nil { p.entries[name] = .some(entry) } }
        try? await Task.sleep(for: retryAfter)
        wakeIn.yield()
    }

    /// One Event about the object, in the namespace Kubernetes uses for cluster-scoped objects.
    /// Each is its own record (its message names the time-ordered facts).
    private func record(_ e: Event, client: BatonClient) async {
        let stamp = Timestamp.format(Date())
        let record = EventRecord(involvedObject: .init(apiVersion: Entry.kind.apiVersion, kind: Entry.kind.kind, name: e.name, uid: e.uid),
                                 reason: e.reason, message: e.message, type: e.type,
                                 source: .init(component: "baton-agent", host: node), firstTimestamp: stamp, lastTimestamp: stamp)
        let hash = StableHash.fnv1a("\(e.name)\u{0}\(node)\u{0}\(e.reason)\u{0}\(e.message)\u{0}\(stamp)")
        let name = "\(e.name.prefix(200)).\(String(hash, radix: 16))"
        do {
            try await client.createEvent(record, name: name, namespace: "default")
        } catch {
            logger.warning("cannot record an event", metadata: [key: "\(e.name)", "reason": "\(e.reason)", "error": "\(error)"])
        }
    }
}
