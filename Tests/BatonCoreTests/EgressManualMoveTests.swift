import BatonAPI
import BatonCore
import Testing

/// `EgressManualMove`, step by step: placement puts an EIP somewhere, an operator moves it by hand,
/// placement keeps it there.
@Suite struct EgressManualMoveTests {
    static let selector = EgressGatewaySpec.NodeSelector(selector: LabelSelector(matchLabels: ["egress": "true"]))
    static let gateway = EgressGatewaySpec(ippools: .init(ipv4: ["10.6.1.55-10.6.1.58"], ipv6: ["fd00::55-fd00::58"],
                                                          ipv4DefaultEIP: "10.6.1.56", ipv6DefaultEIP: "fd00::55"),
                                           nodeSelector: selector)
    static let nodes = [
        EgressNode(name: "node1", labels: ["egress": "true"], phase: .ready),
        EgressNode(name: "node2", labels: ["egress": "true"], phase: .ready),
        EgressNode(name: "node3", labels: ["egress": "true"], phase: nil),
        EgressNode(name: "node4", labels: ["egress": "true"], phase: .heartbeatTimeout),
        EgressNode(name: "node5", labels: [:], phase: .ready),
    ]

    static func ref(_ name: String) -> EgressPolicyRef { .init(namespace: "default", name: name) }

    static func on(_ node: String, _ v4: String?, _ v6: String? = nil, gateway: String = "egw1", nodeIP: Bool = false) -> EgressAssignment {
        EgressAssignment(gateway: gateway, node: node, ipv4: v4.flatMap(IPAddress.init), ipv6: v6.flatMap(IPAddress.init), usesNodeIP: nodeIP)
    }

    static func move(_ eip: String, to: String, current: [EgressPolicyRef: EgressAssignment]) throws(EgressManualMoveError) -> EgressManualMove {
        try EgressManualMove(gateway: "egw1", spec: gateway, nodes: nodes, current: current, eip: eip, to: to)
    }

    @Test func movesOneEIPAndPlacementKeepsItThere() throws {
        let gws = ["egw1": Self.gateway]
        let policies = [EgressPlacementPolicy(ref: Self.ref("p1"), gateway: "egw1", egressIP: .init(ipv4: "10.6.1.57"))]
        let ready = Array(Self.nodes.prefix(2))
        let start = EgressPlacement(gateways: gws, policies: policies, nodes: ready, current: [:])
        #expect(start.assignments[Self.ref("p1")]?.node == "node1")

        let move = try Self.move("10.6.1.57", to: "node2", current: start.assignments)
        #expect(move.from == "node1")
        #expect(move.to == "node2")
        #expect(move.policies == [Self.ref("p1")])
        // An explicit IPv4 EIP takes the gateway's default IPv6 EIP as its pair.
        #expect(move.ipv4 == IPAddress("10.6.1.57") && move.ipv6 == IPAddress("fd00::55"))
        #expect(move.eip == IPAddress("10.6.1.57") && move.addresses == "10.6.1.57,fd00::55")
        #expect(!move.isAlreadyOnTarget)

        // The caller writes the statuses; placement keeps the EIP on node2, a Ready candidate.
        var current = start.assignments
        for ref in move.policies { current[ref]!.node = move.to }
        let after = EgressPlacement(gateways: gws, policies: policies, nodes: ready, current: current)
        #expect(after.moves.isEmpty)
        #expect(after.assignments == current)
        #expect(after.gatewayStatus("egw1")?.nodeList?.first { $0.name == "node2" }?.eips?.map(\.ipv4) == ["10.6.1.57"])

        // A second move to the same node is a no-op.
        let again = try Self.move("10.6.1.57", to: "node2", current: current)
        #expect(again.isAlreadyOnTarget)
        #expect(again.from == "node2")
        #expect(again.policies == [Self.ref("p1")])

        // ...and it can go back by hand (there is no fail-back otherwise).
        let back = try Self.move("10.6.1.57", to: "node1", current: current)
        #expect(back.from == "node2" && back.to == "node1")
    }

