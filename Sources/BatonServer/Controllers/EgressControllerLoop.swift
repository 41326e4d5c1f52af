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
        /// `status.eip`, parsed once here rather than at every placement.
        var statusIPv4: IPAddress?
        var statusIPv6: IPAddress?

        init(_ r: Resource) {
            resource = r
            gatewayName = r.spec?["egressGatewayName"]?.stringValue ?? ""
            egressIP = r.spec?["egressIP"].flatMap { try? $0.decode(EgressIP.self) }
            status = r.decodeStatus(EgressPolicyStatus.self)
            statusIPv4 = status?.eip?.ipv4.flatMap(IPAddress.init)
            statusIPv6 = status?.eip?.ipv6.flatMap(IPAddress.init)
            placement = EgressPlacementPolicy(ref: EgressControllerLoop.ref(r), gateway: gatewayName, egressIP: egressIP)
        }

        /// Placement's view of the policy (its explicit EIPs parsed once, here).
        let placement: EgressPlacementPolicy

        /// Placement's view, with the gateway the policy resolves to now.
        func placementPolicy(gateway: String) -> EgressPlacementPolicy {
            var p = placement
            p.gateway = gateway
            return p
        }

        /// The assignment the stored status records (nil when it names no node).
        func assignment(gateway: String) -> EgressAssignment? {
            guard let node = status?.node, !node.isEmpty else { return nil }
            return EgressAssignment(gateway: gateway, node: node, ipv4: statusIPv4, ipv6: statusIPv6,
                                    usesNodeIP: egressIP?.usesNodeIP ?? false)
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
    /// Feeds the loop's own queue (probe results).
    var post: (@Sendable (EgressControllerInput) -> Void)?
    var allocator: EgressTunnelAllocator
    var synced: Set<String> = []
    var tunnels: [String: Resource] = [:]
    /// The heartbeat log's cursor (nil until the first read).
    var heartbeatCursor: Int64?
    /// Since when reading the heartbeat log has failed (nil: the last read worked). While it
    /// fails nobody is evicted, and when it works again every tunnel gets a full grace period.
    var heartbeatsUnreadableSince: BatonInstant?
    /// The heartbeat log's store term at the last read (nil: none yet, or a store without terms).
    var heartbeatTerm: Int64?
    /// Each node's newest reported agent time, and when the controller last wrote one to the tunnel.
    var agentTimes: [String: String] = [:]
    var displayedAt: [String: BatonInstant] = [:]
    var nodes: [String: NodeEntry] = [:]
    var gateways: [String: GatewayEntry] = [:]
    var policies: [EgressPolicyRef: PolicyEntry] = [:]
    /// What the next placement must decide again: everything, or only some gateways (those whose
    /// spec, policies, or selected or carrying nodes changed). Gateways are coupled only through
    /// node load, which `unitLoad` carries between placements.
    var placeAll = false
    var dirtyGateways: Set<String> = []
    var dirty: Bool { placeAll || !dirtyGateways.isEmpty }
    /// Units each gateway carries on each node, from the placement that last decided it.
    var unitLoad: [String: [String: Int]] = [:]
    /// The cluster-default gateway, which policies without `egressGatewayName` use.
    var defaultGateway = ""
    /// Tunnel status writes due: allocation, phase, displayed heartbeat time.
    var tunnelWrites: [String: TunnelWrite] = [:]
    var desiredPolicy: [EgressPolicyRef: EgressPolicyStatus] = [:]
    var desiredGateway: [String: EgressGatewayStatus] = [:]
    var unassignedReported: [EgressPolicyRef: EgressUnassignedReason] = [:]
    var pendingEvents: [PendingEvent] = []
    /// A tunnel went: the heartbeat log should forget nodes without one.
    var heartbeatsToPrune = false

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
            case .probed(let node, let reachable, let startedAt):
                monitor.probeFinished(node, reachable: reachable, startedAt: startedAt)
                if !reachable { poll = true }
            case .snapshot(let kind, let items, let at): applySnapshot(kind: kind, items: items, at: at)
            case .event(let event, let at): apply(event, at: at)
            }
        }
        if tick || poll { await readHeartbeats() }
        // A tunnel whose eviction deadline has passed is judged at the next heartbeat read (every
        // 25 ms), not up to a tunnelMonitorPeriod later at the next tick. Never on a failed read:
        // the silence would be the log's, not the nodes'.
        let due = poll && (monitor.nextDeadline.map { $0 < controller.clock.now } ?? false)
        if tick || due, synced.contains("EgressTunnel"), heartbeatsUnreadableSince == nil { evaluate() }
        if !tunnelWrites.isEmpty { await writeTunnels() }
        if dirty, synced.count == EgressController.watchedKinds.count {
            let scope: Set<String>? = placeAll ? nil : dirtyGateways
            placeAll = false
            dirtyGateways = []
            await place(scope: scope)
        }
        if !pendingEvents.isEmpty { await recordEvents() }
        if heartbeatsToPrune, synced.contains("EgressTunnel") { await pruneHeartbeats() }
    }

    /// Removes the heartbeat records of nodes that have no tunnel, so the log does not grow
    /// with every node that ever came and went. A node whose tunnel is so new that this
    /// controller has not seen it loses one heartbeat record, which its next heartbeat writes
    /// again; removing a record is not a heartbeat, so it never counts as one.
    mutating func pruneHeartbeats() async {
        heartbeatsToPrune = false
        guard let log = controller.heartbeats else { return }
        do {
            let removed = try await log.prune(keeping: Set(tunnels.keys))
            if removed > 0 { logger.info("heartbeat records of deleted tunnels removed", metadata: ["count": "\(removed)"]) }
        } catch {
            heartbeatsToPrune = true  // next batch
            logger.debug("cannot prune the heartbeat log", metadata: ["error": "\(error)"])
        }
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
            if let since = heartbeatsUnreadableSince {
                // Heartbeats sent meanwhile could not be recorded: judge nobody on that silence.
                heartbeatsUnreadableSince = nil
                monitor.grantGrace(now: now)
                logger.notice("heartbeats readable again; every tunnel gets a full eipEvictionTimeout",
                              metadata: ["unreadableFor": "\(now - since)"])
            } else if let term = log.lastReadTerm, let last = heartbeatTerm, term > last {
                // The store elected a leader since the last read: it may have been without one
                // in between (an outage shorter than a read's period), and heartbeats answered
                // StoreWithoutQuorum then were not recorded. Judge nobody on that silence either.
                monitor.grantGrace(now: now)
                logger.notice("the store changed leader; every tunnel gets a full eipEvictionTimeout",
                              metadata: ["term": "\(term)", "previousTerm": "\(last)"])
            }
            if let term = log.lastReadTerm { heartbeatTerm = max(heartbeatTerm ?? 0, term) }
            for r in records where tunnels[r.node] != nil {
                monitor.heartbeatReceived(r.node, at: now)
                if let t = r.agentTime { agentTimes[r.node] = t }
            }
        } catch {
            if heartbeatsUnreadableSince == nil {
                heartbeatsUnreadableSince = controller.clock.now
                logger.warning("cannot read heartbeats; nobody is evicted until they can be read again",
                               metadata: ["error": "\(error)"])
            }
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
            case .markUnreachable(let node, let silentFor):
                tunnelWrites[node, default: TunnelWrite()].phase = .heartbeatTimeout
                logger.notice("update tunnel status to HeartbeatTimeout: node unreachable", metadata: ["tunnel": "\(node)", "silentFor": "\(silentFor)"])
                if let t = tunnels[node] {
                    pendingEvents.append(PendingEvent(object: t, reason: "HeartbeatTimeout",
                                                      message: "update tunnel status to HeartbeatTimeout: no heartbeat for \(silentFor) and the node's address does not answer",
                                                      type: "Warning"))
                }
            case .probe(let node):
                startProbe(node, at: now)
            case .markReady(let node):
                tunnelWrites[node, default: TunnelWrite()].phase = .ready
                displayedAt[node] = nil
                logger.info("update tunnel status to Ready", metadata: ["tunnel": "\(node)"])
                if let t = tunnels[node] {
                    pendingEvents.append(PendingEvent(object: t, reason: "Ready", message: "tunnel is Ready", type: "Normal"))
                }
            }
            switch decision {
            case .markHeartbeatTimeout(let node, _), .markUnreachable(let node, _), .markReady(let node): markNode(node)
            case .probe: break
            }
        }
        for (node, time) in agentTimes where tunnels[node] != nil {
            if let shown = displayedAt[node], now - shown < controller.heartbeatDisplayPeriod { continue }
            if tunnels[node]?.status?["lastHeartbeatTime"]?.stringValue == time { continue }
            tunnelWrites[node, default: TunnelWrite()].heartbeatTime = time
            displayedAt[node] = now
        }
    }

    /// Probes `node`'s own address (its tunnel's `parent.ipv4`) off the loop; the result comes
    /// back as `.probed`. A node with no address, or no probe configured, counts as reachable.
    func startProbe(_ node: String, at started: BatonInstant) {
        let address = tunnels[node]?.status?["tunnel"]?["parent"]?["ipv4"]?.stringValue
        guard let probe = controller.probe, let post, let address else {
            post?(.probed(node: node, reachable: true, startedAt: started))
            return
        }
        Task { post(.probed(node: node, reachable: await probe(address), startedAt: started)) }
    }

    // MARK: - Watch input

    mutating func applySnapshot(kind: String, items: [Resource], at: BatonInstant) {
        synced.insert(kind)
        placeAll = true
        switch kind {
        case "EgressTunnel":
            let names = Set(items.map(\.name))
            for gone in tunnels.keys where !names.contains(gone) { forgetTunnel(gone) }
            // Heartbeats of tunnels deleted while no controller ran go too.
            heartbeatsToPrune = true
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
            defaultGateway = EgressGatewaySpec.clusterDefaultName(in: gateways.values.map(\.resource)) ?? ""
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
                    markNode(name)
                }
                return
            }
            if tunnels[name] == nil {
                monitor.track(name, phase: Self.phase(object), now: at)
                markNode(name)
            }
            if let cached = tunnels[name], Self.revision(cached) > event.revision { return }
            tunnels[name] = object
            reconcileAllocation(object)
        case "Node":
            if event.type == .deleted {
                if let old = nodes.removeValue(forKey: object.name) { markNode(object.name, labels: old.resource.labels) }
                return
            }
            let old = nodes[object.name]
            if let old, Self.revision(old.resource) > event.revision { return }
            let entry = NodeEntry(resource: object, status: object.decodeStatus(NodeStatus.self))
            nodes[object.name] = entry
            if old == nil || old!.resource.labels != object.labels || old!.status?.addresses != entry.status?.addresses {
                markNode(object.name, labels: old?.resource.labels)
            }
        case "EgressGateway":
            if event.type == .deleted {
                if gateways.removeValue(forKey: object.name) != nil { gatewaysChanged(object.name) }
                desiredGateway[object.name] = nil
                return
            }
            let old = gateways[object.name]
            if let old, Self.revision(old.resource) > event.revision { return }
            let entry = Self.gatewayEntry(object)
            gateways[object.name] = entry
            if old == nil || old!.spec != entry.spec || old!.resource.metadata.generation != object.metadata.generation
                || old!.resource.labels != object.labels {
                gatewaysChanged(object.name)
            } else if entry.status != desiredGateway[object.name] {
                markGateway(object.name)
            }
        case "EgressPolicy", "EgressClusterPolicy":
            let ref = Self.ref(object)
            if event.type == .deleted {
                if let old = policies.removeValue(forKey: ref) { markGateway(gateway(of: old)) }
                desiredPolicy[ref] = nil
                unassignedReported[ref] = nil
                return
            }
            let old = policies[ref]
            if let old, Self.revision(old.resource) > event.revision { return }
            let entry = PolicyEntry(object)
            policies[ref] = entry
            if old == nil || old!.specKey != entry.specKey || old!.resource.metadata.generation != object.metadata.generation
                || !Self.sameStatus(entry.status, desiredPolicy[ref]) {
                if let old { markGateway(gateway(of: old)) }
                markGateway(gateway(of: entry))
            }
        default:
            break
        }
    }

    // MARK: - Placement scope

    mutating func markGateway(_ name: String) {
        if !placeAll { dirtyGateways.insert(name) }
    }

    /// A node's phase, labels or addresses changed, or it came or went: the gateways that select it
    /// (by its new or old labels) and the gateways that have EIPs on it are decided again.
    mutating func markNode(_ name: String, labels old: [String: String]? = nil) {
        guard !placeAll else { return }
        let labels = nodes[name]?.resource.labels
        for (g, entry) in gateways {
            guard let selector = entry.spec?.nodeSelector?.selector else { continue }
            if labels.map(selector.matches) == true || old.map(selector.matches) == true { dirtyGateways.insert(g) }
        }
        for (g, load) in unitLoad where (load[name] ?? 0) > 0 { dirtyGateways.insert(g) }
    }

    /// A gateway came, went or changed its spec or metadata. When that changes which gateway is the
    /// cluster default, every policy without `egressGatewayName` may change gateway: decide everything.
    mutating func gatewaysChanged(_ name: String) {
        markGateway(name)
        let now = EgressGatewaySpec.clusterDefaultName(in: gateways.values.map(\.resource)) ?? ""
        if now != defaultGateway {
            defaultGateway = now
            placeAll = true
        }
    }

    /// The gateway a policy uses: its `egressGatewayName`, or the cluster default.
    func gateway(of p: PolicyEntry) -> String { p.gatewayName.isEmpty ? defaultGateway : p.gatewayName }

    mutating func forgetTunnel(_ name: String) {
        heartbeatsToPrune = true
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

    static func ref(_ r: Resource) -> EgressPolicyRef { EgressPolicyRef(policy: r) }

    static func gatewayEntry(_ r: Resource) -> GatewayEntry {
        GatewayEntry(resource: r, spec: try? r.decodeSpec(EgressGatewaySpec.self), status: r.decodeStatus(EgressGatewayStatus.self))
    }

    /// Node and EIPs equal (a missing status and an empty one are the same), and the same observed generation.
    static func sameStatus(_ a: EgressPolicyStatus?, _ b: EgressPolicyStatus?) -> Bool {
        sameAssignment(a, b) && a?.observedGeneration == b?.observedGeneration
    }

    /// Node and EIPs equal (a missing status and an empty one are the same), whatever the observed generation.
    static func sameAssignment(_ a: EgressPolicyStatus?, _ b: EgressPolicyStatus?) -> Bool {
        (a?.node ?? "") == (b?.node ?? "") && (a?.eip?.ipv4 ?? "") == (b?.eip?.ipv4 ?? "")
            && (a?.eip?.ipv6 ?? "") == (b?.eip?.ipv6 ?? "")
    }
}
