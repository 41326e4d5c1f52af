import BatonAPI
import BatonDataplane
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `baton vrrp` and a real keepalived (Debian's 2.2.7) on one LAN with the same VRID, in
/// network namespaces this suite creates (`bv<pid>-*`, never the machine's own): the higher
/// priority wins whichever has it, a killed Master's VIP moves to the other within
/// `Master_Down_Interval`, and a Baton Master stopped with SIGTERM hands over within about
/// `Skew_Time` (its priority-0 advertisement), in VRRPv2 with `auth_type PASS` and in VRRPv3.
@Suite(.serialized, .enabled(if: VRRPInteropPrerequisites.met, VRRPInteropPrerequisites.skipMessage))
struct VRRPInteropTests {
    struct Scenario: Sendable, CustomStringConvertible {
        var version: Int
        /// Seconds.
        var advertInterval: Double
        var authPass: String?

        var description: String { "VRRPv\(version), advert \(advertInterval) s\(authPass == nil ? "" : ", auth PASS")" }

        /// `Master_Down_Interval` of a Backup at `priority` (RFC 3768 §6.1 / RFC 9568 §6.1).
        func masterDownInterval(priority: Int) -> Double { 3 * advertInterval + skewTime(priority: priority) }
        func skewTime(priority: Int) -> Double {
            Double(256 - priority) / 256 * (version == 2 ? 1 : advertInterval)
        }
    }

    static let scenarios = [
        Scenario(version: 2, advertInterval: 1, authPass: "batonpw"),
        Scenario(version: 3, advertInterval: 0.5, authPass: nil),
    ]

    /// Baton is the higher priority, then keepalived is: each time the higher one holds the VIP
    /// and the other stays Backup; each Master killed hands the VIP over within
    /// `Master_Down_Interval`; Baton's SIGTERM hands it over within about `Skew_Time`.
    @Test(arguments: scenarios)
    func batonAndKeepalivedElectOneMasterAndHandOver(_ scenario: Scenario) async throws {
        let lab = VRRPLab(prefix: "bv\(getpid() % 100_000)")
        defer { lab.down() }
        try lab.up()
        let low = 100, high = 150
        let down = scenario.masterDownInterval(priority: low)
        let slack = 1.0
        let entry = "INSTANCE VI_\(VRRPLab.vrid) "

        // 1. Baton higher: Baton is Master; keepalived, started next, stays Backup (for longer
        //    than its Master_Down_Interval, so it must be hearing Baton).
        try lab.startBaton(host: 1, scenario: scenario, priority: high)
        try await lab.waitForHolder(1, within: .seconds(scenario.masterDownInterval(priority: high) + slack))
        try lab.startKeepalived(host: 2, scenario: scenario, priority: low)
        try await lab.expectHolderStays(1, for: .seconds(down + 2 * scenario.advertInterval))
        try await lab.waitForNotifications([entry + "BACKUP", entry + "MASTER"])

        // 2. Baton killed: keepalived takes over within its Master_Down_Interval.
        var taken = try await lab.kill("baton-h1", signal: SIGKILL, thenWaitForHolder: 2, within: .seconds(down + slack))
        lab.report("\(scenario): Baton master SIGKILLed -> keepalived MASTER after \(taken) (keepalived's Master_Down_Interval \(down) s)")
        #expect(taken <= .seconds(down + slack))
        // The killed process left its VIP behind (nobody removed it): clear it, as a reboot would.
        try lab.ip(["address flush dev eth0 label eth0:vrrp"], host: 1)

        // 3. Baton back, higher: it preempts keepalived. Then SIGTERM: its priority-0 advert makes
        //    keepalived take over within about Skew_Time, well under Master_Down_Interval.
        lab.clearNotifications()
        try lab.startBaton(host: 1, scenario: scenario, priority: high)
        try await lab.waitForHolder(1, within: .seconds(scenario.masterDownInterval(priority: high) + slack))
        taken = try await lab.kill("baton-h1", signal: SIGTERM, thenWaitForHolder: 2, within: .seconds(down + slack))
        let skew = scenario.skewTime(priority: low)
        lab.report("\(scenario): Baton master SIGTERMed -> keepalived MASTER after \(taken) (keepalived's Skew_Time \(skew) s, Master_Down_Interval \(down) s)")
        #expect(taken < .seconds(skew + 0.5 * (down - skew)), "a graceful stop must hand over within about Skew_Time")
        #expect(try !lab.holdsVIP(1), "Baton left its VIP behind after SIGTERM")
        try await lab.waitForNotifications([entry + "BACKUP", entry + "MASTER", entry + "STOP"])

        // 4. keepalived higher: Baton alone is Master, keepalived joins and preempts it; then
        //    keepalived killed: Baton takes over within its Master_Down_Interval.
        try lab.stopKeepalived(host: 2, signal: SIGKILL)
        try lab.ip(["address flush dev eth0 to \(VRRPLab.vip)/32"], host: 2)
        lab.clearNotifications()
        try lab.startBaton(host: 1, scenario: scenario, priority: low)
        try await lab.waitForHolder(1, within: .seconds(down + slack))
        try lab.startKeepalived(host: 2, scenario: scenario, priority: high)
        try await lab.waitForHolder(2, within: .seconds(scenario.masterDownInterval(priority: high) + slack))
        try await lab.expectHolderStays(2, for: .seconds(down + 2 * scenario.advertInterval))
        taken = try await lab.killKeepalived(host: 2, thenWaitForHolder: 1, within: .seconds(down + slack))
        lab.report("\(scenario): keepalived master SIGKILLed -> Baton MASTER after \(taken) (Baton's Master_Down_Interval \(down) s)")
        #expect(taken <= .seconds(down + slack))
        try await lab.waitForNotifications([entry + "BACKUP", entry + "MASTER", entry + "BACKUP", entry + "MASTER"])
    }
}

enum VRRPInteropPrerequisites {
    static var met: Bool {
        ProcessInfo.processInfo.environment["BATON_LAB_TESTS"] == "1" && getuid() == 0 && BatonBinary.path != nil
            && (try? Command.locate("keepalived")) != nil && (try? Command.locate("ip")) != nil
    }

    static let skipMessage: Comment =
        "needs BATON_LAB_TESTS=1, root, iproute2, keepalived (apt-get install keepalived) and a built baton binary"
}

/// A LAN (bridge `br0` in `PREFIX-lan`) with hosts `PREFIX-h1`, `PREFIX-h2` on 192.168.99.11 and
/// .12/24, each with `eth0` into the bridge. Every process it starts is recorded by PID and
/// stopped by PID; `down` also kills what is left in its namespaces and deletes them.
final class VRRPLab: @unchecked Sendable {
    static let vip = "192.168.99.100"
    static let vrid = 51
    let prefix: String
    let dir: String
    var processes: [String: Process] = [:]

    init(prefix: String) {
        self.prefix = prefix
        self.dir = temporaryDirectory()
    }

    func host(_ i: Int) -> String { "\(prefix)-h\(i)" }
    var lan: String { "\(prefix)-lan" }
    static func address(_ i: Int) -> String { "192.168.99.\(10 + i)" }

    func up() throws {
        down()
        _ = try Command.run("ip", ["-batch", "-"], input: ["netns add \(lan)", "netns add \(host(1))", "netns add \(host(2))"].joined(separator: "\n") + "\n")
        var lanCommands = ["link set lo up", "link add br0 type bridge", "link set br0 up"]
        for i in 1...2 {
            lanCommands += ["link add h\(i) type veth peer name eth0 netns \(host(i))", "link set h\(i) master br0 up"]
        }
        try ip(lanCommands, netns: lan)
        for i in 1...2 {
            try ip(["link set lo up", "link set eth0 up", "address add \(Self.address(i))/24 dev eth0"], host: i)
        }
    }

    func down() {
        for (_, process) in processes where process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        processes.removeAll()
        for ns in [lan, host(1), host(2)] {
            if let out = try? Command.run("ip", ["netns", "pids", ns]) {
                for line in out.split(separator: "\n") { if let pid = Int32(line) { Glibc.kill(pid, SIGKILL) } }
            }
            _ = try? Command.run("ip", ["netns", "del", ns])
        }
    }

    func ip(_ commands: [String], netns: String) throws {
        _ = try Command.run("ip", ["-n", netns, "-batch", "-"], input: commands.joined(separator: "\n") + "\n")
    }

    func ip(_ commands: [String], host i: Int) throws { try ip(commands, netns: host(i)) }

    func report(_ line: String) {
        FileHandle.standardError.write(Data("[vrrp interop] \(line)\n".utf8))
    }

    // MARK: Processes

    func spawn(_ name: String, host i: Int, _ argv: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Command.locate("ip"))
        process.arguments = ["netns", "exec", host(i)] + argv   // ip netns exec execs: the PID is the program's
        let log = "\(dir)/\(name).log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = FileHandle(forWritingAtPath: log)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        processes[name] = process
    }

    var notifyLog: String { "\(dir)/notify.log" }

    func startBaton(host i: Int, scenario: VRRPInteropTests.Scenario, priority: Int) throws {
        let script = "\(dir)/notify.sh"
        if !FileManager.default.fileExists(atPath: script) {
            try "#!/bin/sh\necho \"$1 $2 $3\" >> \(notifyLog)\n".write(toFile: script, atomically: true, encoding: .utf8)
            chmod(script, 0o755)
        }
        var argv = [BatonBinary.path!, "vrrp", "--interface", "eth0", "--vrid", "\(Self.vrid)", "--priority", "\(priority)",
                    "--version", "\(scenario.version)", "--advert-interval", "\(scenario.advertInterval)",
                    "--vip", "\(Self.vip)/24", "--notify", script, "--name", "VI_\(Self.vrid)", "--log-level", "debug"]
        if let pass = scenario.authPass { argv += ["--auth-pass", pass] }
        try spawn("baton-h\(i)", host: i, argv)
    }

    func startKeepalived(host i: Int, scenario: VRRPInteropTests.Scenario, priority: Int) throws {
        let authentication = scenario.authPass.map { "    authentication {\n        auth_type PASS\n        auth_pass \($0)\n    }\n" } ?? ""
        let conf = """
            global_defs {
                router_id keepalived-h\(i)
                vrrp_version \(scenario.version)
            }
            vrrp_instance VI_\(Self.vrid) {
                state BACKUP
                interface eth0
                virtual_router_id \(Self.vrid)
                priority \(priority)
                advert_int \(scenario.advertInterval)
            \(authentication)    virtual_ipaddress {
                    \(Self.vip)/24 dev eth0
                }
            }

            """
        let path = "\(dir)/keepalived-h\(i).conf"
        try conf.write(toFile: path, atomically: true, encoding: .utf8)
        for file in ["keepalived-h\(i).pid", "vrrp-h\(i).pid"] { try? FileManager.default.removeItem(atPath: "\(dir)/\(file)") }
        try spawn("keepalived-h\(i)", host: i, [try Command.locate("keepalived"), "-n", "-l", "-D", "-P", "-f", path,
                                                 "-p", "\(dir)/keepalived-h\(i).pid", "-r", "\(dir)/vrrp-h\(i).pid"])
    }

    /// keepalived's VRRP child (from its `-r` PID file), then the parent.
    func stopKeepalived(host i: Int, signal: Int32) throws {
        if let text = try? String(contentsOfFile: "\(dir)/vrrp-h\(i).pid", encoding: .utf8),
           let child = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            Glibc.kill(child, signal)
        }
        if let parent = processes["keepalived-h\(i)"] {
            Glibc.kill(parent.processIdentifier, signal)
            parent.waitUntilExit()
        }
    }

    /// Sends `signal` to a recorded process and measures how long until `holder` holds the VIP.
    func kill(_ name: String, signal: Int32, thenWaitForHolder holder: Int, within limit: Duration) async throws -> Duration {
        let process = try #require(processes[name])
        let start = ContinuousClock.now
        Glibc.kill(process.processIdentifier, signal)
        try await waitForHolder(holder, within: limit, alone: signal != SIGKILL)
        let taken = ContinuousClock.now - start
        process.waitUntilExit()
        return taken
    }

    func killKeepalived(host i: Int, thenWaitForHolder holder: Int, within limit: Duration) async throws -> Duration {
        _ = try #require(try? String(contentsOfFile: "\(dir)/vrrp-h\(i).pid", encoding: .utf8))
        let start = ContinuousClock.now
        try stopKeepalived(host: i, signal: SIGKILL)
        try await waitForHolder(holder, within: limit, alone: false)
        return ContinuousClock.now - start
    }

    // MARK: Observations

    func holdsVIP(_ i: Int) throws -> Bool {
        try Command.run("ip", ["-n", host(i), "-4", "addr", "show", "dev", "eth0"]).contains("inet \(Self.vip)/")
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
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func notifications() throws -> [String] {
        ((try? String(contentsOfFile: notifyLog, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func clearNotifications() { try? FileManager.default.removeItem(atPath: notifyLog) }

    /// Polls (up to 3 s) until the notify script has been called exactly with `expected`, in order.
    func waitForNotifications(_ expected: [String]) async throws {
        let deadline = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < deadline {
            if try notifications() == expected { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw VRRPLabError("Baton's notify script was called with \(try notifications()), expected \(expected)")
    }

    func logs() -> String {
        processes.keys.sorted().map { name in
            let text = (try? String(contentsOfFile: "\(dir)/\(name).log", encoding: .utf8)) ?? ""
            return "--- \(name)\n" + text.split(separator: "\n").suffix(25).joined(separator: "\n")
        }.joined(separator: "\n")
    }
}

struct VRRPLabError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
