import BatonAPI
import Testing

@Suite struct EgressTunnelTests {
    typealias F = EgressFixtures

    static func tunnel(status: String) -> String {
        "apiVersion: \(F.apiVersion)\nkind: EgressTunnel\nmetadata: {name: node1}\nspec: {}\nstatus: \(status)\n"
    }

    @Test func seedTunnelAdmitsAndReadsBackTheSameSpec() throws {
        let object = try F.admit(F.seedTunnel)
        #expect(object.name == "workstation1")
        #expect(object.spec == .object([:]))
        #expect(object.status == nil, "status in an applied manifest is dropped")
    }

    @Test func markStaysAString() throws {
        let stored = try F.stored(F.seedTunnel)
        #expect(stored.status?["mark"] == .string("0x26d9b723"))
        #expect(F.statusCauses(F.seedTunnel).isEmpty)
        let status = try #require(stored.decodeStatus(EgressTunnelStatus.self))
        #expect(status.mark == "0x26d9b723")
        #expect(status.markValue == 0x26d9_b723)
        #expect(status.phase == .ready)
        #expect(status.lastHeartbeatTime == "2023-11-27T12:04:56Z")
        #expect(try JSONValue(encoding: status) == stored.status)
    }

    @Test func printerColumnsAreExactlyKubectlGetEgt() throws {
        let columns = KindInfo.egressTunnel.columns.filter { $0.priority == 0 }
        #expect(["NAME"] + columns.map(\.name) == ["NAME", "TUNNELMAC", "TUNNELIPV4", "TUNNELIPV6", "MARK", "PHASE"])
        #expect(columns.map(\.jsonPath) == [".status.tunnel.mac", ".status.tunnel.ipv4", ".status.tunnel.ipv6", ".status.mark", ".status.phase"])
        #expect(KindInfo.egressTunnel.columns.count == columns.count)
        #expect(!columns.contains { $0.name == PrinterColumn.age.name })

        // The seed's first row of `kubectl get egt`.
        let row = try F.stored(Self.tunnel(status: #"{tunnel: {mac: "66:50:85:cb:b2:bf", ipv4: 192.200.229.11, ipv6: "fd01::c486"}, mark: "0x26d9b723", phase: Ready}"#))
        #expect(columns.map { JSONPath.text($0.jsonPath, in: row.json) } == ["66:50:85:cb:b2:bf", "192.200.229.11", "fd01::c486", "0x26d9b723", "Ready"])
    }

    @Test func fullStatusIsAccepted() {
        let status = #"{tunnel: {ipv4: 192.200.229.11, ipv6: "fd01::c486", mac: "66:50:85:CB:b2:bf", parent: {name: eth0, ipv4: 10.6.0.11, ipv6: "fd00::11"}}, phase: HeartbeatTimeout, mark: "0x26abf380", lastHeartbeatTime: "2023-11-27T12:04:56.123+08:00", observedGeneration: 1}"#
        let causes = F.statusCauses(Self.tunnel(status: status))
        #expect(causes.isEmpty, "\(causes.map(\.description))")
    }

    static let statusRules: [(String, String, String)] = [
        (#"{phase: Running}"#, "status.phase", "Unsupported value: \"Running\""),
        (#"{mark: "26d9b723"}"#, "status.mark", "\"26d9b723\": must be a 32-bit mark in hex"),
        (#"{mark: "0x1ffffffff"}"#, "status.mark", "must be a 32-bit mark in hex"),
        (#"{mark: 651802403}"#, "status.mark", "must be a string"),
        (#"{tunnel: {mac: "66:50:85:cb:b2"}}"#, "status.tunnel.mac", "\"66:50:85:cb:b2\": must be a MAC address"),
        (#"{tunnel: {ipv4: "fd01::1"}}"#, "status.tunnel.ipv4", "invalid ipv4 format"),
        (#"{tunnel: {ipv6: "192.200.0.1"}}"#, "status.tunnel.ipv6", "invalid ipv6 format"),
        (#"{tunnel: {parent: {ipv4: "10.6.0.256"}}}"#, "status.tunnel.parent.ipv4", "invalid ipv4 format"),
        (#"{tunnel: {parent: {ipv6: "fd00:::1"}}}"#, "status.tunnel.parent.ipv6", "invalid ipv6 format"),
        (#"{lastHeartbeatTime: "2023-11-27 noon"}"#, "status.lastHeartbeatTime", "must be an RFC 3339 time"),
        (#"{lastHeartbeatTime: "2023-13-27T12:04:56Z"}"#, "status.lastHeartbeatTime", "must be an RFC 3339 time"),
        (#"{tunnel: {macAddress: "66:50:85:cb:b2:bf"}}"#, "status.tunnel.macAddress", "unknown field"),
    ]

    @Test(arguments: statusRules)
    func statusRuleIsEnforced(status: String, field: String, fragment: String) {
        let causes = F.statusCauses(Self.tunnel(status: status))
        #expect(causes.contains { $0.field == field && $0.message.contains(fragment) }, "\(causes.map(\.description))")
    }

    @Test func specMustBeEmpty() {
        let causes = F.causes("apiVersion: \(F.apiVersion)\nkind: EgressTunnel\nmetadata: {name: node1}\nspec: {tunnel: {}}\n")
        #expect(causes.map(\.field) == ["spec.tunnel"])
        #expect(causes.first?.reason == .unknownField)
    }
}
