import BatonAPI
import Testing

@Suite struct EgressGatewayTests {
    typealias F = EgressFixtures

    @Test func seedGatewayAdmitsAndReadsBackTheSameSpec() throws {
        let document = try F.document(F.seedGateway)
        let object = try F.admit(F.seedGateway)
        #expect(object.spec == document["spec"])
        #expect(object.status == nil, "status in an applied manifest is dropped")
        #expect(object.metadata.namespace == nil)

        let spec = try object.decodeSpec(EgressGatewaySpec.self)
        #expect(spec.isClusterDefault)
        #expect(spec.ippools?.ipv4 == ["10.6.1.55", "10.6.1.56"])
        #expect(spec.ippools?.ipv6DefaultEIP == "fd00::55")
        #expect(spec.nodeSelector?.selector?.matchLabels == ["egress": "true"])
        // Typed round trip: encoding the struct gives the manifest's spec back, with no defaults added.
        #expect(try JSONValue(encoding: spec) == document["spec"])
    }

    @Test func seedGatewayStatusDecodesAsTyped() throws {
        let status = try #require(try F.stored(F.seedGateway).decodeStatus(EgressGatewayStatus.self))
        #expect(status.nodeList?.map(\.name) == ["node1", "node2"])
        #expect(status.nodeList?[0].eips?[0].policies == [.init(name: "policy1", namespace: "default")])
        #expect(status.allocatedEIPs.map(\.eip.description) == ["10.6.1.56", "fd00::55"])
        #expect(F.statusCauses(F.seedGateway).isEmpty)
    }

