import Foundation
import Glibc

/// A TCP proxy on loopback that can cut the path to its upstream, as a network partition would:
/// while cut, bytes in both directions are dropped and new connections are accepted but go
/// nowhere; nothing is closed. `heal()` drops the connections that lived through the cut (their
/// streams lost bytes, as TCP connections that timed out would be) and forwards again.
///
/// With several upstreams it is also a failover load balancer, as a VIP in front of several
/// `baton server` replicas would be: each new connection goes to the first upstream that accepts it.
final class CuttableProxy: @unchecked Sendable {
    let port: Int
    private let upstreamPorts: [Int]
    private let listener: Int32
    private let lock = NSLock()
    private var isCut = false
    private var isClosed = false
    private var open: Set<Int32> = []

    convenience init(upstreamPort: Int) throws {
        try self.init(upstreamPorts: [upstreamPort])
    }

    init(upstreamPorts: [Int]) throws {
        self.upstreamPorts = upstreamPorts
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = Self.loopback(port: 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        guard withUnsafePointer(to: &addr, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }) == 0,
              listen(listener, 128) == 0 else {
            Glibc.close(listener)
            throw POSIXError(.EADDRINUSE)
        }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        self.listener = listener
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func cut() { lock.withLock { isCut = true } }

    /// Under the lock, so that no descriptor is closed (and its number reused) meanwhile.
    func heal() {
        lock.withLock {
            isCut = false
            for fd in open { shutdown(fd, Int32(SHUT_RDWR)) }
            open = []
        }
    }

    func close() {
        let wasClosed = lock.withLock { () -> Bool in
            defer { isClosed = true }
            if !isClosed { for fd in open { shutdown(fd, Int32(SHUT_RDWR)) } }
            open = []
            return isClosed
        }
        guard !wasClosed else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }

    deinit { close() }

    private var cutNow: Bool { lock.withLock { isCut } }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            var upstream: Int32 = -1
            var connected = false
            for upstreamPort in upstreamPorts {
                upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var addr = Self.loopback(port: upstreamPort)
                connected = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                } == 0
                if connected { break }
                Glibc.close(upstream)
                upstream = -1
            }
            let closed = lock.withLock { () -> Bool in
                if !isClosed, connected { open.formUnion([client, upstream]) }
                return isClosed
            }
            if closed || !connected {
                Glibc.close(client)
                if upstream >= 0 { Glibc.close(upstream) }
                if closed { return }
                continue
            }
            let server = upstream
            let pair = Pair(client, server)
            Thread.detachNewThread { [self] in pump(from: client, to: server); pair.finished(by: self) }
            Thread.detachNewThread { [self] in pump(from: server, to: client); pair.finished(by: self) }
        }
    }

    /// Copies bytes until either side closes; drops them while cut. The reader closes both ends.
    private func pump(from: Int32, to: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            if cutNow { continue }
            var sent = 0
            while sent < n {
                let w = buffer.withUnsafeBytes { write(to, $0.baseAddress! + sent, n - sent) }
                if w <= 0 { break }
                sent += w
            }
        }
        shutdown(to, Int32(SHUT_RDWR))
        shutdown(from, Int32(SHUT_RDWR))
    }

    /// The two sockets of one proxied connection: the second pump to finish closes both.
    private final class Pair: @unchecked Sendable {
        let fds: [Int32]
        private let lock = NSLock()
        private var pumps = 2
        init(_ a: Int32, _ b: Int32) { fds = [a, b] }
        func finished(by proxy: CuttableProxy) {
            let last = lock.withLock { pumps -= 1; return pumps == 0 }
            if last { proxy.release(fds) }
        }
    }

    private func release(_ fds: [Int32]) {
        lock.withLock {
            for fd in fds {
                open.remove(fd)
                Glibc.close(fd)
            }
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return addr
    }
}
