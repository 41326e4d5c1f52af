import BatonAPI
import BatonDataplane
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `baton vrrp`'s health checks, `--vmac` and the nftables table admitting VRRP, on the LAN of
/// `VRRPHealthLab` (namespaces `bh<pid>-*`, created and deleted by each test): a failing check puts
/// Baton in FAULT and the peer takes the VIP, a weighted one lets a peer preempt, the virtual
/// MAC answers ARP and sends the advertisements, and a stopped speaker leaves the namespace as
/// it found it. The check target is a small listener started in the namespace and stopped by PID.
@Suite(.serialized, .enabled(if: VRRPHealthLabPrerequisites.met, VRRPHealthLabPrerequisites.skipMessage))
struct VRRPHealthLabTests {
    static let vmacAddress = "00:00:5e:00:01:33"   // VRID 51

    /// OpenShift's environment with the default `MONITOR_PORT` check (here port 8080 on the
    /// node's address), against keepalived: nothing listens, so Baton starts in FAULT and
    /// keepalived holds the VIP; a listener brings Baton back (it preempts with its higher
    /// priority); stopping the listener sends Baton to FAULT again and keepalived takes over
    /// within about `Skew_Time` after the failed check. The nftables table exists while Baton
    /// runs, and the notify script sees FAULT with keepalived's arguments.
    @Test func aFailingMonitorPortPutsBatonInFaultAndKeepalivedTakesOver() async throws {
        let lab = VRRPHealthLab(prefix: "bh\(getpid() % 100_000)")
        defer { lab.down() }
        try lab.up()
        // OpenShift's instance 1 at offset 10 is VRID 11; on 192.168.99.11 with one replica the
        // node prefers every instance: priority 255 − 11 = 244, preempting at once.
        let vrid = 11, name = "OpenShift_IPFailover_VIP_1"
        try lab.startKeepalived(host: 2, vrid: vrid, version: 2, advertInterval: 1, priority: 100, authPass: "OpenShif")
        try lab.spawn("baton-h1", host: 1, ["/usr/bin/env",
            "OPENSHIFT_HA_VIRTUAL_IPS=\(VRRPHealthLab.vip)", "OPENSHIFT_HA_NETWORK_INTERFACE=eth0",
            "OPENSHIFT_HA_MONITOR_PORT=8080", "OPENSHIFT_HA_CHECK_INTERVAL=1", "OPENSHIFT_HA_REPLICA_COUNT=1",
            "OPENSHIFT_HA_NOTIFY_SCRIPT=\(try lab.notifyScript())",
            BatonBinary.path!, "vrrp", "--log-level", "debug"])
        let entry = "INSTANCE \(name) "

        // 1. No listener: FAULT at the first check; keepalived becomes Master after its
        //    Master_Down_Interval (3 × 1 s + Skew_Time 0.61 s).
        try await lab.waitForNotifications([entry + "FAULT"])
        try await lab.waitForHolder(2, within: .seconds(6))
        #expect(try lab.nft(host: 1).contains("table inet baton_vrrp_\(name)"))
        #expect(try lab.nft(host: 1).contains("iifname \"eth0\" ip protocol vrrp accept"))

        // 2. A listener on the node's address: the next check (within 1 s) recovers; Baton is
        //    Backup, discards keepalived's lower-priority adverts and takes over after its own
        //    Master_Down_Interval (3 s + 0.05 s).
        var start = ContinuousClock.now
        try lab.startListener(host: 1, address: VRRPHealthLab.address(1), port: 8080)
        try await lab.waitForHolder(1, within: .seconds(7))
        lab.report("health: listener up -> Baton MASTER again after \(ContinuousClock.now - start) (check interval 1 s + Master_Down_Interval 3.05 s)")
        try await lab.waitForNotifications([entry + "FAULT", entry + "BACKUP", entry + "MASTER"])

        // 3. The listener stops: FAULT at the next check; Baton's priority-0 advert hands the VIP
        //    to keepalived within its Skew_Time (0.61 s).
        start = ContinuousClock.now
        try lab.stopListener(host: 1, port: 8080)
        try await lab.waitForHolder(2, within: .seconds(3))
        let taken = ContinuousClock.now - start
        lab.report("health: listener down -> keepalived MASTER after \(taken) (check interval 1 s + keepalived's Skew_Time 0.61 s)")
        #expect(taken < .seconds(1 + 0.61 + 0.5))
        try await lab.waitForNotifications([entry + "FAULT", entry + "BACKUP", entry + "MASTER", entry + "FAULT"])
        try await lab.expectHolderStays(2, for: .seconds(2))

        // SIGTERM from FAULT: STOP, and the table is gone.
        try await lab.terminate("baton-h1")
        try await lab.waitForNotifications([entry + "FAULT", entry + "BACKUP", entry + "MASTER", entry + "FAULT", entry + "STOP"])
        #expect(try !lab.nft(host: 1).contains("baton_vrrp"))
    }

