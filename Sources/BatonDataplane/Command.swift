import BatonAPI
import Foundation

/// A failed or unavailable data-plane command, with what it printed.
public struct DataplaneCommandError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Runs one program (no shell) with optional standard input; returns standard output. One fork
/// per call (about 1.5 ms): callers batch (`nft -f -`, `ip -batch -`) so that a change costs one or two.
public enum Command {
    public static func run(_ program: String, _ arguments: [String], input: String? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try locate(program))
        process.arguments = arguments
        let stdout = Pipe(), stderr = Pipe()
        let stdin = input == nil ? nil : Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = stdin ?? FileHandle.nullDevice
        // Foundation's waitUntilExit polls its run loop every 50 ms: a termination handler
        // answers within a millisecond, which is most of a data-plane change's time.
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        do { try process.runWithStopSignalsUnblocked() } catch { throw DataplaneCommandError("cannot run \(program): \(error)") }
        if let input, let stdin {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try? stdin.fileHandleForWriting.close()
        }
        // Standard output first (it can be large: `ip -j`), then standard error (a few lines).
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        // The read ends are ours: Foundation does not close them when the Pipe goes away, and a
        // long-running caller (the VRRP speaker, a polling test) would run out of descriptors.
        try? stdout.fileHandleForReading.close()
        try? stderr.fileHandleForReading.close()
        exited.wait()
        guard process.terminationStatus == 0 else {
            let shown = ([program] + arguments).joined(separator: " ")
            throw DataplaneCommandError("\(shown) failed (exit \(process.terminationStatus)): \(err.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The program's path: as given when absolute, else the first match in the usual sbin/bin dirs.
    public static func locate(_ program: String) throws -> String {
        if program.hasPrefix("/") { return program }
        for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin"] {
            let path = "\(dir)/\(program)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        let package = ["nft": "nftables", "ip": "iproute2", "bridge": "iproute2", "setsid": "util-linux", "conntrack": "conntrack"][program] ?? program
        throw DataplaneCommandError("\(program) is not installed (apt-get install \(package))")
    }
}
