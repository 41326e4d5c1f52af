import BatonAPI
import BatonCore
import BatonStore
import Logging

/// The egress controller's state between batches: its view of the store, the heartbeat monitor,
/// the tunnel allocator and what it last wrote. Owned by one task (`EgressController.run`).
struct EgressControllerLoop {
    struct NodeEntry {
        var resource: Resource
        var status: NodeStatus?
    }

    struct GatewayEntry {
        var resource: Resource
        var spec: EgressGatewaySpec?
        var status: EgressGatewayStatus?
    }

    struct PolicyEntry {
        var resource: Resource
        var gatewayName: String
        var egressIP: EgressIP?
        var status: EgressPolicyStatus?

        init(_ r: Resource) {
            resource = r
            gatewayName = r.spec?["egressGatewayName"]?.stringValue ?? ""
            egressIP = r.spec?["egressIP"].flatMap { try? $0.decode(EgressIP.self) }
            status = r.decodeStatus(EgressPolicyStatus.self)
        }

        var specKey: SpecKey { SpecKey(gatewayName: gatewayName, egressIP: egressIP) }
        struct SpecKey: Hashable { var gatewayName: String; var egressIP: EgressIP? }
    }

    /// What to change in one tunnel's status (nil members: leave as stored).
    struct TunnelWrite: Sendable {
        var phase: EgressTunnelStatus.Phase?
        var heartbeatTime: String?
    }

    /// An Event to record after the batch's writes.
    struct PendingEvent: Sendable {
        var object: Resource
        var reason: String
        var message: String
        var type: String
    }

    let controller: EgressController
    var monitor: HeartbeatMonitor
    var allocator: EgressTunnelAllocator
    var synced: Set<String> = []
    var tunnels: [String: Resource] = [:]
    /// The heartbeat log's cursor (nil until the first read).
    var heartbeatCursor: Int64?
    /// Each node's newest reported agent time, and when the controller last wrote one to the tunnel.
    var agentTimes: [String: String] = [:]
    var displayedAt: [String: BatonInstant] = [:]
    var nodes: [String: NodeEntry] = [:]
    var gateways: [String: GatewayEntry] = [:]
    var policies: [EgressPolicyRef: PolicyEntry] = [:]
    /// Something placement reads has changed since the last placement.
    var dirty = false
    /// Tunnel status writes due: allocation, phase, displayed heartbeat time.
    var tunnelWrites: [String: TunnelWrite] = [:]
    var desiredPolicy: [EgressPolicyRef: EgressPolicyStatus] = [:]
    var desiredGateway: [String: EgressGatewayStatus] = [:]
    var unassignedReported: [EgressPolicyRef: EgressUnassignedReason] = [:]
    var pendingEvents: [PendingEvent] = []

    var logger: Logger { controller.logger }
    var store: any ResourceStore { controller.store }

    init(controller: EgressController) {
        self.controller = controller
        monitor = HeartbeatMonitor(settings: controller.failover)
        allocator = EgressTunnelAllocator(settings: controller.settings)
    }

    // MARK: - A batch

    mutating func handle(_ batch: [EgressControllerInput]) async {
        var tick = false
        var poll = false
        for input in batch {
            switch input {
            case .tick: tick = true
            case .pollHeartbeats: poll = true
            case .snapshot(let kind, let items, let at): applySnapshot(kind: kind, items: items, at: at)
            case .event(let event, let at): apply(event, at: at)
            }
        }
        if tick || poll { await readHeartbeats() }
        if tick, synced.contains("EgressTunnel") { evaluate() }
        if !tunnelWrites.isEmpty { await writeTunnels() }
        if dirty, synced.count == EgressController.watchedKinds.count {
            dirty = false
            await place()
        }
        if !pendingEvents.isEmpty { await recordEvents() }
    }

    /// Reads the nodes that beat since the last read; each counts as received now.
    mutating func readHeartbeats() async {
        guard let log = controller.heartbeats else { return }
        do {
            let (records, cursor) = try await log.read(after: heartbeatCursor)
            let now = controller.clock.now
            heartbeatCursor = cursor
            // Only tunnels the controller knows: a heartbeat racing its tunnel's deletion must not
            // bring the tunnel back into the monitor (an early one for a new tunnel is just skipped).
            for r in records where tunnels[r.node] != nil {
                monitor.heartbeatReceived(r.node, at: now)
                if let t = r.agentTime { agentTimes[r.node] = t }
            }
        } catch {
            logger.warning("cannot read heartbeats", metadata: ["error": "\(error)"])
        }
    }