    /// A weighted check (`--check-weight -100`, here the built-in HTTP GET) lowers Baton's
    /// priority from 150 to 50 while it fails: the other Baton (100) preempts; when the check
    /// passes again Baton is back at 150 and preempts in turn. No FAULT on the way.
    @Test func aWeightedCheckLowersThePrioritySoThePeerPreempts() async throws {
        let lab = VRRPHealthLab(prefix: "bh\(getpid() % 100_000)")
        defer { lab.down() }
        try lab.up()
        try lab.startListener(host: 1, address: VRRPHealthLab.address(1), port: 8081)
        let common = ["--version", "3", "--advert-interval", "0.1", "--vip", "\(VRRPHealthLab.vip)/24", "--name", "VI_51"]
        try lab.startBaton(host: 1, ["--priority", "150", "--check-http", "http://\(VRRPHealthLab.address(1)):8081/healthz",
                                     "--check-weight", "-100", "--check-interval", "0.2"] + common)
        try await lab.waitForHolder(1, within: .seconds(3))
        try lab.startBaton(host: 2, ["--priority", "100"] + common, notify: false)
        try await lab.expectHolderStays(1, for: .seconds(1))

        // Failing: 150 − 100 = 50 < 100. The peer discards the lower adverts and takes over
        // after its Master_Down_Interval (0.3 s + 0.06 s).
        var start = ContinuousClock.now
        try lab.stopListener(host: 1, port: 8081)
        try await lab.waitForHolder(2, within: .seconds(2))
        lab.report("weight: check failing -> peer MASTER after \(ContinuousClock.now - start) (check interval 0.2 s + Master_Down_Interval 0.36 s)")
        try await lab.expectHolderStays(2, for: .seconds(1))
        #expect(try lab.log("baton-h1").contains("effective priority changed"))

        // Passing again: 150 > 100, Baton preempts.
        start = ContinuousClock.now
        try lab.startListener(host: 1, address: VRRPHealthLab.address(1), port: 8081)
        try await lab.waitForHolder(1, within: .seconds(2))
        lab.report("weight: check passing -> Baton MASTER after \(ContinuousClock.now - start)")
        try await lab.waitForNotifications(["BACKUP", "MASTER", "BACKUP", "MASTER"].map { "INSTANCE VI_51 \($0)" })
    }

    /// `--vmac`: the VIP lives on `vrrp.51`, answers ARP with 00:00:5e:00:01:33, and the
    /// advertisements leave from that MAC (the peer, a plain Baton, hears them and stays
    /// Backup). SIGTERM removes the macvlan and puts the parent's ARP sysctls back.
    @Test func theVirtualMACAnswersARPAndIsGoneAfterStop() async throws {
        let lab = VRRPHealthLab(prefix: "bh\(getpid() % 100_000)")
        defer { lab.down() }
        try lab.up()
        let common = ["--version", "3", "--advert-interval", "0.1", "--vip", "\(VRRPHealthLab.vip)/24", "--name", "VI_51"]
        try lab.startBaton(host: 1, ["--priority", "150", "--vmac"] + common)
        try await lab.waitFor("the VIP on vrrp.51", within: .seconds(3)) {
            try lab.ipOutput(["-4", "-br", "addr", "show", "dev", "vrrp.51"], host: 1).contains(VRRPHealthLab.vip)
        }
        let link = try lab.ipOutput(["-d", "link", "show", "dev", "vrrp.51"], host: 1)
        #expect(link.contains("link/ether \(Self.vmacAddress)"))
        #expect(link.contains("macvlan mode private"))
        try lab.startBaton(host: 2, ["--priority", "100"] + common, notify: false)
        try await lab.expectHolderStays(1, for: .seconds(1), vipInterface: "vrrp.51")

        // Who answers ARP for the VIP, and from which MAC the advertisements come, as h2 sees it.
        let capture = try lab.capture(host: 2, filter: "arp or ip proto 112", count: 20) {
            _ = try? Command.run("ip", ["-n", lab.host(2), "neigh", "flush", "all"])
            try lab.sendDatagram(host: 2, to: VRRPHealthLab.vip)
        }
        #expect(capture.contains("\(Self.vmacAddress) > 01:00:5e:00:00:12"), "adverts from the virtual MAC:\n\(capture)")
        #expect(capture.contains("Reply \(VRRPHealthLab.vip) is-at \(Self.vmacAddress)"), "ARP answered with the virtual MAC:\n\(capture)")
        #expect(!capture.contains("Reply \(VRRPHealthLab.vip) is-at") || !capture.split(separator: "\n")
            .contains { $0.contains("Reply \(VRRPHealthLab.vip) is-at") && !$0.contains(Self.vmacAddress) }, "only the virtual MAC answers")
        #expect(try lab.sysctl("net/ipv4/conf/eth0/arp_ignore", host: 1) == "1")

