@testable import BatonAgent
import BatonDataplane
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `baton lab bench vrrp` end to end, in the namespaces it makes itself (`bvb<pid>-*`, never
/// the machine's own): a short run prints both tables with every row, and neither a finished
/// run, nor one interrupted with SIGINT, nor one SIGKILLed (then `baton lab down`) leaves a
/// namespace, a process or its state directory behind.
@Suite(.serialized, .enabled(if: VRRPInteropPrerequisites.met, VRRPInteropPrerequisites.skipMessage))
struct VRRPBenchLabTests {
    static let modes = ["master's link cut", "master SIGKILLed", "master frozen (SIGSTOP)"]
    static let intervals = ["0.02 s", "0.01 s (Baton's default)"]

    @Test func aShortRunPrintsEveryRowBesideKeepalivedAndLeavesNothing() async throws {
        let bench = BenchRun(tag: "a")
        defer { bench.cleanUp() }
        let process = try bench.start(["--trials", "1", "--load-seconds", "5", "--advert-interval", "0.02"])
        let output = try await bench.wait(process, within: .seconds(240))
        #expect(process.terminationStatus == 0, "\(output)\n\(bench.stderr)")
        let lines = output.split(separator: "\n").map(String.init)
        for mode in Self.modes {
            for interval in Self.intervals {
                let row = lines.first { $0.hasPrefix("| \(mode) | \(interval) | 1 | ") }
                let cells = row.map { $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
                #expect(cells.count == 7, "no row for \(mode) at \(interval):\n\(output)")
                // Outage and takeover, p50 / p99, for keepalived and for Baton: all measured.
                for cell in cells.dropFirst(3) { #expect(cell.wholeMatch(of: /\d+ \/ \d+/) != nil, "\(mode) at \(interval): \(cell)") }
            }
        }
        // The wire reaction, p50 / p99 to 10 µs, for both speakers, and the excess.
        for mode in Self.modes {
            for interval in Self.intervals {
                let row = lines.first { $0.hasPrefix("| \(mode) | \(interval) | ") && !$0.hasPrefix("| \(mode) | \(interval) | 1 | ") }
                let cells = row.map { $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
                #expect(cells.count == 7, "no wire row for \(mode) at \(interval):\n\(output)")
                for cell in cells.dropFirst(3) { #expect(cell.wholeMatch(of: /-?\d+\.\d\d \/ -?\d+\.\d\d/) != nil, "wire, \(mode) at \(interval): \(cell)") }
            }
        }
        for interval in Self.intervals {
            let cells = lines.first { $0.hasPrefix("| \(interval) | ") }.map { $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
            #expect(cells.count == 3 && cells.dropFirst().allSatisfy { Int($0) != nil }, "no load row at \(interval):\n\(output)")
        }
        #expect(output.contains("CPU busy"))
        #expect(bench.leftovers() == [], "left behind")
    }

    @Test func sigintTearsEverythingDown() async throws {
        let bench = BenchRun(tag: "b")
        defer { bench.cleanUp() }
        let process = try bench.start(["--trials", "20", "--mode", "link", "--advert-interval", "0.02", "--load-seconds", "0"])
        try await bench.waitForOutput("trial 1/20", process)
        #expect(!bench.namespaces.withLock { $0 }.isEmpty)
        kill(process.processIdentifier, SIGINT)
        _ = try await bench.wait(process, within: .seconds(30))
        #expect(process.terminationStatus == 130)
        #expect(bench.leftovers() == [], "left behind")
    }

    /// SIGKILL leaves the namespaces, but the busy loops stop by themselves (their parent is
    /// gone) and `baton lab down` removes the rest.
    @Test func aKilledBenchStopsItsLoadAndLabDownRemovesTheRest() async throws {
        let bench = BenchRun(tag: "c")
        defer { bench.cleanUp() }
        let process = try bench.start(["--trials", "1", "--mode", "kill", "--advert-interval", "0.01", "--load-seconds", "600"])
        try await bench.waitForOutput("busy loops for 600 s", process)
        let spinners = try #require(try? Command.run("ip", ["netns", "pids", "\(bench.prefix)-load"]))
            .split(separator: "\n").compactMap { Int32($0) }
        #expect(spinners.count >= 1)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        // A spinner that has exited stays a zombie until PID 1 reaps it, which here may take a
        // while: a zombie runs nothing, so it counts as gone.
        func running(_ pid: Int32) -> Bool {
            guard kill(pid, 0) == 0 else { return false }
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while spinners.contains(where: running), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!spinners.contains(where: running), "a busy loop outlived the bench: \(spinners.filter(running))")
        let down = try BatonBinary.run(["lab", "down", "--prefix", bench.prefix, "--state-dir", bench.stateDir])
        #expect(down.status == 0, "\(down.err)")
        #expect(bench.leftovers() == [], "left behind")
    }
}

/// One `baton lab bench vrrp` child with a prefix and state directory of its own. While it
/// runs, the inode of each of its namespaces is noted, so that afterwards a process still in
/// one of them (even once the name is gone) is found.
final class BenchRun: @unchecked Sendable {
    let prefix: String
    let stateDir: String
    let output = Mutex("")
    let errors = Mutex("")
    /// Inodes of the bench's namespaces seen so far.
    let namespaces = Mutex<Set<UInt64>>([])

    init(tag: String) {
        prefix = "bvb\(tag)\(getpid() % 10_000)"
        stateDir = temporaryDirectory() + "/bench"
    }

    var stderr: String { errors.withLock { $0 } }

    func start(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: BatonBinary.path!)
        process.arguments = ["lab", "bench", "vrrp", "--prefix", prefix, "--state-dir", stateDir] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        out.fileHandleForReading.readabilityHandler = { [self] h in
            let data = h.availableData
            output.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        err.fileHandleForReading.readabilityHandler = { [self] h in
            let data = h.availableData
            errors.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
        return process
    }

    func noteNamespaces() {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []).filter { $0.hasPrefix(prefix + "-") }
        for name in names {
            var st = stat()
            if stat("/run/netns/\(name)", &st) == 0 { _ = namespaces.withLock { $0.insert(UInt64(st.st_ino)) } }
        }
    }

    /// Waits for the process to exit (killing it after `limit`), noting namespaces meanwhile.
    func wait(_ process: Process, within limit: Duration) async throws -> String {
        let deadline = ContinuousClock.now + limit
        while process.isRunning {
            noteNamespaces()
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                Issue.record("the bench did not finish within \(limit)")
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        process.waitUntilExit()
        try await Task.sleep(for: .milliseconds(100))   // the last output
        return output.withLock { $0 }
    }

    func waitForOutput(_ text: String, _ process: Process, within limit: Duration = .seconds(180)) async throws {
        let deadline = ContinuousClock.now + limit
        while !output.withLock({ $0.contains(text) }) {
            noteNamespaces()
            guard process.isRunning, ContinuousClock.now < deadline else {
                throw VRRPLabError("the bench never printed \"\(text)\":\n\(output.withLock { $0 })\n\(stderr)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        noteNamespaces()
    }

    /// The bench's namespaces still listed, processes still in any of them, and its state dir.
    func leftovers() -> [String] {
        let inodes = namespaces.withLock { $0 }
        var left = ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []).filter { $0.hasPrefix(prefix + "-") }.map { "namespace \($0)" }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry),
                  let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net"),
                  let inode = UInt64(link.dropFirst("net:[".count).dropLast()), inodes.contains(inode) else { continue }
            let command = ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").replacingOccurrences(of: "\0", with: " ")
            if !Lab.isZombie(pid) { left.append("process \(pid): \(command)") }
        }
        if FileManager.default.fileExists(atPath: stateDir) { left.append("state directory \(stateDir)") }
        return left
    }

    /// Whatever a failed test left: `baton lab down` for the prefix.
    func cleanUp() {
        _ = try? BatonBinary.run(["lab", "down", "--prefix", prefix, "--state-dir", stateDir])
        // The bench's state directory sits in a temporary directory of its own.
        try? FileManager.default.removeItem(atPath: (stateDir as NSString).deletingLastPathComponent)
    }
}
