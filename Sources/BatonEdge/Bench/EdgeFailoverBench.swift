import AsyncHTTPClient
import BatonClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `baton lab bench edge-failover`: a steady load through each proxy to two clusters, then one
/// cluster dies. Its ingress is replaced at once by a tombstone on the same port that reads each
/// request head, notes the time, and resets the connection, so that every request either proxy
/// still sends there is seen (health checks are told apart and not counted). Prints the failed
/// requests and the time from the kill to the last request the dead cluster received.
///
/// In `freeze` mode the ingress instead stops answering with every connection left open, as a
/// SIGSTOPped process or a blackholed link does: nothing resets, so only health checks and
/// timeouts can tell. Requests it receives after the freeze are counted the same way.
public struct EdgeFailoverBench: Sendable {
    public enum Mode: String, Sendable, CaseIterable {
        /// The ingress process dies: its port resets every connection.
        case kill
        /// The ingress stops answering; its connections stay open.
        case freeze
    }

    public var batonBinary: String
    public var mode = Mode.kill
    public var connections = 16
    public var before = 2
    public var after = 4
    public var log: @Sendable (String) -> Void = { print($0) }

    public init(batonBinary: String) { self.batonBinary = batonBinary }

    public struct Result: Sendable {
        public var proxy: String
        public var requests: Int
        public var failed: Int
        /// Seconds from the kill to the last request (not a health check) at the dead cluster; nil if none came.
        public var lastAttempt: Double?
        public var attemptsAfterKill: Int
        /// The slowest request, answered or failed (seconds): what a client waited at worst.
        public var slowest: Double = 0
    }

    final class Tally: Sendable {
        let ok = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let slowestNanos = Atomic<Int>(0)

        func took(_ d: Duration) {
            let n = Int(d.components.seconds) * 1_000_000_000 + Int(d.components.attoseconds / 1_000_000_000)
            var seen = slowestNanos.load(ordering: .relaxed)
            while n > seen {
                let (done, now) = slowestNanos.compareExchange(expected: seen, desired: n, ordering: .relaxed)
                if done { break }
                seen = now
            }
        }
    }

    public func run() async throws -> [Result] {
        guard let haproxy = EdgeBench.which("haproxy") else { throw EdgeBench.Failure.missing("haproxy is not installed (apt-get install haproxy)") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("baton-edge-failover-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        BenchProcess.removeOnInterrupt(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let http = HTTPClient(eventLoopGroupProvider: .shared(group),
                              configuration: .init(connectionPool: .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)))
        var results: [Result] = []
        do {
            for proxy in ["HAProxy", "Baton"] {
                results.append(try await trial(proxy: proxy, haproxy: haproxy, dir: dir, group: group, http: http))
            }
        } catch {
            try? await http.shutdown()
            try? await group.shutdownGracefully()
            throw error
        }
        try? await http.shutdown()
        try? await group.shutdownGracefully()
        return results
    }

