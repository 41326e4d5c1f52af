import BatonAPI
import BatonDataplane
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Which VRRP speaker a lab host runs.
enum VRRPSpeakerKind: String, Sendable, CaseIterable, CustomStringConvertible {
    case baton
    case keepalived

    var description: String { rawValue }
    var other: VRRPSpeakerKind { self == .baton ? .keepalived : .baton }
}

/// What both speakers of an interop test agree on: the protocol and its timers, the address
/// family, and multicast or unicast.
struct VRRPSetup: Sendable, CustomStringConvertible {
    var version: Int
    /// Seconds (whole for VRRPv2).
    var advertInterval: Double
    var authPass: String? = nil
    var ipv6 = false
    var unicast = false

    /// VRRPv2 needs whole seconds; 1 s is its fastest.
    static let v2 = VRRPSetup(version: 2, advertInterval: 1, authPass: "batonpw")
    /// VRRPv3 fast enough to keep the suite quick, slow enough for a loaded 2-core machine.
    static let v3 = VRRPSetup(version: 3, advertInterval: 0.2)
    static let both = [v2, v3]

    var description: String {
        "VRRPv\(version)\(ipv6 ? " IPv6" : "")\(unicast ? " unicast" : ""), advert \(advertInterval) s\(authPass == nil ? "" : ", auth PASS")"
    }

    var unicastVariant: VRRPSetup { var s = self; s.unicast = true; return s }

    /// `Master_Down_Interval` of a Backup at `priority` (RFC 3768 §6.1 / RFC 9568 §6.1).
    func masterDownInterval(priority: Int) -> Double { 3 * advertInterval + skewTime(priority: priority) }
    func skewTime(priority: Int) -> Double {
        Double(256 - priority) / 256 * (version == 2 ? 1 : advertInterval)
    }
}

/// How a speaker treats a lower-priority Master: keepalived's default, `preempt_delay D` or
/// `nopreempt` (both with `state BACKUP`, which keepalived's `nopreempt` requires).
enum VRRPPreemption: Sendable, CustomStringConvertible {
    case preempt
    case delay(Double)
    case nopreempt

    var description: String {
        switch self {
        case .preempt: "preempt"
        case .delay(let d): "preempt_delay \(d)"
        case .nopreempt: "nopreempt"
        }
    }
}

enum VRRPInteropPrerequisites {
    static var met: Bool {
        ProcessInfo.processInfo.environment["BATON_LAB_TESTS"] == "1" && getuid() == 0 && BatonBinary.path != nil
            && ["keepalived", "ip", "nft"].allSatisfy { (try? Command.locate($0)) != nil }
    }

    static let skipMessage: Comment =
        "needs BATON_LAB_TESTS=1, root, iproute2, nftables, keepalived (apt-get install keepalived) and a built baton binary"

    /// The tests that look at the wire also need tcpdump.
    static var canCapture: Bool { (try? Command.locate("tcpdump")) != nil }
    static let captureSkipMessage: Comment = "needs tcpdump (apt-get install tcpdump) to see the packets on the wire"
}

/// A LAN (bridge `br0` in `PREFIX-lan`) with hosts `PREFIX-h1`, `PREFIX-h2`, each with `eth0`
/// into the bridge (port `hN` on the bridge's side): 192.168.99.1N/24, and with `ipv6`
/// fd00:99::1N/64 plus a link-local address (duplicate address detection off, so it is usable at
/// once). Each host runs at most one speaker, Baton or keepalived, with the same VRID, VIP and
/// notify script (which appends `$*` to the host's own log). Every process it starts is recorded
/// and stopped by PID; `down` also kills what is left in its namespaces and deletes them.
final class VRRPLab: @unchecked Sendable {
    static let vrid = 51
    static let instanceName = "VI_\(vrid)"
    let prefix: String
    let ipv6: Bool
    let dir: String
    private var processes: [String: Process] = [:]
    private var kinds: [Int: VRRPSpeakerKind] = [:]

    init(prefix: String = "bv\(getpid() % 100_000)", ipv6: Bool = false) {
        self.prefix = prefix
        self.ipv6 = ipv6
        self.dir = temporaryDirectory()
    }

    func host(_ i: Int) -> String { "\(prefix)-h\(i)" }
    var lan: String { "\(prefix)-lan" }
    var vip: String { ipv6 ? "fd00:99::100" : "192.168.99.100" }
    var vipPrefix: String { ipv6 ? "\(vip)/64" : "\(vip)/24" }
    func address(_ i: Int) -> String { ipv6 ? "fd00:99::1\(i)" : "192.168.99.1\(i)" }