        // SIGTERM: the peer takes over (the priority-0 advert came from the virtual MAC too), the
        // macvlan is gone and the parent's sysctls are back.
        try await lab.terminate("baton-h1")
        try await lab.waitForHolder(2, within: .seconds(1))
        #expect(throws: (any Error).self) { try lab.ipOutput(["link", "show", "dev", "vrrp.51"], host: 1) }
        #expect(try lab.sysctl("net/ipv4/conf/eth0/arp_ignore", host: 1) == "0")
        #expect(try lab.sysctl("net/ipv4/conf/eth0/arp_filter", host: 1) == "0")
    }

    /// The link watch: the master's cable is cut (its port set down on the bridge, so its eth0
    /// loses the carrier). Baton goes to FAULT at once, as keepalived does: the VIP leaves
    /// eth0 and the notify script gets FAULT, while the peer takes over. When the cable is back
    /// it leaves FAULT through BACKUP, becomes MASTER again by preemption, and announces: a
    /// client on the LAN (an address on the bridge), which moved to the peer's MAC on its
    /// gratuitous ARP and sends nothing since, ends on the old master's MAC again. Without the
    /// announcement the client's entry would stay on the peer's MAC.
    @Test func aCutLinkPutsTheMasterInFaultAndItAnnouncesWhenBack() async throws {
        let lab = VRRPHealthLab(prefix: "bh\(getpid() % 100_000)")
        defer { lab.down() }
        try lab.up()
        let client = "192.168.99.2"
        try lab.ip(["address add \(client)/24 dev br0"], netns: lab.lan)
        let common = ["--version", "3", "--advert-interval", "0.05", "--vip", "\(VRRPHealthLab.vip)/24", "--name", "VI_51"]
        try lab.startBaton(host: 1, ["--priority", "200"] + common)
        try await lab.waitForHolder(1, within: .seconds(3))
        try lab.startBaton(host: 2, ["--priority", "100"] + common, notify: false)
        try await lab.expectHolderStays(1, for: .milliseconds(500))
        let mac1 = try lab.mac(host: 1), mac2 = try lab.mac(host: 2)

        // The client learns the VIP at the master.
        try lab.sendDatagram(netns: lab.lan, to: VRRPHealthLab.vip)
        try await lab.waitFor("the client's entry for the VIP at h1 (\(mac1))", within: .seconds(2)) { try lab.clientEntry() == mac1 }

        // Cut: FAULT, the VIP gone from h1, h2 holds it and its gratuitous ARP moves the client.
        var start = ContinuousClock.now
        try lab.ip(["link set h1 down"], netns: lab.lan)
        try await lab.waitForNotifications(["BACKUP", "MASTER", "FAULT"].map { "INSTANCE VI_51 \($0)" })
        #expect(try !lab.holdsVIP(1), "a faulted master keeps no VIP")
        try await lab.waitForHolder(2, within: .seconds(2))
        lab.report("link watch: link cut -> h1 FAULT and h2 MASTER after \(ContinuousClock.now - start)")
        #expect(try lab.log("baton-h1").contains("interface down"))
        try await lab.waitFor("the client's entry for the VIP at h2 (\(mac2))", within: .seconds(2)) { try lab.clientEntry() == mac2 }
        try await lab.expectHolderStays(2, for: .milliseconds(300))

        // Back: BACKUP, then MASTER after its Master_Down_Interval (0.15 s + 0.01 s), announcing.
        start = ContinuousClock.now
        try lab.ip(["link set h1 up"], netns: lab.lan)
        try await lab.waitForHolder(1, within: .seconds(3))
        lab.report("link watch: link back -> h1 MASTER again after \(ContinuousClock.now - start)")
        try await lab.waitForNotifications(["BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER"].map { "INSTANCE VI_51 \($0)" })
        try await lab.waitFor("the client's entry for the VIP back at h1 (\(mac1)) with no traffic from the client", within: .seconds(1)) {
            try lab.clientEntry() == mac1
        }
        try await lab.expectHolderStays(1, for: .milliseconds(500))
    }

    /// Removal (issue 5 §6): a Master with `--vmac`, `--nft-admit` and a check, stopped with
    /// SIGTERM, leaves `ip -d link`, `ip addr`, `nft list ruleset` and the ARP and rp_filter
    /// sysctls of its namespace exactly as they were before it started (here with
    /// `all.rp_filter` 1, which it moves onto each interface while it runs, as keepalived). So
    /// does one that fails to start after it created the table (its macvlan's name is taken by
    /// another interface).
    @Test func aStoppedSpeakerLeavesNoVIPTableOrMacvlan() async throws {
        let lab = VRRPHealthLab(prefix: "bh\(getpid() % 100_000)")
        defer { lab.down() }
        try lab.up()
        try lab.startListener(host: 1, address: "127.0.0.1", port: 8082)
        _ = try Command.run("ip", ["netns", "exec", lab.host(1), "sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter"])
        let before = try lab.snapshot(host: 1)
        try lab.startBaton(host: 1, ["--priority", "150", "--version", "3", "--advert-interval", "0.1", "--vip", "\(VRRPHealthLab.vip)/24",
                                     "--name", "VI_51", "--vmac", "--nft-admit", "--check-tcp", "127.0.0.1:8082", "--check-interval", "0.2"])
        try await lab.waitFor("the VIP on vrrp.51", within: .seconds(3)) {
            try lab.ipOutput(["-4", "-br", "addr", "show", "dev", "vrrp.51"], host: 1).contains(VRRPHealthLab.vip)
        }
        let during = try lab.snapshot(host: 1)
        #expect(during.nft.contains("table inet baton_vrrp_VI_51"))
        #expect(during.nft.contains("iifname { \"eth0\", \"vrrp.51\" } ip protocol vrrp accept"))
        #expect(during.links.contains("vrrp.51@eth0"))
        #expect(during.sysctls.contains("all rp_filter=0") && during.sysctls.contains("eth0 rp_filter=1"), "\(during.sysctls)")
        #expect(during.sysctls.contains("eth0 arp_ignore=1") && during.sysctls.contains("eth0 arp_filter=1"), "\(during.sysctls)")
        try await lab.terminate("baton-h1")
        let after = try lab.snapshot(host: 1)
        #expect(after == before, "the namespace changed:\n\(before.difference(to: after))")

        // The name vrrp.51 is taken by a veth: the speaker applies its table, fails to create the
        // macvlan, and takes the table away again before it exits.
        try lab.ip(["link add vrrp.51 type veth peer name other"], host: 1)
        let taken = try lab.snapshot(host: 1)
        try lab.startBaton(host: 1, ["--vrid", "51", "--vip", "\(VRRPHealthLab.vip)/24", "--vmac", "--nft-admit"])
        try await lab.waitExited("baton-h1")
        #expect(try lab.log("baton-h1").contains("interface vrrp.51 exists and is not a macvlan on eth0"))
        let afterFailure = try lab.snapshot(host: 1)
        #expect(afterFailure == taken, "the namespace changed:\n\(taken.difference(to: afterFailure))")
    }
}

