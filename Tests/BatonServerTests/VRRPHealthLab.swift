import BatonAPI
import BatonDataplane
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

// The namespace LAN of the health, --vmac and removal tests (VRRPHealthLabTests). It predates
// VRRPLab (the interop tests' lab) and overlaps it; merging the two is left for later.
final class VRRPHealthLab: @unchecked Sendable {
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
        stop()
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

    /// Stops everything and removes the lab's directory.
    func down() {
        stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Stops the processes and removes the namespaces (also what a previous run left).
    func stop() {
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

