import BatonAPI
import BatonVRRP
import Foundation
import Testing

/// A generator that always returns one value: 0 makes bash's `$RANDOM % 32` 0, `.max` makes it 31.
struct FixedGenerator: RandomNumberGenerator {
    var value: UInt64
    mutating func next() -> UInt64 { value }
}

private func vip(_ s: String, _ prefix: Int? = nil) -> VRRPVirtualAddress { VRRPVirtualAddress(ip(s), prefixLength: prefix)! }

private func fromEnv(_ env: [String: String], node: String? = "10.0.0.5", random: UInt64 = 0) throws -> VRRPSpeakerConfiguration {
    var g = FixedGenerator(value: random)
    return try VRRPSpeakerConfiguration.fromEnvironment(env, nodeAddress: node.map(ip), using: &g)
}

/// The configuration of `baton vrrp`: the OpenShift environment with the seed's defaults,
/// OpenShift's cut of VIPs into instances, the flags, every refusal, and the capacity.
@Suite struct VRRPSpeakerConfigurationTests {
    // MARK: The OpenShift environment

    @Test func seedDefaults() throws {
        let c = try fromEnv(["OPENSHIFT_HA_VIRTUAL_IPS": "1.2.3.4-6,1.2.3.9"])
        #expect(c.instances.map(\.name) == (1...4).map { "OpenShift_IPFailover_VIP_\($0)" })
        #expect(c.instances.map(\.vrid) == [11, 12, 13, 14])           // offset 10
        #expect(c.instances.map(\.vips) == [[vip("1.2.3.4")], [vip("1.2.3.5")], [vip("1.2.3.6")], [vip("1.2.3.9")]])
        #expect(c.instances.allSatisfy { $0.interface == "eth0" })
        #expect(c.instances.allSatisfy { $0.version == .v2 && $0.advertInterval == .seconds(1) })
        #expect(c.instances.allSatisfy { $0.authPass == "OpenShif" })  // "OpenShift-IPFailover", cut to 8 bytes
        #expect(c.instances.allSatisfy { $0.unicastPeers.isEmpty && !$0.useVMAC })
        #expect(c.monitorPort == 80)
        // OpenShift's generated check: a TCP connect to the port on the node's address, every
        // CHECK_INTERVAL, no weight (FAULT), keepalived's rise/fall 1 and timeout = interval.
        #expect(c.health.checks == [.tcpConnect(host: ip("10.0.0.5"), port: 80)])
        #expect(c.health.weight == 0 && c.health.rise == 1 && c.health.fall == 1)
        #expect(c.health.interval == .seconds(2) && c.health.timeout == .seconds(2))
        #expect(c.checkInterval == .seconds(2))
        #expect(c.checkScript == nil && c.notifyScript == nil)
        #expect(c.iptablesChain == "INPUT")
        #expect(c.replicaCount == 2)
        // preempt_delay 300 for the instances this node does not start as master.
        #expect(c.instances.filter { $0.initialState == .backup }.allSatisfy { $0.preempt == .preempt(delay: .seconds(300)) })
    }

