import BatonAPI
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One long-lived `nft -i` that takes a line of commands at a time (each line is one
/// transaction), for what changes every heartbeat: renewing the fence's `live` timeouts costs
/// a pipe write rather than a fork. Errors go to the agent's standard error, as nft prints them.
/// If the process is gone, the next call starts a new one; if that fails too, the line runs
/// through `nft -f -` once.
public final class NftShell: Sendable {
    private let state = Mutex<(process: Process, input: FileHandle)?>(nil)

    public init() {
        // A write to a dead nft must fail with EPIPE rather than kill the agent.
        signal(SIGPIPE, SIG_IGN)
    }

    deinit { stop() }

    /// Sends `line` (newline-terminated) to nft.
    public func run(_ line: String) throws {
        let data = Data(line.utf8)
        let sent: Bool = state.withLock { s in
            for _ in 0..<2 {
                if s == nil || s?.process.isRunning == false { s = try? Self.start() }
                guard let shell = s else { return false }
                do {
                    try shell.input.write(contentsOf: data)
                    return true
                } catch {
                    shell.process.terminate()
                    s = nil
                }
            }
            return false
        }
        if !sent { _ = try Command.run("nft", ["-f", "-"], input: line) }
    }

    /// Stops the nft process (closing its input ends it).
    public func stop() {
        state.withLock { s in
            if let shell = s {
                try? shell.input.close()
                shell.process.waitUntilExit()
            }
            s = nil
        }
    }

    static func start() throws -> (process: Process, input: FileHandle) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Command.locate("nft"))
        process.arguments = ["-i"]
        let input = Pipe()
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        try process.runWithStopSignalsUnblocked()
        return (process, input.fileHandleForWriting)
    }
}