    @Test(arguments: [
        ("spec.ippools.ipv4s", #"{ippools: {ipv4s: ["10.6.1.55"]}, nodeSelector: {selector: {matchLabels: {a: b}}}}"#),
        ("spec.nodeSelecter", #"{nodeSelecter: {selector: {matchLabels: {a: b}}}}"#),
        ("spec.nodeSelector.selector.matchLabel", #"{nodeSelector: {selector: {matchLabel: {a: b}}}}"#),
    ])
    func unknownFieldIsRefusedWithItsPath(field: String, spec: String) {
        let causes = F.causes(F.gateway("egw1", spec))
        #expect(causes.contains { $0.field == field && $0.reason == .unknownField }, "\(causes)")
    }

    static let pools = #"ippools: {ipv4: ["10.6.1.55", "10.6.1.56"], ipv6: ["fd00::55", "fd00::56"]}"#

    static let rules: [EgressRuleCase] = [
        EgressRuleCase(name: "node selector missing",
                       yaml: F.gateway("egw1", "{\(pools)}"),
                       field: "spec.nodeSelector.selector", fragment: "spec.nodeSelector.selector is not set"),
        EgressRuleCase(name: "node selector empty",
                       yaml: F.gateway("egw1", "{\(pools), nodeSelector: {selector: {}}}"),
                       field: "spec.nodeSelector.selector", fragment: "is not set"),
        EgressRuleCase(name: "selector operator unknown",
                       yaml: F.gateway("egw1", "{nodeSelector: {selector: {matchExpressions: [{key: egress, operator: Equals, values: [a]}]}}}"),
                       field: "spec.nodeSelector.selector.matchExpressions[0].operator", fragment: "Unsupported value: \"Equals\""),
        EgressRuleCase(name: "selector In without values",
                       yaml: F.gateway("egw1", "{nodeSelector: {selector: {matchExpressions: [{key: egress, operator: In}]}}}"),
                       field: "spec.nodeSelector.selector.matchExpressions[0].values", fragment: "must be specified"),
        EgressRuleCase(name: "selector Exists with values",
                       yaml: F.gateway("egw1", "{nodeSelector: {selector: {matchExpressions: [{key: egress, operator: Exists, values: [a]}]}}}"),
                       field: "spec.nodeSelector.selector.matchExpressions[0].values", fragment: "may not be specified"),
        EgressRuleCase(name: "selector label value malformed",
                       yaml: F.gateway("egw1", #"{nodeSelector: {selector: {matchLabels: {egress: "not ok"}}}}"#),
                       field: "spec.nodeSelector.selector.matchLabels.egress", fragment: "\"not ok\""),
        EgressRuleCase(name: "ipv4DefaultEIP outside the pools",
                       yaml: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.55"], ipv4DefaultEIP: "10.6.1.99"}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv4DefaultEIP", fragment: "\"10.6.1.99\": is not covered by IPPools"),
        EgressRuleCase(name: "ipv6DefaultEIP outside the pools",
                       yaml: F.gateway("egw1", #"{ippools: {ipv6: ["fd00::55-fd00::56"], ipv6DefaultEIP: "fd00::99"}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv6DefaultEIP", fragment: "\"fd00::99\": is not covered by IPPools"),
        EgressRuleCase(name: "ipv4DefaultEIP without an ipv4 pool",
                       yaml: F.gateway("egw1", #"{ippools: {ipv6: ["fd00::55"], ipv4DefaultEIP: "10.6.1.55"}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv4DefaultEIP", fragment: "is not covered by IPPools"),
        EgressRuleCase(name: "ipv4DefaultEIP malformed",
                       yaml: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.55"], ipv4DefaultEIP: "10.6.1"}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv4DefaultEIP", fragment: "\"10.6.1\": must be an IPv4 address"),
        EgressRuleCase(name: "ipv6DefaultEIP is IPv4",
                       yaml: F.gateway("egw1", #"{ippools: {ipv6: ["fd00::55"], ipv6DefaultEIP: "10.6.1.55"}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv6DefaultEIP", fragment: "must be an IPv6 address"),
        EgressRuleCase(name: "dual stack with unequal pool sizes",
                       yaml: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.55-10.6.1.57"], ipv6: ["fd00::55", "fd00::56"]}, \#(F.selector)}"#),
                       field: "spec.ippools", fragment: "The number of ipv4 and ipv6 is not equal: ipv4 holds 3 addresses, ipv6 holds 2"),
        EgressRuleCase(name: "dual stack CIDR sizes leave out IPv4 network and broadcast",
                       yaml: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.0/30"], ipv6: ["fd00::/126"]}, \#(F.selector)}"#),
                       field: "spec.ippools", fragment: "ipv4 holds 2 addresses, ipv6 holds 4"),
        EgressRuleCase(name: "pool entry not an IP",
                       yaml: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.55", "10.6.1.56", "10.6.1.300"]}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv4[2]", fragment: "\"10.6.1.300\": must be an IPv4 address, a range a-b with a <= b, or a CIDR"),
        EgressRuleCase(name: "pool range reversed",
                       yaml: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.60-10.6.1.50"]}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv4[0]", fragment: "a range a-b with a <= b"),
        EgressRuleCase(name: "pool range across families",
                       yaml: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.50-fd00::1"]}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv4[0]", fragment: "\"10.6.1.50-fd00::1\""),
        EgressRuleCase(name: "pool CIDR prefix too long",
                       yaml: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.0/33"]}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv4[0]", fragment: "\"10.6.1.0/33\""),
        EgressRuleCase(name: "IPv6 entry in the IPv4 pool",
                       yaml: F.gateway("egw1", #"{ippools: {ipv4: ["fd00::55"]}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv4[0]", fragment: "\"fd00::55\": is not IPv4"),
        EgressRuleCase(name: "IPv6 pool entry malformed",
                       yaml: F.gateway("egw1", #"{ippools: {ipv6: ["fd00::55", "fd00:::56"]}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv6[1]", fragment: "must be an IPv6 address"),
        EgressRuleCase(name: "IPv4 pool overlaps another gateway",
                       yaml: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.50-10.6.1.60"]}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv4[0]", fragment: "find duplicate IPv4 10.6.1.56 in EgressGateway egw2",
                       context: [F.gateway("egw2", #"{ippools: {ipv4: ["10.6.1.56", "10.6.1.70"]}, \#(F.selector)}"#)]),
        EgressRuleCase(name: "IPv6 pool overlaps another gateway's CIDR",
                       yaml: F.gateway("egw1", #"{ippools: {ipv6: ["fd00::1", "fd00:1::8"]}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv6[1]", fragment: "find duplicate IPv6 fd00:1::8 in EgressGateway egw2",
                       context: [F.gateway("egw2", #"{ippools: {ipv6: ["fd00:1::/120"]}, \#(F.selector)}"#)]),
        EgressRuleCase(name: "second cluster default gateway",
                       yaml: F.gateway("egw1", "{clusterDefault: true, \(F.selector)}"),
                       field: "spec.clusterDefault", fragment: "A cluster can only have one default gateway, default gateway: egw0.",
                       context: [F.gateway("egw0", "{clusterDefault: true, \(F.selector)}")]),
        EgressRuleCase(name: "removing an EIP that a node carries",
                       yaml: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.55"]}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv4", fragment: "10.6.1.56 has been allocated and cannot be deleted (in use by node node1)",
                       old: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.55", "10.6.1.56"]}, \#(F.selector)}"#,
                                      status: #"{nodeList: [{name: node1, status: Ready, eips: [{ipv4: "10.6.1.56"}]}]}"#)),
        EgressRuleCase(name: "removing an EIP that a policy's status shows",
                       yaml: F.gateway("egw1", #"{ippools: {ipv6: ["fd00::55"]}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv6", fragment: "fd00::56 has been allocated and cannot be deleted (in use by EgressPolicy default/p1)",
                       context: [F.policy("EgressPolicy", "p1", #"{egressGatewayName: egw1, appliedTo: {podSubnet: ["172.30.0.0/16"]}}"#,
                                          status: #"{eip: {ipv6: "fd00::56"}, node: node1}"#)],
                       old: F.gateway("egw1", #"{ippools: {ipv6: ["fd00::55", "fd00::56"]}, \#(F.selector)}"#)),
        EgressRuleCase(name: "removing an EIP that a cluster policy of the default gateway shows",
                       yaml: F.gateway("egw1", #"{clusterDefault: true, ippools: {ipv4: ["10.6.1.55"]}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv4", fragment: "10.6.1.57 has been allocated and cannot be deleted (in use by EgressClusterPolicy cp1)",
                       context: [F.policy("EgressClusterPolicy", "cp1", #"{appliedTo: {podSubnet: ["172.30.0.0/16"]}}"#,
                                          status: #"{eip: {ipv4: "10.6.1.57"}}"#)],
                       old: F.gateway("egw1", #"{clusterDefault: true, ippools: {ipv4: ["10.6.1.55-10.6.1.57"]}, \#(F.selector)}"#)),
        EgressRuleCase(name: "adding an IPv6 pool to an IPv4-only gateway",
                       yaml: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.55"], ipv6: ["fd00::55"]}, \#(F.selector)}"#),
                       field: "spec.ippools.ipv6", fragment: "the 'spec.ippools.ipv6' field cannot be modified when it is empty",
                       old: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.55"]}, \#(F.selector)}"#)),
    ]

    @Test(arguments: rules)
    func ruleIsEnforced(_ rule: EgressRuleCase) throws {
        rule.expectRefused(try rule.run())
    }

    @Test func refusalIsA422ThatNamesTheFieldAndTheRule() throws {
        let yaml = F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.55"], ipv4DefaultEIP: "10.6.1.99"}, \#(F.selector)}"#)
        let admitted = try Admission.decode(F.document(yaml))
        let error = #expect(throws: APIError.self) { try Admission.validate(admitted, old: nil, context: .empty) }
        #expect(error?.code == 422)
        #expect(error?.message.contains("spec.ippools.ipv4DefaultEIP") == true)
        #expect(error?.message.contains("is not covered by IPPools") == true)
    }

    static let accepted: [EgressRuleCase] = [
        EgressRuleCase(name: "single-stack IPv4 gateway with a CIDR, a range and an IP",
                       yaml: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.2.0/29", "10.6.1.50-10.6.1.60", "10.6.3.1"], ipv4DefaultEIP: "10.6.2.6"}, \#(F.selector)}"#),
                       field: "", fragment: ""),
        EgressRuleCase(name: "matchExpressions alone select nodes",
                       yaml: F.gateway("egw1", "{nodeSelector: {selector: {matchExpressions: [{key: egress, operator: Exists}]}}}"),
                       field: "", fragment: ""),
        EgressRuleCase(name: "re-applying a default gateway is not a second default",
                       yaml: F.gateway("egw1", #"{clusterDefault: true, ippools: {ipv4: ["10.6.1.55"]}, \#(F.selector)}"#),
                       field: "", fragment: "",
                       context: [F.gateway("egw1", #"{clusterDefault: true, ippools: {ipv4: ["10.6.1.55"]}, \#(F.selector)}"#),
                                 F.gateway("egw2", #"{ippools: {ipv4: ["10.6.1.54"]}, \#(F.selector)}"#)],
                       old: F.gateway("egw1", #"{clusterDefault: true, ippools: {ipv4: ["10.6.1.55"]}, \#(F.selector)}"#)),
        EgressRuleCase(name: "removing an EIP that nothing uses",
                       yaml: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.56"]}, \#(F.selector)}"#),
                       field: "", fragment: "",
                       context: [F.policy("EgressPolicy", "p1", #"{egressGatewayName: egw2, appliedTo: {podSubnet: ["172.30.0.0/16"]}}"#,
                                          status: #"{eip: {ipv4: "10.6.1.55"}}"#)],
                       old: F.gateway("egw1", #"{ippools: {ipv4: ["10.6.1.55", "10.6.1.56"]}, \#(F.selector)}"#,
                                      status: #"{nodeList: [{name: node1, eips: [{ipv4: "10.6.1.56"}, {policies: [{name: p2}]}]}]}"#)),
    ]

    @Test(arguments: accepted)
    func validGatewayIsAdmitted(_ rule: EgressRuleCase) throws {
        let causes = try rule.run()
        #expect(causes.isEmpty, "\(causes.map(\.description))")
    }

    @Test func statusWriteWithMalformedEIPIsRefused() {
        let yaml = F.gateway("egw1", "{\(F.selector)}",
                             status: #"{nodeList: [{name: node1, eips: [{ipv4: "10.6.1.56"}, {ipv4: "fd00::1", ipv6: "fd00::1"}]}], ipUsage: {ipv4Total: 2}, observedGeneration: 3}"#)
        let causes = F.statusCauses(yaml)
        #expect(causes.map(\.field) == ["status.nodeList[0].eips[1].ipv4"])
        #expect(causes.first?.message.contains("invalid ipv4 format") == true)
        #expect(F.statusCauses(F.gateway("egw1", "{}", status: "{ipUsage: {ipv4Totals: 1}}")).map(\.field) == ["status.ipUsage.ipv4Totals"])
    }

    @Test func printerColumnsAreTheCRDs() {
        let columns = KindInfo.egressGateway.columns
        #expect(columns.map(\.name) == ["IPV4DEFAULTEIP", "IPV6DEFAULTEIP", "CLUSTERDEFAULT", "IPV4TOTAL", "IPV4FREE", "IPV6TOTAL", "IPV6FREE"])
        #expect(columns.map(\.jsonPath) == [".spec.ippools.ipv4DefaultEIP", ".spec.ippools.ipv6DefaultEIP", ".spec.clusterDefault",
                                            ".status.ipUsage.ipv4Total", ".status.ipUsage.ipv4Free",
                                            ".status.ipUsage.ipv6Total", ".status.ipUsage.ipv6Free"])
        #expect(columns.allSatisfy { $0.priority == 0 })
        #expect(KindRegistry.lookup("egw")?.kind == "EgressGateway")
    }

    @Test func poolHelpersReadEntriesAsEgressgatewayDoes() throws {
        let spec = EgressGatewaySpec(ippools: .init(ipv4: ["10.6.1.0/30", "10.6.1.2-10.6.1.5", "10.6.1.9"], ipv6: ["fd00::/126"]))
        #expect(spec.poolRanges(family: .v4).map(\.description) == ["10.6.1.1-10.6.1.5", "10.6.1.9"])
        #expect(spec.poolSize(family: .v4) == 6)
        #expect(spec.poolSize(family: .v6) == 4)
        #expect(spec.contains(try #require(IPAddress("10.6.1.3"))))
        #expect(!spec.contains(try #require(IPAddress("10.6.1.0"))), "an IPv4 CIDR's network address is not an EIP")
        #expect(spec.contains(try #require(IPAddress("fd00::"))), "an IPv6 CIDR keeps every address")
        #expect(!spec.contains(try #require(IPAddress("10.6.1.7"))))
        #expect(spec.defaultEIP(family: .v4)?.description == "10.6.1.1")
        #expect(EgressPool.entry("10.6.1.0/31")?.description == "10.6.1.0-10.6.1.1")

        let usage = spec.ipUsage(allocated: ["10.6.1.3", "10.6.1.3", "10.7.0.1", "fd00::2"].compactMap(IPAddress.init))
        #expect(usage == .init(ipv4Total: 6, ipv4Free: 5, ipv6Total: 4, ipv6Free: 3))

        let huge = EgressGatewaySpec(ippools: .init(ipv6: ["::/0", "fd00::1"]))
        #expect(huge.poolSize(family: .v6) == UInt128.max)
        #expect(huge.ipUsage(allocated: []).ipv6Total == Int.max)
    }
}
