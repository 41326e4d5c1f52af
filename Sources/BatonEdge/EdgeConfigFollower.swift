import BatonAPI
import BatonClient
import BatonCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Follows the Gateways and Clusters on the server (list, then watch) and installs a new route
/// table in `EdgeState` on every change that concerns this edge. When the server goes away the
/// edge keeps serving the last table it built, and relists once the server is back.
public final class EdgeConfigFollower: Service, Sendable {
    let client: BatonClient
    let state: EdgeState
    let logger: Logger
    /// What the watches last saw, and the conditions of the last table installed. One lock:
    /// the two watches rebuild in turn, so a table built from older objects can never be
    /// installed over one built from newer ones.
    struct Seen {
        var gateways: [String: Resource] = [:]
        var clusters: [String: Resource] = [:]
        var conditions: [String: [EdgeRouteCondition]] = [:]
    }
    private let seen = Mutex(Seen())
    private let notices: @Sendable (EdgeNotice) -> Void
    private let statusWriter: @Sendable (String, GatewayStatus) -> Void
    /// How many tables have been installed (tests wait on it through the log).
    public let installs = Atomic<Int>(0)

    public init(client: BatonClient, state: EdgeState, logger: Logger, notices: @escaping @Sendable (EdgeNotice) -> Void = { _ in },
                status: @escaping @Sendable (String, GatewayStatus) -> Void = { _, _ in }) {
        self.client = client
        self.state = state
        self.logger = logger
        self.notices = notices
        self.statusWriter = status
    }

    /// The Gateway status an edge writes for the conditions its routes resolved with.
    static func status(_ conds: [EdgeRouteCondition]) -> GatewayStatus {
        let now = AccessLog.timestamp()
        guard let first = conds.first else {
            return GatewayStatus(conditions: [.init(type: "ResolvedRefs", status: "True", reason: "Resolved",
                                                    message: "every destination cluster publishes the hostname", lastTransitionTime: now)])
        }
        return GatewayStatus(conditions: [.init(type: "ResolvedRefs", status: "False", reason: first.reason.rawValue,
                                                message: conds.map(\.description).joined(separator: "; "), lastTransitionTime: now)])
    }

    public func run() async throws {
        var backoff = Duration.milliseconds(200)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await follow()
                backoff = .milliseconds(200)
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { return }
                logger.warning("the Baton server is unreachable (\(error)); serving the last configuration, retrying in \(backoff)")
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(2))
            }
        }
    }

    /// One list-and-watch session; returns or throws when a watch ends.
    private func follow() async throws {
        let (gws, gwRev) = try await client.list(.tsbGateway, namespace: nil)
        let (cls, clRev) = try await client.list(.tsbCluster, namespace: nil)
        rebuild { seen in
            seen.gateways = Dictionary(gws.map { ($0.name, $0) }, uniquingKeysWith: { _, b in b })
            seen.clusters = Dictionary(cls.map { ($0.name, $0) }, uniquingKeysWith: { _, b in b })
            return true
        }
        try await cancelWhenGracefulShutdown {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.watch(.tsbGateway, from: gwRev, gateways: true) }
                group.addTask { try await self.watch(.tsbCluster, from: clRev, gateways: false) }
                // Either watch ending ends the session: relist both.
                try await group.next()
                group.cancelAll()
            }
        }
    }

    private func watch(_ kind: KindInfo, from revision: String, gateways isGateways: Bool) async throws {
        for try await event in try await client.watch(kind, namespace: nil, resourceVersion: revision) {
            observed(event.type == "DELETED" ? nil : event.object, name: event.object.name, gateway: isGateways)
        }
        throw APIError.unavailable("the \(kind.plural) watch ended")
    }

    /// A watch event: the Gateway (or Cluster) `name` is now `value`, nil when deleted.
    func observed(_ value: Resource?, name: String, gateway: Bool) {
        rebuild { seen in
            let old = gateway ? seen.gateways[name] : seen.clusters[name]
            if gateway { seen.gateways[name] = value } else { seen.clusters[name] = value }
            // A change of status only (this edge writes Gateway statuses) changes no route.
            return Self.routingChanged(old, value)
        }
    }

    /// The route table an edge with `settings` builds from these Gateways and Clusters, with
    /// the number of Gateways that select it.
    public static func table(gateways: [Resource], clusters: [Resource], settings: EdgeSettings) -> (EdgeRouteTable, Int, Int) {
        let selected: [(name: String, spec: GatewaySpec)] = gateways.compactMap { r in
            guard let spec = try? r.decodeSpec(GatewaySpec.self),
                  EdgeRouteTable.selects(spec.workloadSelector, namespace: settings.namespace, labels: settings.labels)
            else { return nil }
            return (r.name, spec)
        }
        let clusterObjects: [EdgeClusterObject] = clusters.compactMap { r in
            guard let spec = try? r.decodeSpec(ClusterSpec.self) else { return nil }
            return EdgeClusterObject(name: r.name, labels: r.labels, spec: spec)
        }
        return (EdgeRouteTable(gateways: selected, clusters: clusterObjects), selected.count, clusterObjects.count)
    }

    /// Whether a watch event can change the routes: a Gateway or Cluster that came, went, or
    /// changed its spec or labels.
    static func routingChanged(_ old: Resource?, _ new: Resource?) -> Bool {
        guard let old, let new else { return old != nil || new != nil }
        return old.spec != new.spec || old.labels != new.labels
    }

    /// Applies `update` to what was seen and, when it says the routes may have changed,
    /// rebuilds the route table, installs it if it differs and queues the Gateway statuses that
    /// changed; all under one lock. The log and the notices follow outside it.
    func rebuild(_ update: (inout Seen) -> Bool) {
        let installed = seen.withLock { seen -> (table: EdgeRouteTable, selected: Int, clusters: Int,
                                                old: [String: [EdgeRouteCondition]])? in
            guard update(&seen) else { return nil }
            let (table, selectedCount, clusterCount) = Self.table(gateways: Array(seen.gateways.values),
                                                                  clusters: Array(seen.clusters.values), settings: state.settings)
            if table == state.routeTable { return nil }
            state.install(table)
            let old = seen.conditions
            seen.conditions = table.conditions
            // Statuses are queued in the order tables are installed (the writer only queues;
            // nothing it calls comes back here).
            for (gateway, conds) in table.conditions where old[gateway] != conds {
                statusWriter(gateway, Self.status(conds))
            }
            return (table, selectedCount, clusterCount, old)
        }
        guard let (table, selectedCount, clusterCount, old) = installed else { return }
        installs.add(1, ordering: .relaxed)
        let summary = table.servers.sorted { $0.key < $1.key }.flatMap { port, hosts in
            hosts.sorted { $0.key < $1.key }.map { host, rules in
                "\(host):\(port) -> " + rules.map { r in r.route.clusters.map(\.name).joined(separator: ",") }.joined(separator: " | ")
            }
        }
        logger.notice("configuration: \(selectedCount) gateways, \(clusterCount) clusters; \(summary.joined(separator: "; "))")
        for (gateway, conds) in table.conditions {
            for c in conds where !(old[gateway] ?? []).contains(c) {
                logger.warning("Gateway \(gateway): \(c)")
                notices(EdgeNotice(kind: "Gateway", name: gateway, reason: c.reason.rawValue, message: "\(c.field): \(c.message)", warning: true))
            }
        }
    }
}

