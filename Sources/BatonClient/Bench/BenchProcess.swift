import AsyncHTTPClient
import BatonAPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A server process a benchmark starts on loopback and stops by PID.
package final class BenchProcess: @unchecked Sendable {
    package let process = Process()

    /// `output` receives the process's stdout and stderr (default: discarded).
    package init(binary: String, arguments: [String], output: FileHandle? = nil) throws {
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = output ?? FileHandle.nullDevice
        process.standardError = output ?? FileHandle.nullDevice
        try process.run()
    }

    package func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }

    package static func waitForHTTP(_ http: HTTPClient, url: String) async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while ContinuousClock.now < deadline {
            if let r = try? await http.execute(HTTPClientRequest(url: url), timeout: .seconds(2)), r.status.code == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw APIError.unavailable("\(url) did not answer within 30 s")
    }

    package static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
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
