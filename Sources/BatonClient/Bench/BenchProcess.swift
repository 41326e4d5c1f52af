import AsyncHTTPClient
import BatonAPI
import BatonEtcd
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A server process a benchmark starts on loopback and stops by PID. A benchmark interrupted
/// with SIGINT or SIGTERM stops its children before it exits, so none outlives it.
package final class BenchProcess: @unchecked Sendable {
    package let process = Process()

    /// `output` receives the process's stdout and stderr (default: discarded).
    package init(binary: String, arguments: [String], output: FileHandle? = nil) throws {
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = output ?? FileHandle.nullDevice
        process.standardError = output ?? FileHandle.nullDevice
        Self.installInterruptHandlers()
        try process.runWithStopSignalsUnblocked()
        let pid = process.processIdentifier
        Self.running.withLock { _ = $0.insert(pid) }
    }

    package func stop() {
        defer { Self.running.withLock { _ = $0.remove(process.processIdentifier) } }
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }

    /// The PIDs of children not yet stopped.
    private static let running = Mutex<Set<pid_t>>([])
    /// Scratch directories removed if the benchmark is interrupted.
    private static let scratch = Mutex<Set<String>>([])

    /// Removes `path` if the benchmark is interrupted (its own cleanup removes it otherwise).
    package static func removeOnInterrupt(_ path: String) { scratch.withLock { _ = $0.insert(path) } }
    private static let handlers = Mutex<[any DispatchSourceSignal]>([])

    /// On SIGINT or SIGTERM: SIGTERM to every running child, then exit with 128 + the signal.
    private static func installInterruptHandlers() {
        handlers.withLock { sources in
            guard sources.isEmpty else { return }
            for sig in [SIGINT, SIGTERM] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler {
                    let children = running.withLock { $0 }
                    for pid in children { kill(pid, SIGTERM) }
                    let deadline = Date().addingTimeInterval(5)
                    while children.contains(where: { kill($0, 0) == 0 }) && Date() < deadline { usleep(10_000) }
                    for path in scratch.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
                    exit(128 + sig)
                }
                source.resume()
                sources.append(source)
            }
            // Dispatch installs its own handler once the sources are registered, on another
            // thread. Until then the signals are ignored (SIG_IGN), and a child started in
            // between would inherit that and ignore the SIGTERM that stops it; a caught signal
            // goes back to its default in a child.
            let deadline = Date().addingTimeInterval(1)
            while Date() < deadline && [SIGINT, SIGTERM].contains(where: { Self.isIgnored($0) }) { usleep(1000) }
        }
    }

    private static func isIgnored(_ sig: Int32) -> Bool {
        var current = sigaction()
        sigaction(sig, nil, &current)
        return unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self)
    }

    package static func waitForHTTP(_ http: HTTPClient, url: String) async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while ContinuousClock.now < deadline {
            if let r = try? await http.execute(HTTPClientRequest(url: url), timeout: .seconds(2)), r.status.code == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw APIError.unavailable("\(url) did not answer within 30 s")
    }

    package static func freePort() -> Int { LoopbackPort.free() }
}

/// A single-member etcd on loopback in a temporary data dir, for the benchmarks' peer column.
package final class EtcdInstance: @unchecked Sendable {
    package let process: BenchProcess
    /// The client URL, `http://127.0.0.1:PORT`.
    package let base: String
    let dir: String

    /// Starts etcd and waits until it answers /health.
    package init(binary: String, http: HTTPClient) async throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("etcd-bench-\(UUID().uuidString.prefix(8))").path
        BenchProcess.removeOnInterrupt(dir)
        let port = BenchProcess.freePort(), peer = BenchProcess.freePort()
        process = try BenchProcess(binary: binary, arguments: [
            "--data-dir", dir, "--name", "bench",
            "--listen-client-urls", "http://127.0.0.1:\(port)", "--advertise-client-urls", "http://127.0.0.1:\(port)",
            "--listen-peer-urls", "http://127.0.0.1:\(peer)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(peer)",
            "--initial-cluster", "bench=http://127.0.0.1:\(peer)", "--log-level", "error",
        ])
        base = "http://127.0.0.1:\(port)"
        do {
            try await BenchProcess.waitForHTTP(http, url: base + "/health")
        } catch {
            stop()
            throw error
        }
    }

    /// The server's version, as etcd reports it.
    package func version(_ http: HTTPClient) async -> String {
        (try? await EtcdJSON.post(http, base + "/version", nil))?["etcdserver"]?.stringValue ?? "?"
    }

    /// Stops etcd by PID and removes its data dir.
    package func stop() {
        process.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }
}