    /// Runs the heartbeat monitor: phase changes to write, one log line and one event each. Also
    /// refreshes the displayed `lastHeartbeatTime` of tunnels not shown for `heartbeatDisplayPeriod`.
    mutating func evaluate() {
        let now = controller.clock.now
        for decision in monitor.evaluate(now: now) {
            switch decision {
            case .markHeartbeatTimeout(let node, let silentFor):
                tunnelWrites[node, default: TunnelWrite()].phase = .heartbeatTimeout
                logger.notice("update tunnel status to HeartbeatTimeout", metadata: ["tunnel": "\(node)", "silentFor": "\(silentFor)"])
                if let t = tunnels[node] {
                    pendingEvents.append(PendingEvent(object: t, reason: "HeartbeatTimeout",
                                                      message: "update tunnel status to HeartbeatTimeout: no heartbeat for \(silentFor)",
                                                      type: "Warning"))
                }
            case .markReady(let node):
                tunnelWrites[node, default: TunnelWrite()].phase = .ready
                displayedAt[node] = nil
                logger.info("update tunnel status to Ready", metadata: ["tunnel": "\(node)"])
                if let t = tunnels[node] {
                    pendingEvents.append(PendingEvent(object: t, reason: "Ready", message: "tunnel is Ready", type: "Normal"))
                }
            }
            dirty = true
        }
        for (node, time) in agentTimes where tunnels[node] != nil {
            if let shown = displayedAt[node], now - shown < controller.heartbeatDisplayPeriod { continue }
            if tunnels[node]?.status?["lastHeartbeatTime"]?.stringValue == time { continue }
            tunnelWrites[node, default: TunnelWrite()].heartbeatTime = time
            displayedAt[node] = now
        }
    }

    // MARK: - Watch input

    mutating func applySnapshot(kind: String, items: [Resource], at: BatonInstant) {
        synced.insert(kind)
        dirty = true
        switch kind {
        case "EgressTunnel":
            let names = Set(items.map(\.name))
            for gone in tunnels.keys where !names.contains(gone) { forgetTunnel(gone) }
            // Tunnels that already hold an allocation keep it; the others get theirs after.
            let ordered = items.sorted { a, b in
                let ka = a.status?["mark"] == nil, kb = b.status?["mark"] == nil
                return ka != kb ? !ka : a.name < b.name
            }
            for t in ordered {
                if tunnels[t.name] == nil { monitor.track(t.name, phase: Self.phase(t), now: at) }
                tunnels[t.name] = t
                reconcileAllocation(t)
            }
        case "Node":
            nodes = Dictionary(items.map { ($0.name, NodeEntry(resource: $0, status: $0.decodeStatus(NodeStatus.self))) },
                               uniquingKeysWith: { _, b in b })
        case "EgressGateway":
            gateways = Dictionary(items.map { ($0.name, Self.gatewayEntry($0)) }, uniquingKeysWith: { _, b in b })
        default:
            let namespaced = kind == "EgressPolicy"
            policies = policies.filter { ($0.key.namespace.isEmpty) == namespaced }
            for p in items { policies[Self.ref(p)] = PolicyEntry(p) }
        }
    }

