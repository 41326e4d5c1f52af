import BatonAPI
import BatonCore
import BatonDataplane
import Testing

@Suite struct EgressDatapathPlanTests {
    static let tunnels = [
        EgressDatapathPlan.Tunnel(node: "node1", mark: 0x2600_0001, mac: "66:00:00:00:00:01", tunnelIPv4: IPAddress("172.31.0.1"),
                                  nodeIPv4: IPAddress("192.168.77.11")),
        EgressDatapathPlan.Tunnel(node: "node2", mark: 0x2600_0002, mac: "66:00:00:00:00:02", tunnelIPv4: IPAddress("172.31.0.2"),
                                  nodeIPv4: IPAddress("192.168.77.12")),
        // Not allocated yet: no peer.
        EgressDatapathPlan.Tunnel(node: "node3", mark: nil, mac: nil, tunnelIPv4: nil, nodeIPv4: IPAddress("192.168.77.13")),
    ]

    static func policy(_ name: String, node: String?, eip: String? = "192.168.77.200", dest: [String] = [],
                       useNodeIP: Bool = false, priority: Int64 = 0) -> EgressDatapathPlan.Policy {
        .init(ref: .init(namespace: "default", name: name), podSubnets: ["10.244.0.0/16"], destSubnets: dest, priority: priority,
              node: node, eipv4: eip.flatMap(IPAddress.init), useNodeIP: useNodeIP)
    }

    @Test func theEIPsNodeSNATsAndTheOthersTunnel() {
        let policies = [Self.policy("p1", node: "node1")]
        let holder = EgressDatapathPlan(node: "node1", tunnels: Self.tunnels, policies: policies, announced: ["192.168.77.200"],
                                        clusterCIDRs: ["10.244.0.0/16", "10.96.0.0/12"])
        #expect(holder.rules.map(\.action) == [.snat(IPAddress("192.168.77.200")!)])
        #expect(holder.eips == [IPAddress("192.168.77.200")!])
        #expect(holder.peers.map(\.node) == ["node2"])
        // Node addresses count as cluster: pods reaching another node's IP are not egress traffic.
        #expect(holder.cluster.contains(IPRange(first: IPAddress("192.168.77.12")!, last: IPAddress("192.168.77.12")!)!))

        let other = EgressDatapathPlan(node: "node2", tunnels: Self.tunnels, policies: policies, announced: [],
                                       clusterCIDRs: ["10.244.0.0/16"])
        #expect(other.rules.map(\.action) == [.tunnel(mark: 0x2600_0001, node: "node1")])
        #expect(other.eips.isEmpty)
    }

    @Test func noUsableEIPMeansDropNeverTheNodesAddress() {
        // Placed here but fenced (not announced), placed nowhere, placed on a node without a tunnel.
        let plan = EgressDatapathPlan(node: "node1", tunnels: Self.tunnels,
                                      policies: [Self.policy("a", node: "node1"), Self.policy("b", node: nil),
                                                 Self.policy("c", node: "node3")],
                                      announced: [], clusterCIDRs: [])
        #expect(plan.rules.allSatisfy { if case .drop = $0.action { true } else { false } })
        #expect(plan.eips.isEmpty)
    }

    @Test func useNodeIPMasqueradesAndDestSubnetNarrowsTheMatch() {
        let plan = EgressDatapathPlan(node: "node1", tunnels: Self.tunnels,
                                      policies: [Self.policy("m", node: "node1", eip: nil, useNodeIP: true),
                                                 Self.policy("d", node: "node2", dest: ["203.0.113.0/24"], priority: -1)],
                                      announced: [], clusterCIDRs: [])
        #expect(plan.rules.map(\.policy.name) == ["d", "m"], "priority orders the rules")
        #expect(plan.rules[0].excludeCluster == false)
        #expect(plan.rules[1].action == .masquerade)
    }
}

