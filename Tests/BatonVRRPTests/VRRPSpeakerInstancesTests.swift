import BatonAPI
import BatonVRRP
import Testing

/// What `baton vrrp` runs in its OpenShift mode: the environment's instances as the speaker
/// carries them out.
@Suite struct VRRPSpeakerInstancesTests {
    @Test func theOpenShiftEnvironmentBecomesOneSpeakerInstancePerVRRPInstance() throws {
        var g = FixedGenerator(value: 0)
        let configuration = try VRRPSpeakerConfiguration.fromEnvironment(
            ["OPENSHIFT_HA_VIRTUAL_IPS": "10.9.0.4-6", "OPENSHIFT_HA_VIP_GROUPS": "2",
             "OPENSHIFT_HA_NOTIFY_SCRIPT": "/etc/keepalived/notify.sh", "OPENSHIFT_HA_NETWORK_INTERFACE": "ens3"],
            nodeAddress: IPAddress("10.9.0.1"), using: &g)
        let instances = VRRPSpeaker.instances(configuration)
        // Two groups over three VIPs: 2 + 1, VRIDs offset (10) + n, keepalived's v2 with the
        // password cut from the config name.
        #expect(instances.map(\.vrid) == [11, 12])
        #expect(instances.map { $0.virtualAddresses.map(\.address.description) } == [["10.9.0.4", "10.9.0.5"], ["10.9.0.6"]])
        #expect(instances.allSatisfy { $0.version == .v2 && $0.interface == "ens3" && $0.advertInterval == .seconds(1) })
        #expect(instances.allSatisfy { $0.authPassword?.text == "OpenShif" }, "the default config name, OpenShift-IPFailover, cut to 8 bytes")
        #expect(instances.allSatisfy { $0.notifyScript == "/etc/keepalived/notify.sh" })
        #expect(instances.map(\.name) == configuration.instances.map(\.name))
        // preempt_delay 300 (the seed's default) holds for an instance that starts as Backup; one
        // that keepalived would start as MASTER preempts at once (keepalived clears the delay).
        for (speaker, settings) in zip(instances, configuration.instances) {
            #expect(speaker.preempt)
            #expect(speaker.preemptDelay == (settings.initialState == .master ? .zero : .seconds(300)))
            #expect(speaker.priority == settings.priority)
        }
        #expect(configuration.instances.contains { $0.initialState == .master })
        #expect(configuration.instances.contains { $0.initialState == .backup })
        for i in instances { try i.validate() }
    }

    @Test func nopreemptCarriesOver() throws {
        var g = FixedGenerator(value: 0)
        let configuration = try VRRPSpeakerConfiguration.fromEnvironment(
            ["OPENSHIFT_HA_VIRTUAL_IPS": "10.9.0.4", "OPENSHIFT_HA_PREEMPTION": "nopreempt"], nodeAddress: IPAddress("10.9.0.1"), using: &g)
        let instance = try #require(VRRPSpeaker.instances(configuration).first)
        #expect(!instance.preempt && instance.preemptDelay == .zero)
    }
}