/// Writes the edge's notices as Events in the edge's namespace, in order, without holding up
/// the proxy: a notice that cannot be written (server down) is logged and dropped.
public final class EdgeEventWriter: Service, Sendable {
    let client: BatonClient
    let namespace: String
    let component: String
    let logger: Logger
    enum Work: Sendable {
        case notice(EdgeNotice)
        case status(gateway: String, GatewayStatus)
    }
    private let stream: AsyncStream<Work>
    private let continuation: AsyncStream<Work>.Continuation

    public init(client: BatonClient, namespace: String, component: String, logger: Logger) {
        self.client = client
        self.namespace = namespace
        self.component = component
        self.logger = logger
        (stream, continuation) = AsyncStream<Work>.makeStream(bufferingPolicy: .bufferingNewest(1000))
    }

    public func post(_ notice: EdgeNotice) { continuation.yield(.notice(notice)) }

    /// Writes a Gateway's status (merged: only the fields given change).
    public func postStatus(_ gateway: String, _ status: GatewayStatus) { continuation.yield(.status(gateway: gateway, status)) }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            for await work in self.stream {
                switch work {
                case .notice(let n): await self.write(n)
                case .status(let gateway, let status):
                    do {
                        _ = try await self.client.mergeStatus(.tsbGateway, name: gateway, namespace: nil, status: try JSONValue(encoding: status))
                    } catch {
                        self.logger.debug("could not write Gateway \(gateway)'s status: \(error)")
                    }
                }
            }
        }
    }

    private func write(_ n: EdgeNotice) async {
        let now = Timestamp.format(Date())
        let apiVersion = n.kind == "Gateway" ? KindInfo.tsbGateway.apiVersion : KindInfo.tsbCluster.apiVersion
        let record = EventRecord(involvedObject: .init(apiVersion: apiVersion, kind: n.kind, name: n.name),
                                 reason: n.reason, message: n.message, type: n.warning ? "Warning" : "Normal",
                                 source: .init(component: component), firstTimestamp: now, lastTimestamp: now)
        let name = "\(n.name).\(String(UInt64(Date().timeIntervalSince1970 * 1e6), radix: 16))"
        do {
            try await client.createEvent(record, name: name, namespace: namespace)
        } catch {
            logger.debug("could not write event \(n.reason) for \(n.kind) \(n.name): \(error)")
        }
    }
}