    func trial(proxy: String, haproxy: String, dir: String, group: any EventLoopGroup, http: HTTPClient) async throws -> Result {
        let live = try await LabIngress.start(name: "cluster-1", group: group)
        let freezer = Freezer()
        var doomed: LabIngress? = try await LabIngress.start(name: "cluster-2", group: group, freezer: freezer)
        let doomedPort = doomed!.port
        let port = EdgeBench.freePort()
        let process = proxy == "Baton"
            ? try EdgeBench(batonBinary: batonBinary).startBaton(dir: dir, port: port, threads: 1, upstreams: [live.port, doomedPort])
            : try startHAProxy(haproxy, dir: dir, port: port, upstreams: [live.port, doomedPort])
        var tombstone: Tombstone?
        defer {
            process.stop()
        }
        do {
            try await EdgeBench.waitReady(port: port, process: process.process, name: proxy)
            let tally = Tally()
            let killedAt = Mutex<ContinuousClock.Instant?>(nil)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for _ in 0..<connections {
                    tasks.addTask {
                        while !tally.stop.load(ordering: .relaxed) {
                            var r = HTTPClientRequest(url: "http://127.0.0.1:\(port)/")
                            r.headers.replaceOrAdd(name: "Host", value: EdgeBench.hostname)
                            let started = ContinuousClock.now
                            defer { tally.took(.now - started) }
                            do {
                                let resp = try await http.execute(r, timeout: .seconds(5))
                                _ = try await resp.body.collect(upTo: 1 << 16)
                                if resp.status == .ok { tally.ok.add(1, ordering: .relaxed) } else { tally.failed.add(1, ordering: .relaxed) }
                            } catch {
                                tally.failed.add(1, ordering: .relaxed)
                            }
                        }
                    }
                }
                try await Task.sleep(for: .seconds(before))
                killedAt.withLock { $0 = .now }
                switch mode {
                case .kill:
                    // The ingress and its connections go, a tombstone takes the port.
                    if let d = doomed { try await d.stopAll() }
                    doomed = nil
                    tombstone = try await Tombstone.start(port: doomedPort, group: group)
                case .freeze:
                    freezer.frozen.store(true, ordering: .relaxed)
                }
                try await Task.sleep(for: .seconds(after))
                tally.stop.store(true, ordering: .relaxed)
                try await tasks.waitForAll()
            }
            let kill = killedAt.withLock { $0 }!
            let attempts = mode == .kill ? (tombstone?.requests.withLock { $0 } ?? []) : freezer.requests.withLock { $0 }
            try? await tombstone?.channel.close()
            try? await live.channel.close()
            if let d = doomed { try? await d.stopAll() }
            let last = attempts.max().map { Double(($0 - kill).components.attoseconds) / 1e18 + Double(($0 - kill).components.seconds) }
            let r = Result(proxy: proxy, requests: tally.ok.load(ordering: .relaxed) + tally.failed.load(ordering: .relaxed),
                           failed: tally.failed.load(ordering: .relaxed), lastAttempt: last, attemptsAfterKill: attempts.count,
                           slowest: Double(tally.slowestNanos.load(ordering: .relaxed)) / 1e9)
            log("\(proxy): \(r.requests) requests, \(r.failed) failed, slowest \(String(format: "%.0f ms", r.slowest * 1000)), \(r.attemptsAfterKill) requests reached the dead cluster, the last "
                + (last.map { String(format: "%.0f ms", $0 * 1000) } ?? "never") + " after the kill ("
                + (mode == .kill ? "\(tombstone?.connections.load(ordering: .relaxed) ?? 0) connections, \(tombstone?.checks.load(ordering: .relaxed) ?? 0) health checks)"
                   : "\(freezer.checks.load(ordering: .relaxed)) health checks unanswered)"))
            return r
        } catch {
            try? await tombstone?.channel.close()
            try? await live.channel.close()
            if let d = doomed { try? await d.stopAll() }
            throw error
        }
    }

    /// HAProxy as the issue asks: checks, `observe layer7`, redispatch, retries.
    func startHAProxy(_ haproxy: String, dir: String, port: Int, upstreams: [Int]) throws -> BenchProcess {
        try EdgeBench.startHAProxy(haproxy, config: dir + "/haproxy-failover-\(port).cfg", port: port, threads: 1, upstreams: upstreams,
                                   defaults: ["option redispatch 1", "retry-on conn-failure empty-response response-timeout 503"],
                                   backend: ["option httpchk GET /",
                                             "default-server check inter 500 fall 2 rise 2 observe layer7 error-limit 3 on-error mark-down"],
                                   serverOptions: "")
    }

    public static func table(_ results: [Result], before: Int, after: Int, connections: Int, mode: Mode = .kill) -> String {
        var lines = ["| proxy | requests | failed | slowest request | requests at the dead cluster | last one after the \(mode == .kill ? "kill" : "freeze") |",
                     "|---|---|---|---|---|---|"]
        for r in results {
            lines.append("| \(r.proxy) | \(r.requests) | \(r.failed) | \(String(format: "%.0f ms", r.slowest * 1000)) | \(r.attemptsAfterKill) | "
                         + (r.lastAttempt.map { String(format: "%.0f ms", $0 * 1000) } ?? "none") + " |")
        }
        lines.append("")
        let death = mode == .kill ? "cluster-2 killed (its port resets every connection)"
            : "cluster-2 frozen (it reads requests and health checks and answers none; its connections stay open)"
        lines.append("\(connections) keep-alive clients (5 s timeout each), \(before) s of load, then \(death), \(after) s more. "
                     + "HAProxy: checks every 500 ms (fall 2), observe layer7, error-limit 3 on-error mark-down, redispatch, "
                     + "retry-on conn-failure/empty-response/response-timeout/503, timeout server 30 s. Baton: its defaults.")
        return lines.joined(separator: "\n")
    }
}

