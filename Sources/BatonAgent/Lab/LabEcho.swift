import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The lab's external host and its pods' client: UDP datagrams, each answered with the source
/// address the echo service saw, which is what an EIP changes.
public enum LabEcho {
    /// Serves forever: answers each datagram with `SOURCE_IP PAYLOAD` (the payload trimmed, so
    /// `LabSender` can match the reply to its datagram) and prints `NANOS SOURCE_IP PAYLOAD`
    /// (CLOCK_MONOTONIC) for the failover timeline, unless `quiet`.
    ///
    /// With `answerAs`, the reply carries that address instead of the source it saw: a VIP's
    /// holders each answer with their own address, so the client sees which one answered.
    public static func serve(host: String, port: UInt16, answerAs: String? = nil, quiet: Bool = false) throws -> Never {
        let fd = try bound(host: host, port: port)
        var buffer = [UInt8](repeating: 0, count: 2048)
        while true {
            var from = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let n = withUnsafeMutablePointer(to: &from) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &len) }
            }
            guard n >= 0 else { continue }
            let source = address(from)
            let payload = String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            let reply = Array("\(answerAs ?? source) \(payload)\n".utf8)
            _ = withUnsafePointer(to: &from) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, reply, reply.count, 0, $0, len) }
            }
            if !quiet { FileHandle.standardOutput.write(Data("\(monotonicNanos()) \(source) \(payload)\n".utf8)) }
        }
    }

    /// Sends one datagram to `host:port` and returns the source address the echo saw, or nil
    /// when no answer came within `timeout`.
    public static func probe(host: String, port: UInt16, payload: String = "probe", timeout: Duration = .seconds(1)) throws -> String? {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw LabError("cannot open a UDP socket: errno \(errno)") }
        defer { close(fd) }
        let (s, atto) = timeout.components
        var tv = timeval(tv_sec: Int(s), tv_usec: Int(atto / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var to = try socketAddress(host: host, port: port)
        let bytes = Array(payload.utf8)
        let sent = withUnsafePointer(to: &to) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard sent == bytes.count else { throw LabError("cannot send to \(host):\(port): errno \(errno)") }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return nil }
        // The reply is `SOURCE_IP PAYLOAD`; the source is what the caller asked for.
        return String(decoding: buffer[0..<n], as: UTF8.self).split(whereSeparator: \.isWhitespace).first.map(String.init)
    }

    static func bound(host: String, port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw LabError("cannot open a UDP socket: errno \(errno)") }
        var addr = try socketAddress(host: host, port: port)
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw LabError("cannot listen on \(host):\(port): errno \(errno)") }
        return fd
    }

    static func socketAddress(host: String, port: UInt16) throws -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { throw LabError("\(host) is not an IPv4 address") }
        return addr
    }

    static func address(_ a: sockaddr_in) -> String {
        var a = a
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &a.sin_addr, &text, socklen_t(INET_ADDRSTRLEN))
        return String(cString: text)
    }

    /// CLOCK_MONOTONIC in nanoseconds: the one clock of every lab tool, so their logs compare.
    public static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
