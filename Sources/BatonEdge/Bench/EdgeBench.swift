import BatonClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `baton lab bench edge`: wrk against `baton edge` and against HAProxy, each proxying to the
/// same loopback upstreams (two clusters answering with their names), with the same
/// connections and duration, at each thread count. Everything runs on loopback; every process
/// it starts is stopped by PID before it returns.
public struct EdgeBench: Sendable {
    public var batonBinary: String
    public var connections = 32
    public var duration = 10
    public var threads = [1, 2]
    public var wrkThreads = 1
    /// Runs per proxy and thread count; the order alternates (HAProxy first, then Baton first),
    /// and `table` shows the median run of each.
    public var rounds = 3
    public var log: @Sendable (String) -> Void = { print($0) }
    static let hostname = "bench.example.com"

    public init(batonBinary: String) { self.batonBinary = batonBinary }

    public struct Run: Sendable {
        public var proxy: String
        public var threads: Int
        public var requestsPerSecond: Double
        public var p50ms: Double
        public var p99ms: Double
        public var errors: Int
        /// The proxy process's CPU per request during the measured run, user and system (µs).
        public var userMicros: Double = 0
        public var systemMicros: Double = 0
        /// The bench process's CPU per request (its upstreams' event loop), and wrk's (µs).
        public var upstreamMicros: Double = 0
        public var wrkMicros: Double = 0
    }

    public enum Failure: Error, CustomStringConvertible {
        case missing(String)
        case start(String)
        case wrk(String)
        public var description: String {
            switch self {
            case .missing(let s), .start(let s), .wrk(let s): s
            }
        }
    }

    public static func which(_ tool: String) -> String? {
        for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin"] {
            let p = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    public func run() async throws -> [Run] {
        guard let wrk = Self.which("wrk") else { throw Failure.missing("wrk is not installed (apt-get install wrk)") }
        guard let haproxy = Self.which("haproxy") else { throw Failure.missing("haproxy is not installed (apt-get install haproxy)") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("baton-edge-bench-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        BenchProcess.removeOnInterrupt(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let upstreamGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let upstreams = try await [LabIngress.start(name: "cluster-1", group: upstreamGroup),
                                   LabIngress.start(name: "cluster-2", group: upstreamGroup)]
        do {
            let runs = try await measure(dir: dir, wrk: wrk, haproxy: haproxy, upstreams: upstreams)
            for u in upstreams { try? await u.channel.close() }
            try? await upstreamGroup.shutdownGracefully()
            return runs
        } catch {
            for u in upstreams { try? await u.channel.close() }
            try? await upstreamGroup.shutdownGracefully()
            throw error
        }
    }

    func measure(dir: String, wrk: String, haproxy: String, upstreams: [LabIngress]) async throws -> [Run] {
        log("upstreams: cluster-1 on 127.0.0.1:\(upstreams[0].port), cluster-2 on 127.0.0.1:\(upstreams[1].port) (one event loop, in this process)")
        var runs: [Run] = []
        for round in 0..<rounds {
            for t in threads {
                for proxy in (round % 2 == 0 ? ["HAProxy", "Baton"] : ["Baton", "HAProxy"]) {
                    let port = Self.freePort()
                    let process = proxy == "Baton"
                        ? try startBaton(dir: dir, port: port, threads: t, upstreams: upstreams.map(\.port))
                        : try startHAProxy(haproxy, dir: dir, port: port, threads: t, upstreams: upstreams.map(\.port))
                    defer { process.stop() }
                    try await Self.waitReady(port: port, process: process.process, name: proxy)
                    // A short warm-up fills both proxies' connection pools.
                    _ = try? Self.wrk(wrk, port: port, connections: connections, threads: wrkThreads, seconds: 1)
                    let before = Self.cpuTime(process.process.processIdentifier)
                    let selfBefore = Self.cpuTime(getpid()), kidsBefore = Self.childrenCPU()
                    let r = try Self.wrk(wrk, port: port, connections: connections, threads: wrkThreads, seconds: duration)
                    let after = Self.cpuTime(process.process.processIdentifier)
                    let selfAfter = Self.cpuTime(getpid()), kidsAfter = Self.childrenCPU()
                    var run = Run(proxy: proxy, threads: t, requestsPerSecond: r.rps, p50ms: r.p50, p99ms: r.p99, errors: r.errors)
                    let requests = max(1, r.rps * Double(duration))
                    run.userMicros = (after.user - before.user) / requests * 1e6
                    run.systemMicros = (after.system - before.system) / requests * 1e6
                    log(String(format: "%@ with %d thread(s): %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d errors, CPU %.1f µs/request (user %.1f, system %.1f)",
                               proxy, t, run.requestsPerSecond, run.p50ms, run.p99ms, run.errors,
                               run.userMicros + run.systemMicros, run.userMicros, run.systemMicros))
                    run.upstreamMicros = (selfAfter.user + selfAfter.system - selfBefore.user - selfBefore.system) / requests * 1e6
                    run.wrkMicros = (kidsAfter - kidsBefore) / requests * 1e6
                    log(String(format: "    upstreams (this process) %.1f µs/request, wrk %.1f µs/request", run.upstreamMicros, run.wrkMicros))
                    runs.append(run)
                }
            }
        }
        return runs
    }

    /// The median run (by req/s) of each proxy at each thread count.
    public func medians(_ runs: [Run]) -> [Run] {
        var out: [Run] = []
        for t in threads {
            for proxy in ["HAProxy", "Baton"] {
                let mine = runs.filter { $0.threads == t && $0.proxy == proxy }.sorted { $0.requestsPerSecond < $1.requestsPerSecond }
                if !mine.isEmpty { out.append(mine[mine.count / 2]) }
            }
        }
        return out
    }

    /// The side-by-side table.
    public func table(_ all: [Run]) -> String {
        let runs = medians(all)
        var lines = ["| threads | proxy | req/s | p50 | p99 | errors | CPU µs/request (user + system) | Baton / HAProxy req/s |",
                     "|---|---|---|---|---|---|---|---|"]
        for t in threads {
            let h = runs.first { $0.threads == t && $0.proxy == "HAProxy" }
            for r in runs where r.threads == t {
                let ratio = r.proxy == "Baton" && (h?.requestsPerSecond ?? 0) > 0
                    ? String(format: "%.2f×", r.requestsPerSecond / h!.requestsPerSecond) : ""
                lines.append(String(format: "| %d | %@ | %.0f | %.2f ms | %.2f ms | %d | %.1f (%.1f + %.1f) | %@ |", t, r.proxy,
                                    r.requestsPerSecond, r.p50ms, r.p99ms, r.errors, r.userMicros + r.systemMicros,
                                    r.userMicros, r.systemMicros, ratio))
            }
        }
        lines.append("")
        lines.append("wrk -t\(wrkThreads) -c\(connections) -d\(duration)s, keep-alive, to two loopback upstreams; same machine, same run; "
                     + "the median of \(rounds) run\(rounds == 1 ? "" : "s") each (by req/s), in alternating order.")
        let ratios = threads.map { t -> String in
            let h = all.filter { $0.threads == t && $0.proxy == "HAProxy" }
            let b = all.filter { $0.threads == t && $0.proxy == "Baton" }
            let rs = (0..<rounds).compactMap { i -> Double? in
                guard i < h.count, i < b.count, h[i].requestsPerSecond > 0 else { return nil }
                return b[i].requestsPerSecond / h[i].requestsPerSecond
            }
            return "\(t) thread\(t == 1 ? "" : "s"): " + rs.map { String(format: "%.2f×", $0) }.joined(separator: ", ")
        }
        lines.append("Baton / HAProxy in each round: " + ratios.joined(separator: "; ") + ".")
        return lines.joined(separator: "\n")
    }

    // MARK: Processes

    /// A process's CPU time so far (all its threads), from /proc/PID/stat, in seconds.
    static func cpuTime(_ pid: Int32) -> (user: Double, system: Double) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return (0, 0) }
        // Fields after the command name: state is field 3, utime 14 and stime 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return (0, 0) }
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        return (u / hz, s / hz)
    }