extension LabIngress {
    /// Closes the listener and every open connection, as a killed ingress process would.
    func stopAll() async throws {
        try await channel.close()
        for c in children.all() { try? await c.close() }
    }
}

/// The open connections of a server, to close them all at once.
final class ChannelSet: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    func add(_ c: any Channel) {
        let id = ObjectIdentifier(c)
        channels.withLock { $0[id] = c }
        c.closeFuture.whenComplete { [weak self] _ in _ = self?.channels.withLock { $0.removeValue(forKey: id) } }
    }

    func all() -> [any Channel] { channels.withLock { Array($0.values) } }
}

final class TombstoneBox: Sendable {
    let tombstone = Mutex<Tombstone?>(nil)
}

/// Turns a bench upstream into a frozen one: it still reads (and records) requests, and answers none.
final class Freezer: Sendable {
    let frozen = Atomic<Bool>(false)
    let requests = Mutex<[ContinuousClock.Instant]>([])
    let checks = Atomic<Int>(0)

    /// Whether a request head is a health check (Baton's, HAProxy's) rather than traffic.
    static func isHealthCheck(_ h: HTTPRequestHead) -> Bool {
        h.headers.first(name: "user-agent") == ActiveChecker.userAgent || h.method == .OPTIONS
            || h.headers.first(name: "user-agent")?.lowercased().contains("haproxy") == true
            || (h.method == .GET && h.version == .http1_0)
    }

    /// True when the request must go unanswered.
    func swallow(_ h: HTTPRequestHead) -> Bool {
        guard frozen.load(ordering: .relaxed) else { return false }
        if Self.isHealthCheck(h) { checks.add(1, ordering: .relaxed) } else { requests.withLock { $0.append(.now) } }
        return true
    }
}

/// Listens on a dead ingress's port: records when each request (not a health check) arrives,
/// then resets the connection.
final class Tombstone: Sendable {
    let channel: any Channel
    let requests = Mutex<[ContinuousClock.Instant]>([])
    /// Connections and health checks seen (not counted as requests).
    let connections = Atomic<Int>(0)
    let checks = Atomic<Int>(0)

    private init(channel: any Channel) { self.channel = channel }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        let tombstone: Tombstone
        init(_ t: Tombstone) { tombstone = t }
        func channelActive(context: ChannelHandlerContext) {
            tombstone.connections.add(1, ordering: .relaxed)
            context.fireChannelActive()
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let h) = unwrapInboundIn(data) else { return }
            if Freezer.isHealthCheck(h) { tombstone.checks.add(1, ordering: .relaxed) } else { tombstone.requests.withLock { $0.append(.now) } }
            // SO_LINGER 0: close with a reset, as a dead peer's kernel would.
            if let provider = context.channel as? any SocketOptionProvider {
                _ = provider.setSoLinger(linger(l_onoff: 1, l_linger: 0))
            }
            context.close(promise: nil)
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    static func start(port: Int, group: any EventLoopGroup) async throws -> Tombstone {
        let box = TombstoneBox()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let t = box.tombstone.withLock({ $0 }) else { throw ChannelError.ioOnClosedChannel }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: false)
                    try channel.pipeline.syncOperations.addHandler(Handler(t))
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .get()
        let t = Tombstone(channel: channel)
        box.tombstone.withLock { $0 = t }
        return t
    }
}
