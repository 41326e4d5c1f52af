import BatonAPI
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Children stopped by PID must not inherit a blocked SIGTERM from the thread that started them.
@Suite struct ProcessSignalMaskTests {
    static func blockedSignals(_ pid: pid_t) -> UInt64? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigBlk:") }) else { return nil }
        return UInt64(line.dropFirst("SigBlk:".count).trimmingCharacters(in: .whitespaces), radix: 16)
    }

    /// Starts `sleep 30` from a thread that blocks SIGTERM (as Dispatch's and the concurrency
    /// pool's threads do), the plain way or with `runWithDefaultSignalMask`.
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
        if defaultMask { try p.runWithDefaultSignalMask() } else { try p.run() }
        return p
    }

    @Test func aChildStartsWithNoSignalBlockedAndStopsOnSIGTERM() throws {
        guard FileManager.default.fileExists(atPath: "/proc/self/status") else {
            print("skipped: no /proc here")
            return
        }
        // The plain start passes the blocked SIGTERM on (why the helper exists).
        let plain = try Self.sleeper(defaultMask: false)
        defer { kill(plain.processIdentifier, SIGKILL); plain.waitUntilExit() }
        let plainMask = try #require(Self.blockedSignals(plain.processIdentifier))
        #expect(plainMask & (1 << UInt64(SIGTERM - 1)) != 0)

        let p = try Self.sleeper(defaultMask: true)
        #expect(Self.blockedSignals(p.processIdentifier) == 0)
        let start = ContinuousClock.now
        p.terminate()
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal)
        #expect(p.terminationStatus == SIGTERM)
        #expect(ContinuousClock.now - start < .seconds(5))
    }
}
