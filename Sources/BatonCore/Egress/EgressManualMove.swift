import BatonAPI

/// `baton egw move GATEWAY --eip IP --to NODE`: an operator moves one EIP of an EgressGateway to
/// another node by hand, as egressgateway's `egctl vip move` does. Baton has no fail-back, so this
/// is how an EIP goes back to a node that has recovered.
///
/// A pure decision, like `EgressPlacement`: from the gateway, the nodes (labels and EgressTunnel
/// phase), the policies' current assignments (their `status.node`/`status.eip`), the EIP and the
/// target node, it says which policies' status must now name the target, or why not. The caller
/// writes the statuses; placement then keeps the EIP there, because the target is a Ready node
/// that matches the gateway's nodeSelector.
///
/// What moves is the whole unit placement moves: every policy of the gateway whose status names
/// the EIP, closed over dual-stack pairs (moving `10.6.1.56` also moves `fd00::55` when a policy
/// uses both, and every policy that uses either). `useNodeIP` policies have no EIP and never match.
public struct EgressManualMove: Sendable, Hashable {
    public var gateway: String
    /// The EIP the operator named.
    public var eip: IPAddress
    /// The unit's addresses: the lowest of each family among its policies.
    public var ipv4: IPAddress?
    public var ipv6: IPAddress?
    /// The node the EIP is on now; equal to `to` when it is already there.
    public var from: String
    public var to: String
    /// Every policy of the unit, sorted. The caller writes `to` into the status of those whose
    /// status names another node.
    public var policies: [EgressPolicyRef]

    /// The EIP is already on the target: nothing to write.
    public var isAlreadyOnTarget: Bool { from == to }

    /// Decides the move of `eip` (text, either family) in `gateway` to the node `to`.
    ///
    /// `current` holds every egress policy's assignment as its status shows it, with `gateway`
    /// already resolved (an empty `egressGatewayName` is the cluster-default gateway) and
    /// `usesNodeIP` set from the policy's spec. Nodes are those with a Node object; a node's
    /// `phase` is its stored EgressTunnel `status.phase` (nil: it has no EgressTunnel).
    public init(gateway: String, spec: EgressGatewaySpec, nodes: [EgressNode],
                current: [EgressPolicyRef: EgressAssignment], eip: String, to: String) throws(EgressManualMoveError) {
        guard let ip = IPAddress(eip) else {
            throw EgressManualMoveError(.invalidEIP, field: "eip", "eip \"\(eip)\" is not an IPv4 or IPv6 address")
        }
        guard !to.isEmpty else { throw EgressManualMoveError(.nodeNotFound, field: "node", "node is required") }

        // The unit: policies of this gateway whose status names the address, closed over pairs.
        let candidates = current.filter { $0.value.gateway == gateway && !$0.value.usesNodeIP }
        var addresses: Set<IPAddress> = [ip]
        var unit: [EgressPolicyRef: EgressAssignment] = [:]
        var grew = true
        while grew {
            grew = false
            for (ref, a) in candidates where unit[ref] == nil {
                let own = [a.ipv4, a.ipv6].compactMap { $0 }
                guard own.contains(where: addresses.contains) else { continue }
                unit[ref] = a
                addresses.formUnion(own)
                grew = true
            }
        }
        guard !unit.isEmpty else {
            throw EgressManualMoveError(.eipNotAssigned, field: "eip", "EIP \(ip) is not assigned to any node in EgressGateway \(gateway)")
        }

        // The target: a Ready node that matches the gateway's nodeSelector.
        guard let node = nodes.first(where: { $0.name == to }) else {
            throw EgressManualMoveError(.nodeNotFound, field: "node", "node \(to) not found")
        }
        guard let phase = node.phase else {
            throw EgressManualMoveError(.noTunnel, field: "node", "node \(to) has no EgressTunnel")
        }
        guard phase == .ready else {
            throw EgressManualMoveError(.nodeNotReady, field: "node", "node \(to) is not Ready (phase \(phase.rawValue))")
        }
        guard spec.nodeSelector?.selector?.matches(node.labels) ?? false else {
            throw EgressManualMoveError(.nodeNotSelected, field: "node",
                                        "node \(to) does not match the nodeSelector of EgressGateway \(gateway)")
        }

        // Where it is now: the node most of the unit's policies not yet on the target name (ties
        // to the name that sorts first); the target itself when they are all there.
        var votes: [String: Int] = [:]
        for a in unit.values where a.node != to { votes[a.node, default: 0] += 1 }
        let from = votes.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key ?? to

        self.gateway = gateway
        self.eip = ip
        self.ipv4 = addresses.filter { $0.family == .v4 }.min()
        self.ipv6 = addresses.filter { $0.family == .v6 }.min()
        self.from = from
        self.to = to
        self.policies = unit.keys.sorted()
    }

    /// The unit's addresses as text, `10.6.1.56,fd00::55`.
    public var addresses: String { [ipv4, ipv6].compactMap { $0?.description }.joined(separator: ",") }
}

/// Why a manual move was refused. `field` is the request field at fault (`eip` or `node`) and the
/// message names its value.
public struct EgressManualMoveError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Extensible.
    public struct Code: RawRepresentable, Sendable, Hashable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The EIP is not an IP address.
        public static let invalidEIP = Code(rawValue: "invalidEIP")
        /// No policy of the gateway has the EIP in its status.
        public static let eipNotAssigned = Code(rawValue: "eipNotAssigned")
        /// The target has no Node object (or no name was given).
        public static let nodeNotFound = Code(rawValue: "nodeNotFound")
        /// The target has no EgressTunnel.
        public static let noTunnel = Code(rawValue: "noTunnel")
        /// The target's EgressTunnel phase is not Ready.
        public static let nodeNotReady = Code(rawValue: "nodeNotReady")
        /// The target does not match the gateway's nodeSelector.
        public static let nodeNotSelected = Code(rawValue: "nodeNotSelected")
    }

    public var code: Code
    public var field: String
    public var message: String

    public init(_ code: Code, field: String, _ message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    public var description: String { message }
}