    func up() throws {
        removeNetwork()
        _ = try Command.run("ip", ["-batch", "-"], input: ["netns add \(lan)", "netns add \(host(1))", "netns add \(host(2))"].joined(separator: "\n") + "\n")
        var lanCommands = ["link set lo up", "link add br0 type bridge", "link set br0 up"]
        for i in 1...2 {
            lanCommands += ["link add h\(i) type veth peer name eth0 netns \(host(i))", "link set h\(i) master br0 up"]
        }
        try ip(lanCommands, netns: lan)
        for i in 1...2 {
            if ipv6 {
                _ = try Command.run("ip", ["netns", "exec", host(i), "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"])
            }
            var commands = ["link set lo up", "link set eth0 up", "address add 192.168.99.1\(i)/24 dev eth0"]
            if ipv6 { commands.append("address add \(address(i))/64 dev eth0 nodad") }
            try ip(commands, host: i)
        }
        if ipv6 {
            for i in 1...2 { _ = try linkLocal(i) }
        }
    }

    /// Stops everything, deletes the namespaces and the lab's directory (configurations, logs).
    func down() {
        removeNetwork()
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func removeNetwork() {
        for (_, process) in processes where process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            Self.waitExited(process)
        }
        processes.removeAll()
        kinds.removeAll()
        for ns in [lan, host(1), host(2)] {
            if let out = try? Command.run("ip", ["netns", "pids", ns]) {
                for line in out.split(separator: "\n") { if let pid = Int32(line) { Glibc.kill(pid, SIGKILL) } }
            }
            _ = try? Command.run("ip", ["netns", "del", ns])
        }
    }

    /// Waits (up to 10 s) until `process` has exited: gone, or a zombie that Foundation has not
    /// reaped yet (it can take a second to notice a SIGKILL).
    static func waitExited(_ process: Process) {
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning && ContinuousClock.now < deadline {
            guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
                  let state = stat.split(separator: ")").last?.split(separator: " ").first, state != "Z" else { return }
            usleep(2_000)
        }
    }

    func ip(_ commands: [String], netns: String) throws {
        _ = try Command.run("ip", ["-n", netns, "-batch", "-"], input: commands.joined(separator: "\n") + "\n")
    }

    func ip(_ commands: [String], host i: Int) throws { try ip(commands, netns: host(i)) }

