import BatonAPI
import Testing

@Suite("IPFailover")
struct IPFailoverTests {
    static func manifest(_ spec: String, name: String = "vips") -> String {
        """
        apiVersion: baton.io/v1
        kind: IPFailover
        metadata:
          name: \(name)
        spec: \(spec)
        """
    }

    static let refusals: [(spec: String, field: String, fragment: String)] = [
        ("{virtualIPs: \"1.2.3.4-6,1.2.3.x\"}", "spec.virtualIPs", "\"1.2.3.x\" is not an address or a range"),
        ("{virtualIPs: \"1.2.3.6-4\"}", "spec.virtualIPs", "\"1.2.3.6-4\" is not an address or a range"),
        ("{virtualIPs: \"1.2.3.4-300\"}", "spec.virtualIPs", "\"1.2.3.4-300\""),
        ("{virtualIPs: \"fd00::10-1g\"}", "spec.virtualIPs", "\"fd00::10-1g\""),
        ("{virtualIPs: \",\"}", "spec.virtualIPs", "at least one virtual IP"),
        ("{vrrpIDOffset: 10}", "spec.virtualIPs", "Required value"),
        ("{virtualIPs: \"1.2.3.4-6,1.2.3.5\"}", "spec.virtualIPs", "Duplicate value: \"1.2.3.5\": overlaps 1.2.3.4-1.2.3.6"),
        // One VRRP instance per VIP: offset 250 + 10 VIPs needs VRID 260.
        ("{virtualIPs: \"10.0.0.1-10\", vrrpIDOffset: 250}", "spec.vrrpIDOffset", "VRID 260 is above 255"),
        // The default offset (10) leaves room for 245 VIPs without groups.
        ("{virtualIPs: \"10.0.0.1-246\"}", "spec.vrrpIDOffset", "VRID 256 is above 255"),
        ("{virtualIPs: \"10.0.0.0-10.0.1.255\", vipGroups: 250, vrrpIDOffset: 10}", "spec.vrrpIDOffset", "250 VIP groups"),
        ("{virtualIPs: \"10.0.0.1\", vrrpIDOffset: 256}", "spec.vrrpIDOffset", "must be between 0 and 255"),
        ("{virtualIPs: \"10.0.0.1\", vrrpIDOffset: -1}", "spec.vrrpIDOffset", "must be between 0 and 255"),
        ("{virtualIPs: \"10.0.0.1-3\", vipGroups: 0}", "spec.vipGroups", "greater than or equal to 1"),
        // What one advertisement carries: 255 IPv4 or 89 IPv6 addresses per group.
        ("{virtualIPs: \"10.0.0.0-10.0.15.255\", vipGroups: 16}", "spec.vipGroups",
         "\"16\": VIP group 1 would hold 256 IPv4 VIPs, more than the 255 one VRRP advertisement carries; use at least 17 groups"),
        ("{virtualIPs: \"fd00::1-5a\", vipGroups: 1}", "spec.vipGroups", "VIP group 1 would hold 90 IPv6 VIPs, more than the 89"),
        ("{virtualIPs: \"fd00::-fd00::ffff:ffff\", vipGroups: 16}", "spec.virtualIPs",
         "holds 4294967296 addresses; Baton handles at most 65025 virtual IPs in one IPFailover (255 VRRP instances × 255 IPv4 addresses; 22695 for IPv6)"),
        // One family per group.
        ("{virtualIPs: \"10.0.0.1-3,fd00::1\", vipGroups: 2}", "spec.vipGroups", "VIP group 2 would hold 10.0.0.3 and fd00::1"),
        // Unicast peers: of the VIPs' families, one for each, and none a VIP.
        ("{virtualIPs: \"10.0.0.1\", unicastPeers: [fd00::2]}", "spec.unicastPeers[0]", "is IPv6, but every virtual IP is IPv4"),
        ("{virtualIPs: \"10.0.0.1,fd00::1\", unicastPeers: [10.0.0.11]}", "spec.unicastPeers", "has no IPv6 address for the IPv6 virtual IPs"),
        ("{virtualIPs: \"10.0.0.1-2\", unicastPeers: [10.0.0.2]}", "spec.unicastPeers[0]", "is one of the virtual IPs"),
        ("{virtualIPs: \"10.0.0.1\", iptablesChain: \"1INPUT\"}", "spec.iptablesChain", "a letter or '_' first"),
        ("{virtualIPs: \"10.0.0.1\", checkScript: \"/bin/check\\n/bin/other\"}", "spec.checkScript", "must be one line"),
        ("{virtualIPs: \"10.0.0.1\", checkInterval: 86401}", "spec.checkInterval", "less than or equal to 86400"),
        ("{virtualIPs: \"10.0.0.1\", monitorPort: 65536}", "spec.monitorPort", "\"65536\": must be between 0 and 65535"),
        ("{virtualIPs: \"10.0.0.1\", monitorPort: -1}", "spec.monitorPort", "must be between 0 and 65535"),
        ("{virtualIPs: \"10.0.0.1\", preemption: preempt_delay}", "spec.preemption", "\"preempt_delay\": must be \"nopreempt\" or \"preempt_delay N\""),
        ("{virtualIPs: \"10.0.0.1\", preemption: preempt_delay 5000}", "spec.preemption", "0 to 1000 seconds"),
        ("{virtualIPs: \"10.0.0.1\", preemption: nopreempt 5}", "spec.preemption", "\"nopreempt 5\""),
        ("{virtualIPs: \"10.0.0.1\", preemption: preempt-delay 300}", "spec.preemption", "\"preempt-delay 300\""),
        ("{virtualIPs: \"10.0.0.1\", unicastPeers: [10.0.0.11, 10.0.0]}", "spec.unicastPeers[1]", "\"10.0.0\": must be a valid IP address"),
        ("{virtualIPs: \"10.0.0.1\", unicastPeers: [10.0.0.11, 10.0.0.11]}", "spec.unicastPeers[1]", "Duplicate value"),
        ("{virtualIPs: \"10.0.0.1\", checkScript: mycheckscript.sh}", "spec.checkScript", "must be an absolute path"),
        ("{virtualIPs: \"10.0.0.1\", notifyScript: notify.sh}", "spec.notifyScript", "must be an absolute path"),
        ("{virtualIPs: \"10.0.0.1\", checkInterval: 0}", "spec.checkInterval", "greater than or equal to 1"),
        ("{virtualIPs: \"10.0.0.1\", interface: \"eth0 eth1\"}", "spec.interface", "must be a network interface name"),
        ("{virtualIPs: \"10.0.0.1\", interface: averyveryverylongname0}", "spec.interface", "1-15 characters"),
        ("{virtualIPs: \"10.0.0.1\", iptablesChain: \"INPUT; drop\"}", "spec.iptablesChain", "must be a chain name"),
        ("{virtualIPs: \"10.0.0.1\", replicas: -1}", "spec.replicas", "greater than or equal to 0"),
        ("{virtualIPs: \"10.0.0.1\", nodeSelector: {matchExpressions: [{key: a, operator: Exists, values: [b]}]}}",
         "spec.nodeSelector.matchExpressions[0].values", "may not be specified"),
        // Strict decoding: OpenShift's spelling of the variable is not a field.
        ("{virtualIPs: \"10.0.0.1\", virtualIps: \"10.0.0.2\"}", "spec.virtualIps", "unknown field"),
        ("{virtualIPs: \"10.0.0.1\", vrrpIdOffset: 20}", "spec.vrrpIdOffset", "unknown field"),
    ]