    /// The unit: every policy of the gateway that shares an address with the EIP, over dual-stack
    /// pairs, and nothing else: not other gateways' policies, not useNodeIP policies.
    @Test func theWholeDualStackUnitMovesAndNothingElse() throws {
        let current = [
            Self.ref("default"): Self.on("node1", "10.6.1.56", "fd00::55"),
            Self.ref("v4only"): Self.on("node1", "10.6.1.56"),
            Self.ref("sharesV6"): Self.on("node1", "10.6.1.58", "fd00::55"),
            Self.ref("other"): Self.on("node1", "10.6.1.57", "fd00::56"),
            Self.ref("otherGateway"): Self.on("node1", "10.6.1.56", gateway: "egw2"),
            Self.ref("nodeIP"): Self.on("node1", "10.6.1.56", nodeIP: true),
            EgressPolicyRef(name: "cluster"): Self.on("node1", "10.6.1.58"),
        ]
        let move = try Self.move("10.6.1.58", to: "node2", current: current)
        #expect(move.policies == [EgressPolicyRef(name: "cluster"), Self.ref("default"), Self.ref("sharesV6"), Self.ref("v4only")])
        #expect(move.ipv4 == IPAddress("10.6.1.56"), "the unit's lowest IPv4")
        #expect(move.ipv6 == IPAddress("fd00::55"))
        #expect(move.from == "node1")
        #expect(move.eip == IPAddress("10.6.1.58"))
        #expect(move.addresses == "10.6.1.56,fd00::55")
        // Any text form of an address names it.
        #expect(try Self.move("FD00:0::55", to: "node2", current: current).policies == move.policies)
    }

    /// A unit left split across nodes (a move interrupted half-way) moves from where most of it is
    /// and is not yet on the target.
    @Test func aSplitUnitMovesFromWhereMostOfItIs() throws {
        let current = [
            Self.ref("a"): Self.on("node2", "10.6.1.56"),
            Self.ref("b"): Self.on("node1", "10.6.1.56"),
            Self.ref("c"): Self.on("node1", "10.6.1.56"),
        ]
        let move = try Self.move("10.6.1.56", to: "node2", current: current)
        #expect(move.from == "node1")
        #expect(!move.isAlreadyOnTarget)
        #expect(move.policies == [Self.ref("a"), Self.ref("b"), Self.ref("c")])
    }

    struct Refusal: Sendable, CustomStringConvertible {
        var eip: String
        var to: String
        var code: EgressManualMoveError.Code
        var field: String
        var message: String
        var description: String { "\(eip) -> \(to)" }
    }

    static let refusals = [
        Refusal(eip: "10.6.1", to: "node2", code: .invalidEIP, field: "eip", message: "eip \"10.6.1\" is not an IPv4 or IPv6 address"),
        Refusal(eip: "", to: "node2", code: .invalidEIP, field: "eip", message: "eip \"\" is not an IPv4 or IPv6 address"),
        Refusal(eip: "10.6.1.99", to: "node2", code: .eipNotAssigned, field: "eip",
                message: "EIP 10.6.1.99 is not assigned to any node in EgressGateway egw1"),
        Refusal(eip: "10.6.1.57", to: "node2", code: .eipNotAssigned, field: "eip",
                message: "EIP 10.6.1.57 is not assigned to any node in EgressGateway egw1"),
        Refusal(eip: "192.168.0.11", to: "node2", code: .eipNotAssigned, field: "eip",
                message: "EIP 192.168.0.11 is not assigned to any node in EgressGateway egw1"),
        Refusal(eip: "10.6.1.55", to: "node9", code: .nodeNotFound, field: "node", message: "node node9 not found"),
        Refusal(eip: "10.6.1.55", to: "", code: .nodeNotFound, field: "node", message: "node is required"),
        Refusal(eip: "10.6.1.55", to: "node3", code: .noTunnel, field: "node", message: "node node3 has no EgressTunnel"),
        Refusal(eip: "10.6.1.55", to: "node4", code: .nodeNotReady, field: "node", message: "node node4 is not Ready (phase HeartbeatTimeout)"),
        Refusal(eip: "10.6.1.55", to: "node5", code: .nodeNotSelected, field: "node",
                message: "node node5 does not match the nodeSelector of EgressGateway egw1"),
    ]

    @Test(arguments: refusals)
    func refusesWithTheFieldAndValue(r: Refusal) {
        let current = [
            Self.ref("p1"): Self.on("node1", "10.6.1.55"),
            Self.ref("elsewhere"): Self.on("node1", "10.6.1.57", gateway: "egw2"),
            Self.ref("nodeIP"): Self.on("node1", "192.168.0.11", nodeIP: true),
        ]
        #expect {
            try Self.move(r.eip, to: r.to, current: current)
        } throws: { error in
            guard let e = error as? EgressManualMoveError else { return false }
            return e.code == r.code && e.field == r.field && e.message == r.message
        }
    }

    @Test func aGatewayWithoutANodeSelectorTakesNoNode() {
        let spec = EgressGatewaySpec(ippools: .init(ipv4: ["10.6.1.55"]))
        #expect(throws: EgressManualMoveError(.nodeNotSelected, field: "node",
                                              "node node2 does not match the nodeSelector of EgressGateway egw1")) {
            try EgressManualMove(gateway: "egw1", spec: spec, nodes: Self.nodes,
                                 current: [Self.ref("p1"): Self.on("node1", "10.6.1.55")], eip: "10.6.1.55", to: "node2")
        }
    }
}