    /// ../shared/seeds/openshift-ip-failover.txt, with its line breaks removed (the copy broke
    /// its table and footnotes across lines), or nil where the seeds are not checked out.
    static let seed: String? = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let file = root.deletingLastPathComponent().appendingPathComponent("shared/seeds/openshift-ip-failover.txt")
        return (try? String(contentsOf: file, encoding: .utf8))?.replacingOccurrences(of: "\n", with: "")
    }()

    /// The defaults in the seed's footnotes are the ones the environment gets.
    @Test(.enabled(if: seed != nil, "../shared/seeds/openshift-ip-failover.txt is missing"))
    func defaultsAreTheSeeds() throws {
        let seed = try #require(Self.seed)
        let c = try fromEnv(["OPENSHIFT_HA_VIRTUAL_IPS": "1.2.3.4-6,1.2.3.9"])
        let i = try #require(c.instances.first)
        #expect(seed.contains("默认情况下使用\(i.interface)"))                       // footnote 4: eth0
        #expect(seed.contains("默认值为\(c.monitorPort)"))                           // 5: 80
        #expect(seed.contains("默认偏移值为\(i.vrid - 1)"))                           // 6: 10
        #expect(seed.contains("spec.replicas值匹配。默认值为\(c.replicaCount)"))      // 7: 2
        #expect(seed.contains("默认为\(try #require(c.iptablesChain))"))              // 8: INPUT
        #expect(seed.contains("默认值为preempt_delay \(IPFailoverSpec.defaultPreemption.dropFirst(14))"))  // 11: 300
        #expect(c.instances.contains { $0.preempt == .preempt(delay: .seconds(300)) })
        #expect(seed.contains("以秒为单位)。默认值为\(c.checkInterval.components.seconds)"))  // 12: 2
        #expect(seed.contains("集群中最多有 254 个 VIP"))   // OpenShift's limit, which groups lift (VRRPCapacity)
    }

    @Test func emptyVariablesTakeTheDefaults() throws {
        let blank = ["OPENSHIFT_HA_NETWORK_INTERFACE", "OPENSHIFT_HA_MONITOR_PORT", "OPENSHIFT_HA_VRRP_ID_OFFSET",
                     "OPENSHIFT_HA_CHECK_INTERVAL", "OPENSHIFT_HA_PREEMPTION", "OPENSHIFT_HA_REPLICA_COUNT",
                     "OPENSHIFT_HA_VIP_GROUPS", "OPENSHIFT_HA_CHECK_SCRIPT", "OPENSHIFT_HA_NOTIFY_SCRIPT",
                     "OPENSHIFT_HA_UNICAST_PEERS", "OPENSHIFT_HA_CONFIG_NAME"]
        var env = Dictionary(uniqueKeysWithValues: blank.map { ($0, "") })
        env["OPENSHIFT_HA_VIRTUAL_IPS"] = "1.2.3.4-6,1.2.3.9"
        #expect(try fromEnv(env) == fromEnv(["OPENSHIFT_HA_VIRTUAL_IPS": "1.2.3.4-6,1.2.3.9"]))
    }

    /// The deployment of the documentation (and of openshift/images' e2e test), with the check
    /// script of the seed.
    @Test func documentedDeployment() throws {
        let c = try fromEnv([
            "OPENSHIFT_HA_CONFIG_NAME": "ipfailover",
            "OPENSHIFT_HA_VIRTUAL_IPS": "1.1.1.1-2",
            "OPENSHIFT_HA_VIP_GROUPS": "10",
            "OPENSHIFT_HA_NETWORK_INTERFACE": "ens3",
            "OPENSHIFT_HA_MONITOR_PORT": "30060",
            "OPENSHIFT_HA_VRRP_ID_OFFSET": "0",
            "OPENSHIFT_HA_REPLICA_COUNT": "2",
            "OPENSHIFT_HA_USE_UNICAST": "false",
            "OPENSHIFT_HA_IPTABLES_CHAIN": "INPUT",
            "OPENSHIFT_HA_CHECK_SCRIPT": "/etc/keepalive/mycheckscript.sh",
            "OPENSHIFT_HA_PREEMPTION": "preempt_delay 300",
            "OPENSHIFT_HA_CHECK_INTERVAL": "2",
        ], node: "10.0.0.4")
        // 10 groups over 2 VIPs: OpenShift's loop stops when the VIPs run out.
        #expect(c.instances.map(\.name) == ["ipfailover_VIP_1", "ipfailover_VIP_2"])
        #expect(c.instances.map(\.vrid) == [1, 2])
        #expect(c.instances.map(\.vips) == [[vip("1.1.1.1")], [vip("1.1.1.2")]])
        #expect(c.instances.allSatisfy { $0.interface == "ens3" && $0.authPass == "ipfailov" })
        #expect(c.monitorPort == 30060)
        #expect(c.health.checks == [.script("/etc/keepalive/mycheckscript.sh")])   // the script replaces the TCP check
        #expect(c.checkInterval == .seconds(2))
        #expect(c.iptablesChain == "INPUT")
    }

    struct Spread: Sendable, CustomTestStringConvertible {
        var vips: String
        var groups: String?
        var sizes: [Int]
        var testDescription: String { "\(vips) in \(groups ?? "unset") groups" }
    }

    @Test(arguments: [
        Spread(vips: "10.0.0.1-7", groups: nil, sizes: [1, 1, 1, 1, 1, 1, 1]),
        Spread(vips: "10.0.0.1-7", groups: "0", sizes: [1, 1, 1, 1, 1, 1, 1]),
        Spread(vips: "10.0.0.1-7", groups: "3", sizes: [3, 2, 2]),   // the seed's example
        Spread(vips: "10.0.0.1-7", groups: "1", sizes: [7]),
        Spread(vips: "10.0.0.1-7", groups: "7", sizes: [1, 1, 1, 1, 1, 1, 1]),
        Spread(vips: "10.0.0.1-7", groups: "9", sizes: [1, 1, 1, 1, 1, 1, 1]),
        Spread(vips: "10.0.0.1-10", groups: "4", sizes: [3, 3, 2, 2]),
        Spread(vips: "10.0.0.1-9,10.0.1.1", groups: "2", sizes: [5, 5]),
    ])
    func vipGroupsSpread(_ s: Spread) throws {
        var env = ["OPENSHIFT_HA_VIRTUAL_IPS": s.vips]
        env["OPENSHIFT_HA_VIP_GROUPS"] = s.groups
        let c = try fromEnv(env)
        #expect(c.instances.map(\.vips.count) == s.sizes)
        #expect(c.instances.map(\.vrid) == (0..<s.sizes.count).map { UInt8(11 + $0) })
        // Consecutive slices, in the order written.
        let all = try IPSyntax.vipList(s.vips).get().flatMap { r in (0..<r.count).map { r.first.advanced(by: $0)! } }
        #expect(c.instances.flatMap { $0.vips.map(\.address) } == all)
    }

    @Test func sevenVIPsInThreeGroups() throws {
        let c = try fromEnv(["OPENSHIFT_HA_VIRTUAL_IPS": "1.2.3.4-6,1.2.3.9-12", "OPENSHIFT_HA_VIP_GROUPS": "3"])
        #expect(c.instances.map { $0.vips.map(\.description) } == [
            ["1.2.3.4", "1.2.3.5", "1.2.3.6"], ["1.2.3.9", "1.2.3.10"], ["1.2.3.11", "1.2.3.12"],
        ])
    }

    struct Preference: Sendable, CustomTestStringConvertible {
        var node: String?
        var replicas: String
        var preemption: String = "preempt_delay 300"
        var random: UInt64 = 0
        var priorities: [UInt8]
        var masters: [Int]
        var testDescription: String { "node \(node ?? "none"), \(replicas) replicas, \(preemption), random \(random)" }
    }

    /// generate_failover_config: slot = last octet mod 128; the node prefers instances whose
    /// number is a multiple of slot mod replicas + 1, alternating 255 − slot and slot + 1.
    @Test(arguments: [
        // slot 5, 2 replicas: prefers 2 and 4; the others get 5 + random.
        Preference(node: "10.0.0.5", replicas: "2", priorities: [5, 250, 5, 6], masters: [2, 4]),
        Preference(node: "10.0.0.5", replicas: "2", random: .max, priorities: [36, 250, 36, 6], masters: [2, 4]),
        // slot 4: prefers every instance, flip-flopping.
        Preference(node: "10.0.0.4", replicas: "2", priorities: [251, 5, 251, 5], masters: [1, 2, 3, 4]),
        // nopreempt: no MASTER start, and no flip-flop.
        Preference(node: "10.0.0.4", replicas: "2", preemption: "nopreempt", priorities: [251, 251, 251, 251], masters: []),
        // slot 133 mod 128 = 5, 3 replicas: 5 mod 3 + 1 = 3.
        Preference(node: "10.0.0.133", replicas: "3", priorities: [5, 5, 250, 5], masters: [3]),
        // slot 0 would be 255, the address owner: kept at 254.
        Preference(node: "10.0.0.128", replicas: "2", priorities: [254, 1, 254, 1], masters: [1, 2, 3, 4]),
        // slot 64 mod 64 + random 0 would be 0: raised to 1.
        Preference(node: "10.0.0.64", replicas: "3", priorities: [1, 191, 1, 65], masters: [2, 4]),
        // 0 replicas count as 1; no IPv4 address is slot 0.
        Preference(node: nil, replicas: "0", priorities: [254, 1, 254, 1], masters: [1, 2, 3, 4]),
        Preference(node: "fd00::5", replicas: "2", priorities: [254, 1, 254, 1], masters: [1, 2, 3, 4]),
    ])
    func openShiftPriorities(_ p: Preference) throws {
        let c = try fromEnv(["OPENSHIFT_HA_VIRTUAL_IPS": "10.1.0.1-4", "OPENSHIFT_HA_REPLICA_COUNT": p.replicas,
                             "OPENSHIFT_HA_PREEMPTION": p.preemption], node: p.node, random: p.random)
        #expect(c.instances.map(\.priority) == p.priorities)
        #expect(c.instances.enumerated().filter { $0.element.initialState == .master }.map { $0.offset + 1 } == p.masters)
        for i in c.instances {
            switch (p.preemption, i.initialState) {
            case ("nopreempt", _): #expect(i.preempt == .nopreempt)
            case (_, .master): #expect(i.preempt == .preempt(delay: .zero))   // keepalived clears preempt_delay
            case (_, .backup): #expect(i.preempt == .preempt(delay: .seconds(300)))
            }
        }
    }

    @Test func excludedVRIDsAreSkipped() throws {
        let c = try fromEnv(["OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.1-4", "HA_EXCLUDED_VRRP_IDS": "12 14"])
        #expect(c.instances.map(\.vrid) == [11, 13, 15, 16])
    }

    @Test func ipv6InstancesUseVersion3WithoutPassword() throws {
        let c = try fromEnv(["OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.1,fd00::10-11", "OPENSHIFT_HA_CONFIG_NAME": "ipf-dual"])
        #expect(c.instances.map(\.name) == ["ipf_dual_VIP_1", "ipf_dual_VIP_2", "ipf_dual_VIP_3"])
        #expect(c.instances.map(\.version) == [.v2, .v3, .v3])
        #expect(c.instances.map(\.authPass) == ["ipf-dual", nil, nil])
        #expect(c.instances.map { $0.vips.map(\.description) } == [["10.0.0.1"], ["fd00::10"], ["fd00::11"]])
    }

    @Test func unicastPeersGoToTheirFamily() throws {
        let c = try fromEnv(["OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.1,fd00::10",
                             "OPENSHIFT_HA_UNICAST_PEERS": "10.1.0.1, 10.1.0.2,fd01::1,"])
        #expect(c.instances.map(\.unicastPeers) == [[ip("10.1.0.1"), ip("10.1.0.2")], [ip("fd01::1")]])
        #expect(c.instances.allSatisfy { $0.usesUnicast })
    }

    @Test(arguments: [
        ([String: String](), "INPUT" as String?),
        (["OPENSHIFT_HA_IPTABLES_CHAIN": ""], nil),
        (["OPENSHIFT_HA_IPTABLES_CHAIN": "VRRP"], "VRRP"),
        // The newer name turns the rule on whatever its value; the chain keeps IPTABLES_CHAIN's name.
        (["OPENSHIFT_HA_NFTABLES_RULE": "INPUT", "OPENSHIFT_HA_IPTABLES_CHAIN": ""], "INPUT"),
        (["OPENSHIFT_HA_NFTABLES_RULE": "true", "OPENSHIFT_HA_IPTABLES_CHAIN": "VRRP"], "VRRP"),
        (["OPENSHIFT_HA_NFTABLES_RULE": "true"], "INPUT"),
        (["OPENSHIFT_HA_NFTABLES_RULE": "", "OPENSHIFT_HA_IPTABLES_CHAIN": ""], nil),
    ])
    func iptablesChain(_ extra: [String: String], _ chain: String?) throws {
        let c = try fromEnv(extra.merging(["OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.1"]) { a, _ in a })
        #expect(c.iptablesChain == chain)
    }

    @Test func monitorPortZeroDisablesTheCheck() throws {
        let c = try fromEnv(["OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.1", "OPENSHIFT_HA_MONITOR_PORT": "0",
                             "OPENSHIFT_HA_NOTIFY_SCRIPT": "/etc/keepalive/notify.sh"])
        #expect(c.health.checks.isEmpty)
        #expect(c.notifyScript == "/etc/keepalive/notify.sh")
    }

    // MARK: Flags

    @Test func flagsWithKeepalivedDefaults() throws {
        let c = try VRRPSpeakerConfiguration.fromFlags(vrid: 51, interface: "eth1", vips: ["192.168.1.10/24", "192.168.1.20-21"])
        let i = try #require(c.instances.first)
        #expect(c.instances.count == 1)
        #expect(i.name == "VI_1" && i.vrid == 51 && i.priority == 100 && i.version == .v2)
        #expect(i.advertInterval == .seconds(1) && i.preempt == .preempt(delay: .zero) && i.initialState == .backup)
        #expect(i.vips == [vip("192.168.1.10", 24), vip("192.168.1.20"), vip("192.168.1.21")])
        #expect(c.health.checks.isEmpty && c.iptablesChain == nil && c.checkInterval == .seconds(1))
    }

    @Test func flagsEveryField() throws {
        let c = try VRRPSpeakerConfiguration.fromFlags(
            name: "VI_web", vrid: 7, priority: 150, advertInterval: "0.02", version: 3, interface: "eth0",
            vips: ["fd00::7/64"], unicastPeers: ["fd00::2", "fd00::3"], notifyScript: "/usr/local/bin/notify",
            checkScript: "/usr/bin/curl -fs http://localhost/", checkInterval: "0.5", preemptDelay: "2.5",
            vmac: true, monitorPort: 8080, iptablesChain: "VRRP")
        let i = try #require(c.instances.first)
        #expect(i.version == .v3 && i.advertInterval == .milliseconds(20) && i.advertIntervalCentiseconds == 2)
        #expect(i.unicastPeers == [ip("fd00::2"), ip("fd00::3")] && i.useVMAC)
        #expect(i.preempt == .preempt(delay: .milliseconds(2500)))
        #expect(c.health.checks == [.script("/usr/bin/curl -fs http://localhost/")])
        #expect(c.checkInterval == .milliseconds(500) && c.monitorPort == 8080 && c.iptablesChain == "VRRP")
        #expect(i.advertisement().addresses == [ip("fd00::7")])
    }

    @Test func flagsHealthChecks() throws {
        let c = try VRRPSpeakerConfiguration.fromFlags(
            vrid: 7, interface: "eth0", vips: ["10.0.0.7"], checkScript: "/usr/local/bin/check --quick",
            checkTCP: "localhost:8080", checkHTTP: "http://[fd00::1]:8080/healthz?full=1", checkInterval: "0.25",
            checkTimeout: "0.1", checkWeight: -50, checkRise: 2, checkFall: 3)
        #expect(c.health.checks == [
            .script("/usr/local/bin/check --quick"),
            .tcpConnect(host: ip("127.0.0.1"), port: 8080),
            .httpGet(try #require(VRRPHTTPTarget("http://[fd00::1]:8080/healthz?full=1"))),
        ])
        #expect(c.health.checks.map(\.description) == [
            "script /usr/local/bin/check --quick", "tcp 127.0.0.1:8080", "http http://[fd00::1]:8080/healthz?full=1"])
        #expect(c.health.checks[0].scriptArguments == ["/usr/local/bin/check", "--quick"])
        #expect(c.health.interval == .milliseconds(250) && c.health.timeout == .milliseconds(100))
        #expect(c.health.weight == -50 && c.health.rise == 2 && c.health.fall == 3)
        let tracked = c.health.monitorChecks
        #expect(tracked.map(\.name) == c.health.checks.map(\.description))
        #expect(tracked.allSatisfy { $0.weight == -50 && $0.rise == 2 && $0.fall == 3 && $0.timeout == .milliseconds(100) })
    }

    @Test(arguments: [
        ("http://10.0.0.1", "10.0.0.1", 80, "/", "10.0.0.1"),
        ("http://localhost:8080/healthz", "127.0.0.1", 8080, "/healthz", "localhost:8080"),
        ("HTTP://[fd00::1]/a/b", "fd00::1", 80, "/a/b", "[fd00::1]"),
    ])
    func httpTargets(_ url: String, _ host: String, _ port: Int, _ path: String, _ authority: String) throws {
        let t = try #require(VRRPHTTPTarget(url))
        #expect(t.host == ip(host) && Int(t.port) == port && t.path == path && t.authority == authority)
    }

    @Test func theEnvironmentsCheckConnectsTo127001WithoutANodeAddress() throws {
        let c = try fromEnv(["OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.1", "OPENSHIFT_HA_MONITOR_PORT": "8080"], node: nil)
        #expect(c.health.checks == [.tcpConnect(host: ip("127.0.0.1"), port: 8080)])
    }

    @Test func flagsAuthPassAndAdvertisement() throws {
        let c = try VRRPSpeakerConfiguration.fromFlags(vrid: 9, priority: 255, advertInterval: "3", interface: "eth0",
                                                      vips: ["10.0.0.9"], authPass: "12345678", nopreempt: false)
        let a = try #require(c.instances.first).advertisement()
        #expect(a.version == .v2 && a.vrid == 9 && a.priority == 255 && a.maxAdvertIntervalCentiseconds == 300)
        #expect(a.authentication == .password(VRRPPassword("12345678")!))
        #expect(try #require(c.instances.first).advertisement(priority: 0).priority == 0)
    }

    @Test func nopreemptFlag() throws {
        let c = try VRRPSpeakerConfiguration.fromFlags(vrid: 9, interface: "eth0", vips: ["10.0.0.9"], nopreempt: true)
        #expect(c.instances.first?.preempt == .nopreempt)
        #expect(VRRPPreemption.nopreempt.description == "nopreempt")
        #expect(VRRPPreemption.preempt(delay: .seconds(300)).description == "preempt_delay 300")
    }

    // MARK: Refusals

    struct Refusal: Sendable, CustomTestStringConvertible {
        var name: String
        var build: @Sendable () throws -> VRRPSpeakerConfiguration
        var code: VRRPConfigError.Code
        var message: String
        var testDescription: String { name }

        init(_ name: String, env: [String: String], _ code: VRRPConfigError.Code, _ message: String) {
            self.name = name
            self.build = { try fromEnv(env) }
            self.code = code
            self.message = message
        }

        init(_ name: String, _ code: VRRPConfigError.Code, _ message: String,
             build: @escaping @Sendable () throws -> VRRPSpeakerConfiguration) {
            self.name = name
            self.build = build
            self.code = code
            self.message = message
        }
    }

    static func vips(_ v: String, _ extra: [String: String] = [:]) -> [String: String] {
        extra.merging(["OPENSHIFT_HA_VIRTUAL_IPS": v]) { a, _ in a }
    }

    static func flags(vrid: Int = 1, priority: Int = 100, advertInterval: String = "1", version: Int? = nil,
                      interface: String = "eth0", vips: [String] = ["10.0.0.1"], unicastPeers: [String] = [],
                      authPass: String? = nil, checkScript: String? = nil, preemptDelay: String? = nil,
                      nopreempt: Bool = false, monitorPort: Int = 0, name: String = "VI_1") -> @Sendable () throws -> VRRPSpeakerConfiguration {
        { try VRRPSpeakerConfiguration.fromFlags(
            name: name, vrid: vrid, priority: priority, advertInterval: advertInterval, version: version,
            interface: interface, vips: vips, unicastPeers: unicastPeers, authPass: authPass, checkScript: checkScript,
            preemptDelay: preemptDelay, nopreempt: nopreempt, monitorPort: monitorPort) }
    }

    static func health(script: String? = nil, tcp: String? = nil, http: String? = nil, interval: String = "1",
                       timeout: String? = nil, weight: Int = 0, rise: Int = 1, fall: Int = 1) -> @Sendable () throws -> VRRPSpeakerConfiguration {
        { try VRRPSpeakerConfiguration.fromFlags(
            vrid: 1, interface: "eth0", vips: ["10.0.0.1"], checkScript: script, checkTCP: tcp, checkHTTP: http,
            checkInterval: interval, checkTimeout: timeout, checkWeight: weight, checkRise: rise, checkFall: fall) }
    }

    static func instance(_ name: String, vrid: Int, vips: [String], state: VRRPInitialState = .backup,
                         preempt: VRRPPreemption = .preempt(delay: .zero)) throws -> VRRPInstanceSettings {
        try VRRPInstanceSettings(name: name, vrid: vrid, interface: "eth0", vips: vips.map { vip($0) },
                                 preempt: preempt, initialState: state)
    }

    static let refusals: [Refusal] = [
        // VRIDs
        Refusal("offset + VIPs above 255", env: vips("10.0.0.1-246"), .vrid,
                "OPENSHIFT_HA_VRRP_ID_OFFSET 10: VRID 256 is above 255: offset 10 + 246 virtual IPs (one VRRP instance each) must be at most 255; lower the offset or set OPENSHIFT_HA_VIP_GROUPS"),
        Refusal("offset + groups above 255", env: vips("10.0.0.1-10", ["OPENSHIFT_HA_VRRP_ID_OFFSET": "250", "OPENSHIFT_HA_VIP_GROUPS": "6"]), .vrid,
                "OPENSHIFT_HA_VRRP_ID_OFFSET 250: VRID 256 is above 255: offset 250 + 6 VIP groups must be at most 255; lower the offset or OPENSHIFT_HA_VIP_GROUPS"),
        Refusal("excluded VRIDs push past 255", env: vips("10.0.0.1-5", ["OPENSHIFT_HA_VRRP_ID_OFFSET": "250", "HA_EXCLUDED_VRRP_IDS": "252"]), .vrid,
                "OPENSHIFT_HA_VRRP_ID_OFFSET 250: VRID 256 is above 255: offset 250 + 5 virtual IPs (one VRRP instance each) + 1 skipped by HA_EXCLUDED_VRRP_IDS must be at most 255; lower the offset or set OPENSHIFT_HA_VIP_GROUPS"),
        Refusal("offset 256", env: vips("10.0.0.1", ["OPENSHIFT_HA_VRRP_ID_OFFSET": "256"]), .number,
                "OPENSHIFT_HA_VRRP_ID_OFFSET \"256\" is not a number in 0...255"),
        Refusal("offset -1", env: vips("10.0.0.1", ["OPENSHIFT_HA_VRRP_ID_OFFSET": "-1"]), .number,
                "OPENSHIFT_HA_VRRP_ID_OFFSET \"-1\" is not a number in 0...255"),
        Refusal("excluded VRIDs with commas", env: vips("10.0.0.1", ["HA_EXCLUDED_VRRP_IDS": "12,13"]), .vrid,
                "HA_EXCLUDED_VRRP_IDS: \"12,13\" is not a VRID in 1...255 (separate VRIDs with spaces)"),
        Refusal("--vrid 0", .vrid, "--vrid: 0 is not in 1...255", build: flags(vrid: 0)),
        Refusal("--vrid 256", .vrid, "--vrid: 256 is not in 1...255", build: flags(vrid: 256)),
        Refusal("two instances, one VRID", .vrid,
                "instance b: vrid 5 on eth0 is also the vrid of instance a; a VRID is unique per interface and address family") {
            try VRRPSpeakerConfiguration(instances: [instance("a", vrid: 5, vips: ["10.0.0.1"]), instance("b", vrid: 5, vips: ["10.0.0.2"])])
        },

        // VIPs: overlap, duplicates, syntax
        Refusal("VIP range overlaps an address", env: vips("1.2.3.4-6,1.2.3.5"), .vipOverlap,
                "OPENSHIFT_HA_VIRTUAL_IPS: 1.2.3.5 is listed twice: in 1.2.3.4-1.2.3.6 and in 1.2.3.5; each VIP may be listed once"),
        Refusal("VIP ranges overlap", env: vips("1.2.3.4-6,1.2.3.6-9", ["OPENSHIFT_HA_VIP_GROUPS": "2"]), .vipOverlap,
                "OPENSHIFT_HA_VIRTUAL_IPS: 1.2.3.6 is listed twice: in 1.2.3.4-1.2.3.6 and in 1.2.3.6-1.2.3.9; each VIP may be listed once"),
        Refusal("duplicate VIP", env: vips("10.0.0.1,10.0.0.1"), .vipOverlap,
                "OPENSHIFT_HA_VIRTUAL_IPS: 10.0.0.1 is listed twice; each VIP may be listed once"),
        Refusal("VIP in two instances", .vipOverlap,
                "instance b: vip 10.0.0.2 is also a vip of instance a; a VIP belongs to one instance") {
            try VRRPSpeakerConfiguration(instances: [instance("a", vrid: 1, vips: ["10.0.0.1", "10.0.0.2"]), instance("b", vrid: 2, vips: ["10.0.0.2"])])
        },
        Refusal("--vip twice", .vipOverlap, "instance VI_1: vip 10.0.0.1/24 is listed twice (also as 10.0.0.1)",
                build: flags(vips: ["10.0.0.1", "10.0.0.1/24"])),
        Refusal("VIP item does not parse", env: vips("1.2.3.4-6,1.2.3.x"), .vipSyntax,
                "OPENSHIFT_HA_VIRTUAL_IPS: \"1.2.3.x\" is not an address or a range (1.2.3.4, 1.2.3.4-6, fd00::10-1f)"),
        Refusal("VIP range backwards", env: vips("1.2.3.6-4"), .vipSyntax,
                "OPENSHIFT_HA_VIRTUAL_IPS: \"1.2.3.6-4\" is not an address or a range (1.2.3.4, 1.2.3.4-6, fd00::10-1f)"),
        Refusal("IPv6 range end not hex", env: vips("fd00::10-1g"), .vipSyntax,
                "OPENSHIFT_HA_VIRTUAL_IPS: \"fd00::10-1g\" is not an address or a range (1.2.3.4, 1.2.3.4-6, fd00::10-1f)"),
        Refusal("no VIRTUAL_IPS", env: [:], .missing,
                "OPENSHIFT_HA_VIRTUAL_IPS is required: the virtual IPs, such as 1.2.3.4-6,1.2.3.9"),
        Refusal("VIRTUAL_IPS of commas", env: vips(",,"), .missing, "OPENSHIFT_HA_VIRTUAL_IPS \",,\" holds no address"),
        Refusal("--vip does not parse", .vipSyntax,
                "--vip \"10.0.0.x\" is not an address, ADDR/PREFIX or a range (10.0.0.5, 10.0.0.5/24, 10.0.0.5-9, fd00::10-1f)",
                build: flags(vips: ["10.0.0.x"])),
        Refusal("--vip prefix /33", .vipSyntax, "--vip \"10.0.0.1/33\": prefix length /33 is not in 1...32",
                build: flags(vips: ["10.0.0.1/33"])),
        Refusal("--vip prefix /0", .vipSyntax, "--vip \"10.0.0.1/0\": prefix length /0 is not in 1...32",
                build: flags(vips: ["10.0.0.1/0"])),
        Refusal("no --vip", .missing, "--vip is required: the virtual addresses, ADDR[/PREFIX], repeatable",
                build: flags(vips: [])),

        // Priority
        Refusal("--priority 0", .priority,
                "instance VI_1: priority 0 is not in 1...255 (1-254 for a backup, 255 for the address owner; 0 is only sent by a master that leaves)",
                build: flags(priority: 0)),
        Refusal("--priority 256", .priority,
                "instance VI_1: priority 256 is not in 1...255 (1-254 for a backup, 255 for the address owner; 0 is only sent by a master that leaves)",
                build: flags(priority: 256)),

        // Advert interval
        Refusal("fraction with VRRP 2", .advertInterval,
                "instance VI_1: advert interval 0.5 s is not whole seconds, and VRRP 2 carries whole seconds; use version 3 for fractions",
                build: flags(advertInterval: "0.5")),
        Refusal("fraction with explicit VRRP 2", .advertInterval,
                "instance VI_1: advert interval 1.25 s is not whole seconds, and VRRP 2 carries whole seconds; use version 3 for fractions",
                build: flags(advertInterval: "1.25", version: 2)),
        Refusal("VRRP 2 above 255 s", .advertInterval, "instance VI_1: advert interval 256 s is not in 1...255 s, the range of VRRP 2",
                build: flags(advertInterval: "256")),
        Refusal("VRRP 2 zero", .advertInterval, "instance VI_1: advert interval 0 s is not in 1...255 s, the range of VRRP 2",
                build: flags(advertInterval: "0")),
        Refusal("VRRP 3 above 40.95 s", .advertInterval, "instance VI_1: advert interval 40.96 s is not in 0.01...40.95 s, the range of VRRP 3",
                build: flags(advertInterval: "40.96", version: 3)),
        Refusal("VRRP 3 zero", .advertInterval, "instance VI_1: advert interval 0 s is not in 0.01...40.95 s, the range of VRRP 3",
                build: flags(advertInterval: "0.00", version: 3)),
        Refusal("VRRP 3 below a centisecond", .advertInterval,
                "instance VI_1: advert interval 0.125 s is not whole centiseconds, the unit VRRP 3 carries",
                build: flags(advertInterval: "0.125", version: 3)),
        Refusal("--advert-interval not a number", .advertInterval, "--advert-interval \"1s\" is not a number of seconds (1, 0.5)",
                build: flags(advertInterval: "1s")),

        // Version and authentication
        Refusal("--version 4", .version, "--version 4 is not 2 or 3", build: flags(version: 4)),
        Refusal("VRRP 2 with IPv6", .version, "instance VI_1: version 2 is IPv4 only, but vip fd00::1 is IPv6; use version 3",
                build: flags(version: 2, vips: ["fd00::1"])),
        Refusal("auth-pass with VRRP 3", .authentication, "--auth-pass needs --version 2 (VRRPv3 has no authentication)",
                build: flags(version: 3, authPass: "secret")),
        Refusal("auth-pass with IPv6 (version 3 by default)", .authentication,
                "instance VI_1: auth-pass is set with version 3, which has no authentication (RFC 9568); drop it or use version 2",
                build: flags(vips: ["fd00::1"], authPass: "secret")),
        Refusal("auth-pass of 9 bytes", .authentication,
                "instance VI_1: auth-pass of 9 bytes is longer than the 8 that keepalived's auth_type PASS carries",
                build: flags(authPass: "123456789")),
        Refusal("auth-pass of 10 UTF-8 bytes", .authentication,
                "instance VI_1: auth-pass of 10 bytes is longer than the 8 that keepalived's auth_type PASS carries",
                build: flags(authPass: "pässwörd")),
        Refusal("empty auth-pass", .authentication, "instance VI_1: auth-pass is empty", build: flags(authPass: "")),

        // Address families
        Refusal("IPv4 and IPv6 in one instance", .addressFamily,
                "instance VI_1: vip fd00::1 is IPv6 but vip 10.0.0.1 is IPv4; VRRP carries one address family per instance",
                build: flags(version: 3, vips: ["10.0.0.1", "fd00::1"])),
        Refusal("a group mixing families", env: vips("10.0.0.1,fd00::1", ["OPENSHIFT_HA_VIP_GROUPS": "1"]), .addressFamily,
                "OPENSHIFT_HA_VIP_GROUPS 1: instance OpenShift_IPFailover_VIP_1 would hold 10.0.0.1 (IPv4) and fd00::1 (IPv6); VRRP carries one address family per instance, so order OPENSHIFT_HA_VIRTUAL_IPS and choose the groups so that none holds both"),
        Refusal("unicast peer of the other family", .addressFamily,
                "instance VI_1: unicast peer fd00::2 is IPv6 but the instance's vips are IPv4",
                build: flags(unicastPeers: ["10.0.0.2", "fd00::2"])),
        Refusal("UNICAST_PEERS of the other family", env: vips("10.0.0.1", ["OPENSHIFT_HA_UNICAST_PEERS": "10.0.1.1,fd00::2"]), .addressFamily,
                "OPENSHIFT_HA_UNICAST_PEERS: fd00::2 is IPv6, but every VIP is IPv4"),
        Refusal("UNICAST_PEERS missing a family", env: vips("10.0.0.1,fd00::1", ["OPENSHIFT_HA_UNICAST_PEERS": "10.0.1.1"]), .addressFamily,
                "OPENSHIFT_HA_UNICAST_PEERS has no IPv6 address for the IPv6 VIPs; each instance sends to the peers of its own family"),

        // Unicast peers
        Refusal("UNICAST_PEERS item", env: vips("10.0.0.1", ["OPENSHIFT_HA_UNICAST_PEERS": "10.0.1.1,10.0.1.x"]), .unicastPeer,
                "OPENSHIFT_HA_UNICAST_PEERS: \"10.0.1.x\" is not an IP address"),
        Refusal("UNICAST_PEERS repeated", env: vips("10.0.0.1", ["OPENSHIFT_HA_UNICAST_PEERS": "10.0.1.1,10.0.1.1"]), .unicastPeer,
                "OPENSHIFT_HA_UNICAST_PEERS: 10.0.1.1 is listed twice"),
        Refusal("--unicast-peer repeated", .unicastPeer, "instance VI_1: unicast peer 10.0.0.2 is listed twice",
                build: flags(unicastPeers: ["10.0.0.2", "10.0.0.2"])),
        Refusal("--unicast-peer is a VIP", .unicastPeer, "instance VI_1: unicast peer 10.0.0.1 is also one of the instance's vips",
                build: flags(unicastPeers: ["10.0.0.1"])),
        Refusal("--unicast-peer does not parse", .unicastPeer, "--unicast-peer \"peer-a\" is not an IP address",
                build: flags(unicastPeers: ["peer-a"])),

        // Preemption
        Refusal("PREEMPTION misspelt", env: vips("10.0.0.1", ["OPENSHIFT_HA_PREEMPTION": "preempt 300"]), .preemption,
                "OPENSHIFT_HA_PREEMPTION \"preempt 300\" must be \"nopreempt\" or \"preempt_delay N\" with N from 0 to 1000 seconds"),
        Refusal("PREEMPTION without a delay", env: vips("10.0.0.1", ["OPENSHIFT_HA_PREEMPTION": "preempt_delay"]), .preemption,
                "OPENSHIFT_HA_PREEMPTION \"preempt_delay\" must be \"nopreempt\" or \"preempt_delay N\" with N from 0 to 1000 seconds"),
        Refusal("PREEMPTION delay too long", env: vips("10.0.0.1", ["OPENSHIFT_HA_PREEMPTION": "preempt_delay 1001"]), .preemption,
                "OPENSHIFT_HA_PREEMPTION \"preempt_delay 1001\" must be \"nopreempt\" or \"preempt_delay N\" with N from 0 to 1000 seconds"),
        Refusal("PREEMPTION with a trailing word", env: vips("10.0.0.1", ["OPENSHIFT_HA_PREEMPTION": "nopreempt please"]), .preemption,
                "OPENSHIFT_HA_PREEMPTION \"nopreempt please\" must be \"nopreempt\" or \"preempt_delay N\" with N from 0 to 1000 seconds"),
        Refusal("--preempt-delay and --nopreempt", .conflict, "--preempt-delay 10 and --nopreempt contradict each other; give one",
                build: flags(preemptDelay: "10", nopreempt: true)),
        Refusal("--preempt-delay 1001", .preemption, "instance VI_1: preempt delay 1001 s is not in 0...1000 s",
                build: flags(preemptDelay: "1001")),
        Refusal("--preempt-delay not a number", .preemption, "--preempt-delay \"5m\" is not a number of seconds in 0...1000",
                build: flags(preemptDelay: "5m")),
        Refusal("nopreempt for the address owner", .preemption,
                "instance VI_1: nopreempt with priority 255: the address owner always preempts",
                build: flags(priority: 255, nopreempt: true)),
        Refusal("nopreempt with an initial MASTER", .preemption,
                "instance a: nopreempt cannot apply to an instance that starts as MASTER (keepalived clears it); start as BACKUP") {
            try VRRPSpeakerConfiguration(instances: [instance("a", vrid: 1, vips: ["10.0.0.1"], state: .master, preempt: .nopreempt)])
        },
        Refusal("preempt delay with an initial MASTER", .preemption,
                "instance a: preempt delay 300 s cannot apply to an instance that starts as MASTER (keepalived clears it); use delay 0 or start as BACKUP") {
            try VRRPSpeakerConfiguration(instances: [instance("a", vrid: 1, vips: ["10.0.0.1"], state: .master, preempt: .preempt(delay: .seconds(300)))])
        },

        // Numbers in the environment
        Refusal("MONITOR_PORT not a number", env: vips("10.0.0.1", ["OPENSHIFT_HA_MONITOR_PORT": "http"]), .number,
                "OPENSHIFT_HA_MONITOR_PORT \"http\" is not a port number in 0...65535 (0 disables the check)"),
        Refusal("MONITOR_PORT with a protocol", env: vips("10.0.0.1", ["OPENSHIFT_HA_MONITOR_PORT": "80/tcp"]), .number,
                "OPENSHIFT_HA_MONITOR_PORT \"80/tcp\" is not a port number in 0...65535 (0 disables the check)"),
        Refusal("MONITOR_PORT 65536", env: vips("10.0.0.1", ["OPENSHIFT_HA_MONITOR_PORT": "65536"]), .number,
                "OPENSHIFT_HA_MONITOR_PORT \"65536\" is not a port number in 0...65535 (0 disables the check)"),
        Refusal("CHECK_INTERVAL with a unit", env: vips("10.0.0.1", ["OPENSHIFT_HA_CHECK_INTERVAL": "2s"]), .number,
                "OPENSHIFT_HA_CHECK_INTERVAL \"2s\" is not a whole number of seconds in 1...86400"),
        Refusal("CHECK_INTERVAL 0", env: vips("10.0.0.1", ["OPENSHIFT_HA_CHECK_INTERVAL": "0"]), .number,
                "OPENSHIFT_HA_CHECK_INTERVAL \"0\" is not a whole number of seconds in 1...86400"),
        Refusal("REPLICA_COUNT not a number", env: vips("10.0.0.1", ["OPENSHIFT_HA_REPLICA_COUNT": "two"]), .number,
                "OPENSHIFT_HA_REPLICA_COUNT \"two\" is not a whole number, 0 or more"),
        Refusal("REPLICA_COUNT negative", env: vips("10.0.0.1", ["OPENSHIFT_HA_REPLICA_COUNT": "-1"]), .number,
                "OPENSHIFT_HA_REPLICA_COUNT \"-1\" is not a whole number, 0 or more"),
        Refusal("VIP_GROUPS not a number", env: vips("10.0.0.1", ["OPENSHIFT_HA_VIP_GROUPS": "many"]), .number,
                "OPENSHIFT_HA_VIP_GROUPS \"many\" is not a whole number (unset or 0: one VRRP instance per VIP)"),
        Refusal("--monitor-port 70000", .number, "monitor port 70000 is not in 0...65535 (0 disables the check)",
                build: flags(monitorPort: 70000)),

        // Names, scripts, chain
        Refusal("interface with a space", env: vips("10.0.0.1", ["OPENSHIFT_HA_NETWORK_INTERFACE": "eth0 eth1"]), .interface,
                "OPENSHIFT_HA_NETWORK_INTERFACE \"eth0 eth1\" is not a network interface name (1-15 characters, no '/', ':' or whitespace)"),
        Refusal("--interface too long", .interface,
                "instance VI_1: interface \"averyverylongname0\" is not a network interface name (1-15 characters, no '/', ':' or whitespace)",
                build: flags(interface: "averyverylongname0")),
        Refusal("instance name with a space", .name,
                "instance name \"VI 1\" must be 1-128 printable ASCII characters without whitespace, quotes, braces, '#' or '!'",
                build: flags(name: "VI 1")),
        Refusal("two instances, one name", .name, "instance name a is used twice") {
            try VRRPSpeakerConfiguration(instances: [instance("a", vrid: 1, vips: ["10.0.0.1"]), instance("a", vrid: 2, vips: ["10.0.0.2"])])
        },
        Refusal("CHECK_SCRIPT not a full path", env: vips("10.0.0.1", ["OPENSHIFT_HA_CHECK_SCRIPT": "mycheckscript.sh"]), .script,
                "OPENSHIFT_HA_CHECK_SCRIPT \"mycheckscript.sh\" must be the full path of a script in the pod's filesystem, such as /etc/keepalive/mycheckscript.sh"),
        Refusal("NOTIFY_SCRIPT not a full path", env: vips("10.0.0.1", ["OPENSHIFT_HA_NOTIFY_SCRIPT": "notify.sh"]), .script,
                "OPENSHIFT_HA_NOTIFY_SCRIPT \"notify.sh\" must be the full path of a script in the pod's filesystem, such as /etc/keepalive/mycheckscript.sh"),
        Refusal("empty --check-script", .script, "--check-script \" \" must be a command: not empty, on one line",
                build: flags(checkScript: " ")),

        // Health checks from flags
        Refusal("--check-interval 0", .number, "--check-interval \"0\" is not a number of seconds above 0 and at most 86400 (1, 0.5)",
                build: health(tcp: "127.0.0.1:80", interval: "0")),
        Refusal("--check-interval with a unit", .number, "--check-interval \"2s\" is not a number of seconds above 0 and at most 86400 (1, 0.5)",
                build: health(tcp: "127.0.0.1:80", interval: "2s")),
        Refusal("--check-timeout negative", .number, "--check-timeout \"-1\" is not a number of seconds above 0 and at most 86400 (2, 0.5)",
                build: health(tcp: "127.0.0.1:80", timeout: "-1")),
        Refusal("--check-weight 254", .number, "--check-weight 254 is not in -253...253 (keepalived's range; 0, the default, means FAULT)",
                build: health(tcp: "127.0.0.1:80", weight: 254)),
        Refusal("--check-rise 0", .number, "--check-rise 0 is not in 1...1000", build: health(tcp: "127.0.0.1:80", rise: 0)),
        Refusal("--check-fall 1001", .number, "--check-fall 1001 is not in 1...1000", build: health(tcp: "127.0.0.1:80", fall: 1001)),
        Refusal("--check-weight without a check", .check, "--check-weight needs a check: give --check-script, --check-tcp or --check-http",
                build: health(weight: -20)),
        Refusal("--check-tcp without a port", .check,
                "--check-tcp \"10.0.0.1\" is not HOST:PORT with an IP address or localhost and a port in 1...65535 (10.0.0.1:80, [fd00::1]:80)",
                build: health(tcp: "10.0.0.1")),
        Refusal("--check-tcp port 70000", .check,
                "--check-tcp \"10.0.0.1:70000\" is not HOST:PORT with an IP address or localhost and a port in 1...65535 (10.0.0.1:80, [fd00::1]:80)",
                build: health(tcp: "10.0.0.1:70000")),
        Refusal("--check-tcp port 0", .check,
                "--check-tcp \"10.0.0.1:0\" is not HOST:PORT with an IP address or localhost and a port in 1...65535 (10.0.0.1:80, [fd00::1]:80)",
                build: health(tcp: "10.0.0.1:0")),
        Refusal("--check-tcp with a name", .check,
                "--check-tcp \"db.example:5432\" is not HOST:PORT with an IP address or localhost and a port in 1...65535 (10.0.0.1:80, [fd00::1]:80)",
                build: health(tcp: "db.example:5432")),
        Refusal("--check-tcp IPv6 without brackets", .check,
                "--check-tcp \"fd00::1:80\" is not HOST:PORT with an IP address or localhost and a port in 1...65535 (10.0.0.1:80, [fd00::1]:80)",
                build: health(tcp: "fd00::1:80")),
        Refusal("--check-http https", .check,
                "--check-http \"https://10.0.0.1/\": https is not supported; the built-in check speaks plain HTTP (use --check-script for TLS)",
                build: health(http: "https://10.0.0.1/")),
        Refusal("--check-http not a URL", .check,
                "--check-http \"10.0.0.1/healthz\" is not http://HOST[:PORT][/PATH] with an IP address or localhost",
                build: health(http: "10.0.0.1/healthz")),
        Refusal("IPTABLES_CHAIN starting with a digit", env: vips("10.0.0.1", ["OPENSHIFT_HA_IPTABLES_CHAIN": "1INPUT"]), .chain,
                "OPENSHIFT_HA_IPTABLES_CHAIN \"1INPUT\" must be an nftables chain name: 1-64 characters, a letter or '_' first, then letters, digits, '_', '-', '.' or '/'"),
        Refusal("IPTABLES_CHAIN with a semicolon", env: vips("10.0.0.1", ["OPENSHIFT_HA_IPTABLES_CHAIN": "INPUT;drop"]), .chain,
                "OPENSHIFT_HA_IPTABLES_CHAIN \"INPUT;drop\" must be an nftables chain name: 1-64 characters, a letter or '_' first, then letters, digits, '_', '-', '.' or '/'"),

        // Capacity
        Refusal("a group beyond one IPv6 advert", env: vips("fd00::1-5a", ["OPENSHIFT_HA_VIP_GROUPS": "1"]), .capacity,
                "OPENSHIFT_HA_VIP_GROUPS 1: instance OpenShift_IPFailover_VIP_1 would hold 90 IPv6 VIPs, more than the 89 one advertisement carries on a 1500-byte MTU; use at least 2 groups"),
        Refusal("a --vip range beyond one advert", .capacity, "--vip \"10.0.0.0-10.0.1.0\" holds 257 addresses; one instance carries at most 255 IPv4 VIPs",
                build: flags(vips: ["10.0.0.0-10.0.1.0"])),
        Refusal("90 IPv6 --vip flags", .capacity,
                "instance VI_1: 90 IPv6 vips do not fit one advertisement; on a 1500-byte MTU an instance carries at most 89",
                build: flags(vips: (1...90).map { "fd00::\(String($0, radix: 16))" })),
    ]

    @Test(arguments: refusals)
    func refused(_ r: Refusal) {
        let error = #expect(throws: VRRPConfigError.self) { try r.build() }
        #expect(error?.code == r.code)
        #expect(error?.message == r.message)
    }

    // MARK: Capacity

    @Test func capacityNumbers() {
        #expect(VRRPCapacity.maxIPv4AddressesPerInstance == 255)
        #expect(VRRPCapacity.maxAddressesPerInstance(.v4, version: .v3) == 255)
        #expect(VRRPCapacity.maxIPv6AddressesPerInstance == 89)                 // (1500 − 14 − 40 − 8) / 16
        #expect(VRRPCapacity.maxAddressesPerInstance(.v6, version: .v3, mtu: 9000) == 255)
        #expect(VRRPCapacity.maxAddressesPerInstance(.v6, version: .v3, mtu: 1280) == 76)
        #expect(VRRPCapacity.maxIPv4VirtualIPs == 65_025)
        #expect(VRRPCapacity.maxIPv6VirtualIPs == 22_695)
        #expect(VRRPCapacity.maxVirtualIPs(.v4, vrrpIDOffset: 10) == 62_475)
        #expect(VRRPCapacity.maxVirtualIPs(.v6, vrrpIDOffset: 10) == 21_805)
    }

    @Test func oneInstanceCarries255IPv4Or89IPv6() throws {
        let v4 = try VRRPSpeakerConfiguration.fromFlags(vrid: 1, interface: "eth0", vips: ["10.0.0.1-255"])
        #expect(v4.virtualIPCount == 255)
        #expect(v4.instances[0].advertisement().addresses.count == 255)
        let v6 = try VRRPSpeakerConfiguration.fromFlags(vrid: 1, interface: "eth0", vips: ["fd00::1-59"])
        #expect(v6.virtualIPCount == 89)
        #expect(throws: VRRPConfigError.self) {
            try VRRPSpeakerConfiguration.fromFlags(vrid: 1, interface: "eth0", vips: ["10.0.0.0-255"])
        }
    }

    /// OpenShift's 254: without groups one VIP per VRID, from offset + 1 to 255.
    @Test func withoutGroupsOneVIPPerVRID() throws {
        #expect(try fromEnv(["OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.1-245"]).instances.count == 245)
        #expect(throws: VRRPConfigError.self) { try fromEnv(["OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.1-246"]) }
        let zero = ["OPENSHIFT_HA_VRRP_ID_OFFSET": "0"]
        #expect(try fromEnv(Self.vips("10.0.0.1-10.0.0.255", zero)).instances.last?.vrid == 255)
        #expect(throws: VRRPConfigError.self) { try fromEnv(Self.vips("10.0.0.1-10.0.1.0", zero)) }
    }

    /// Baton's total: 255 instances × 255 IPv4 VIPs = 65,025, with offset 0 and 255 groups.
    @Test func maxIPv4VIPsAcceptedOneMoreRefused() throws {
        let groups = ["OPENSHIFT_HA_VRRP_ID_OFFSET": "0", "OPENSHIFT_HA_VIP_GROUPS": "255"]
        let c = try fromEnv(Self.vips("10.0.0.0-10.0.254.0", groups))     // 254 × 256 + 1 = 65,025
        #expect(c.virtualIPCount == VRRPCapacity.maxIPv4VirtualIPs)
        #expect(c.instances.count == 255)
        #expect(c.instances.allSatisfy { $0.vips.count == 255 })
        #expect(c.instances.map(\.vrid) == Array(1...255))

        let error = #expect(throws: VRRPConfigError.self) { try fromEnv(Self.vips("10.0.0.0-10.0.254.1", groups)) }
        #expect(error?.code == .capacity)
        #expect(error?.message == "OPENSHIFT_HA_VIRTUAL_IPS holds 65026 addresses; Baton handles at most 65025 VIPs (255 instances × 255 IPv4 addresses; 22695 for IPv6)")
    }

    /// 255 instances × 89 IPv6 VIPs = 22,695.
    @Test func maxIPv6VIPsAcceptedOneMoreRefused() throws {
        let groups = ["OPENSHIFT_HA_VRRP_ID_OFFSET": "0", "OPENSHIFT_HA_VIP_GROUPS": "255"]
        let c = try fromEnv(Self.vips("fd00::0-58a6", groups))            // 0x58a7 = 22,695
        #expect(c.virtualIPCount == VRRPCapacity.maxIPv6VirtualIPs)
        #expect(c.instances.allSatisfy { $0.vips.count == 89 && $0.version == .v3 })

        let error = #expect(throws: VRRPConfigError.self) { try fromEnv(Self.vips("fd00::0-58a7", groups)) }
        #expect(error?.code == .capacity)
        #expect(error?.message == "OPENSHIFT_HA_VIP_GROUPS 255: instance OpenShift_IPFailover_VIP_1 would hold 90 IPv6 VIPs, more than the 89 one advertisement carries on a 1500-byte MTU; 256 groups would be needed, but VRIDs 1...255 leave room for 255 instances: Baton handles at most 255 × 89 = 22695 IPv6 VIPs at offset 0")
    }

    /// At the default offset of 10: 245 × 255 = 62,475.
    @Test func defaultOffsetTotal() throws {
        let groups = ["OPENSHIFT_HA_VIP_GROUPS": "245"]
        #expect(try fromEnv(Self.vips("10.0.0.1-10.0.244.11", groups)).virtualIPCount == 62_475)
        let error = #expect(throws: VRRPConfigError.self) { try fromEnv(Self.vips("10.0.0.1-10.0.244.12", groups)) }
        #expect(error?.code == .capacity)
    }
}
