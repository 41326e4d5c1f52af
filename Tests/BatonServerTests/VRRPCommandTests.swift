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
        (["vrrp", "--interface", "lo", "--vrid", "5", "--vip", "10.9.0.4", "--realtime-priority", "100"], [:],
         "--realtime-priority: 100 is not in 1...99"),
        (["vrrp", "--interface", "lo", "--vrid", "5", "--vip", "10.9.0.4", "--version", "2", "--advert-interval", "0.01"], [:],
         "advert interval 0.01 s is not whole seconds, and VRRP 2 carries whole seconds"),
        (["vrrp"], ["OPENSHIFT_HA_VIRTUAL_IPS": "10.9.0.4-300"], "\"10.9.0.4-300\" is not an address or a range"),
        (["vrrp"], ["OPENSHIFT_HA_VIRTUAL_IPS": "10.9.0.4-6", "OPENSHIFT_HA_VRRP_ID_OFFSET": "254"], "VRID 257 is above 255"),
        (["vrrp"], ["OPENSHIFT_HA_VIRTUAL_IPS": "10.9.0.4-6,10.9.0.5"], "10.9.0.5"),
        (["vrrp"], ["OPENSHIFT_HA_VIRTUAL_IPS": "10.9.0.4", "OPENSHIFT_HA_PREEMPTION": "sometimes"], "\"sometimes\""),
        // Health checks, vmac and the nftables rule.
        (["vrrp", "--interface", "lo", "--vrid", "5", "--vip", "10.9.0.4", "--check-tcp", "127.0.0.1:80", "--check-interval", "0"], [:],
         "--check-interval \"0\" is not a number of seconds above 0"),
        (["vrrp", "--interface", "lo", "--vrid", "5", "--vip", "10.9.0.4", "--check-tcp", "127.0.0.1:99999"], [:],
         "--check-tcp \"127.0.0.1:99999\" is not HOST:PORT"),
        (["vrrp", "--interface", "lo", "--vrid", "5", "--vip", "10.9.0.4", "--check-http", "https://127.0.0.1/"], [:],
         "--check-http \"https://127.0.0.1/\": https is not supported"),
        (["vrrp", "--interface", "lo", "--vrid", "5", "--vip", "10.9.0.4", "--check-tcp", "127.0.0.1:80", "--check-weight", "-300"], [:],
         "--check-weight -300 is not in -253...253"),
        (["vrrp", "--interface", "lo", "--vrid", "5", "--vip", "10.9.0.4", "--check-weight", "-30"], [:],
         "--check-weight needs a check"),
        (["vrrp", "--interface", "lo", "--vrid", "5", "--vip", "10.9.0.4", "--check-script", "/nonexistent/check.sh"], [:],
         "--check-script: /nonexistent/check.sh is not an executable file"),
        (["vrrp"], ["OPENSHIFT_HA_VIRTUAL_IPS": "10.9.0.4", "OPENSHIFT_HA_CHECK_INTERVAL": "0"], "OPENSHIFT_HA_CHECK_INTERVAL \"0\""),
        (["vrrp"], ["OPENSHIFT_HA_VIRTUAL_IPS": "10.9.0.4", "OPENSHIFT_HA_MONITOR_PORT": "70000"], "OPENSHIFT_HA_MONITOR_PORT \"70000\""),
        (["vrrp"], ["OPENSHIFT_HA_VIRTUAL_IPS": "10.9.0.4", "OPENSHIFT_HA_IPTABLES_CHAIN": "IN PUT"], "OPENSHIFT_HA_IPTABLES_CHAIN \"IN PUT\""),
        // The flags go through VRRPSpeakerConfiguration.fromFlags, the one path of every rule.
        (["vrrp", "--interface", "lo", "--vrid", "5", "--vip", "10.9.0.4", "--nopreempt", "--priority", "255"], [:],
         "instance VI_5: nopreempt with priority 255: the address owner always preempts"),
        (["vrrp", "--interface", "lo", "--vrid", "5", "--vip", "10.9.0.4", "--version", "2", "--advert-interval", "0.5"], [:],
         "instance VI_5: advert interval 0.5 s is not whole seconds"),
        (["vrrp", "--interface", "lo", "--vrid", "5", "--vip", "10.9.0.4", "--preempt-delay", "2", "--nopreempt"], [:],
         "--preempt-delay 2 and --nopreempt contradict each other"),
    ])
    func refusedConfigurationsNameTheValue(args: [String], env: [String: String], message: String) throws {
        var environment = env
        // The test runner's own environment must not turn a flags case into the OpenShift mode.
        if env["OPENSHIFT_HA_VIRTUAL_IPS"] == nil { environment["OPENSHIFT_HA_VIRTUAL_IPS"] = nil }
        let r = try BatonBinary.run(args, env: environment)
        #expect(r.status != 0)
        #expect(r.err.contains(message), "\(r.err)")
    }

    /// `baton lab bench vrrp` refuses its bad options before it needs root or builds anything.
    @Test(arguments: [
        (["--trials", "0"], "--trials: 0 is not between 1 and 1000"),
        (["--advert-interval", "0.005"], "--advert-interval: 0.005 is not whole centiseconds in 0.01...40.95"),
        (["--advert-interval", "41"], "--advert-interval: 41.0 is not whole centiseconds in 0.01...40.95"),
        (["--load-seconds=-1"], "--load-seconds: -1 is not between 0 and 86400"),
        (["--load-processes", "0"], "--load-processes: 0 is not between 1 and 256"),
        (["--realtime-priority", "0"], "--realtime-priority: 0 is not between 1 and 99"),
        (["--prefix", "too-long-prefix"], "--prefix: \"too-long-prefix\" must be 1-8 letters or digits"),
    ])
    func benchRefusalsNameTheOption(args: [String], message: String) throws {
        let r = try BatonBinary.run(["lab", "bench", "vrrp"] + args)
        #expect(r.status != 0)
        #expect(r.err.contains(message), "\(r.err)")
    }
}
