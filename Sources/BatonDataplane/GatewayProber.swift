import BatonAPI
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Probes one gateway from this node, in process, on a thread of its own: an ICMP echo (an
/// unprivileged ping socket where `ping_group_range` allows it, else a raw socket) or a TCP
/// connect, every `interval`, each answered within `timeout` or counted as failed. No process
/// is forked. The thread asks for real-time round-robin scheduling (when the process may), so
/// a machine whose CPUs are all busy does not make a live gateway look dead.
///
/// `report` is called on the prober's thread after every probe, in order, with whether the
/// gateway answered in time.
public final class GatewayProber: Sendable {
    public enum Method: Sendable, Hashable { case icmp, tcp(port: Int) }

    public let target: IPAddress
    public let method: Method
    public let interval: Duration
    public let timeout: Duration
    let report: @Sendable (Bool) -> Void
    let stopped = Atomic<Bool>(false)
    let realtimePriority: Int32?

    public init(target: IPAddress, method: Method, interval: Duration, timeout: Duration, realtimePriority: Int32? = 10,
                report: @escaping @Sendable (Bool) -> Void) {
        self.target = target
        self.method = method
        self.interval = interval
        self.timeout = min(timeout, interval)
        self.realtimePriority = realtimePriority
        self.report = report
    }

    /// Starts probing (the first probe goes out at once).
    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "probe \(target)"
        thread.start()
    }

    /// Stops after the probe under way (within `interval`); no report follows the stop.
    public func stop() { stopped.store(true, ordering: .relaxed) }

    func run() {
        if let p = realtimePriority {
            var param = sched_param(sched_priority: p)
            _ = sched_setscheduler(0, SCHED_RR, &param)  // best effort: without CAP_SYS_NICE it stays normal
        }
        var echo: ICMPEchoSocket?
        var sequence: UInt16 = 0
        var next = ContinuousClock.now
        while !stopped.load(ordering: .relaxed) {
            let answered: Bool
            switch method {
            case .icmp:
                if echo == nil { echo = try? ICMPEchoSocket(target) }
                if let e = echo {
                    sequence &+= 1
                    answered = e.probe(sequence: sequence, timeout: timeout)
                } else {
                    answered = false
                }
            case .tcp(let port):
                answered = Self.connect(target, port: port, timeout: timeout)
            }
            if stopped.load(ordering: .relaxed) { break }
            report(answered)
            next = next.advanced(by: interval)
            let now = ContinuousClock.now
            if next < now { next = now }  // late (the machine was busy): start again from now, no burst
            let wait = now.duration(to: next)
            if wait > .zero { Self.sleep(wait) }
        }
    }

    static func sleep(_ d: Duration) {
        var ts = timespec(tv_sec: Int(d.components.seconds), tv_nsec: Int(d.components.attoseconds / 1_000_000_000))
        var left = timespec()
        while nanosleep(&ts, &left) != 0 && errno == EINTR { ts = left }
    }

    static func milliseconds(_ d: Duration) -> Int32 { Int32(max(0, min(Double(Int32.max), (Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15).rounded(.up)))) }

    // MARK: TCP

    /// Whether a TCP connection to `target:port` opens within `timeout` (reset at once after).
    static func connect(_ target: IPAddress, port: Int, timeout: Duration) -> Bool {
        let domain = target.family == .v4 ? AF_INET : AF_INET6
        let fd = socket(domain, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer {
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)  // close with a reset: no TIME_WAIT per probe
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            close(fd)
        }
        let started = withSockaddr(target, port: port) { Glibc.connect(fd, $0, $1) }
        if started != 0 && errno != EINPROGRESS { return false }
        if started == 0 { return true }
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { return false }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let n = poll(&p, 1, milliseconds(left))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            return error == 0
        }
    }

    static func withSockaddr<R>(_ a: IPAddress, port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch a.family {
        case .v4:
            var s = sockaddr_in()
            s.sin_family = sa_family_t(AF_INET)
            s.sin_port = UInt16(port).bigEndian
            s.sin_addr.s_addr = UInt32(truncatingIfNeeded: a.value).bigEndian
            return withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        case .v6:
            var s = sockaddr_in6()
            s.sin6_family = sa_family_t(AF_INET6)
            s.sin6_port = UInt16(port).bigEndian
            withUnsafeMutableBytes(of: &s.sin6_addr) { buf in
                for i in 0..<16 { buf[i] = UInt8(truncatingIfNeeded: a.value >> UInt128((15 - i) * 8)) }
            }
            return withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        }
    }
}
