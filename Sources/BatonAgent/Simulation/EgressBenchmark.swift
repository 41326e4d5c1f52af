import AsyncHTTPClient
import BatonAPI
import BatonEtcd
import BatonClient
import Foundation
import Logging
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `baton bench egress`: N simulated agents (`EgressAgent` with the recording data plane, all in
/// this process) against one `baton server` child process, with E EIPs over G gateways.
///
/// Each gateway selects its own group of N/G nodes (label `egress-group`), and each EIP has one
/// policy with an explicit `egressIP`, so every node carries E/N EIPs. It prints:
/// - the heartbeat rate the server sustains and the server's CPU, over a steady window, beside
///   etcd taking the same number of writes a second (what an egressgateway heartbeat costs its
///   store, since egressgateway heartbeats by updating the EgressTunnel object);
/// - per failover (one agent stopped): the controller's time to re-place the failed node's EIPs
///   (decision and status writes, from the server's metrics), and the end-to-end time from the
///   failed node's last acknowledged heartbeat to the last of its EIPs being announced by its
///   new holder's agent.
public struct EgressBenchmark: Sendable {
    public var agents = 1000
    public var gateways = 50
    public var eips = 10_000
    public var failovers = 3
    public var steadySeconds = 10.0
    public var batonBinary: String
    public var etcdBinary: String?
    public var settings = FeatureSettings()

    public init(batonBinary: String, etcdBinary: String?) {
        self.batonBinary = batonBinary
        self.etcdBinary = etcdBinary
    }

    /// Who announces each EIP (as the agents' data planes report it) and when it last changed hands.
    final class Holders: Sendable {
        struct State {
            var holder: [String: String] = [:]
            var announcedAt: [String: ContinuousClock.Instant] = [:]
        }
        let state = Mutex(State())

        func changed(node: String, eips: Set<String>, announced: Bool) {
            let now = ContinuousClock.now
            state.withLock { s in
                for e in eips {
                    if announced {
                        s.holder[e] = node
                        s.announcedAt[e] = now
                    } else if s.holder[e] == node {
                        s.holder[e] = nil
                    }
                }
            }
        }
        var count: Int { state.withLock { $0.holder.count } }
        func held(by node: String) -> Set<String> { state.withLock { Set($0.holder.filter { $0.value == node }.keys) } }
        func snapshot() -> State { state.withLock { $0 } }
    }

    struct FailoverResult {
        var node: String
        var eips: Int
        var successors: Int
        var endToEnd: Double
        var decision: Double
        var writes: Double
    }

    public func run(print: @escaping @Sendable (String) -> Void) async throws {
        guard agents > 0, gateways > 0, agents % gateways == 0, eips % gateways == 0, eips / gateways <= 60_000 else {
            throw APIError.badRequest("--agents and --eips must be positive multiples of --gateways (at most 60,000 EIPs per gateway)")
        }
        Self.raiseFileLimit()
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(
            timeout: .init(connect: .seconds(10)),
            // Per agent: its watch, its heartbeats in flight (more while the server is slow),
            // and one spare; the admin client's requests must never wait behind them.
            connectionPool: .init(idleTimeout: .seconds(120),
                                  concurrentHTTP1ConnectionsPerHostSoftLimit: agents * (EgressAgent.maxHeartbeatsInFlight(settings) + 2) + 64)))
        do {
            try await run(http: http, print: print)
        } catch {
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
    }

    func run(http: HTTPClient, print: @escaping @Sendable (String) -> Void) async throws {
        let update = settings.tunnelUpdatePeriod
        print("agents=\(agents) gateways=\(gateways) EIPs=\(eips) tunnelUpdatePeriod=\(update)s "
              + "tunnelMonitorPeriod=\(settings.tunnelMonitorPeriod)s eipEvictionTimeout=\(settings.eipEvictionTimeout)s")

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("baton-egress-bench-\(UUID().uuidString.prefix(8))").path
        BenchProcess.removeOnInterrupt(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = BenchProcess.freePort()
        // BATON_BENCH_SERVER_LOG=FILE keeps the server's log (at info level) for a closer look.
        let logPath = ProcessInfo.processInfo.environment["BATON_BENCH_SERVER_LOG"]
        if let logPath { FileManager.default.createFile(atPath: logPath, contents: nil) }
        // The server takes the same periods as the agents. It must not probe the simulated nodes'
        // made-up addresses (feature.unreachableNodeProbe), which are not in any namespace.
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let values = dir + "/values.yaml"
        try """
            feature:
              tunnelMonitorPeriod: \(settings.tunnelMonitorPeriod)
              tunnelUpdatePeriod: \(settings.tunnelUpdatePeriod)
              eipEvictionTimeout: \(settings.eipEvictionTimeout)
              unreachableNodeProbe: false

            """.write(toFile: values, atomically: true, encoding: .utf8)
        let server = try BenchProcess(binary: batonBinary, arguments: ["server", "--data-dir", dir, "--listen", "127.0.0.1:\(port)",
                                                                        "--config", values,
                                                                        "--log-level", logPath == nil ? "warning" : "info"],
                                      output: logPath.flatMap { FileHandle(forWritingAtPath: $0) })
        defer { server.stop() }
        let base = "http://127.0.0.1:\(port)"
        try await BenchProcess.waitForHTTP(http, url: base + "/readyz")
        let token = try String(contentsOfFile: dir + "/admin.token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let admin = BatonClient(server: base, token: token, http: http)
        let serverPID = server.process.processIdentifier

        // 1. The agents register and go Ready.
        let holders = Holders()
        // BATON_BENCH_AGENT_LOG=1 shows the simulated agents' warnings on stderr.
        let agentLogs = ProcessInfo.processInfo.environment["BATON_BENCH_AGENT_LOG"] == "1"
        let silent = Logger(label: "baton.bench.agent", factory: { label in
            guard agentLogs else { return SwiftLogNoOpLogHandler() }
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .warning
            return h
        })
        var simulated: [(name: String, agent: EgressAgent)] = []
        for i in 0..<agents {
            let name = String(format: "sim-%04d", i)
            let plane = try RecordingDataplane(logger: silent) { eips, announced in
                holders.changed(node: name, eips: eips, announced: announced)
            }
            let options = EgressAgent.Options(node: name, labels: ["egress-group": Self.group(i % gateways)],
                                              addresses: [Self.nodeAddress(i)], settings: settings)
            simulated.append((name, try EgressAgent(client: BatonClient(server: base, token: token, http: http), options: options,
                                                    dataplane: plane, logger: silent)))
        }
        let started = ContinuousClock.now
        var tasks: [String: Task<Void, Never>] = [:]
        for (i, s) in simulated.enumerated() {
            let agent = s.agent
            tasks[s.name] = Task { try? await agent.run() }
            if i % 50 == 49 { try await Task.sleep(for: .milliseconds(20)) }
        }
        defer { for t in tasks.values { t.cancel() } }
        try await Self.waitFor("\(agents) Ready tunnels", timeout: .seconds(300)) {
            let tunnels = try await admin.list(.egressTunnel, namespace: nil).items
            return tunnels.filter { $0.status?["phase"]?.stringValue == "Ready" }.count == agents
        }
        print(String(format: "%d agents registered and Ready in %.1f s", agents, (ContinuousClock.now - started).seconds))

        // 2. Gateways and policies; every EIP announced by its node's agent.
        let placeStart = ContinuousClock.now
        try await applyObjects(admin)
        try await Self.waitFor("\(eips) EIPs announced", timeout: .seconds(600)) { holders.count == eips }
        print(String(format: "%d EIPs placed and announced by their agents in %.1f s", eips, (ContinuousClock.now - placeStart).seconds))

        // 3. Steady state: heartbeat rate and CPU.
        let steady = try await measureSteady(http: http, base: base, pid: serverPID)
        print(String(format: "steady state over %.0f s: %.0f heartbeats/s, server CPU %.2f cores (this process, the %d agents: %.2f cores)",
                     steadySeconds, steady.rate, steady.serverCores, agents, steady.clientCores))

        // 4. Failovers.
        var results: [FailoverResult] = []
        for k in 0..<failovers {
            let victim = simulated[(k * 7 + 3) % agents].name
            let held = holders.held(by: victim)
            guard !held.isEmpty, let task = tasks[victim] else { continue }
            task.cancel()
            await task.value
            tasks[victim] = nil
            let agent = simulated.first { $0.name == victim }!.agent
            guard let last = agent.lastHeartbeatAcknowledgedAt else { continue }
            try await Self.waitFor("\(victim)'s EIPs announced elsewhere", timeout: .seconds(30)) {
                let s = holders.snapshot()
                return held.allSatisfy { e in s.holder[e] != nil && s.holder[e] != victim && (s.announcedAt[e] ?? last) > last }
            }
            let s = holders.snapshot()
            let e2e = held.compactMap { s.announcedAt[$0] }.max()! - last
            // The controller's metrics can lag the data plane by a moment: read them until they show this failover.
            var metrics: [String: Double] = [:]
            for _ in 0..<50 {
                metrics = try await Self.metrics(http, base)
                if metrics["baton_egress_last_failover_moves"] == Double(held.count) { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            let r = FailoverResult(node: victim, eips: held.count, successors: Set(held.compactMap { s.holder[$0] }).count,
                                   endToEnd: e2e.seconds, decision: metrics["baton_egress_last_failover_decision_seconds"] ?? .nan,
                                   writes: metrics["baton_egress_last_failover_write_seconds"] ?? .nan)
            results.append(r)
            print(String(format: "failover %d: %@ held %d EIPs -> spread over %d nodes; re-placement %.1f ms (decision %.1f + writes %.1f); last heartbeat -> new holder announces: %.0f ms",
                         k + 1, victim, r.eips, r.successors, (r.decision + r.writes) * 1000, r.decision * 1000, r.writes * 1000, r.endToEnd * 1000))
            try await Task.sleep(for: .milliseconds(500))
        }
        for t in tasks.values { t.cancel() }
        for t in tasks.values { await t.value }
        tasks = [:]
        server.stop()

        // 5. The peer: etcd taking the same write rate.
        var etcd: (rate: Double, cores: Double, version: String)?
        if let etcdBinary {
            print("etcd: \(agents) writers, one EgressTunnel-sized put each per \(update) s, for \(Int(steadySeconds)) s...")
            etcd = try await measureEtcd(http: http, binary: etcdBinary)
        } else {
            print("etcd: not run (--etcd none, or no etcd on PATH: apt-get install etcd-server); its column is left out")
        }

        // 6. The table.
        print("")
        let peerName = etcd.map { "etcd \($0.version) (egressgateway's heartbeat: an object write)" } ?? "etcd (not run)"
        var rows: [[String]] = [["", "Baton", peerName]]
        rows.append(["heartbeats/s sustained (\(agents) agents, every \(update) s)", String(format: "%.0f/s", steady.rate),
                     etcd.map { String(format: "%.0f/s", $0.rate) } ?? "-"])
        rows.append(["server CPU", String(format: "%.2f cores", steady.serverCores), etcd.map { String(format: "%.2f cores", $0.cores) } ?? "-"])
        if !results.isEmpty {
            let replace = results.map { ($0.decision + $0.writes) * 1000 }
            let e2e = results.map { $0.endToEnd * 1000 }
            rows.append(["re-placement of a failed node's EIPs (max of \(results.count))", String(format: "%.1f ms", replace.max()!),
                         "not measured (needs Kubernetes)"])
            rows.append(["last heartbeat -> new holder's agent announces (max of \(results.count))", String(format: "%.0f ms", e2e.max()!),
                         "≥ 40 s by its timers (Helm defaults)"])
        }
        let widths = (0..<3).map { c in rows.map { $0[c].count }.max()! }
        for row in rows {
            print((0..<3).map { c in row[c].padding(toLength: widths[c], withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
    }

    // MARK: Objects

    static func group(_ g: Int) -> String { String(format: "g%02d", g) }
    static func nodeAddress(_ i: Int) -> String { "192.168.\(i / 250).\(i % 250 + 1)" }
    static func gatewayName(_ g: Int) -> String { String(format: "bench-%02d", g) }
    static func eip(gateway g: Int, _ i: Int) -> String {
        IPAddress("10.\(100 + g).0.1")!.advanced(by: UInt128(i))!.description
    }

    func applyObjects(_ admin: BatonClient) async throws {
        let perGateway = eips / gateways
        var docs: [JSONValue] = []
        for g in 0..<gateways {
            docs.append([
                "apiVersion": "egressgateway.spidernet.io/v1beta1", "kind": "EgressGateway",
                "metadata": ["name": .string(Self.gatewayName(g))],
                "spec": [
                    "ippools": ["ipv4": [.string("\(Self.eip(gateway: g, 0))-\(Self.eip(gateway: g, perGateway - 1))")]],
                    "nodeSelector": ["selector": ["matchLabels": ["egress-group": .string(Self.group(g))]]],
                ],
            ])
        }
        try await applyBatch(admin, docs)
        docs = []
        for g in 0..<gateways {
            for i in 0..<perGateway {
                docs.append([
                    "apiVersion": "egressgateway.spidernet.io/v1beta1", "kind": "EgressPolicy",
                    "metadata": ["name": .string("p-\(g)-\(i)"), "namespace": "bench"],
                    "spec": [
                        "egressGatewayName": .string(Self.gatewayName(g)),
                        "egressIP": ["ipv4": .string(Self.eip(gateway: g, i))],
                        "appliedTo": ["podSelector": ["matchLabels": ["app": .string("p-\(g)-\(i)")]]],
                    ],
                ])
                if docs.count == 500 {
                    try await applyBatch(admin, docs)
                    docs = []
                }
            }
        }
        if !docs.isEmpty { try await applyBatch(admin, docs) }
    }

    func applyBatch(_ admin: BatonClient, _ docs: [JSONValue]) async throws {
        _ = try await admin.call(.POST, "/apply", body: ["items": .array(docs)])
    }

    // MARK: Measurements

    struct Steady {
        var rate: Double
        var serverCores: Double
        var clientCores: Double
    }

    func measureSteady(http: HTTPClient, base: String, pid: Int32) async throws -> Steady {
        let m0 = try await Self.metrics(http, base)
        let s0 = Self.cpuSeconds(pid: pid), c0 = Self.cpuSeconds(pid: nil), t0 = ContinuousClock.now
        try await Task.sleep(for: .milliseconds(Int64(steadySeconds * 1000)))
        let m1 = try await Self.metrics(http, base)
        let s1 = Self.cpuSeconds(pid: pid), c1 = Self.cpuSeconds(pid: nil), t1 = ContinuousClock.now
        let elapsed = (t1 - t0).seconds
        let beats = (m1["baton_egress_heartbeats_total"] ?? 0) - (m0["baton_egress_heartbeats_total"] ?? 0)
        return Steady(rate: beats / elapsed, serverCores: (s1 - s0) / elapsed, clientCores: (c1 - c0) / elapsed)
    }

    /// etcd with `agents` writers, each putting an EgressTunnel-sized object every tunnelUpdatePeriod.
    func measureEtcd(http: HTTPClient, binary: String) async throws -> (rate: Double, cores: Double, version: String) {
        let etcd = try await EtcdInstance(binary: binary, http: http)
        defer { etcd.stop() }
        let base = etcd.base
        let version = await etcd.version(http)
        let period = Duration.milliseconds(Int64(settings.tunnelUpdatePeriod * 1000))
        let tally = Tally()
        let pid = etcd.process.process.processIdentifier
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<agents {
                group.addTask {
                    let key = "/registry/egressgateway.spidernet.io/egresstunnels/" + String(format: "sim-%04d", i)
                    var next = ContinuousClock.now + .milliseconds(Int64(i % 200))
                    while !Task.isCancelled {
                        try? await Task.sleep(until: next, clock: .continuous)
                        if Task.isCancelled { return }
                        let value = Self.tunnelObject(i, time: Timestamp.format(Date())).jsonString()
                        if (try? await EtcdJSON.put(http, base, key: key, value: value)) != nil, tally.measuring.load(ordering: .relaxed) {
                            tally.written.add(1, ordering: .relaxed)
                        }
                        next = next + period
                        let now = ContinuousClock.now
                        if next < now { next = now }
                    }
                }
            }
            try await Task.sleep(for: .seconds(2))  // warm up
            let c0 = Self.cpuSeconds(pid: pid), t0 = ContinuousClock.now
            tally.measuring.store(true, ordering: .relaxed)
            try await Task.sleep(for: .milliseconds(Int64(steadySeconds * 1000)))
            tally.measuring.store(false, ordering: .relaxed)
            let c1 = Self.cpuSeconds(pid: pid), t1 = ContinuousClock.now
            group.cancelAll()
            let elapsed = (t1 - t0).seconds
            return (Double(tally.written.load(ordering: .relaxed)) / elapsed, (c1 - c0) / elapsed, version)
        }
    }

    /// Writes counted while measuring.
    final class Tally: Sendable {
        let written = Atomic<Int>(0)
        let measuring = Atomic<Bool>(false)
    }

    /// An EgressTunnel as egressgateway's agent writes it on each heartbeat.
    static func tunnelObject(_ i: Int, time: String) -> JSONValue {
        let name = String(format: "sim-%04d", i)
        return [
            "apiVersion": "egressgateway.spidernet.io/v1beta1", "kind": "EgressTunnel",
            "metadata": ["name": .string(name), "uid": .string(UUID().uuidString), "resourceVersion": .string("\(i)")],
            "spec": [:],
            "status": [
                "lastHeartbeatTime": .string(time), "mark": .string(String(format: "0x26%06x", i)), "phase": "Ready",
                "tunnel": [
                    "ipv4": .string("172.31.\(i / 250).\(i % 250 + 1)"), "ipv6": .string("fd01::\(String(i, radix: 16))"),
                    "mac": .string(String(format: "66:00:00:00:%02x:%02x", i / 256, i % 256)),
                    "parent": ["name": "eth0", "ipv4": .string(nodeAddress(i))],
                ],
            ],
        ]
    }

    /// CPU seconds (user + system) used so far by `pid` (nil: this process), from /proc.
    static func cpuSeconds(pid: Int32?) -> Double {
        let path = pid.map { "/proc/\($0)/stat" } ?? "/proc/self/stat"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return .nan }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
        guard fields.count > 13, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return .nan }
        return (utime + stime) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The server's Prometheus metrics without labels, by name.
    static func metrics(_ http: HTTPClient, _ base: String) async throws -> [String: Double] {
        let response = try await http.execute(HTTPClientRequest(url: base + "/metrics"), timeout: .seconds(10))
        let text = String(buffer: try await response.body.collect(upTo: 64 << 20))
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.contains("{") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let v = Double(parts[1]) { out[String(parts[0])] = v }
        }
        return out
    }

    static func waitFor(_ what: String, timeout: Duration, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw APIError.unavailable("timed out after \(timeout) waiting for \(what)")
    }

    /// Many agents hold two connections each: lift the soft open-files limit to the hard one.
    static func raiseFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
