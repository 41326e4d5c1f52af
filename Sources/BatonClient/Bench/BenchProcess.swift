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