@Suite struct EgressRulesetTests {
    @Test func rendersOneAtomicTableWithMarksSNATAndTheGuard() {
        let plan = EgressDatapathPlan(node: "node1", tunnels: EgressDatapathPlanTests.tunnels,
                                      policies: [EgressDatapathPlanTests.policy("p1", node: "node1"),
                                                 EgressDatapathPlanTests.policy("p2", node: "node2", eip: "192.168.77.201",
                                                                                dest: ["203.0.113.0/24"])],
                                      announced: ["192.168.77.200"], clusterCIDRs: ["10.244.0.0/16"])
        let text = EgressRuleset.render(plan, config: EgressDatapathConfig(parent: "eth0"))
        // Create-then-delete-then-define: one transaction that replaces the table whether or not it existed.
        #expect(text.hasPrefix("table ip baton_egress {\n}\ndelete table ip baton_egress\ntable ip baton_egress {\n"))
        #expect(text.contains("elements = { 10.244.0.0/16, 192.168.77.11, 192.168.77.12, 192.168.77.13 }"))
        #expect(text.contains(#"iifname "egress.vxlan" ct state new ether saddr 66:00:00:00:00:02 ct mark set 0x26000002"#))
        #expect(text.contains(#"iifname != { "eth0", "egress.vxlan" } ip saddr { 10.244.0.0/16 } ip daddr { 203.0.113.0/24 } meta mark set 0x26000002 accept"#))
        #expect(text.contains(#"oifname "eth0" ip saddr { 10.244.0.0/16 } ip daddr != @cluster snat to 192.168.77.200"#))
        #expect(text.contains(#"oifname "eth0" ip saddr { 10.244.0.0/16 } ip daddr != @cluster ct status & snat == 0 drop"#))
        #expect(EgressRuleset.render(plan, config: EgressDatapathConfig(parent: "eth0")) == text, "deterministic")
    }
}

@Suite struct EgressConntrackTests {
    @Test func onlyPoliciesWhoseActionChangedForgetTheirConnections() {
        let tunnels = EgressDatapathPlanTests.tunnels
        let p1 = EgressDatapathPlanTests.policy("p1", node: "node1")
        var p2 = EgressDatapathPlanTests.policy("p2", node: "node2", eip: "192.168.77.201")
        p2.podSubnets = ["10.245.0.0/16"]
        // node2 tunnels p1's pods to node1; then p1's EIP comes to node2 (tunnel -> SNAT).
        let before = EgressDatapathPlan(node: "node2", tunnels: tunnels, policies: [p1, p2], announced: ["192.168.77.201"], clusterCIDRs: [])
        var moved = p1
        moved.node = "node2"
        let after = EgressDatapathPlan(node: "node2", tunnels: tunnels, policies: [moved, p2],
                                       announced: ["192.168.77.200", "192.168.77.201"], clusterCIDRs: [])
        #expect(after.sourcesToForget(since: before) == [IPSyntax.poolEntry("10.244.0.0/16")!])
        // The same plan again: nothing to forget.
        #expect(after.sourcesToForget(since: after).isEmpty)
        // A fence (SNAT -> drop) forgets too: a connection must not keep its SNAT to an EIP this node no longer holds.
        let fenced = EgressDatapathPlan(node: "node2", tunnels: tunnels, policies: [moved, p2], announced: [], clusterCIDRs: [])
        #expect(Set(fenced.sourcesToForget(since: after)) == [IPSyntax.poolEntry("10.244.0.0/16")!, IPSyntax.poolEntry("10.245.0.0/16")!])
    }
}

@Suite struct EgressFenceTests {
    @Test func theKernelFenceKeepsLiveLeasesAcrossReapplies() {
        let text = EgressFence.render(held: [IPAddress("192.168.77.201")!, IPAddress("192.168.77.200")!],
                                      config: EgressDatapathConfig(parent: "eth0"))
        // Declared, never deleted: the live set (and its timeouts) survives a re-apply.
        #expect(!text.contains("delete table"))
        #expect(!text.contains("flush set netdev baton_fence live"))
        #expect(text.contains(#"type filter hook egress device "eth0" priority 0; policy accept;"#))
        #expect(text.contains("flush chain netdev baton_fence egress\n"))
        #expect(text.contains("add rule netdev baton_fence egress ip saddr @held ip saddr != @live drop\n"))
        #expect(text.contains("add rule netdev baton_fence egress arp saddr ip @held arp saddr ip != @live drop\n"))
        #expect(text.hasSuffix("flush set netdev baton_fence held\nadd element netdev baton_fence held { 192.168.77.200, 192.168.77.201 }\n"))
        #expect(!EgressFence.render(held: [], config: EgressDatapathConfig(parent: "eth0")).contains("add element"))
    }

    @Test func aRenewalReplacesTheTimeoutInOneTransaction() {
        let eip = IPAddress("192.168.77.200")!
        let line = EgressFence.renew([eip], timeout: .milliseconds(596) + .microseconds(900))
        #expect(line == "add element netdev baton_fence live { 192.168.77.200 } ; delete element netdev baton_fence live { 192.168.77.200 } ; "
            + "add element netdev baton_fence live { 192.168.77.200 timeout 596ms }\n", "rounded down, one line")
        #expect(EgressFence.renew([eip], timeout: .microseconds(999)) == nil, "a lease under 1 ms is no lease")
        #expect(EgressFence.renew([], timeout: .seconds(1)) == nil)
        #expect(EgressFence.expire([eip]) == "add element netdev baton_fence live { 192.168.77.200 } ; delete element netdev baton_fence live { 192.168.77.200 }\n")
    }
}