    /// CPU time of this process's children that have been waited for (wrk, once it exits), in seconds.
    static func childrenCPU() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    /// The proxies are `BenchProcess`es: a bench interrupted with SIGINT or SIGTERM stops them
    /// before it exits.
    func startBaton(dir: String, port: Int, threads: Int, upstreams: [Int]) throws -> BenchProcess {
        let config = dir + "/edge-\(port).yaml"
        var yaml = """
            apiVersion: gateway.tsb.tetrate.io/v2
            kind: Gateway
            metadata: {name: bench}
            spec:
              workloadSelector: {namespace: edge}
              http:
              - name: bench
                port: \(port)
                hostname: \(Self.hostname)
                routing: {rules: [{route: {clusterDestination: {}}}]}

            """
        for (i, p) in upstreams.enumerated() {
            yaml += """
                ---
                apiVersion: api.tsb.tetrate.io/v2
                kind: Cluster
                metadata: {name: cluster-\(i + 1)}
                spec:
                  locality: {region: bench}
                  ingresses: [{address: 127.0.0.1, port: \(p)}]

                """
        }
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        return try BenchProcess(binary: batonBinary,
                                arguments: ["edge", "--config", config, "--listen", "127.0.0.1:\(port)", "--region", "bench",
                                            "--event-loops", String(threads), "--access-log", "off", "--log-level", "warning"],
                                output: FileHandle.standardError)
    }

    /// The throughput bench's HAProxy: checks that observe live traffic, and redispatch.
    func startHAProxy(_ haproxy: String, dir: String, port: Int, threads: Int, upstreams: [Int]) throws -> BenchProcess {
        try Self.startHAProxy(haproxy, config: dir + "/haproxy-\(port).cfg", port: port, threads: threads, upstreams: upstreams,
                              defaults: ["option redispatch", "option forwardfor"],
                              backend: ["http-request set-header X-Forwarded-Proto http",
                                        "http-request set-header X-Forwarded-Host %[req.hdr(host)]",
                                        "http-request add-header Forwarded \"for=%[src];proto=http;host=\\\"%[req.hdr(host)]\\\"\""],
                              serverOptions: " check inter 500 observe layer7")
    }

