import BatonAPI
import BatonClient
import Foundation
import Logging
import Synchronization

/// Writes this node's entry of each StaticRoute's `status.nodes` and the agent's events, latest
/// value wins: a merge patch `{"status": {"nodes": {"NODE": ENTRY}}}` (every field present, so
/// it replaces the stored entry), which the node's token may write and no other node contends
/// for. Changes that come while a write is under way fold into the next one; a failed write is
/// tried again after `retryAfter`; a StaticRoute that is gone (404) is skipped.
final class StaticRouteStatusReporter: Sendable {
    struct Event: Sendable {
        var route: String
        var uid: String?
        var reason: String
        var message: String
        var type: String
    }

    let client: BatonClient
    let node: String
    let logger: Logger
    let retryAfter: Duration
    private let pending = Mutex<(entries: [String: StaticRouteStatus.NodeRoute?], events: [Event])>(([:], []))
    private let wake: AsyncStream<Void>
    private let wakeIn: AsyncStream<Void>.Continuation

    init(client: BatonClient, node: String, logger: Logger, retryAfter: Duration = .milliseconds(500)) {
        self.client = client
        self.node = node
        self.logger = logger
        self.retryAfter = retryAfter
        (wake, wakeIn) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func set(_ route: String, _ entry: StaticRouteStatus.NodeRoute?) {
        pending.withLock { $0.entries[route] = .some(entry) }
        wakeIn.yield()
    }

    func forget(_ route: String) { _ = pending.withLock { $0.entries.removeValue(forKey: route) } }

    func event(_ e: Event) {
        pending.withLock { $0.events.append(e) }
        wakeIn.yield()
    }

    func run() async {
        for await _ in wake { await flush() }
        await flush(retrying: false)
    }

    func finish() { wakeIn.finish() }

    static let fields = ["gateway", "gateways", "phase", "message", "observedGeneration", "health", "lastSwitchTime", "lastTransitionTime", "conflicts"]

    static func patch(node: String, _ entry: StaticRouteStatus.NodeRoute?) -> JSONValue {
        guard let entry, case .object(var fields)? = try? JSONValue(encoding: entry) else {
            return ["nodes": .object([node: .null])]
        }
        for key in Self.fields where fields[key] == nil { fields[key] = .null }
        return ["nodes": .object([node: .object(fields)])]
    }

    private func flush(retrying: Bool = true) async {
        let (batch, events) = pending.withLock { p in defer { p = ([:], []) }; return (p.entries, p.events) }
        var client = self.client
        if !retrying { client.timeout = .seconds(2) }
        var failed: [String: StaticRouteStatus.NodeRoute?] = [:]
        for (name, entry) in batch.sorted(by: { $0.key < $1.key }) {
            logger.debug("writing this node's status entry", metadata: ["staticroute": "\(name)", "phase": "\(entry?.phase ?? "removed")"])
            do {
                _ = try await client.mergeStatus(.staticRoute, name: name, namespace: nil, status: Self.patch(node: node, entry))
            } catch let e as APIError where e.code == 404 {
                logger.debug("the StaticRoute is gone; not writing its status", metadata: ["staticroute": "\(name)"])
                continue
            } catch {
                logger.debug("cannot write the StaticRoute's status yet", metadata: ["staticroute": "\(name)", "error": "\(error)"])
                failed[name] = entry
            }
        }
        for e in events { await record(e, client: client) }
        guard retrying, !failed.isEmpty else { return }
        pending.withLock { p in for (name, entry) in failed where p.entries[name] == nil { p.entries[name] = .some(entry) } }
        try? await Task.sleep(for: retryAfter)
        wakeIn.yield()
    }

    /// One Event about the StaticRoute, in the namespace Kubernetes uses for cluster-scoped
    /// objects. Each switch is its own record (its message names the time-ordered facts).
    private func record(_ e: Event, client: BatonClient) async {
        let stamp = Timestamp.format(Date())
        let record = EventRecord(involvedObject: .init(apiVersion: KindInfo.staticRoute.apiVersion, kind: "StaticRoute", name: e.route, uid: e.uid),
                                 reason: e.reason, message: e.message, type: e.type,
                                 source: .init(component: "baton-agent", host: node), firstTimestamp: stamp, lastTimestamp: stamp)
        guard case .object(let body)? = try? JSONValue(encoding: record) else { return }
        let hash = StableHash.fnv1a("\(e.route)\u{0}\(node)\u{0}\(e.reason)\u{0}\(e.message)\u{0}\(stamp)")
        let name = "\(e.route.prefix(200)).\(String(hash, radix: 16))"
        do {
            _ = try await client.create(Resource(apiVersion: KindInfo.event.apiVersion, kind: "Event",
                                                 metadata: ObjectMeta(name: name, namespace: "default"), body: body))
        } catch {
            logger.warning("cannot record an event", metadata: ["staticroute": "\(e.route)", "reason": "\(e.reason)", "error": "\(error)"])
        }
    }
}