enum VRRPHealthLabPrerequisites {
    static var met: Bool {
        VRRPInteropPrerequisites.met && (try? Command.locate("nft")) != nil && (try? Command.locate("tcpdump")) != nil
            && FileManager.default.isExecutableFile(atPath: python)
    }

    static let python = "/usr/bin/python3"

    static let skipMessage: Comment =
        "needs BATON_LAB_TESTS=1, root, iproute2, nftables, tcpdump, /usr/bin/python3, keepalived and a built baton binary"
}

/// What `ip -d link`, `ip addr`, `nft list ruleset` and the parent's ARP sysctls say in one
/// namespace.
struct NamespaceSnapshot: Equatable, CustomStringConvertible {
    var links: String
    var addresses: String
    var nft: String
    var sysctls: String
    var description: String { [links, addresses, nft, sysctls].joined(separator: "\n") }

    /// The lines only one of the two has, marked - (this one) and + (`other`).
    func difference(to other: NamespaceSnapshot) -> String {
        let mine = description.split(separator: "\n"), theirs = other.description.split(separator: "\n")
        return (mine.filter { !theirs.contains($0) }.map { "- \($0)" } + theirs.filter { !mine.contains($0) }.map { "+ \($0)" })
            .joined(separator: "\n")
    }
}

extension VRRPHealthLab {
    /// Runs `ip` in host `i`'s namespace with plain arguments and returns what it printed.
    @discardableResult
    func ipOutput(_ arguments: [String], host i: Int) throws -> String {
        try Command.run("ip", ["-n", host(i)] + arguments)
    }