    /// Writes an HAProxy configuration (HTTP, keep-alive both ways, the given extra lines) and
    /// starts it in the foreground, its standard error in `config`'s `.log` beside it.
    static func startHAProxy(_ haproxy: String, config: String, port: Int, threads: Int, upstreams: [Int],
                             defaults: [String], backend: [String], serverOptions: String) throws -> BenchProcess {
        var cfg = """
            global
                nbthread \(threads)
                maxconn 4096
            defaults
                mode http
                option http-keep-alive
                http-reuse always
                timeout connect 1s
                timeout client 30s
                timeout server 30s
                retries 2

            """
        for line in defaults { cfg += "    \(line)\n" }
        cfg += """
            frontend edge
                bind 127.0.0.1:\(port)
                default_backend clusters
            backend clusters
                balance roundrobin

            """
        for line in backend { cfg += "    \(line)\n" }
        for (i, p) in upstreams.enumerated() { cfg += "    server cluster-\(i + 1) 127.0.0.1:\(p)\(serverOptions)\n" }
        try cfg.write(toFile: config, atomically: true, encoding: .utf8)
        let errors = (config as NSString).deletingPathExtension + ".log"
        _ = FileManager.default.createFile(atPath: errors, contents: nil)
        return try BenchProcess(binary: haproxy, arguments: ["-f", config, "-db"], output: FileHandle(forWritingAtPath: errors))
    }

    static func waitReady(port: Int, process: Process, name: String) async throws {
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                let log = (process.arguments?.first == "-f")
                    ? ((try? String(contentsOfFile: (process.arguments![1] as NSString).deletingPathExtension + ".log", encoding: .utf8)) ?? "") : ""
                throw Failure.start("\(name) exited at start (status \(process.terminationStatus)): \(log)")
            }
            if probe(port: port) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw Failure.start("\(name) did not answer on 127.0.0.1:\(port) within 15 s")
    }

    /// One request; true on a 200.
    static func probe(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { return false }
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let req = "GET / HTTP/1.1\r\nHost: \(hostname)\r\nConnection: close\r\n\r\n"
        _ = req.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        var buf = [UInt8](repeating: 0, count: 512)
        let n = recv(fd, &buf, buf.count, 0)
        return n > 12 && String(decoding: buf[0..<12], as: UTF8.self) == "HTTP/1.1 200"
    }

    static func freePort() -> Int { BenchProcess.freePort() }

    // MARK: wrk

    struct WrkResult { var rps: Double; var p50: Double; var p99: Double; var errors: Int }

    static func wrk(_ wrk: String, port: Int, connections: Int, threads: Int, seconds: Int) throws -> WrkResult {
        let out = Pipe()
        let p = try BenchProcess(binary: wrk, arguments: ["-t\(threads)", "-c\(connections)", "-d\(seconds)s", "--latency",
                                                          "-H", "Host: \(hostname)", "http://127.0.0.1:\(port)/"],
                                 output: out.fileHandleForWriting)
        try? out.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        try? out.fileHandleForReading.close()
        p.process.waitUntilExit()
        return try parseWrk(String(decoding: data, as: UTF8.self))
    }

    /// Reads wrk's `--latency` report.
    static func parseWrk(_ text: String) throws -> WrkResult {
        var r = WrkResult(rps: 0, p50: 0, p99: 0, errors: 0)
        var sawRPS = false
        for raw in text.split(separator: "\n") {
            let fields = raw.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if first == "Requests/sec:", fields.count > 1, let v = Double(fields[1]) { r.rps = v; sawRPS = true }
            if first == "50%", fields.count > 1 { r.p50 = millis(fields[1]) }
            if first == "99%", fields.count > 1 { r.p99 = millis(fields[1]) }
            if raw.contains("Non-2xx or 3xx responses:"), let n = Int(fields.last ?? "") { r.errors += n }
            if raw.contains("Socket errors:") {
                for f in fields where f.allSatisfy(\.isNumber) || f.hasSuffix(",") {
                    if let n = Int(f.trimmingCharacters(in: CharacterSet(charactersIn: ","))) { r.errors += n }
                }
            }
        }
        guard sawRPS else { throw Failure.wrk("cannot read wrk's report: \(text.prefix(400))") }
        return r
    }

    static func millis(_ s: Substring) -> Double {
        if s.hasSuffix("us"), let v = Double(s.dropLast(2)) { return v / 1000 }
        if s.hasSuffix("ms"), let v = Double(s.dropLast(2)) { return v }
        if s.hasSuffix("s"), let v = Double(s.dropLast(1)) { return v * 1000 }
        if s.hasSuffix("m"), let v = Double(s.dropLast(1)) { return v * 60_000 }
        return 0
    }
}