    /// Host `i`'s IPv6 link-local address (the source of its advertisements), once usable.
    func linkLocal(_ i: Int) throws -> String {
        let deadline = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < deadline {
            let out = try Command.run("ip", ["-n", host(i), "-6", "addr", "show", "dev", "eth0", "scope", "link"])
            if let line = out.split(separator: "\n").first(where: { $0.contains("inet6 fe80:") && !$0.contains("tentative") }),
               let address = line.split(separator: " ").dropFirst().first?.split(separator: "/").first {
                return String(address)
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw VRRPLabError("host \(i) has no usable link-local address")
    }

    /// The MAC address of host `i`'s eth0.
    func mac(_ i: Int) throws -> String {
        try Command.run("ip", ["netns", "exec", host(i), "cat", "/sys/class/net/eth0/address"]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// One line of figures, printed with the test output (the README's interop table comes from these).
    static func report(_ line: String) {
        FileHandle.standardError.write(Data("[vrrp interop] \(line)\n".utf8))
    }

    func report(_ line: String) { Self.report(line) }

    // MARK: Processes

    @discardableResult
    func spawn(_ name: String, netns: String, _ argv: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Command.locate("ip"))
        process.arguments = ["netns", "exec", netns] + argv   // ip netns exec execs: the PID is the program's
        let log = "\(dir)/\(name).log"
        if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = FileHandle(forWritingAtPath: log)
        handle?.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        processes[name] = process
        return process
    }

    func notifyLog(_ i: Int) -> String { "\(dir)/notify-h\(i).log" }

    /// The same script for both speakers: one line per call, its arguments as given.
    func notifyScript(_ i: Int) throws -> String {
        let script = "\(dir)/notify-h\(i).sh"
        if !FileManager.default.fileExists(atPath: script) {
            try "#!/bin/sh\necho \"$*\" >> \(notifyLog(i))\n".write(toFile: script, atomically: true, encoding: .utf8)
            chmod(script, 0o755)
        }
        return script
    }

    /// Starts `kind` on host `i` (which must run nothing) with the shared VRID and VIP.
    func start(_ kind: VRRPSpeakerKind, host i: Int, setup: VRRPSetup, priority: Int, preemption: VRRPPreemption = .preempt) throws {
        precondition(kinds[i] == nil, "host \(i) already runs \(kinds[i]!)")
        switch kind {
        case .baton: try startBaton(host: i, setup: setup, priority: priority, preemption: preemption)
        case .keepalived: try startKeepalived(host: i, setup: setup, priority: priority, preemption: preemption)
        }
        kinds[i] = kind
    }

    private func startBaton(host i: Int, setup: VRRPSetup, priority: Int, preemption: VRRPPreemption) throws {
        var argv = [BatonBinary.path!, "vrrp", "--interface", "eth0", "--vrid", "\(Self.vrid)", "--priority", "\(priority)",
                    "--version", "\(setup.version)", "--advert-interval", "\(setup.advertInterval)",
                    "--vip", vipPrefix, "--notify", try notifyScript(i), "--name", Self.instanceName, "--log-level", "debug"]
        if let pass = setup.authPass { argv += ["--auth-pass", pass] }
        if setup.unicast { argv += ["--unicast-peer", address(3 - i)] }
        switch preemption {
        case .preempt: break
        case .delay(let d): argv += ["--preempt-delay", "\(d)"]
        case .nopreempt: argv += ["--nopreempt"]
        }
        try spawn("h\(i)", netns: host(i), argv)
    }

    private func startKeepalived(host i: Int, setup: VRRPSetup, priority: Int, preemption: VRRPPreemption) throws {
        var lines = [
            "    state BACKUP", "    interface eth0", "    virtual_router_id \(Self.vrid)", "    priority \(priority)",
            "    advert_int \(setup.advertInterval)", "    notify \(try notifyScript(i))",
        ]
        switch preemption {
        case .preempt: break
        case .delay(let d): lines.append("    preempt_delay \(d)")
        case .nopreempt: lines.append("    nopreempt")
        }
        if let pass = setup.authPass {
            lines += ["    authentication {", "        auth_type PASS", "        auth_pass \(pass)", "    }"]
        }
        if setup.unicast {
            lines += ["    unicast_src_ip \(address(i))", "    unicast_peer {", "        \(address(3 - i))", "    }"]
        }
        lines += ["    virtual_ipaddress {", "        \(vipPrefix) dev eth0", "    }"]
        let conf = """
            global_defs {
                router_id keepalived-h\(i)
                vrrp_version \(setup.version)
            }
            vrrp_instance \(Self.instanceName) {
            \(lines.joined(separator: "\n"))
            }

            """
        let path = "\(dir)/keepalived-h\(i).conf"
        try conf.write(toFile: path, atomically: true, encoding: .utf8)
        for file in ["keepalived-h\(i).pid", "vrrp-h\(i).pid"] { try? FileManager.default.removeItem(atPath: "\(dir)/\(file)") }
        try spawn("h\(i)", netns: host(i), [try Command.locate("keepalived"), "-n", "-l", "-D", "-P", "-f", path,
                                            "-p", "\(dir)/keepalived-h\(i).pid", "-r", "\(dir)/vrrp-h\(i).pid"])
    }

    /// keepalived's VRRP child, from its `-r` PID file (it writes it once the child runs).
    private func keepalivedChild(_ i: Int) -> Int32? {
        (try? String(contentsOfFile: "\(dir)/vrrp-h\(i).pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Waits until host `i`'s speaker is running (keepalived: its VRRP child has started).
    func waitStarted(_ i: Int, within limit: Duration = .seconds(3)) async throws {
        guard kinds[i] == .keepalived else { return }
        let deadline = ContinuousClock.now + limit
        while keepalivedChild(i) == nil {
            guard ContinuousClock.now < deadline else { throw VRRPLabError("keepalived on host \(i) did not start\n\(logs())") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Sends `signal` to host `i`'s speaker and waits for it to exit. SIGKILL to keepalived goes
    /// to its VRRP child first (the one that speaks), then to the parent (so it cannot restart
    /// the child); SIGTERM goes to the parent, which stops the child as keepalived does.
    func stop(host i: Int, signal: Int32) throws {
        guard let kind = kinds[i], let process = processes["h\(i)"] else { return }
        if kind == .keepalived && signal == SIGKILL, let child = keepalivedChild(i) { Glibc.kill(child, SIGKILL) }
        Glibc.kill(process.processIdentifier, signal)
        Self.waitExited(process)
        kinds[i] = nil
    }

    /// Stops host `i`'s speaker with `signal` and measures how long until `holder` holds the VIP.
    func stop(host i: Int, signal: Int32, thenWaitForHolder holder: Int, within limit: Duration) async throws -> Duration {
        let kind = try #require(kinds[i])
        let process = try #require(processes["h\(i)"])
        let child = kind == .keepalived ? try #require(keepalivedChild(i)) : process.processIdentifier
        let start = ContinuousClock.now
        if kind == .keepalived && signal == SIGKILL {
            Glibc.kill(child, SIGKILL)
            Glibc.kill(process.processIdentifier, SIGKILL)
        } else {
            Glibc.kill(process.processIdentifier, signal)
        }
        try await waitForHolder(holder, within: limit, alone: signal != SIGKILL)
        let taken = ContinuousClock.now - start
        Self.waitExited(process)
        kinds[i] = nil
        return taken
    }

    /// Removes the VIP a SIGKILLed speaker left behind, as a reboot would.
    func clearVIP(host i: Int) throws {
        try ip(["address flush dev eth0 to \(vip)/\(ipv6 ? 128 : 32)"], host: i)
    }

    /// Stops both speakers (SIGKILL), and clears the VIP and the notify logs: a fresh LAN.
    func reset() throws {
        for i in 1...2 {
            try stop(host: i, signal: SIGKILL)
            try clearVIP(host: i)
            clearNotifications(host: i)
        }
    }

    // MARK: Observations

    func holdsVIP(_ i: Int) throws -> Bool {
        try Command.run("ip", ["-n", host(i), ipv6 ? "-6" : "-4", "addr", "show", "dev", "eth0"])
            .contains("\(ipv6 ? "inet6" : "inet") \(vip)/")
    }

    /// Polls every 10 ms until host `i` holds the VIP, and (`alone`) the other does not. A
    /// SIGKILLed Master leaves its VIP behind, so after a kill only the new holder counts.
    func waitForHolder(_ i: Int, within limit: Duration, alone: Bool = true) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if try holdsVIP(i), try !alone || !holdsVIP(3 - i) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw VRRPLabError("host \(i) did not become the VIP holder within \(limit) (h1: \(try holdsVIP(1)), h2: \(try holdsVIP(2)))\n\(logs())")
    }

    /// Checks for `period` that host `i` alone keeps the VIP (the other stays Backup).
    func expectHolderStays(_ i: Int, for period: Duration) async throws {
        let deadline = ContinuousClock.now + period
        while ContinuousClock.now < deadline {
            guard try holdsVIP(i), try !holdsVIP(3 - i) else {
                throw VRRPLabError("host \(i) lost its place as the only VIP holder\n\(logs())")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func notifications(host i: Int) -> [String] {
        ((try? String(contentsOfFile: notifyLog(i), encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func clearNotifications(host i: Int) { try? FileManager.default.removeItem(atPath: notifyLog(i)) }

    /// Polls (up to 3 s) until host `i`'s notify script has been called exactly with `expected`,
    /// in order.
    func waitForNotifications(host i: Int, _ expected: [String]) async throws {
        let deadline = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < deadline {
            if notifications(host: i) == expected { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw VRRPLabError("host \(i)'s notify script was called with \(notifications(host: i)), expected \(expected)")
    }

    /// A notify line as both speakers write it: `INSTANCE VI_51 STATE PRIORITY`.
    static func notifyLine(_ state: String, _ priority: Int) -> String { "INSTANCE \(instanceName) \(state) \(priority)" }

    /// Everything host `i`'s speakers have logged (keepalived runs with `-D`, its detailed log).
    func log(host i: Int) -> String {
        (try? String(contentsOfFile: "\(dir)/h\(i).log", encoding: .utf8)) ?? ""
    }

    /// keepalived's detailed log line when a Backup takes the priority-0 advert of a leaving Master.
    static let keepalivedSawPriorityZero = "Backup received priority 0 advertisement"

    func logs() -> String {
        processes.keys.sorted().map { name in
            let text = (try? String(contentsOfFile: "\(dir)/\(name).log", encoding: .utf8)) ?? ""
            return "--- \(name)\n" + text.split(separator: "\n").suffix(25).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    // MARK: Capture

    /// Starts tcpdump on the bridge's port for host `i` (everything the host sends and receives),
    /// one line per packet with MACs and the IP header (`-e -v`), and waits until it listens.
    func capture(host i: Int, filter: String) async throws -> String {
        let name = "tcpdump-h\(i)"
        try spawn(name, netns: lan, [try Command.locate("tcpdump"), "-i", "h\(i)", "-l", "-n", "-e", "-v", filter])
        let log = "\(dir)/\(name).log"
        let deadline = ContinuousClock.now + .seconds(3)
        while !((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("listening on") {
            guard ContinuousClock.now < deadline else { throw VRRPLabError("tcpdump did not start\n\(logs())") }
            try await Task.sleep(for: .milliseconds(10))
        }
        return log
    }

    /// The packet lines a capture has printed so far (not tcpdump's continuation lines).
    func captured(_ log: String) -> [String] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
            .filter { !$0.hasPrefix("\t") && !$0.hasPrefix(" ") && !$0.hasPrefix("tcpdump:") && !$0.contains("listening on") }
            .map(String.init)
    }
}

struct VRRPLabError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
