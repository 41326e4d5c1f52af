import BatonAPI
import Testing

@Suite struct FeatureSettingsTests {
    @Test func defaultsSatisfyTheirOwnRule() throws {
        let s = try FeatureSettings.parse(yaml: "")
        #expect(s.eipEvictionTimeout > s.tunnelMonitorPeriod + s.tunnelUpdatePeriod)
        #expect(s.tunnelIpv4Subnet == "172.31.0.0/16")
        #expect(s.markBase == 0x2600_0000)
    }

    @Test func readsFlatAndGatewayFailoverKeysWithFractions() throws {
        let flat = try FeatureSettings.parse(yaml: "feature:\n  tunnelMonitorPeriod: 0.05\n  tunnelUpdatePeriod: 0.1\n  eipEvictionTimeout: 0.5\n")
        #expect(flat.tunnelMonitorPeriod == 0.05 && flat.tunnelUpdatePeriod == 0.1 && flat.eipEvictionTimeout == 0.5)
        let nested = try FeatureSettings.parse(yaml: """
        feature:
          gatewayFailover:
            enable: true
            tunnelMonitorPeriod: 2
            tunnelUpdatePeriod: 3
            eipEvictionTimeout: 6
          enableIPv4: true
        controller:
          replicas: 2
        """)
        #expect(nested.tunnelMonitorPeriod == 2 && nested.tunnelUpdatePeriod == 3 && nested.eipEvictionTimeout == 6)
    }

    @Test(arguments: [
        "feature:\n  tunnelMonitorPeriod: 5\n  tunnelUpdatePeriod: 5\n  eipEvictionTimeout: 5\n",
        "feature:\n  gatewayFailover:\n    tunnelMonitorPeriod: 1\n    tunnelUpdatePeriod: 1\n    eipEvictionTimeout: 2\n",
    ])
    func refusesAnEvictionTimeoutNotAboveTheSumOfPeriods(yaml: String) {
        #expect {
            try FeatureSettings.parse(yaml: yaml)
        } throws: { error in
            (error as? APIError)?.message.contains("eipEvictionTimeout should be greater than the sum of tunnelUpdatePeriod and tunnelMonitorPeriod") == true
        }
    }

    @Test(arguments: [
        ("feature:\n  tunnelUpdatePeriod: -1\n", "feature.tunnelUpdatePeriod"),
        ("feature:\n  tunnelIpv4Subnet: fd00::/64\n", "feature.tunnelIpv4Subnet"),
        ("feature:\n  gatewayFailover:\n    tunelUpdatePeriod: 1\n", "feature.gatewayFailover.tunelUpdatePeriod"),
        ("feature:\n  vxlan:\n    port: 70000\n", "feature.vxlan.port"),
    ])
    func refusesBadValuesNamingTheKey(yaml: String, field: String) {
        #expect {
            try FeatureSettings.parse(yaml: yaml)
        } throws: { error in
            (error as? APIError)?.message.contains(field) == true
        }
    }
}
