import BatonAPI
import BatonCore
@testable import BatonVRRP
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What the speaker adds to the host, as values: the virtual MAC interfaces (named and built as
/// keepalived's `use_vmac`), the sysctls for them, the nftables table admitting VRRP, and the
/// HTTP check's reading of a status line.
@Suite struct VRRPHostResourcesTests {
    static func instance(_ name: String, vrid: UInt8, vip: String, vmac: Bool = true, interface: String = "eth0",
                         peers: [String] = []) -> VRRPSpeaker.InstanceConfiguration {
        let address = VirtualAddress(vip)!
        return VRRPSpeaker.InstanceConfiguration(
            name: name, version: address.address.family == .v4 ? .v2 : .v3, vrid: vrid, interface: interface,
            virtualAddresses: [address], unicastPeers: peers.map(ip), virtualMAC: vmac)
    }

    // MARK: Virtual MAC

    @Test func theVirtualMACIsRFC9568sAndTheNameKeepalivedsDefault() throws {
        let plan = VRRPVirtualMAC.plan([Self.instance("VI_51", vrid: 51, vip: "192.168.1.10/24"),
                                        Self.instance("VI_6", vrid: 51, vip: "fd00::10", interface: "eth1"),
                                        Self.instance("VI_7", vrid: 7, vip: "fd00::7"),
                                        Self.instance("VI_8", vrid: 8, vip: "10.0.0.8", vmac: false)])
        let v4 = try #require(plan["VI_51"])
        #expect(v4.name == "vrrp.51" && v4.parent == "eth0")
        #expect(v4.addressText == "00:00:5e:00:01:33")
        // keepalived's second choice for IPv6 when vrrp.VRID is taken (by the IPv4 instance here).
        let v6 = try #require(plan["VI_6"])
        #expect(v6.name == "vrrp6.51" && v6.parent == "eth1" && v6.addressText == "00:00:5e:00:02:33")
        #expect(plan["VI_7"]?.name == "vrrp.7", "alone, an IPv6 instance gets vrrp.VRID too")
        #expect(plan["VI_8"] == nil)
    }

    @Test func twoIPv4InstancesWithOneVRIDOnTwoInterfacesGetNumberedNames() {
        let plan = VRRPVirtualMAC.plan([Self.instance("a", vrid: 9, vip: "10.0.0.1", interface: "eth0"),
                                        Self.instance("b", vrid: 9, vip: "10.1.0.1", interface: "eth1")])
        #expect(plan["a"]?.name == "vrrp.9" && plan["b"]?.name == "vrrp1.9")
    }

    @Test func theMacvlanIsPrivateWithNoGeneratedAddress() throws {
        let v4 = try #require(VRRPVirtualMAC.plan([Self.instance("VI_51", vrid: 51, vip: "192.168.1.10/24")])["VI_51"])
        #expect(v4.addCommands(linkLocal: nil) == [
            "link add link eth0 name vrrp.51 address 00:00:5e:00:01:33 type macvlan mode private",
            "link set dev vrrp.51 addrgenmode none",
            "link set dev vrrp.51 up",
        ])
        #expect(v4.sysctls.map(\.path) == ["net/ipv4/conf/vrrp.51/arp_ignore", "net/ipv4/conf/vrrp.51/accept_local",
                                          "net/ipv4/conf/vrrp.51/rp_filter", "net/ipv4/conf/vrrp.51/promote_secondaries",
                                          "net/ipv6/conf/vrrp.51/disable_ipv6"])
        #expect(v4.sysctls.map(\.value) == ["1", "1", "0", "1", "1"])
        #expect(VRRPVirtualMAC.parentSysctls("eth0").map { "\($0.path)=\($0.value)" }
                == ["net/ipv4/conf/eth0/arp_ignore=1", "net/ipv4/conf/eth0/arp_filter=1"])

        let v6 = try #require(VRRPVirtualMAC.plan([Self.instance("VI_7", vrid: 7, vip: "fd00::7")])["VI_7"])
        #expect(v6.addCommands(linkLocal: ip("fe80::1")).last == "address add fe80::1/64 dev vrrp.7 nodad")
        #expect(v6.sysctls.isEmpty)
    }

    @Test func aSetAllRPFilterMovesOntoEachInterfaceAsKeepalivedDoes() {
        #expect(VRRPVirtualMAC.rpFilterWrites(current: ["net/ipv4/conf/all/rp_filter": "0", "net/ipv4/conf/eth0/rp_filter": "0"]).isEmpty)
        let writes = VRRPVirtualMAC.rpFilterWrites(current: [
            "net/ipv4/conf/all/rp_filter": "1", "net/ipv4/conf/default/rp_filter": "0",
            "net/ipv4/conf/eth0/rp_filter": "2", "net/ipv4/conf/lo/rp_filter": "0",
        ])
        #expect(writes.map { "\($0.path)=\($0.value)" } == [
            "net/ipv4/conf/default/rp_filter=1", "net/ipv4/conf/lo/rp_filter=1", "net/ipv4/conf/all/rp_filter=0"])
    }

    // MARK: nftables

    @Test func theTableAdmitsVRRPOnEachInstancesInterfacesAndFromItsPeers() {
        let ruleset = VRRPAdmitRuleset(chain: "INPUT", instances: [
            Self.instance("ipfailover_VIP_1", vrid: 11, vip: "10.0.0.1", vmac: false),
            Self.instance("ipfailover_VIP_2", vrid: 12, vip: "10.0.0.2", vmac: false),
            Self.instance("ipfailover_VIP_3", vrid: 13, vip: "10.0.0.3", peers: ["10.0.0.12", "10.0.0.13"]),
            Self.instance("v6", vrid: 14, vip: "fd00::3", vmac: false),
        ], virtualMACs: VRRPVirtualMAC.plan([Self.instance("ipfailover_VIP_3", vrid: 13, vip: "10.0.0.3")]))
        #expect(ruleset.table == "baton_vrrp_ipfailover_VIP_1")
        #expect(ruleset.rules == [
            "iifname \"eth0\" ip protocol 112 accept",
            "iifname { \"eth0\", \"vrrp.13\" } ip saddr { 10.0.0.12, 10.0.0.13 } ip protocol 112 accept",
            "iifname \"eth0\" meta nfproto ipv6 meta l4proto 112 accept",
        ])
        #expect(ruleset.applyScript == """
            table inet baton_vrrp_ipfailover_VIP_1
            delete table inet baton_vrrp_ipfailover_VIP_1
            table inet baton_vrrp_ipfailover_VIP_1 {
            \tchain INPUT {
            \t\ttype filter hook input priority -10; policy accept;
            \t\tiifname "eth0" ip protocol 112 accept
            \t\tiifname { "eth0", "vrrp.13" } ip saddr { 10.0.0.12, 10.0.0.13 } ip protocol 112 accept
            \t\tiifname "eth0" meta nfproto ipv6 meta l4proto 112 accept
            \t}
            }

            """)
        #expect(ruleset.deleteScript == "table inet baton_vrrp_ipfailover_VIP_1\ndelete table inet baton_vrrp_ipfailover_VIP_1\n")
    }

    @Test func theTableNameKeepsOnlyWhatNftablesTakes() {
        let ruleset = VRRPAdmitRuleset(chain: "INPUT", instances: [Self.instance("VI-web.1", vrid: 1, vip: "10.0.0.1", vmac: false)])
        #expect(ruleset.table == "baton_vrrp_VI_web_1")
    }

    @Test(arguments: ["INPUT", "vrrp_in", "_x", "a-b.c/d"])
    func chainNamesNftablesTakes(_ name: String) { #expect(VRRPConfigSyntax.isChainName(name)) }

    @Test(arguments: ["", "1INPUT", "INPUT;drop", "IN PUT", "\"INPUT\"", "INPUT{", String(repeating: "a", count: 65), "ÉCHO"])
    func chainNamesNftablesRefuses(_ name: String) { #expect(!VRRPConfigSyntax.isChainName(name)) }

    // MARK: HTTP check

    @Test(arguments: [
        ("HTTP/1.1 200 OK\r\n", VRRPHealthMonitor.Outcome.success),
        ("HTTP/1.0 302 Found\r\nLocation: /\r\n", .success),
        ("HTTP/1.1 204 No Content\r\n", .success),
        ("HTTP/1.1 404 Not Found\r\n", .failure("HTTP status 404")),
        ("HTTP/1.1 503 Service Unavailable\r\n", .failure("HTTP status 503")),
        ("SSH-2.0-OpenSSH_9.2\r\n", .failure("not an HTTP status line: SSH-2.0-OpenSSH_9.2")),
        ("", .failure("no HTTP status line")),
    ])
    func theHTTPCheckReadsTheStatusLine(_ response: String, _ outcome: VRRPHealthMonitor.Outcome) {
        #expect(VRRPCheckProbe.outcome(statusLine: Array(response.utf8)) == outcome)
    }

    // MARK: Probes on loopback

    @Test func tcpAndScriptChecksOnLoopback() throws {
        // Nothing listens on port 1 of 127.0.0.1 (a privileged port no test binds).
        #expect(VRRPCheckProbe.tcpConnect(host: ip("127.0.0.1"), port: 1, timeout: .seconds(1)) == .failure("connection refused"))
        #expect(VRRPScriptRun(arguments: ["/bin/true"]).run() == .success)
        #expect(VRRPScriptRun(arguments: ["/bin/sh", "-c", "exit 3"]).run() == .failure("exit status 3"))
        #expect(VRRPScriptRun(arguments: ["/nonexistent/check"]).run() == .failure("cannot run /nonexistent/check: no such file or directory"))
    }

    @Test func aStoppedScriptIsKilled() async throws {
        let marker = "/tmp/baton-vrrp-check-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(marker) }
        let script = VRRPScriptRun(arguments: ["/bin/sh", "-c", "touch \(marker); sleep 30 & sleep 30"])
        let started = ContinuousClock.now
        async let outcome = script.run()
        // Stop it once it runs (the marker), not on a guess.
        while access(marker, F_OK) != 0 {
            #expect(ContinuousClock.now - started < .seconds(10), "the script never started")
            if ContinuousClock.now - started >= .seconds(10) { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        script.stop()
        #expect(await outcome == .failure("killed by signal 9"))
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func aScriptStoppedBeforeItStartsIsKilledAtOnce() {
        let script = VRRPScriptRun(arguments: ["/bin/sleep", "30"])
        script.stop()
        #expect(script.run() == .failure("killed by signal 9"))
    }
}
