import BatonAPI
import BatonCore
import Testing

@Suite struct PlacementTests {
    static let selector = EgressGatewaySpec.NodeSelector(selector: LabelSelector(matchLabels: ["egress": "true"]))

    static func gateway(_ v4: [String], default4: String? = nil, v6: [String]? = nil, default6: String? = nil) -> EgressGatewaySpec {
        EgressGatewaySpec(ippools: .init(ipv4: v4, ipv6: v6, ipv4DefaultEIP: default4, ipv6DefaultEIP: default6), nodeSelector: selector)
    }

    static func node(_ name: String, _ phase: EgressTunnelStatus.Phase? = .ready, egress: Bool = true, ip: String? = nil) -> EgressNode {
        EgressNode(name: name, labels: egress ? ["egress": "true"] : [:], ipv4: ip.flatMap(IPAddress.init), phase: phase)
    }

    static func rr(_ name: String, gateway: String = "egw1") -> EgressPlacementPolicy {
        EgressPlacementPolicy(ref: .init(namespace: "default", name: name), gateway: gateway, egressIP: .init(allocatorPolicy: "rr"))
    }

    static func ref(_ name: String) -> EgressPolicyRef { .init(namespace: "default", name: name) }

    /// 6 rr EIPs on node1; node1 fails; they spread over node2, node3, node4 two each, one at a time.
    @Test func failedNodeSpreadsLeastLoadedFirstOneAtATime() {
        let gws = ["egw1": Self.gateway(["10.6.1.50-10.6.1.59"])]
        let policies = (1...6).map { Self.rr("p\($0)") }
        let start = EgressPlacement(gateways: gws, policies: policies, nodes: [Self.node("node1")], current: [:])
        #expect(Set(start.assignments.values.map(\.node)) == ["node1"])
        #expect(start.assignments[Self.ref("p1")]?.ipv4 == IPAddress("10.6.1.50"))
        #expect(start.assignments[Self.ref("p6")]?.ipv4 == IPAddress("10.6.1.55"))
        #expect(start.moves.allSatisfy { $0.reason == .newAssignment })

        let nodes = [Self.node("node1", .heartbeatTimeout), Self.node("node2"), Self.node("node3"), Self.node("node4")]
        let after = EgressPlacement(gateways: gws, policies: policies, nodes: nodes, current: start.assignments)
        #expect(after.moves.map(\.to) == ["node2", "node3", "node4", "node2", "node3", "node4"])
        #expect(after.moves.allSatisfy { $0.from == "node1" && $0.reason == .nodeNotReady(phase: .heartbeatTimeout) })
        // Addresses do not change when they move.
        for p in policies { #expect(after.assignments[p.ref]?.ipv4 == start.assignments[p.ref]?.ipv4) }

        // Least-loaded first: node2 already carries two, so node3 and node4 get the first ones.
        var loaded = start.assignments
        loaded[Self.ref("p5")]!.node = "node2"
        loaded[Self.ref("p6")]!.node = "node2"
        let second = EgressPlacement(gateways: gws, policies: policies, nodes: nodes, current: loaded)
        #expect(second.moves.map(\.to) == ["node3", "node4", "node3", "node4"])

        // node1 comes back Ready: nothing moves back.
        let back = nodes.map { $0.name == "node1" ? Self.node("node1") : $0 }
        let again = EgressPlacement(gateways: gws, policies: policies, nodes: back, current: after.assignments)
        #expect(again.moves.isEmpty)
        #expect(again.assignments == after.assignments)
        let status = again.gatewayStatus("egw1")!
        #expect(status.nodeList?.map(\.name) == ["node1", "node2", "node3", "node4"])
        #expect(status.nodeList?.first?.eips == nil && status.nodeList?.first?.status == "Ready")
        #expect(status.nodeList?[1].eips?.map(\.ipv4) == ["10.6.1.50", "10.6.1.53"])
        #expect(status.ipUsage == .init(ipv4Total: 10, ipv4Free: 4, ipv6Total: 0, ipv6Free: 0))
    }

    @Test func selectorMismatchAndDeletedTunnelMove() {
        let gws = ["egw1": Self.gateway(["10.6.1.55", "10.6.1.56"], default4: "10.6.1.56")]
        let policies = [EgressPlacementPolicy(ref: Self.ref("a"), gateway: "egw1"), Self.rr("b")]
        let current = [Self.ref("a"): EgressAssignment(gateway: "egw1", node: "node1", ipv4: IPAddress("10.6.1.56")),
                       Self.ref("b"): EgressAssignment(gateway: "egw1", node: "node3", ipv4: IPAddress("10.6.1.55"))]
        let nodes = [Self.node("node1", egress: false), Self.node("node2"), Self.node("node3", nil)]
        let p = EgressPlacement(gateways: gws, policies: policies, nodes: nodes, current: current)
        #expect(p.moves.map(\.reason) == [.nodeGone, .nodeNotSelected])   // 10.6.1.55 (node3), then 10.6.1.56 (node1)
        #expect(p.assignments[Self.ref("a")] == EgressAssignment(gateway: "egw1", node: "node2", ipv4: IPAddress("10.6.1.56")))
        #expect(p.assignments[Self.ref("b")]?.node == "node2")
    }

    @Test func noReadyCandidateUnassignsWithReason() {
        let gws = ["egw1": Self.gateway(["10.6.1.55"])]
        let policies = [Self.rr("a")]
        let current = [Self.ref("a"): EgressAssignment(gateway: "egw1", node: "node1", ipv4: IPAddress("10.6.1.55"))]
        let p = EgressPlacement(gateways: gws, policies: policies, nodes: [Self.node("node1", .heartbeatTimeout)], current: current)
        #expect(p.assignments.isEmpty)
        #expect(p.unassigned == [Self.ref("a"): .noReadyCandidate(gateway: "egw1")])
        #expect(p.moves.map(\.to) == [nil])
        #expect(p.policyStatus(Self.ref("a")) == EgressPolicyStatus())
        #expect(p.unassigned[Self.ref("a")]?.description == "no Ready node matches the nodeSelector of EgressGateway egw1")
        let missing = EgressPlacement(gateways: [:], policies: policies, nodes: [Self.node("node1")], current: [:])
        #expect(missing.unassigned == [Self.ref("a"): .gatewayNotFound(gateway: "egw1")])
    }

    /// The seed's gateway: default, rr, explicit and useNodeIP policies.
    @Test func allocators() {
        let gws = ["egw1": Self.gateway(["10.6.1.55", "10.6.1.56"], default4: "10.6.1.56", v6: ["fd00::55", "fd00::56"], default6: "fd00::55")]
        let policies = [
            EgressPlacementPolicy(ref: Self.ref("default"), gateway: "egw1"),
            EgressPlacementPolicy(ref: Self.ref("explicit"), gateway: "egw1", egressIP: .init(ipv4: "10.6.1.55", ipv6: "fd00::56")),
            EgressPlacementPolicy(ref: Self.ref("nodeip"), gateway: "egw1", egressIP: .init(useNodeIP: true)),
            EgressPlacementPolicy(ref: Self.ref("outside"), gateway: "egw1", egressIP: .init(ipv4: "10.9.9.9")),
            Self.rr("rr"),
        ]
        let p = EgressPlacement(gateways: gws, policies: policies, nodes: [Self.node("node1", ip: "192.168.0.11")], current: [:])
        let a = p.assignments
        #expect(a[Self.ref("default")] == .init(gateway: "egw1", node: "node1", ipv4: IPAddress("10.6.1.56"), ipv6: IPAddress("fd00::55")))
        #expect(a[Self.ref("explicit")]?.ipv4 == IPAddress("10.6.1.55"))
        #expect(a[Self.ref("explicit")]?.ipv6 == IPAddress("fd00::56"))
        #expect(a[Self.ref("nodeip")] == .init(gateway: "egw1", node: "node1", ipv4: IPAddress("192.168.0.11"), usesNodeIP: true))
        #expect(p.unassigned[Self.ref("outside")] == .eipNotInPool(gateway: "egw1", eip: "10.9.9.9"))
        // Every pool IP is taken by default/explicit, so rr shares the default EIP.
        #expect(a[Self.ref("rr")]?.ipv4 == IPAddress("10.6.1.56"))
        #expect(a[Self.ref("rr")]?.ipv6 == IPAddress("fd00::55"))
        let status = p.gatewayStatus("egw1")!
        #expect(status.nodeList?.first?.eips?.map(\.ipv4) == ["", "10.6.1.55", "10.6.1.56"])
        #expect(status.nodeList?.first?.eips?.last?.policies?.map(\.name) == ["default", "rr"])
        #expect(status.ipUsage == .init(ipv4Total: 2, ipv4Free: 0, ipv6Total: 2, ipv6Free: 0))

        // Policies sharing an EIP move together.
        let nodes = [Self.node("node1", .heartbeatTimeout), Self.node("node2"), Self.node("node3")]
        let moved = EgressPlacement(gateways: gws, policies: policies, nodes: nodes, current: p.assignments)
        #expect(moved.assignments[Self.ref("default")]?.node == moved.assignments[Self.ref("rr")]?.node)
        #expect(moved.moves.count == 3)
        #expect(moved.assignments[Self.ref("nodeip")]?.ipv4 == nil, "node3's own address is unknown here")
    }

    @Test func tenThousandEIPsOverFiftyGatewaysReplacedForAFailedNode() {
        var gws: [String: EgressGatewaySpec] = [:]
        var policies: [EgressPlacementPolicy] = []
        var nodes: [EgressNode] = []
        for n in 0..<100 { nodes.append(EgressNode(name: "node\(n)", labels: ["pool": "\(n % 5)"], phase: .ready)) }
        for g in 0..<50 {
            let name = "egw\(g)"
            gws[name] = EgressGatewaySpec(ippools: .init(ipv4: ["10.\(g).0.0/24"]),
                                          nodeSelector: .init(selector: LabelSelector(matchLabels: ["pool": "\(g % 5)"])))
            for p in 0..<200 { policies.append(Self.rr("\(name)-p\(p)", gateway: name)) }
        }
        let start = EgressPlacement(gateways: gws, policies: policies, nodes: nodes, current: [:])
        #expect(start.assignments.count == 10_000)
        #expect(Set(start.assignments.values.map { "\($0.gateway) \($0.ipv4!)" }).count == 10_000, "every rr policy has its own EIP")

        let failed = nodes.map { $0.name == "node7" ? EgressNode(name: "node7", labels: $0.labels, phase: .heartbeatTimeout) : $0 }
        let onFailed = start.assignments.filter { $0.value.node == "node7" }
        let after = EgressPlacement(gateways: gws, policies: policies, nodes: failed, current: start.assignments)
        #expect(after.assignments.count == 10_000)
        #expect(after.moves.count == onFailed.count)
        #expect(after.assignments.values.allSatisfy { $0.node != "node7" })
        for (ref, a) in after.assignments {
            let was = start.assignments[ref]!
            #expect(a.ipv4 == was.ipv4)
            if was.node != "node7" { #expect(a.node == was.node) } else { #expect(failed.first { $0.name == a.node }?.labels == ["pool": "2"]) }
        }
        // Spread: node7's 100 EIPs over the 19 other pool-2 nodes (100 each before).
        var load: [String: Int] = [:]
        for a in after.assignments.values { load[a.node, default: 0] += 1 }
        let pool2 = load.filter { Int($0.key.dropFirst(4))! % 5 == 2 }.values
        #expect(pool2.count == 19)
        #expect(pool2.max()! - pool2.min()! <= 1)
    }
    /// Deciding only the gateways a change touches, with the others' units as base load, gives
    /// exactly what deciding everything gives. Gateways overlap in their nodes (so load couples
    /// them); each step fails or revives a node, and the scoped placement is compared to the full one.
    @Test func scopedPlacementDecidesWhatAFullPlacementDecides() {
        var rng = SplitMix(seed: 7)
        var nodes = (0..<12).map { n in
            EgressNode(name: "node\(n)", labels: ["a": "\(n % 3)", "b": "\(n % 4)"], ipv4: IPAddress("192.168.0.\(n + 1)"), phase: .ready)
        }
        var gws: [String: EgressGatewaySpec] = [:]
        var policies: [EgressPlacementPolicy] = []
        for g in 0..<8 {
            let label = g % 2 == 0 ? ["a": "\(g % 3)"] : ["b": "\(g % 4)"]
            gws["egw\(g)"] = EgressGatewaySpec(ippools: .init(ipv4: ["10.\(g).0.1-10.\(g).0.40"]),
                                              nodeSelector: .init(selector: LabelSelector(matchLabels: label)))
            for p in 0..<Int(rng.next() % 20 + 5) {
                let ref = EgressPolicyRef(namespace: "ns", name: "g\(g)-p\(p)")
                let egressIP: EgressIP = switch p % 5 {
                case 0: .init(useNodeIP: true)
                case 1: .init(ipv4: "10.\(g).0.\(p + 1)")
                case 2: .init(allocatorPolicy: "default")
                default: .init(allocatorPolicy: "rr")
                }
                policies.append(EgressPlacementPolicy(ref: ref, gateway: "egw\(g)", egressIP: egressIP))
            }
        }
        var full = EgressPlacement(gateways: gws, policies: policies, nodes: nodes, current: [:])
        for step in 0..<40 {
            // Fail or revive one node.
            let i = Int(rng.next() % UInt64(nodes.count))
            let old = nodes[i]
            nodes[i].phase = old.isReady ? .heartbeatTimeout : .ready
            let next = EgressPlacement(gateways: gws, policies: policies, nodes: nodes, current: full.assignments)

            // The gateways the change touches: those selecting the node, and those with units on it.
            let scope = Set(gws.filter { $0.value.nodeSelector?.selector?.matches(old.labels) == true }.keys)
                .union(full.unitLoad.filter { ($0.value[old.name] ?? 0) > 0 }.keys)
            var base: [String: Int] = [:]
            for (g, load) in full.unitLoad where !scope.contains(g) { for (n, c) in load { base[n, default: 0] += c } }
            let scoped = EgressPlacement(gateways: gws.filter { scope.contains($0.key) },
                                         policies: policies.filter { scope.contains($0.gateway) }, nodes: nodes,
                                         current: full.assignments.filter { scope.contains($0.value.gateway) }, baseLoad: base)

            #expect(scoped.assignments == next.assignments.filter { scope.contains($0.value.gateway) }, "step \(step)")
            #expect(scoped.moves == next.moves, "step \(step): every move is in the scope")
            for g in scope { #expect(scoped.gatewayStatus(g) == next.gatewayStatus(g), "step \(step) \(g)") }
            for g in gws.keys where !scope.contains(g) {
                #expect(next.unitLoad[g] == full.unitLoad[g], "step \(step): \(g) outside the scope changed")
            }
            full = next
        }
    }
}

/// A small deterministic generator, so the scenario is the same on every run.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}
