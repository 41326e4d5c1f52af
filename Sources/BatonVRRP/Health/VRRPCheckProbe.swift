import BatonAPI
import BatonCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The built-in checks' I/O: a TCP connect and an HTTP GET on a non-blocking socket, each
/// bounded by a deadline, run in the calling thread (the health runner gives each run a thread
/// of its own). No fork, no name resolution.
enum VRRPCheckProbe {
    /// Connects to `host:port` and closes at once.
    static func tcpConnect(host: IPAddress, port: UInt16, timeout: Duration) -> VRRPHealthMonitor.Outcome {
        let deadline = ContinuousClock.now + timeout
        switch connect(host: host, port: port, deadline: deadline) {
        case .failure(let why): return .failure(why)
        case .success(let fd):
            Glibc.close(fd)
            return .success
        }
    }

    /// Sends `GET path HTTP/1.1` (with `Connection: close`) and reads the status line: 2xx and
    /// 3xx are up, anything else (or no status line by the deadline) is down.
    static func httpGet(_ target: VRRPHTTPTarget, timeout: Duration) -> VRRPHealthMonitor.Outcome {
        let deadline = ContinuousClock.now + timeout
        let fd: Int32
        switch connect(host: target.host, port: target.port, deadline: deadline) {
        case .failure(let why): return .failure(why)
        case .success(let s): fd = s
        }
        defer { Glibc.close(fd) }
        let request = Array("GET \(target.path) HTTP/1.1\r\nHost: \(target.authority)\r\nUser-Agent: baton-vrrp-check\r\nAccept: */*\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            guard wait(fd, for: Int16(POLLOUT), until: deadline) else { return .failure("timed out sending the request") }
            let n = request[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                return .failure("cannot send the request: \(String(cString: strerror(errno)))")
            }
            sent += n
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        while !received.contains(0x0A) && received.count < 8192 {
            guard wait(fd, for: Int16(POLLIN), until: deadline) else { return .failure("timed out waiting for the response") }
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                return .failure("cannot read the response: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            received += chunk[..<n]
        }
        return outcome(statusLine: received)
    }

    /// The outcome of an HTTP response's first bytes.
    static func outcome(statusLine bytes: [UInt8]) -> VRRPHealthMonitor.Outcome {
        let line = String(decoding: bytes.prefix { $0 != 0x0D && $0 != 0x0A }, as: UTF8.self)
        let parts = line.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), parts[1].count == 3, let status = Int(parts[1]) else {
            return .failure(line.isEmpty ? "no HTTP status line" : "not an HTTP status line: \(line.prefix(60))")
        }
        return (200..<400).contains(status) ? .success : .failure("HTTP status \(status)")
    }

    // MARK: Sockets

    private enum Connected {
        case success(Int32)
        case failure(String)
    }

    private static func connect(host: IPAddress, port: UInt16, deadline: ContinuousClock.Instant) -> Connected {
        let domain = host.family == .v4 ? AF_INET : AF_INET6
        let fd = socket(domain, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure("cannot open a socket: \(String(cString: strerror(errno)))") }
        let result: Int32
        switch host.family {
        case .v4:
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = UInt32(truncatingIfNeeded: host.value).bigEndian
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6:
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            address.sin6_addr = in6_addr(host)
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        if result == 0 { return .success(fd) }
        guard errno == EINPROGRESS else {
            let why = String(cString: strerror(errno)).lowercased()
            Glibc.close(fd)
            return .failure(why)
        }
        guard wait(fd, for: Int16(POLLOUT), until: deadline) else {
            Glibc.close(fd)
            return .failure("connect timed out")
        }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0, error == 0 else {
            let why = String(cString: strerror(error == 0 ? errno : error)).lowercased()
            Glibc.close(fd)
            return .failure(why)
        }
        return .success(fd)
    }

    /// Polls `fd` for `events` until `deadline`; false when the deadline came first.
    private static func wait(_ fd: Int32, for events: Int16, until deadline: ContinuousClock.Instant) -> Bool {
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { return false }
            let (s, atto) = left.components
            let milliseconds = Int32(clamping: s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000)
            var p = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&p, 1, milliseconds)
            if ready > 0 { return true }
            if ready < 0 && errno != EINTR { return true }   // let the next call report the error
        }
    }
}

/// A check or notify script run: the command started in a process group of its own (so that a
/// timeout stops whatever it started), standard streams on /dev/null, the signals reset, the
/// normal scheduler (SCHED_OTHER, even when the speaker runs real-time), and its exit status
/// waited for in the calling thread.
final class VRRPScriptRun: Sendable {
    let arguments: [String]
    /// The child's PID while it has not been reaped (0 before it starts and after), and whether
    /// `stop()` came (a script that starts after that is killed at once).
    private let state = Mutex<(pid: pid_t, stopped: Bool)>((0, false))

    init(arguments: [String]) {
        self.arguments = arguments
    }

    /// Starts the script and waits for it; exit status 0 is a success.
    func run() -> VRRPHealthMonitor.Outcome {
        let child: pid_t
        switch spawn() {
        case .failure(let why): return .failure(why)
        case .success(let p): child = p
        }
        state.withLock { s in
            s.pid = child
            if s.stopped { _ = kill(-child, SIGKILL) }
        }
        // Wait without reaping first, so that `stop()` never signals a PID the kernel may have
        // given to another process.
        var info = siginfo_t()
        while waitid(P_PID, id_t(child), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
        state.withLock { $0.pid = 0 }
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        let termination = status & 0x7F
        if termination == 0 {
            let code = (status >> 8) & 0xFF
            return code == 0 ? .success : .failure("exit status \(code)")
        }
        return .failure("killed by signal \(termination)")
    }

    /// Kills the script's process group (SIGKILL) if it runs, or as soon as it starts.
    func stop() {
        state.withLock { s in
            s.stopped = true
            if s.pid > 0 { _ = kill(-s.pid, SIGKILL) }
        }
    }

    private enum Spawned {
        case success(pid_t)
        case failure(String)
    }

    private func spawn() -> Spawned {
        guard let program = arguments.first else { return .failure("no command") }
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        for fd in Int32(0)...2 {
            posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
        }
        // The speaker ignores SIGPIPE and has SIGTERM/SIGINT handled: ignored signals survive exec.
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setpgroup(&attributes, 0)
        // Under `--realtime-priority` the speaker's threads are SCHED_RR; a script must not be
        // (keepalived resets its scripts the same way, with SCHED_RESET_ON_FORK).
        var normal = sched_param(sched_priority: 0)
        posix_spawnattr_setschedpolicy(&attributes, SCHED_OTHER)
        posix_spawnattr_setschedparam(&attributes, &normal)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSCHEDULER))

        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        let error = posix_spawn(&child, program, &actions, &attributes, argv, environ)
        guard error == 0 else {
            return .failure("cannot run \(program): \(String(cString: strerror(error)).lowercased())")
        }
        return .success(child)
    }
}
