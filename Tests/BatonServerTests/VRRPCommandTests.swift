import Foundation
import Testing

/// `baton vrrp` refuses, before touching the network, a configuration that cannot work, with a
/// message that names the value: from its flags and from OpenShift's environment.
@Suite(.enabled(if: BatonBinary.path != nil, "baton binary not built: run `swift build` before `swift test`"))
struct VRRPCommandTests {
    @Test(arguments: [
        (["vrrp", "--interface", "lo", "--vrid", "300", "--vip", "10.9.0.4"], [String: String](), "--vrid: 300 is not in 1...255"),
        (["vrrp", "--interface", "lo", "--vrid", "5", "--version", "3", "--auth-pass", "x", "--vip", "10.9.0.4"], [:],
         "--auth-pass needs --version 2"),
        (["vrrp"], [:], "--vrid: missing"),
        (["vrrp"], ["OPENSHIFT_HA_VIRTUAL_IPS": "10.9.0.4-300"], "\"10.9.0.4-300\" is not an address or a range"),
        (["vrrp"], ["OPENSHIFT_HA_VIRTUAL_IPS": "10.9.0.4-6", "OPENSHIFT_HA_VRRP_ID_OFFSET": "254"], "VRID 257 is above 255"),
        (["vrrp"], ["OPENSHIFT_HA_VIRTUAL_IPS": "10.9.0.4-6,10.9.0.5"], "10.9.0.5"),
        (["vrrp"], ["OPENSHIFT_HA_VIRTUAL_IPS": "10.9.0.4", "OPENSHIFT_HA_PREEMPTION": "sometimes"], "\"sometimes\""),
    ])
    func refusedConfigurationsNameTheValue(args: [String], env: [String: String], message: String) throws {
        var environment = env
        // The test runner's own environment must not turn a flags case into the OpenShift mode.
        if env["OPENSHIFT_HA_VIRTUAL_IPS"] == nil { environment["OPENSHIFT_HA_VIRTUAL_IPS"] = nil }
        let r = try BatonBinary.run(args, env: environment)
        #expect(r.status != 0)
        #expect(r.err.contains(message), "\(r.err)")
    }
}
