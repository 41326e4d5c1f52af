import BatonAPI
@testable import BatonClient
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Children stopped by PID must not inherit a blocked SIGTERM from the thread that started them.
@Suite struct ProcessSignalMaskTests {
    /// A signal set from /proc/PID/status: `SigBlk` (blocked) or `SigIgn` (ignored).
    static func signals(_ pid: pid_t, _ field: String = "SigBlk") -> UInt64? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return nil }
        return UInt64(line.dropFirst(field.count + 1).trimmingCharacters(in: .whitespaces), radix: 16)
    }

    static let stopSignals: UInt64 = (1 << UInt64(SIGTERM - 1)) | (1 << UInt64(SIGINT - 1))

    /// Starts `sleep 30` from a thread that blocks SIGTERM (as Dispatch's and the concurrency
    /// pool's threads do), the plain way or with `runWithStopSignalsUnblocked`.
    static func sleeper(defaultMask: Bool) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sleep")
        p.arguments = ["30"]
        var term = sigset_t()
        sigemptyset(&term)
        sigaddset(&term, SIGTERM)
        var saved = sigset_t()
        pthread_sigmask(SIG_BLOCK, &term, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        var before = sigset_t()
        pthread_sigmask(SIG_BLOCK, nil, &before)
        if defaultMask { try p.runWithStopSignalsUnblocked() } else { try p.run() }
        // The caller's own mask is as it was.
        var after = sigset_t()
        pthread_sigmask(SIG_BLOCK, nil, &after)
        #expect(sigismember(&after, SIGTERM) == 1 && sigismember(&before, SIGTERM) == 1)
        return p
    }

    @Test func aChildStartsWithTheStopSignalsUnblockedAndStopsOnSIGTERM() throws {
        guard FileManager.default.fileExists(atPath: "/proc/self/status") else {
            print("skipped: no /proc here")
            return
        }
        // The plain start passes the blocked SIGTERM on (why the helper exists).
        let plain = try Self.sleeper(defaultMask: false)
        defer { kill(plain.processIdentifier, SIGKILL); plain.waitUntilExit() }
        let plainMask = try #require(Self.signals(plain.processIdentifier))
        #expect(plainMask & (1 << UInt64(SIGTERM - 1)) != 0)

        let p = try Self.sleeper(defaultMask: true)
        let mask = try #require(Self.signals(p.processIdentifier))
        #expect(mask & Self.stopSignals == 0)
        #expect(mask & (1 << UInt64(SIGHUP - 1)) != 0, "only SIGTERM and SIGINT are unblocked")
        let start = ContinuousClock.now
        p.terminate()
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal)
        #expect(p.terminationStatus == SIGTERM)
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    /// A bench's child neither blocks nor ignores SIGTERM, though the bench itself catches it
    /// (to stop its children first), and `stop()` ends it with SIGTERM.
    @Test func aBenchProcessChildStopsOnSIGTERM() throws {
        guard FileManager.default.fileExists(atPath: "/proc/self/status") else {
            print("skipped: no /proc here")
            return
        }
        let child = try BenchProcess(binary: "/bin/sleep", arguments: ["30"])
        let pid = child.process.processIdentifier
        #expect(try #require(Self.signals(pid, "SigBlk")) & Self.stopSignals == 0)
        #expect(try #require(Self.signals(pid, "SigIgn")) & Self.stopSignals == 0)
        let start = ContinuousClock.now
        child.stop()
        #expect(child.process.terminationReason == .uncaughtSignal)
        #expect(child.process.terminationStatus == SIGTERM)
        #expect(ContinuousClock.now - start < .seconds(5))
    }
}
