import BatonAPI

/// An EgressPolicy (namespaced) or EgressClusterPolicy (`namespace` empty).
public struct EgressPolicyRef: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var namespace: String
    public var name: String

    public init(namespace: String = "", name: String) {
        self.namespace = namespace
        self.name = name
    }

    /// The reference of an EgressPolicy or EgressClusterPolicy object.
    public init(policy r: Resource) {
        self.init(namespace: r.kind == "EgressClusterPolicy" ? "" : (r.namespace ?? ""), name: r.name)
    }

    public static func < (a: EgressPolicyRef, b: EgressPolicyRef) -> Bool { (a.namespace, a.name) < (b.namespace, b.name) }
    public var description: String { namespace.isEmpty ? name : "\(namespace)/\(name)" }
}

/// A node as placement sees it: labels for the gateways' selectors, its own addresses for
/// `useNodeIP`, and its EgressTunnel phase (from `HeartbeatMonitor`). Only `Ready` nodes receive EIPs.
public struct EgressNode: Sendable, Hashable {
    public var name: String
    public var labels: [String: String]
    public var ipv4: IPAddress?
    public var ipv6: IPAddress?
    /// nil when the node has no EgressTunnel (never registered, or its agent deleted it).
    public var phase: EgressTunnelStatus.Phase?

    public init(name: String, labels: [String: String] = [:], ipv4: IPAddress? = nil, ipv6: IPAddress? = nil,
                phase: EgressTunnelStatus.Phase?) {
        self.name = name
        self.labels = labels
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.phase = phase
    }

    /// Takes the first `InternalIP` of each family from a Node's status.
    public init(name: String, labels: [String: String], status: NodeStatus?, phase: EgressTunnelStatus.Phase?) {
        let ips = (status?.addresses ?? []).filter { $0.type == "InternalIP" }.compactMap { IPAddress($0.address) }
        self.init(name: name, labels: labels, ipv4: ips.first { $0.family == .v4 }, ipv6: ips.first { $0.family == .v6 },
                  phase: phase)
    }

    public var isReady: Bool { phase == .ready }
}

/// A policy as placement sees it. `gateway` is already resolved (an empty `egressGatewayName`
/// means the cluster-default gateway; see `EgressGatewaySpec.clusterDefaultName(in:)`).
public struct EgressPlacementPolicy: Sendable, Hashable {
    public var ref: EgressPolicyRef
    public var gateway: String
    public let egressIP: EgressIP
    /// `egressIP.ipv4`/`ipv6` as written, parsed once here (nil when empty; `.malformed` when not an address).
    let explicitIPv4: Explicit?
    let explicitIPv6: Explicit?

    enum Explicit: Sendable, Hashable {
        case address(IPAddress)
        case malformed(String)
    }

    public init(ref: EgressPolicyRef, gateway: String, egressIP: EgressIP? = nil) {
        self.ref = ref
        self.gateway = gateway
        self.egressIP = egressIP ?? EgressIP()
        func parse(_ text: String?) -> Explicit? {
            guard let text, !text.isEmpty else { return nil }
            return IPAddress(text).map(Explicit.address) ?? .malformed(text)
        }
        explicitIPv4 = parse(self.egressIP.ipv4)
        explicitIPv6 = parse(self.egressIP.ipv6)
    }
}

/// Where one policy's traffic leaves: the egress node and the EIPs (or, with `useNodeIP`, the
/// node's own addresses). The controller writes it as the policy's `status.node`/`status.eip`.
public struct EgressAssignment: Sendable, Hashable {
    public var gateway: String
    public var node: String
    public var ipv4: IPAddress?
    public var ipv6: IPAddress?
    public var usesNodeIP: Bool

    public init(gateway: String, node: String, ipv4: IPAddress? = nil, ipv6: IPAddress? = nil, usesNodeIP: Bool = false) {
        self.gateway = gateway
        self.node = node
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.usesNodeIP = usesNodeIP
    }

    /// The address of one family.
    public func address(_ family: IPAddress.Family) -> IPAddress? { family == .v4 ? ipv4 : ipv6 }

    /// The policy status for this assignment.
    public var policyStatus: EgressPolicyStatus {
        EgressPolicyStatus(eip: .init(ipv4: ipv4?.description, ipv6: ipv6?.description), node: node)
    }

    /// Reads a policy's status back as an assignment (nil when it names no node).
    public init?(gateway: String, status: EgressPolicyStatus?, usesNodeIP: Bool = false) {
        guard let node = status?.node, !node.isEmpty else { return nil }
        self.init(gateway: gateway, node: node, ipv4: status?.eip?.ipv4.flatMap(IPAddress.init),
                  ipv6: status?.eip?.ipv6.flatMap(IPAddress.init), usesNodeIP: usesNodeIP)
    }
}

/// Why a policy has no egress node. The controller clears its status and writes this as an event.
public enum EgressUnassignedReason: Sendable, Hashable, CustomStringConvertible {
    case gatewayNotFound(gateway: String)
    /// No node is Ready and matches the gateway's nodeSelector.
    case noReadyCandidate(gateway: String)
    /// The explicit `egressIP` is not in the gateway's pool.
    case eipNotInPool(gateway: String, eip: String)
    /// The gateway has no pool to allocate from (and the policy does not use the node IP).
    case noPool(gateway: String)

    public var description: String {
        switch self {
        case .gatewayNotFound(let g): "EgressGateway \(g) not found"
        case .noReadyCandidate(let g): "no Ready node matches the nodeSelector of EgressGateway \(g)"
        case .eipNotInPool(let g, let eip): "egressIP \(eip) is not in the pool of EgressGateway \(g)"
        case .noPool(let g): "EgressGateway \(g) has no EIP pool"
        }
    }
}

/// One EIP (or one `useNodeIP` policy) that changed node, with the policies that go with it.
public struct EgressMove: Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable, CustomStringConvertible {
        /// The old node's tunnel is not Ready (for example `HeartbeatTimeout`).
        case nodeNotReady(phase: EgressTunnelStatus.Phase)
        /// The old node no longer matches the gateway's nodeSelector.
        case nodeNotSelected
        /// The old node has no EgressTunnel (deleted, or unknown).
        case nodeGone
        /// The EIP had no node before (new policy, or a candidate appeared).
        case newAssignment
        /// The policy's EIP changed (spec edited, default EIP changed), so it is placed afresh.
        case eipChanged
        /// No candidate is left: `to` is nil.
        case unassigned(EgressUnassignedReason)

        public var description: String {
            switch self {
            case .nodeNotReady(let phase): "node is \(phase.rawValue)"
            case .nodeNotSelected: "node no longer matches the nodeSelector"
            case .nodeGone: "node has no EgressTunnel"
            case .newAssignment: "new assignment"
            case .eipChanged: "egress IP changed"
            case .unassigned(let why): why.description
            }
        }
    }

    public var gateway: String
    public var ipv4: IPAddress?
    public var ipv6: IPAddress?
    public var policies: [EgressPolicyRef]
    public var from: String?
    public var to: String?
    public var reason: Reason

    public var description: String {
        let eip = [ipv4, ipv6].compactMap { $0?.description }.joined(separator: ",")
        return "\(gateway) \(eip.isEmpty ? "node IP" : eip) \(from ?? "-") -> \(to ?? "-"): \(reason)"
    }
}