    mutating func apply(_ event: WatchEvent, at: BatonInstant) {
        let object = event.object
        switch object.kind {
        case "EgressTunnel":
            let name = object.name
            if event.type == .deleted {
                if tunnels[name] != nil, Self.revision(tunnels[name]!) <= event.revision {
                    forgetTunnel(name)
                    dirty = true
                }
                return
            }
            if tunnels[name] == nil {
                monitor.track(name, phase: Self.phase(object), now: at)
                dirty = true
            }
            if let cached = tunnels[name], Self.revision(cached) > event.revision { return }
            tunnels[name] = object
            reconcileAllocation(object)
        case "Node":
            if event.type == .deleted {
                if nodes.removeValue(forKey: object.name) != nil { dirty = true }
                return
            }
            let old = nodes[object.name]
            if let old, Self.revision(old.resource) > event.revision { return }
            let entry = NodeEntry(resource: object, status: object.decodeStatus(NodeStatus.self))
            if old == nil || old!.resource.labels != object.labels || old!.status?.addresses != entry.status?.addresses {
                dirty = true
            }
            nodes[object.name] = entry
        case "EgressGateway":
            if event.type == .deleted {
                if gateways.removeValue(forKey: object.name) != nil { dirty = true }
                desiredGateway[object.name] = nil
                return
            }
            let old = gateways[object.name]
            if let old, Self.revision(old.resource) > event.revision { return }
            let entry = Self.gatewayEntry(object)
            if old == nil || old!.spec != entry.spec || old!.resource.metadata.generation != object.metadata.generation
                || entry.status != desiredGateway[object.name] {
                dirty = true
            }
            gateways[object.name] = entry
        case "EgressPolicy", "EgressClusterPolicy":
            let ref = Self.ref(object)
            if event.type == .deleted {
                if policies.removeValue(forKey: ref) != nil { dirty = true }
                desiredPolicy[ref] = nil
                unassignedReported[ref] = nil
                return
            }
            let old = policies[ref]
            if let old, Self.revision(old.resource) > event.revision { return }
            let entry = PolicyEntry(object)
            if old == nil || old!.specKey != entry.specKey || old!.resource.metadata.generation != object.metadata.generation
                || !Self.sameStatus(entry.status, desiredPolicy[ref]) {
                dirty = true
            }
            policies[ref] = entry
        default:
            break
        }
    }

    mutating func forgetTunnel(_ name: String) {
        tunnels[name] = nil
        agentTimes[name] = nil
        displayedAt[name] = nil
        tunnelWrites[name] = nil
        monitor.forget(name)
        allocator.release(name)
    }

    mutating func reconcileAllocation(_ tunnel: Resource) {
        if allocator.reconcile(node: tunnel.name, status: tunnel.decodeStatus(EgressTunnelStatus.self)) != nil,
           tunnelWrites[tunnel.name] == nil {
            tunnelWrites[tunnel.name] = TunnelWrite()
        }
    }

    // MARK: - Tunnel writes

    mutating func writeTunnels() async {
        let writes = tunnelWrites
        tunnelWrites = [:]
        let store = self.store, logger = self.logger
        var jobs: [@Sendable () async -> Resource?] = []
        for (name, write) in writes {
            guard let cached = tunnels[name] else { continue }
            let allocation = allocator.byNode[name]
            jobs.append {
                await EgressStatusWriter.write(store: store, start: cached, logger: logger) {
                    EgressStatusWriter.tunnelStatus($0, phase: write.phase, heartbeatTime: write.heartbeatTime, allocation: allocation)
                }
            }
        }
        for r in await EgressStatusWriter.concurrently(jobs, limit: controller.writeConcurrency) {
            guard let r, let cached = tunnels[r.name], Self.revision(cached) <= Self.revision(r) else { continue }
            tunnels[r.name] = r
        }
    }

    // MARK: - Helpers

    static func revision(_ r: Resource) -> Int64 { r.metadata.resourceVersion.flatMap { Int64($0) } ?? 0 }

    static func phase(_ r: Resource) -> EgressTunnelStatus.Phase? {
        r.status?["phase"]?.stringValue.flatMap(EgressTunnelStatus.Phase.init(rawValue:))
    }

    static func ref(_ r: Resource) -> EgressPolicyRef {
        EgressPolicyRef(namespace: r.kind == "EgressClusterPolicy" ? "" : (r.namespace ?? ""), name: r.name)
    }

    static func gatewayEntry(_ r: Resource) -> GatewayEntry {
        GatewayEntry(resource: r, spec: try? r.decodeSpec(EgressGatewaySpec.self), status: r.decodeStatus(EgressGatewayStatus.self))
    }

    /// Node and EIPs equal (a missing status and an empty one are the same), and the same observed generation.
    static func sameStatus(_ a: EgressPolicyStatus?, _ b: EgressPolicyStatus?) -> Bool {
        func key(_ s: EgressPolicyStatus?) -> [String] {
            [s?.node ?? "", s?.eip?.ipv4 ?? "", s?.eip?.ipv6 ?? "", s?.observedGeneration.map(String.init) ?? ""]
        }
        return key(a) == key(b)
    }

    /// Node and EIPs equal (a missing status and an empty one are the same), whatever the observed generation.
    static func sameAssignment(_ a: EgressPolicyStatus?, _ b: EgressPolicyStatus?) -> Bool {
        func key(_ s: EgressPolicyStatus?) -> [String] { [s?.node ?? "", s?.eip?.ipv4 ?? "", s?.eip?.ipv6 ?? ""] }
        return key(a) == key(b)
    }
}
