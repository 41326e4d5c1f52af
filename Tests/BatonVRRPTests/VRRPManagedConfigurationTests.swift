import BatonAPI
import BatonCore
@testable import BatonVRRP
import Testing

/// What a node runs for an IPFailover in the agent's managed mode: the same instances as
/// OpenShift's ipfailover pod with the same settings, named after the IPFailover.
@Suite struct VRRPManagedConfigurationTests {
    static func spec(_ vips: String, _ edit: (inout IPFailoverSpec) -> Void = { _ in }) -> IPFailoverSpec {
        var s = IPFailoverSpec(virtualIPs: vips)
        edit(&s)
        return s
    }

    @Test func everyFieldBecomesItsVariable() {
        let s = Self.spec("10.0.0.1-3") {
            $0.vipGroups = 2; $0.interface = "ens3"; $0.monitorPort = 0; $0.replicas = 3; $0.vrrpIDOffset = 40
            $0.iptablesChain = ""; $0.checkScript = "/etc/keepalive/check.sh"; $0.checkInterval = 5
            $0.notifyScript = "/etc/keepalive/notify.sh"; $0.preemption = "nopreempt"; $0.unicastPeers = ["10.0.0.11", "10.0.0.12"]
            $0.nodeSelector = LabelSelector(matchLabels: ["a": "b"])
        }
        #expect(VRRPSpeakerConfiguration.openShiftEnvironment(name: "web-vips", spec: s) == [
            "OPENSHIFT_HA_CONFIG_NAME": "web-vips", "OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.1-3", "OPENSHIFT_HA_VIP_GROUPS": "2",
            "OPENSHIFT_HA_NETWORK_INTERFACE": "ens3", "OPENSHIFT_HA_MONITOR_PORT": "0", "OPENSHIFT_HA_REPLICA_COUNT": "3",
            "OPENSHIFT_HA_VRRP_ID_OFFSET": "40", "OPENSHIFT_HA_IPTABLES_CHAIN": "", "OPENSHIFT_HA_CHECK_SCRIPT": "/etc/keepalive/check.sh",
            "OPENSHIFT_HA_CHECK_INTERVAL": "5", "OPENSHIFT_HA_NOTIFY_SCRIPT": "/etc/keepalive/notify.sh",
            "OPENSHIFT_HA_PREEMPTION": "nopreempt", "OPENSHIFT_HA_UNICAST_PEERS": "10.0.0.11,10.0.0.12",
        ])
        // Absent fields are absent variables: the seed's defaults apply in both modes.
        #expect(VRRPSpeakerConfiguration.openShiftEnvironment(name: "x", spec: Self.spec("10.0.0.1"))
                == ["OPENSHIFT_HA_CONFIG_NAME": "x", "OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.1"])
    }

    /// The instances a node runs are those the ipfailover pod with OPENSHIFT_HA_CONFIG_NAME set
    /// to the IPFailover's name runs on that node: names, VRIDs, groups, priorities and
    /// initial states, the password, checks, chain.
    @Test(arguments: ["10.0.0.11", "10.0.0.12", "10.0.0.200"])
    func theSameInstancesAsThePodWithTheIPFailoversNameAsConfigName(node: String) throws {
        let s = Self.spec("10.0.0.50-56") { $0.vipGroups = 3; $0.replicas = 2; $0.unicastPeers = ["10.0.0.11", "10.0.0.12"] }
        let managed = try VRRPSpeakerConfiguration.fromIPFailover(name: "web-vips", spec: s, nodeAddress: IPAddress(node), seed: "n/web-vips")
        var g = SeededGenerator(seed: "n/web-vips")
        let pod = try VRRPSpeakerConfiguration.fromEnvironment([
            "OPENSHIFT_HA_CONFIG_NAME": "web-vips", "OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.50-56", "OPENSHIFT_HA_VIP_GROUPS": "3",
            "OPENSHIFT_HA_REPLICA_COUNT": "2", "OPENSHIFT_HA_UNICAST_PEERS": "10.0.0.11,10.0.0.12",
        ], nodeAddress: IPAddress(node), using: &g)
        #expect(managed == pod)
        #expect(managed.instances.map(\.name) == ["web_vips_VIP_1", "web_vips_VIP_2", "web_vips_VIP_3"])
        #expect(managed.instances.map(\.vrid) == [11, 12, 13])
        #expect(managed.instances.map(\.vips.count) == [3, 2, 2])
        #expect(managed.instances.allSatisfy { $0.authPass == "web-vips" && $0.version == .v2 })
        #expect(managed.iptablesChain == "INPUT" && managed.monitorPort == 80 && managed.replicaCount == 2)
    }

    @Test func priorititesFollowTheNodesSlotAndReplicas() throws {
        // Slot 12 (.12), 2 replicas: 12 % 2 + 1 = 1, so every instance is preferred: MASTER
        // start, 255 − 12 and 12 + 1 alternating. Slot 11: 11 % 2 + 1 = 2, only even instances.
        let s = Self.spec("10.0.0.50-53")
        let n2 = try VRRPSpeakerConfiguration.fromIPFailover(name: "v", spec: s, nodeAddress: IPAddress("10.0.0.12"), seed: "node2/v")
        #expect(n2.instances.map(\.priority) == [243, 13, 243, 13])
        #expect(n2.instances.allSatisfy { $0.initialState == .master })
        let n1 = try VRRPSpeakerConfiguration.fromIPFailover(name: "v", spec: s, nodeAddress: IPAddress("10.0.0.11"), seed: "node1/v")
        #expect(n1.instances.map(\.initialState) == [.backup, .master, .backup, .master])
        #expect(n1.instances[1].priority == 244 && n1.instances[3].priority == 12)
        #expect(n1.instances[0].priority >= 11 && n1.instances[0].priority < 11 + 32)
        // The random part is seeded: the same node computes the same priorities every time.
        let again = try VRRPSpeakerConfiguration.fromIPFailover(name: "v", spec: s, nodeAddress: IPAddress("10.0.0.11"), seed: "node1/v")
        #expect(again == n1)
    }

    @Test func refusalsNameTheSpecsFields() {
        // More groups than one advert per group can carry; the kind refuses it too, but a spec
        // stored before the kind's rule (or written around it) is refused here with its field.
        let s = Self.spec("10.0.0.1,fd00::1") { $0.vipGroups = 1 }
        #expect {
            try VRRPSpeakerConfiguration.fromIPFailover(name: "mixed", spec: s, nodeAddress: nil, seed: "x")
        } throws: { e in
            let m = (e as? VRRPConfigError)?.message ?? ""
            return m.hasPrefix("IPFailover mixed: spec.vipGroups 1: instance mixed_VIP_1 would hold 10.0.0.1 (IPv4) and fd00::1 (IPv6)")
                && !m.contains("OPENSHIFT_HA_")
        }
    }

    /// `IPFailoverSpec.maxVirtualIPs` (the kind's limit) is what the speaker handles, and a
    /// spec at the kind's limit maps onto a speaker.
    @Test func theKindsLimitIsTheSpeakers() throws {
        #expect(IPFailoverSpec.maxVirtualIPs == VRRPCapacity.maxIPv4VirtualIPs)
        #expect(IPFailoverSpec.maxIPv4AddressesPerInstance == VRRPCapacity.maxIPv4AddressesPerInstance)
        #expect(IPFailoverSpec.maxIPv6AddressesPerInstance == VRRPCapacity.maxIPv6AddressesPerInstance)
        #expect(IPFailoverSpec.maxInstances == VRRPCapacity.maxInstances)
        let atLimit = Self.spec("10.0.0.0-10.0.254.0") { $0.vipGroups = 255; $0.vrrpIDOffset = 0 }
        let c = try VRRPSpeakerConfiguration.fromIPFailover(name: "big", spec: atLimit, nodeAddress: IPAddress("10.0.0.1"), seed: "s")
        #expect(c.virtualIPCount == 65_025 && c.instances.count == 255)
        let over = Self.spec("10.0.0.0-10.0.254.1") { $0.vipGroups = 255; $0.vrrpIDOffset = 0 }
        #expect {
            try VRRPSpeakerConfiguration.fromIPFailover(name: "big", spec: over, nodeAddress: nil, seed: "s")
        } throws: { e in
            (e as? VRRPConfigError)?.message.contains("spec.virtualIPs holds 65026 addresses; Baton handles at most 65025") ?? false
        }
    }

    @Test func moreGroupsThanVIPsIsOneVIPPerInstance() throws {
        let c = try VRRPSpeakerConfiguration.fromIPFailover(name: "g", spec: Self.spec("10.0.0.1-3") { $0.vipGroups = 8 },
                                                            nodeAddress: nil, seed: "s")
        #expect(c.instances.map(\.vrid) == [11, 12, 13])
        #expect(c.instances.allSatisfy { $0.vips.count == 1 })
    }

    // MARK: Leftovers of a killed speaker

    static func instance(_ name: String, vrid: UInt8, vips: [String], interface: String = "eth0", vmac: Bool = false) -> VRRPSpeaker.InstanceConfiguration {
        VRRPSpeaker.InstanceConfiguration(name: name, vrid: vrid, interface: interface,
                                          virtualAddresses: vips.map { VirtualAddress($0)! }, virtualMAC: vmac)
    }

    @Test func onlyConfiguredVIPsFoundOnTheirInterfaceAreLeftovers() {
        let instances = [
            Self.instance("a", vrid: 1, vips: ["10.0.0.50/24", "10.0.0.51"]),
            Self.instance("b", vrid: 2, vips: ["10.0.0.52"]),
            Self.instance("c", vrid: 3, vips: ["10.1.0.50"], interface: "eth1"),
            Self.instance("d", vrid: 4, vips: ["10.0.0.60"], vmac: true),
        ]
        var asked: [String] = []
        let present: [String: [IPAddress]] = [
            // The node's own address and an unrelated alias are not the speaker's business.
            "eth0": ["10.0.0.11", "10.0.0.50", "10.0.0.52", "10.0.0.60", "10.0.0.99"].map { IPAddress($0)! },
            "eth1": ["10.1.0.11"].map { IPAddress($0)! },
        ]
        let found = VRRPSpeaker.leftovers(instances) { asked.append($0); return present[$0] ?? [] }
        #expect(found.map(\.interface) == ["eth0"])
        #expect(found.first?.addresses.map(\.description) == ["10.0.0.50/24", "10.0.0.52/32"])
        #expect(asked == ["eth0", "eth1"], "each interface is read once; a --vmac instance's macvlan is created afresh")
        #expect(VRRPSpeaker.leftovers(instances) { _ in [] }.isEmpty)
    }
}
