import BatonAPI
import Testing

@Suite struct EgressPolicyTests {
    typealias F = EgressFixtures

    static let kinds = ["EgressPolicy", "EgressClusterPolicy"]

    /// A dual-stack gateway with default EIPs, and a node that carries the pair 10.6.1.57/fd00::57.
    static let egw1 = F.gateway("egw1",
        #"{ippools: {ipv4: ["10.6.1.55-10.6.1.58"], ipv6: ["fd00::55-fd00::58"], ipv4DefaultEIP: "10.6.1.56", ipv6DefaultEIP: "fd00::56"}, \#(F.selector)}"#,
        status: #"{nodeList: [{name: node1, status: Ready, eips: [{ipv4: "10.6.1.57", ipv6: "fd00::57", policies: [{name: p0, namespace: default}]}]}]}"#)
    static let poolless = F.gateway("egw-nopool", "{\(F.selector)}")
    static let world = [egw1, poolless]

    static let pods = #"appliedTo: {podSelector: {matchLabels: {app: web}}}"#

    static func rules(_ kind: String) -> [EgressRuleCase] {
        func p(_ spec: String) -> String { F.policy(kind, "p1", spec) }
        return [
            EgressRuleCase(name: "\(kind): useNodeIP with egressIP.ipv4",
                           yaml: p(#"{egressGatewayName: egw1, egressIP: {useNodeIP: true, ipv4: "10.6.1.55"}, \#(pods)}"#),
                           field: "spec.egressIP.useNodeIP", fragment: "useNodeIP cannot be used with egressIP.ipv4 or egressIP.ipv6 at the same time (egressIP: 10.6.1.55)",
                           context: world),
            EgressRuleCase(name: "\(kind): useNodeIP with egressIP.ipv6",
                           yaml: p(#"{egressGatewayName: egw1, egressIP: {useNodeIP: true, ipv6: "fd00::55"}, \#(pods)}"#),
                           field: "spec.egressIP.useNodeIP", fragment: "cannot be used with egressIP.ipv4 or egressIP.ipv6",
                           context: world),
            EgressRuleCase(name: "\(kind): podSelector with podSubnet",
                           yaml: p(#"{egressGatewayName: egw1, appliedTo: {podSelector: {matchLabels: {app: web}}, podSubnet: ["172.30.0.0/16"]}}"#),
                           field: "spec.appliedTo.podSubnet", fragment: "podSelector and podSubnet cannot be used together (podSubnet: 172.30.0.0/16)",
                           context: world),
            EgressRuleCase(name: "\(kind): podSelector by expression with podSubnet",
                           yaml: p(#"{egressGatewayName: egw1, appliedTo: {podSelector: {matchExpressions: [{key: app, operator: Exists}]}, podSubnet: ["172.30.0.0/16"]}}"#),
                           field: "spec.appliedTo.podSubnet", fragment: "podSelector and podSubnet cannot be used together",
                           context: world),
            EgressRuleCase(name: "\(kind): neither podSelector nor podSubnet",
                           yaml: p("{egressGatewayName: egw1, appliedTo: {podSelector: {}}}"),
                           field: "spec.appliedTo", fragment: "invalid \(kind), spec.appliedTo field requires at least one of spec.appliedTo.podSubnet",
                           context: world),
            EgressRuleCase(name: "\(kind): appliedTo missing",
                           yaml: p("{egressGatewayName: egw1}"),
                           field: "spec.appliedTo", fragment: "Required value",
                           context: world),
            EgressRuleCase(name: "\(kind): podSelector operator value misuse",
                           yaml: p("{egressGatewayName: egw1, appliedTo: {podSelector: {matchExpressions: [{key: app, operator: DoesNotExist, values: [web]}]}}}"),
                           field: "spec.appliedTo.podSelector.matchExpressions[0].values", fragment: "may not be specified",
                           context: world),
            EgressRuleCase(name: "\(kind): podSubnet malformed",
                           yaml: p(#"{egressGatewayName: egw1, appliedTo: {podSubnet: ["172.30.0.0/16", "172.30.0.0"]}}"#),
                           field: "spec.appliedTo.podSubnet[1]", fragment: "\"172.30.0.0\": invalid podSubnet: must be a CIDR"),
            EgressRuleCase(name: "\(kind): destSubnet malformed",
                           yaml: p(#"{egressGatewayName: egw1, \#(pods), destSubnet: ["10.6.0.0/16", "10.7.0.0/40"]}"#),
                           field: "spec.destSubnet[1]", fragment: "\"10.7.0.0/40\": invalid destSubnet: must be a CIDR",
                           context: world),
            EgressRuleCase(name: "\(kind): egressIP.ipv4 malformed",
                           yaml: p(#"{egressGatewayName: egw1, egressIP: {ipv4: "10.6.1.555"}, \#(pods)}"#),
                           field: "spec.egressIP.ipv4", fragment: "\"10.6.1.555\": invalid ipv4 format",
                           context: world),
            EgressRuleCase(name: "\(kind): egressIP.ipv4 is IPv6",
                           yaml: p(#"{egressGatewayName: egw1, egressIP: {ipv4: "fd00::55"}, \#(pods)}"#),
                           field: "spec.egressIP.ipv4", fragment: "invalid ipv4 format",
                           context: world),
            EgressRuleCase(name: "\(kind): egressIP.ipv6 is IPv4",
                           yaml: p(#"{egressGatewayName: egw1, egressIP: {ipv6: "10.6.1.55"}, \#(pods)}"#),
                           field: "spec.egressIP.ipv6", fragment: "invalid ipv6 format",
                           context: world),
            EgressRuleCase(name: "\(kind): allocatorPolicy unknown",
                           yaml: p("{egressGatewayName: egw1, egressIP: {allocatorPolicy: random}, \(pods)}"),
                           field: "spec.egressIP.allocatorPolicy", fragment: "Unsupported value: \"random\": supported values: \"default\", \"rr\"",
                           context: world),
            EgressRuleCase(name: "\(kind): egressIP.ipv4 outside the gateway's pools",
                           yaml: p(#"{egressGatewayName: egw1, egressIP: {ipv4: "10.6.1.99"}, \#(pods)}"#),
                           field: "spec.egressIP.ipv4", fragment: "\"10.6.1.99\": is not within the ip ranges defined in the ippools of the EgressGateway egw1",
                           context: world),
            EgressRuleCase(name: "\(kind): egressIP.ipv6 outside the gateway's pools",
                           yaml: p(#"{egressGatewayName: egw1, egressIP: {ipv4: "10.6.1.58", ipv6: "fd00::99"}, \#(pods)}"#),
                           field: "spec.egressIP.ipv6", fragment: "is not within the ip ranges defined in the ippools",
                           context: world),
            EgressRuleCase(name: "\(kind): half of the gateway's default EIP pair",
                           yaml: p(#"{egressGatewayName: egw1, egressIP: {ipv4: "10.6.1.56"}, \#(pods)}"#),
                           field: "spec.egressIP", fragment: "egw1 egw Ipv4DefaultEIP=10.6.1.56 Ipv6DefaultEIP=fd00::56, they can only be used together",
                           context: world),
            EgressRuleCase(name: "\(kind): breaking an EIP pair a node carries",
                           yaml: p(#"{egressGatewayName: egw1, egressIP: {ipv4: "10.6.1.57", ipv6: "fd00::58"}, \#(pods)}"#),
                           field: "spec.egressIP.ipv6", fragment: "fd00::58 cannot be used, when ipv4 10.6.1.57 is used, fd00::57 must be used",
                           context: world),
            EgressRuleCase(name: "\(kind): gateway not found",
                           yaml: p("{egressGatewayName: egw9, \(pods)}"),
                           field: "spec.egressGatewayName", fragment: "when \(kind) p1 UseNodeIP is false, failed to obtain the EgressGateway: EgressGateway \"egw9\" not found",
                           context: world),
            EgressRuleCase(name: "\(kind): gateway without pools",
                           yaml: p("{egressGatewayName: egw-nopool, \(pods)}"),
                           field: "spec.egressGatewayName", fragment: "referenced EgressGateway egw-nopool spec.ippools cannot be empty",
                           context: world),
            EgressRuleCase(name: "\(kind): no gateway name and no default gateway",
                           yaml: p("{\(pods)}"),
                           field: "spec.egressGatewayName", fragment: "egressGatewayName cannot be empty",
                           context: world),
            EgressRuleCase(name: "\(kind): unknown field",
                           yaml: p("{egressGatewayName: egw1, egressIP: {useNodeIp: true}, \(pods)}"),
                           field: "spec.egressIP.useNodeIp", fragment: "unknown field",
                           context: world),
        ]
    }

    static let clusterOnly: [EgressRuleCase] = [
        EgressRuleCase(name: "EgressClusterPolicy: namespaceSelector operator unknown",
                       yaml: F.policy("EgressClusterPolicy", "p1", "{egressGatewayName: egw1, appliedTo: {podSelector: {matchLabels: {app: web}}, namespaceSelector: {matchExpressions: [{key: team, operator: In}]}}}"),
                       field: "spec.appliedTo.namespaceSelector.matchExpressions[0].values", fragment: "must be specified",
                       context: world),
        EgressRuleCase(name: "EgressPolicy: namespaceSelector is unknown",
                       yaml: F.policy("EgressPolicy", "p1", "{egressGatewayName: egw1, appliedTo: {podSelector: {matchLabels: {app: web}}, namespaceSelector: {}}}"),
                       field: "spec.appliedTo.namespaceSelector", fragment: "unknown field",
                       context: world),
    ]

    @Test(arguments: kinds.flatMap(rules) + clusterOnly)
    func ruleIsEnforced(_ rule: EgressRuleCase) throws {
        rule.expectRefused(try rule.run())
    }

    static func immutables(_ kind: String) -> [EgressRuleCase] {
        let old = F.policy(kind, "p1", #"{egressGatewayName: egw1, egressIP: {ipv4: "10.6.1.58", ipv6: "fd00::58"}, \#(pods)}"#)
        let nodeIP = F.policy(kind, "p1", "{egressGatewayName: egw1, egressIP: {useNodeIP: true}, \(pods)}")
        func p(_ spec: String) -> String { F.policy(kind, "p1", spec) }
        return [
            EgressRuleCase(name: "\(kind): egressGatewayName changes",
                           yaml: p(#"{egressGatewayName: egw-nopool, egressIP: {ipv4: "10.6.1.58", ipv6: "fd00::58"}, \#(pods)}"#),
                           field: "spec.egressGatewayName", fragment: "\"egw-nopool\": field is immutable (was \"egw1\")",
                           context: world, old: old),
            EgressRuleCase(name: "\(kind): egressIP.ipv4 changes",
                           yaml: p(#"{egressGatewayName: egw1, egressIP: {ipv4: "10.6.1.55", ipv6: "fd00::58"}, \#(pods)}"#),
                           field: "spec.egressIP.ipv4", fragment: "\"10.6.1.55\": field is immutable (was \"10.6.1.58\")",
                           context: world, old: old),
            EgressRuleCase(name: "\(kind): egressIP.ipv6 is removed",
                           yaml: p(#"{egressGatewayName: egw1, egressIP: {ipv4: "10.6.1.58"}, \#(pods)}"#),
                           field: "spec.egressIP.ipv6", fragment: "\"\": field is immutable (was \"fd00::58\")",
                           context: world, old: old),
            EgressRuleCase(name: "\(kind): useNodeIP changes",
                           yaml: p("{egressGatewayName: egw1, egressIP: {useNodeIP: false}, \(pods)}"),
                           field: "spec.egressIP.useNodeIP", fragment: "\"false\": field is immutable (was \"true\")",
                           context: world, old: nodeIP),
            EgressRuleCase(name: "\(kind): allocatorPolicy changes from the default",
                           yaml: p("{egressGatewayName: egw1, egressIP: {useNodeIP: true, allocatorPolicy: rr}, \(pods)}"),
                           field: "spec.egressIP.allocatorPolicy", fragment: "\"rr\": field is immutable (was \"default\")",
                           context: world, old: nodeIP),
        ]
    }

    @Test(arguments: kinds.flatMap(immutables))
    func immutableFieldIsRefusedOnUpdate(_ rule: EgressRuleCase) throws {
        let causes = try rule.run()
        rule.expectRefused(causes)
        #expect(causes.allSatisfy { $0.reason == .immutable }, "\(causes.map(\.description))")
    }

    static func accepted(_ kind: String) -> [EgressRuleCase] {
        func p(_ spec: String) -> String { F.policy(kind, "p1", spec) }
        let old = p(#"{egressGatewayName: egw1, egressIP: {ipv4: "10.6.1.58", ipv6: "fd00::58"}, \#(pods)}"#)
        let defaultGateway = F.gateway("egw0", #"{clusterDefault: true, ippools: {ipv4: ["10.7.0.1"]}, \#(F.selector)}"#)
        return [
            EgressRuleCase(name: "\(kind): explicit EIP pair from the pools",
                           yaml: old, field: "", fragment: "", context: world),
            EgressRuleCase(name: "\(kind): the gateway's default EIP pair",
                           yaml: p(#"{egressGatewayName: egw1, egressIP: {ipv4: "10.6.1.56", ipv6: "fd00::56"}, appliedTo: {podSubnet: ["172.30.0.0/16", "fd30::/64"]}, destSubnet: ["10.6.0.0/16", "fd00::/8"]}"#),
                           field: "", fragment: "", context: world),
            EgressRuleCase(name: "\(kind): an EIP pair a node carries, used as a pair",
                           yaml: p(#"{egressGatewayName: egw1, egressIP: {ipv4: "10.6.1.57", ipv6: "fd00::57", allocatorPolicy: rr}, \#(pods)}"#),
                           field: "", fragment: "", context: world),
            EgressRuleCase(name: "\(kind): useNodeIP needs no gateway yet",
                           yaml: p("{egressGatewayName: egw9, egressIP: {useNodeIP: true}, \(pods)}"),
                           field: "", fragment: "", context: world),
            EgressRuleCase(name: "\(kind): no gateway name with a default gateway",
                           yaml: p("{\(pods)}"), field: "", fragment: "", context: world + [defaultGateway]),
            EgressRuleCase(name: "\(kind): appliedTo and destSubnet may change; allocatorPolicy default written out",
                           yaml: p(#"{egressGatewayName: egw1, egressIP: {ipv4: "10.6.1.58", ipv6: "fd00::58", allocatorPolicy: default}, appliedTo: {podSubnet: ["172.31.0.0/16"]}, destSubnet: ["10.0.0.0/8"]}"#),
                           field: "", fragment: "", context: world, old: old),
            EgressRuleCase(name: "\(kind): an update does not re-check a gateway that went away",
                           yaml: old, field: "", fragment: "", context: [], old: old),
        ]
    }

    @Test(arguments: kinds.flatMap(accepted))
    func validPolicyIsAdmitted(_ rule: EgressRuleCase) throws {
        let causes = try rule.run()
        #expect(causes.isEmpty, "\(causes.map(\.description))")
    }

    @Test(arguments: kinds)
    func appliedManifestReadsBackWithoutStatusOrDefaults(kind: String) throws {
        let yaml = F.policy(kind, "p1", "{egressGatewayName: egw1, \(Self.pods)}",
                            status: #"{eip: {ipv4: "10.6.1.56"}, node: node1}"#)
        let object = try F.admit(yaml, context: try F.context(Self.world))
        #expect(object.status == nil)
        #expect(object.spec == (try F.document(yaml))["spec"])
        #expect(object.spec?["egressIP"] == nil, "no default egressIP is written into the spec")
        #expect(object.metadata.namespace == (kind == "EgressPolicy" ? "default" : nil))
    }

    @Test func typedSpecResolvesDefaults() throws {
        let object = try F.admit(F.policy("EgressPolicy", "p1", "{egressGatewayName: egw1, \(Self.pods)}"), context: try F.context(Self.world))
        let spec = try object.decodeSpec(EgressPolicySpec.self)
        let eip = spec.egressIP ?? EgressIP()
        #expect(eip.resolvedAllocatorPolicy == "default")
        #expect(!eip.usesNodeIP)
        #expect(spec.appliedTo.podSelector?.matchLabels == ["app": "web"])
        #expect(try JSONValue(encoding: spec) == object.spec)

        let cluster = try F.admit(F.policy("EgressClusterPolicy", "cp1",
                                           "{egressGatewayName: egw1, egressIP: {allocatorPolicy: rr}, appliedTo: {podSelector: {matchLabels: {app: web}}, namespaceSelector: {matchLabels: {team: a}}}, priority: 5}"),
                                  context: try F.context(Self.world))
        let clusterSpec = try cluster.decodeSpec(EgressClusterPolicySpec.self)
        #expect(clusterSpec.egressIP?.resolvedAllocatorPolicy == "rr")
        #expect(clusterSpec.appliedTo.namespaceSelector?.matchLabels == ["team": "a"])
        #expect(clusterSpec.priority == 5)
    }

    @Test(arguments: kinds)
    func statusWriteWithMalformedEIPIsRefused(kind: String) {
        let good = F.policy(kind, "p1", "{egressGatewayName: egw1, \(Self.pods)}",
                            status: #"{eip: {ipv4: "10.6.1.56", ipv6: "fd00::56"}, node: node1, observedGeneration: 2}"#)
        #expect(F.statusCauses(good).isEmpty)
        let bad = F.policy(kind, "p1", "{egressGatewayName: egw1, \(Self.pods)}",
                           status: #"{eip: {ipv4: "10.6.1.56", ipv6: "fd00::5g"}, node: node1}"#)
        let causes = F.statusCauses(bad)
        #expect(causes.map(\.field) == ["status.eip.ipv6"])
        #expect(causes.first?.message.contains("\"fd00::5g\": invalid ipv6 format") == true)
    }

    @Test func printerColumnsAreTheCRDs() {
        let egp = KindInfo.egressPolicy.columns
        #expect(egp.map(\.name) == ["GATEWAY", "IPV4", "IPV6", "EGRESSNODE"])
        #expect(egp.map(\.jsonPath) == [".spec.egressGatewayName", ".status.eip.ipv4", ".status.eip.ipv6", ".status.node"])
        let egcp = KindInfo.egressClusterPolicy.columns
        #expect(egcp.map(\.name) == ["GATEWAY", "IPV4", "IPV6", "EGRESSTUNNEL"])
        #expect(egcp.map(\.jsonPath) == [".spec.egressGatewayName", ".status.eip.ipv4", ".status.eip.ipv6", ".status.node"])
        #expect(KindRegistry.lookup("egp")?.namespaced == true)
        #expect(KindRegistry.lookup("egcp")?.namespaced == false)
    }
}
