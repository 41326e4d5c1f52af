import BatonAPI
import BatonClient
import BatonCore
import BatonDataplane
import Logging

/// `--dataplane linux`: follows every EgressTunnel and egress policy, and after each change (or
/// announce/withdraw order) decides this node's `EgressDatapathPlan` and has
/// `LinuxEgressDataplane` carry it out. Gratuitous ARP goes out at once and again after 0.1,
/// 0.3 and 0.7 s.
public actor LinuxDataplaneDriver: EgressDataplane {
    let node: String
    let plane: LinuxEgressDataplane
    let clusterCIDRs: [String]
    let logger: Logger
    var tunnels: [String: EgressDatapathPlan.Tunnel] = [:]
    var policies: [EgressPolicyRef: EgressDatapathPlan.Policy] = [:]
    var announced: Set<String> = []
    /// False until tunnels and policies were both listed: before that, only EIPs change.
    var synced: Set<String> = []

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
        try reapply()
    }

    /// Removes everything the data plane added (`baton agent --cleanup`).
    public func cleanup() throws { try plane.cleanup() }

    func reapply() throws {
        let plan = EgressDatapathPlan(node: node, tunnels: Array(tunnels.values), policies: Array(policies.values),
                                      announced: announced, clusterCIDRs: clusterCIDRs)
        let added = try plane.apply(plan)
        guard !added.isEmpty else { return }
        logger.info("EIPs bound and announced", metadata: ["eips": "\(added.map(\.description).sorted())"])
        let plane = self.plane
        Task.detached {
            for delay in [100, 200, 400] {
                try? await Task.sleep(for: .milliseconds(delay))
                plane.reannounce(added)
            }
        }
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
        if synced.count == 3 { try reapply() }
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
        if synced.count == 3 { try reapply() }
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
