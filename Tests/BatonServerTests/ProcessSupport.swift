import BatonAPI
import BatonClient
import BatonEtcd
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The built `baton` executable, or nil when it has not been built (tests that need it skip).
enum BatonBinary {
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static var path: String? {
        if let p = ProcessInfo.processInfo.environment["BATON_BINARY"] { return p }
        for config in ["debug", "release"] {
            let p = packageRoot.appendingPathComponent(".build/\(config)/baton").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Runs `baton ARGS` to completion and returns its exit status and output.
    static func run(_ args: [String], env: [String: String] = [:], stdin: String? = nil) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path!)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(env) { _, b in b }
        let out = Pipe(), err = Pipe(), input = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}

/// A `baton server` child process on a loopback port, stopped by PID.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let dataDir: String
    let port: Int

    var url: String { "http://127.0.0.1:\(port)" }
    var adminToken: String {
        (try? String(contentsOfFile: dataDir + "/admin.token", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }
    var client: BatonClient { BatonClient(server: url, token: adminToken) }
    var env: [String: String] { ["BATON_SERVER": url, "BATON_TOKEN": adminToken] }

    /// Starts the server and waits (up to 20 s) until it answers /healthz.
    init(dataDir: String, port: Int? = nil, extraArguments: [String] = []) async throws {
        self.dataDir = dataDir
        self.port = port ?? Self.freePort()
        process.executableURL = URL(fileURLWithPath: BatonBinary.path!)
        // The test agents report made-up addresses (10.0.0.x), in no namespace of ours: the server
        // must not probe them (feature.unreachableNodeProbe), whatever this machine's own subnets.
        var configuration: [String] = []
        if !extraArguments.contains("--config") {
            try? FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
            let values = dataDir + "/no-probe-values.yaml"
            try "feature:\n  unreachableNodeProbe: false\n".write(toFile: values, atomically: true, encoding: .utf8)
            configuration = ["--config", values]
        }
        process.arguments = ["server", "--data-dir", dataDir, "--listen", "127.0.0.1:\(self.port)", "--log-level", "info"]
            + configuration + extraArguments
        let logPath = dataDir + "/server-\(self.port)-\(UUID().uuidString.prefix(4)).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while ContinuousClock.now < deadline {
            if let r = try? await BatonClient(server: url, token: nil).send(.GET, "/healthz"), r.status == 200 { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        kill()
        let tail = (try? String(contentsOfFile: logPath, encoding: .utf8)).map { String($0.suffix(2000)) } ?? ""
        throw APIError.unavailable("baton server did not start on port \(self.port) (running: \(process.isRunning)): \(tail)")
    }

    func kill(signal: Int32 = SIGKILL) {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, signal)
        process.waitUntilExit()
    }

    deinit { kill() }

    /// A port the kernel just handed out on loopback.
    static func freePort() -> Int { LoopbackPort.free() }
}

func temporaryDirectory() -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("baton-test-\(UUID().uuidString.prefix(8))").path
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}
