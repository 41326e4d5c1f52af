import BatonAPI
import BatonClient
import BatonCore
import BatonDataplane
import Logging

/// `--dataplane linux`: follows every EgressTunnel and egress policy, and after each change (or
/// announce/withdraw order) decides this node's `EgressDatapathPlan` and has
/// `LinuxEgressDataplane` carry it out. Gratuitous ARP goes out at once and again after 0.1,
/// 0.3 and 0.7 s.
///
/// Kernel fencing: the agent renews the announced EIPs' kernel lease (`EgressFence`) on every
/// acknowledged heartbeat, up to its fence deadline; if the agent dies or freezes, the kernel
/// stops answering for them by itself.
///
/// A restarted agent finds EIPs its predecessor bound: it keeps them ("adopted", still under
/// the old kernel lease) until it knows its placement (`settle`), so a restart loses no packet.
public actor LinuxDataplaneDriver: EgressDataplane {
    let node: String
    let plane: LinuxEgressDataplane
    let clusterCIDRs: [String]
    let logger: Logger
    var tunnels: [String: EgressDatapathPlan.Tunnel] = [:]
    var policies: [EgressPolicyRef: EgressDatapathPlan.Policy] = [:]
    var announced: Set<String> = []
    /// EIPs found bound at start, kept until the agent's first placement decision; nil until read.
    var adopted: Set<String>?
    /// When the kernel lease of the announced EIPs ends (the agent's fence deadline).
    var leaseUntil: ContinuousClock.Instant?
    var lastPlan: EgressDatapathPlan?
    /// Nothing is applied until tunnels and both policy kinds were listed once: a plan without
    /// them would unbind EIPs and drop traffic that is fine.
    var synced: Set<String> = []
    /// A watch event asked for a re-apply that has not run yet (bursts coalesce into one).
    var pending = false
    var warnedConntrack = false
    /// The gratuitous ARP repeats in flight (cancelled by `cleanup`).
    var repeats: [Task<Void, Never>] = []

    public init(node: String, config: EgressDatapathConfig, clusterCIDRs: [String], logger: Logger) {
        self.node = node
        self.plane = LinuxEgressDataplane(config: config)
        self.clusterCIDRs = clusterCIDRs
        self.logger = logger
    }

    public nonisolated var parentInterface: String { plane.config.parent }

    public func announce(_ eips: Set<String>) async throws {
        announced.formUnion(eips)
        try reapply()
    }

    public func withdraw(_ eips: Set<String>) async throws {
        announced.subtract(eips)
        adopted?.subtract(eips)
        try reapply()
    }

    public func renew(for remaining: Duration) async throws {
        leaseUntil = ContinuousClock.now.advanced(by: remaining)
        let live = Set(announced.compactMap(IPAddress.init)).intersection(lastPlan?.eips ?? [])
        guard !live.isEmpty else { return }
        try plane.renew(live, timeout: remaining)
    }

    public func settle() async throws {
        guard adopted?.isEmpty == false else {
            adopted = []
            return
        }
        let dropped = adopted!.subtracting(announced)
        adopted = []
        if !dropped.isEmpty { logger.notice("releasing EIPs a previous agent bound", metadata: ["eips": "\(dropped.sorted())"]) }
        try reapply()
    }

    /// Removes everything the data plane added (`baton agent --cleanup`).
    public func cleanup() throws {
        for t in repeats { t.cancel() }
        repeats = []
        try plane.cleanup()
    }

    func reapply() throws {
        pending = false
        guard synced.count == 3 else { return }
        if adopted == nil {
            adopted = Set(try plane.boundEIPs().map(\.description))
            if !adopted!.isEmpty { logger.notice("found EIPs bound by a previous agent; keeping them until the placement is known", metadata: ["eips": "\(adopted!.sorted())"]) }
        }
        let plan = EgressDatapathPlan(node: node, tunnels: Array(tunnels.values), policies: Array(policies.values),
                                      announced: announced.union(adopted ?? []), clusterCIDRs: clusterCIDRs)
        let lease = leaseUntil.map { $0 - ContinuousClock.now }
        let added = try plane.apply(plan, lease: lease)
        if !plane.conflicts.isEmpty {
            logger.warning("another machine still answers ARP for these EIPs; bound them anyway", metadata: [
                "eips": "\(plane.conflicts.map(\.description).sorted())", "waited": "\(plane.config.conflictWait)"])
        }
        if let old = lastPlan {
            let forget = plan.sourcesToForget(since: old)
            if !forget.isEmpty {
                do { try plane.forgetConnections(from: forget) } catch {
                    if !warnedConntrack { logger.warning("cannot forget the connections of changed policies", metadata: ["error": "\(error)"]) }
                    warnedConntrack = true
                }
            }
        }
        lastPlan = plan
        guard !added.isEmpty else { return }
        logger.info("EIPs bound and announced", metadata: ["eips": "\(added.map(\.description).sorted())"])
        let plane = self.plane
        if repeats.count >= 8 { repeats.removeFirst(repeats.count - 7) }  // older ones ended long ago (0.7 s)
        repeats.append(Task {
            for delay in [100, 200, 400] {
                try? await Task.sleep(for: .milliseconds(delay))
                if Task.isCancelled { return }
                plane.reannounce(added)
            }
        })
    }

    /// Re-applies once for a burst of watch events.
    func schedule() {
        guard !pending else { return }
        pending = true
        Task { try? await self.flush() }
    }

    func flush() throws {
        guard pending else { return }
        do { try reapply() } catch { logger.error("data plane failed", metadata: ["error": "\(error)"]) }
    }

    func replace(kind: String, with items: [Resource]) throws {
        synced.insert(kind)
        switch kind {
        case "EgressTunnel":
            tunnels = Dictionary(items.map { ($0.name, Self.tunnel($0)) }, uniquingKeysWith: { _, b in b })
        default:
            let namespaced = kind == "EgressPolicy"
            policies = policies.filter { $0.key.namespace.isEmpty == namespaced }
            for p in items { if let (ref, pol) = Self.policy(p) { policies[ref] = pol } }
        }
        schedule()
    }

    func apply(_ event: BatonClient.Event) throws {
        let object = event.object
        switch object.kind {
        case "EgressTunnel":
            tunnels[object.name] = event.type == "DELETED" ? nil : Self.tunnel(object)
        default:
            guard let (ref, pol) = Self.policy(object) else { return }
            policies[ref] = event.type == "DELETED" ? nil : pol
        }
        schedule()
    }

    static func tunnel(_ r: Resource) -> EgressDatapathPlan.Tunnel {
        .init(node: r.name, status: r.decodeStatus(EgressTunnelStatus.self))
    }

    static func policy(_ r: Resource) -> (EgressPolicyRef, EgressDatapathPlan.Policy)? {
        guard let spec = try? r.decodeSpec(EgressPolicySpec.self) else { return nil }
        let ref = EgressPolicyRef(policy: r)
        let status = r.decodeStatus(EgressPolicyStatus.self)
        return (ref, .init(ref: ref, podSubnets: spec.appliedTo.podSubnet ?? [], destSubnets: spec.destSubnet ?? [],
                           priority: spec.priority ?? 0, node: status?.node,
                           eipv4: status?.eip?.ipv4.flatMap(IPAddress.init), useNodeIP: spec.egressIP?.useNodeIP ?? false))
    }

    /// Lists and watches `kind` for as long as the task runs, re-listing after a broken watch.
    public nonisolated func follow(_ kind: KindInfo, client: BatonClient) async {
        while !Task.isCancelled {
            do {
                let (items, revision) = try await client.list(kind, namespace: nil)
                try await replace(kind: kind.kind, with: items)
                for try await event in try await client.watch(kind, namespace: nil, resourceVersion: revision) {
                    try await apply(event)
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("data plane: cannot follow \(kind.kind); retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}