    func nft(host i: Int) throws -> String {
        try Command.run("ip", ["netns", "exec", host(i), "nft", "list", "ruleset"])
    }

    func sysctl(_ path: String, host i: Int) throws -> String {
        try Command.run("ip", ["netns", "exec", host(i), "cat", "/proc/sys/" + path]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Waits (up to 5 s) for duplicate address detection to end on every address, so that
    /// "tentative" does not tell two snapshots apart.
    func snapshot(host i: Int) throws -> NamespaceSnapshot {
        let deadline = ContinuousClock.now + .seconds(5)
        while try ipOutput(["addr"], host: i).contains("tentative") && ContinuousClock.now < deadline { usleep(20_000) }
        var sysctls = try ["arp_ignore", "arp_filter", "rp_filter"].map { "eth0 \($0)=\(try sysctl("net/ipv4/conf/eth0/\($0)", host: i))" }
        sysctls += try ["all", "default", "lo"].map { "\($0) rp_filter=\(try sysctl("net/ipv4/conf/\($0)/rp_filter", host: i))" }
        return NamespaceSnapshot(links: try ipOutput(["-d", "link"], host: i), addresses: try ipOutput(["addr"], host: i),
                                 nft: try nft(host: i), sysctls: sysctls.joined(separator: " "))
    }

    func log(_ name: String) throws -> String {
        try String(contentsOfFile: "\(dir)/\(name).log", encoding: .utf8)
    }

    /// The notify script that appends `$1 $2 $3` to `notifyLog` (written once).
    func notifyScript() throws -> String {
        let script = "\(dir)/notify.sh"
        if !FileManager.default.fileExists(atPath: script) {
            try "#!/bin/sh\necho \"$1 $2 $3\" >> \(notifyLog)\n".write(toFile: script, atomically: true, encoding: .utf8)
            chmod(script, 0o755)
        }
        return script
    }

    /// `baton vrrp` on host `i`'s eth0 with VRID 51 and these flags (and the notify script).
    func startBaton(host i: Int, _ flags: [String], notify: Bool = true) throws {
        var argv = [BatonBinary.path!, "vrrp", "--interface", "eth0", "--log-level", "debug"]
        if !flags.contains("--vrid") { argv += ["--vrid", "\(Self.vrid)"] }
        if notify { argv += ["--notify", try notifyScript()] }
        try spawn("baton-h\(i)", host: i, argv + flags)
    }

    func startKeepalived(host i: Int, vrid: Int, version: Int, advertInterval: Double, priority: Int, authPass: String?) throws {
        let authentication = authPass.map { "    authentication {\n        auth_type PASS\n        auth_pass \($0)\n    }\n" } ?? ""
        let conf = """
            global_defs {
                router_id keepalived-h\(i)
                vrrp_version \(version)
            }
            vrrp_instance VI_\(vrid) {
                state BACKUP
                interface eth0
                virtual_router_id \(vrid)
                priority \(priority)
                advert_int \(advertInterval)
            \(authentication)    virtual_ipaddress {
                    \(Self.vip)/32 dev eth0
                }
            }

            """
        let path = "\(dir)/keepalived-h\(i).conf"
        try conf.write(toFile: path, atomically: true, encoding: .utf8)
        try spawn("keepalived-h\(i)", host: i, [try Command.locate("keepalived"), "-n", "-l", "-D", "-P", "-f", path,
                                                 "-p", "\(dir)/keepalived-h\(i).pid", "-r", "\(dir)/vrrp-h\(i).pid"])
    }

    /// A TCP listener on `address:port` in host `i` that answers every connection with
    /// `HTTP/1.0 200 OK`; returns once it listens.
    func startListener(host i: Int, address: String, port: Int) throws {
        let script = "\(dir)/listener.py"
        try """
            import socket, sys
            s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((sys.argv[1], int(sys.argv[2])))
            s.listen(64)
            print("ready", flush=True)
            while True:
                c, _ = s.accept()
                try:
                    c.settimeout(1)
                    c.recv(4096)
                    c.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n")
                except Exception:
                    pass
                c.close()

            """.write(toFile: script, atomically: true, encoding: .utf8)
        let name = "listener-h\(i)-\(port)"
        try spawn(name, host: i, [VRRPHealthLabPrerequisites.python, "-u", script, address, "\(port)"])
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if (try? log(name))?.contains("ready") == true { return }
            usleep(10_000)
        }
        throw VRRPLabError("the listener on \(address):\(port) in host \(i) did not start:\n\(logs())")
    }

    func stopListener(host i: Int, port: Int) throws {
        let name = "listener-h\(i)-\(port)"
        let process = try #require(processes[name])
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        processes[name] = nil
    }

    /// SIGTERM to a recorded process, then waits (up to 10 s) until it has exited.
    func terminate(_ name: String) async throws {
        let process = try #require(processes[name])
        Glibc.kill(process.processIdentifier, SIGTERM)
        try await waitExited(name)
    }

    func waitExited(_ name: String) async throws {
        let process = try #require(processes[name])
        try await waitFor("\(name) to exit", within: .seconds(10)) { !process.isRunning }
        processes[name] = nil
    }

    /// Polls every 10 ms until `condition` holds.
    func waitFor(_ what: String, within limit: Duration, _ condition: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if (try? condition()) == true { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw VRRPLabError("timed out after \(limit) waiting for \(what)\n\(logs())")
    }

    /// keepalived's and VRRPHealthLab's `holdsVIP` look at eth0; with `--vmac` the VIP is elsewhere.
    func holdsVIP(_ i: Int, on interface: String) throws -> Bool {
        try ipOutput(["-4", "addr", "show", "dev", interface], host: i).contains("inet \(Self.vip)/")
    }

    func expectHolderStays(_ i: Int, for period: Duration, vipInterface: String) async throws {
        let deadline = ContinuousClock.now + period
        while ContinuousClock.now < deadline {
            guard try holdsVIP(i, on: vipInterface), try !holdsVIP(3 - i) else {
                throw VRRPLabError("host \(i) lost its place as the only VIP holder\n\(logs())")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Host `i`'s eth0 MAC address.
    func mac(host i: Int) throws -> String {
        let out = try ipOutput(["-br", "link", "show", "dev", "eth0"], host: i)
        guard let mac = out.split(separator: " ").map(String.init).first(where: { $0.count == 17 && $0.filter { $0 == ":" }.count == 5 }) else {
            throw VRRPLabError("no MAC in: \(out)")
        }
        return mac
    }

    /// The MAC the LAN namespace's client (an address on br0) has for the VIP; nil without an entry.
    func clientEntry() throws -> String? {
        let out = try Command.run("ip", ["-n", lan, "neigh", "show", Self.vip, "dev", "br0"])
        let words = out.split(separator: " ").map(String.init)
        return words.firstIndex(of: "lladdr").flatMap { words.indices.contains($0 + 1) ? words[$0 + 1] : nil }
    }

    /// One UDP datagram from namespace `netns` to `address` port 9.
    func sendDatagram(netns: String, to address: String) throws {
        _ = try Command.run("ip", ["netns", "exec", netns, VRRPHealthLabPrerequisites.python, "-c",
            "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('\(address)', 9))"])
    }

    /// One UDP datagram from host `i` to `address` port 9 (enough to make the kernel resolve it).
    func sendDatagram(host i: Int, to address: String) throws {
        _ = try Command.run("ip", ["netns", "exec", host(i), VRRPHealthLabPrerequisites.python, "-c",
            "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('\(address)', 9))"])
    }

    /// Captures up to `count` frames matching `filter` on host `i`'s eth0 (with their MACs)
    /// while `during` runs, for at most 3 s.
    func capture(host i: Int, filter: String, count: Int, during: () throws -> Void) throws -> String {
        let name = "tcpdump-h\(i)"
        try spawn(name, host: i, [try Command.locate("tcpdump"), "-l", "-e", "-n", "-i", "eth0", "-c", "\(count)", filter])
        let process = try #require(processes[name])
        // tcpdump says "listening on eth0" once its filter is in place.
        let ready = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < ready, (try? log(name))?.contains("listening on") != true { usleep(10_000) }
        try during()
        let deadline = ContinuousClock.now + .seconds(3)
        while process.isRunning && ContinuousClock.now < deadline { usleep(10_000) }
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        processes[name] = nil
        return try log(name)
    }
}