    @Test("refuses a bad spec with the field's path", arguments: refusals)
    func refusal(_ rule: (spec: String, field: String, fragment: String)) {
        let causes = AdmissionProbe.causes(Self.manifest(rule.spec))
        #expect(causes.contains { $0.field == rule.field && $0.message.contains(rule.fragment) }, "causes: \(causes)")
    }

    static func stored(_ name: String, _ spec: String) throws -> Resource {
        try Admission.decode(Manifest.parseDocuments(manifest(spec, name: name))[0]).object
    }

    @Test("VIPs may not overlap another IPFailover's; the object itself does not count")
    func overlap() throws {
        let context = ValidationContext(objects: ["IPFailover": [try Self.stored("a", "{virtualIPs: \"10.0.0.5-9\", vrrpIDOffset: 0}")]])
        let causes = AdmissionProbe.causes(Self.manifest("{virtualIPs: \"10.0.0.1-3,10.0.0.8-12\", vrrpIDOffset: 100}", name: "b"), context: context)
        #expect(causes.contains {
            $0.field == "spec.virtualIPs" && $0.message.contains("\"10.0.0.8\": is also a virtual IP of IPFailover \"a\" (10.0.0.5-9)")
        }, "causes: \(causes)")
        // Updating "a" itself is not an overlap with "a".
        #expect(AdmissionProbe.causes(Self.manifest("{virtualIPs: \"10.0.0.5-10\", vrrpIDOffset: 0}", name: "a"), context: context).isEmpty)
        // IPv4 and IPv6 never overlap.
        #expect(AdmissionProbe.causes(Self.manifest("{virtualIPs: \"fd00::5-9\", vrrpIDOffset: 100}", name: "c"), context: context).isEmpty)
    }

    @Test("VRIDs may not overlap another IPFailover's on the same interface")
    func vridOverlap() throws {
        let context = ValidationContext(objects: ["IPFailover": [try Self.stored("a", "{virtualIPs: \"10.0.0.1-4\"}")]])
        #expect(AdmissionProbe.refuses(Self.manifest("{virtualIPs: \"10.0.1.1-2\", vrrpIDOffset: 13}", name: "b"),
                                       field: "spec.vrrpIDOffset", fragment: "VRIDs 14-15 overlap VRIDs 11-14 of IPFailover \"a\"",
                                       context: context))
        #expect(AdmissionProbe.causes(Self.manifest("{virtualIPs: \"10.0.1.1-2\", vrrpIDOffset: 14}", name: "b"), context: context).isEmpty)
        #expect(AdmissionProbe.causes(Self.manifest("{virtualIPs: \"10.0.1.1-2\", vrrpIDOffset: 13, interface: eth1}", name: "b"),
                                      context: context).isEmpty)
        #expect(KindInfo.ipFailover.relatedKinds == ["IPFailover"])
    }

    @Test("defaults are OpenShift's and are not written into the spec")
    func defaults() throws {
        let a = try AdmissionProbe.admit(Self.manifest("{virtualIPs: \"1.2.3.4-6,1.2.3.9\"}"))
        #expect(a.object.spec == ["virtualIPs": "1.2.3.4-6,1.2.3.9"])
        let spec = try a.object.decodeSpec(IPFailoverSpec.self)
        #expect(spec.effectiveInterface == "eth0")
        #expect(spec.effectiveMonitorPort == 80)
        #expect(spec.effectiveReplicas == 2)
        #expect(spec.effectiveVRRPIDOffset == 10)
        #expect(spec.effectiveIPTablesChain == "INPUT")
        #expect(spec.effectiveCheckInterval == 2)
        #expect(spec.effectivePreemption == .delay(seconds: 300))
        #expect(!spec.usesUnicast)
        #expect(spec.addresses.map(\.description) == ["1.2.3.4", "1.2.3.5", "1.2.3.6", "1.2.3.9"])
        #expect(spec.instanceCount == 4)
        #expect(spec.vrids == 11...14)
    }

    @Test("VIP groups split the addresses as OpenShift does: seven VIPs in three groups are 3, 2, 2")
    func groups() throws {
        var spec = IPFailoverSpec(virtualIPs: "10.0.0.1-7")
        spec.vipGroups = 3
        spec.vrrpIDOffset = 0
        #expect(spec.groups.map(\.count) == [3, 2, 2])
        #expect(spec.groups[0].map(\.description) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
        #expect(spec.vrids == 1...3)
    }

    @Test("more VIP groups than VIPs is one VIP per group, as OpenShift's min(G, N)")
    func moreGroupsThanVIPs() throws {
        let a = try AdmissionProbe.admit(Self.manifest("{virtualIPs: \"10.0.0.1-3\", vipGroups: 4}"))
        let spec = try a.object.decodeSpec(IPFailoverSpec.self)
        #expect(spec.instanceCount == 3)
        #expect(spec.groups.map(\.count) == [1, 1, 1])
        #expect(spec.vrids == 11...13)
        // The VRIDs counted for the offset rule are min(G, N) too: offset 252 + 3 instances fits.
        #expect(AdmissionProbe.causes(Self.manifest("{virtualIPs: \"10.0.0.1-3\", vipGroups: 40, vrrpIDOffset: 252}")).isEmpty)
    }

    @Test("the size limit is what the speaker handles: 65,025 IPv4 VIPs in 255 groups at offset 0, and not one more")
    func sizeLimit() throws {
        #expect(IPFailoverSpec.maxVirtualIPs == 65_025)
        let atLimit = Self.manifest("{virtualIPs: \"10.0.0.0-10.0.254.0\", vipGroups: 255, vrrpIDOffset: 0}")
        #expect(AdmissionProbe.causes(atLimit).isEmpty)
        let spec = try AdmissionProbe.admit(atLimit).object.decodeSpec(IPFailoverSpec.self)
        #expect(spec.addresses.count == 65_025)
        #expect(spec.groups.allSatisfy { $0.count == 255 })
        #expect(spec.vrids == 1...255)
        #expect(AdmissionProbe.refuses(Self.manifest("{virtualIPs: \"10.0.0.0-10.0.254.1\", vipGroups: 255, vrrpIDOffset: 0}"),
                                       field: "spec.virtualIPs", fragment: "holds 65026 addresses; Baton handles at most 65025"))
        // IPv6: 89 per group, 255 × 89 = 22,695.
        #expect(AdmissionProbe.causes(Self.manifest("{virtualIPs: \"fd00::1-fd00::58a7\", vipGroups: 255, vrrpIDOffset: 0}")).isEmpty)
        #expect(AdmissionProbe.refuses(Self.manifest("{virtualIPs: \"fd00::1-fd00::58a8\", vipGroups: 255, vrrpIDOffset: 0}"),
                                       field: "spec.vipGroups", fragment: "would hold 90 IPv6 VIPs"))
    }

    @Test("IPv6 ranges end in a hextet; unicast peers switch adverts to unicast")
    func ipv6() throws {
        let a = try AdmissionProbe.admit(Self.manifest("{virtualIPs: \"fd00::10-1f,fd00::100\", vipGroups: 2, unicastPeers: [\"fd00::1\", \"fd00::2\"]}"))
        let spec = try a.object.decodeSpec(IPFailoverSpec.self)
        #expect(spec.addresses.count == 17)
        #expect(spec.usesUnicast)
        #expect(try JSONValue(encoding: spec) == a.object.spec)
    }

    @Test("preemption parses as OpenShift spells it", arguments: [
        ("preempt_delay 300", IPFailoverSpec.Preemption.delay(seconds: 300)),
        ("preempt_delay 0", .delay(seconds: 0)),
        ("nopreempt", .never),
    ])
    func preemption(_ text: String, _ expected: IPFailoverSpec.Preemption) {
        #expect(IPFailoverSpec.Preemption(text) == expected)
    }

    @Test("status: per-node VRRP state is checked on status writes")
    func status() throws {
        var object = try Self.stored("vips", "{virtualIPs: \"10.0.0.1\"}")
        object.status = try JSONValue(encoding: IPFailoverStatus(nodes: [
            "node1": .init(observedGeneration: 1, instances: [.init(name: "vips_VIP_1", vrid: 11, state: "master", priority: 100)],
                           lastTransitionTime: "2026-01-02T03:04:05.678Z"),
            "node2": .init(observedGeneration: 1, message: "IPFailover vips: spec.interface ..."),
        ]))
        try Admission.validateStatus(object, kind: .ipFailover)
        object.status = try JSONValue(encoding: IPFailoverStatus(nodes: ["node1": .init(instances: [.init(vrid: 11, state: "MASTERISH")])]))
        #expect(throws: APIError.self) { try Admission.validateStatus(object, kind: .ipFailover) }
    }

    @Test("printer columns")
    func columns() throws {
        let cols = KindInfo.ipFailover.columns
        #expect(cols.filter { $0.priority == 0 }.map(\.name) == ["VIPS", "INTERFACE", "REPLICAS", "AGE"])
        let a = try AdmissionProbe.admit(Self.manifest("{virtualIPs: \"1.2.3.4-6\", interface: ens3, replicas: 3}"))
        #expect(cols.prefix(3).map { JSONPath.text($0.jsonPath, in: a.object.json) } == ["1.2.3.4-6", "ens3", "3"])
        #expect(KindRegistry.lookup("ipf")?.kind == "IPFailover")
    }
}
