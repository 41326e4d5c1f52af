import AsyncHTTPClient
import BatonAPI
import BatonEtcd
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Synchronization

/// `baton bench api`: the API's apply, get and list throughput and p99 latency for N objects,
/// and how long one change takes to reach W watchers, for Baton and for etcd (the store
/// Kubernetes uses) on this machine in the same run, with the same client concurrency and the
/// same object bodies.
public struct APIBenchmark: Sendable {
    public var objects = 10_000
    public var watchers = 100
    public var changes = 100
    public var concurrency = 16
    public var listRounds = 10
    public var batonBinary: String
    public var etcdBinary: String?

    public init(batonBinary: String, etcdBinary: String?) {
        self.batonBinary = batonBinary
        self.etcdBinary = etcdBinary
    }

    /// One system's figures.
    public struct Result: Sendable {
        var name: String
        var applySeconds = 0.0, apply = Samples()
        var getSeconds = 0.0, get = Samples()
        var listSeconds = 0.0, list = Samples()
        var fanout = Samples()
    }

    public func run(print: @Sendable (String) -> Void) async throws {
        let http = HTTPClient(eventLoopGroupProvider: .singleton,
                              configuration: .init(timeout: .init(connect: .seconds(5), read: .seconds(120)),
                                                   connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: watchers + concurrency + 8)))
        print("objects=\(objects) watchers=\(watchers) changes=\(changes) client concurrency=\(concurrency)")
        var results: [Result] = []
        results.append(try await runBaton(http, print: print))
        if let etcdBinary {
            results.append(try await runEtcd(http, binary: etcdBinary, print: print))
        } else {
            print("etcd: not run (--etcd none, or no etcd on PATH: apt-get install etcd-server); its column is left out")
        }
        print("")
        print(table(results))
        try await http.shutdown()
    }

    func table(_ r: [Result]) -> String {
        var rows: [[String]] = [["", ] + r.map(\.name)]
        rows.append(["apply (create) throughput"] + r.map { rate(objects, $0.applySeconds) })
        rows.append(["apply p99"] + r.map { ms($0.apply.percentile(99)) })
        rows.append(["get throughput"] + r.map { rate(objects, $0.getSeconds) })
        rows.append(["get p99"] + r.map { ms($0.get.percentile(99)) })
        rows.append(["list all \(objects) throughput"] + r.map { String(format: "%.2f/s", Double(listRounds) / $0.listSeconds) })
        rows.append(["list p99"] + r.map { ms($0.list.percentile(99)) })
        rows.append(["change → all \(watchers) watchers p50"] + r.map { ms($0.fanout.percentile(50)) })
        rows.append(["change → all \(watchers) watchers p99"] + r.map { ms($0.fanout.percentile(99)) })
        var widths = [Int](repeating: 0, count: rows[0].count)
        for row in rows { for (i, c) in row.enumerated() { widths[i] = max(widths[i], c.count) } }
        return rows.map { row in
            row.enumerated().map { i, c in i == 0 ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[i] - c.count) + c }.joined(separator: "   ")
        }.joined(separator: "\n")
    }

    /// The object every write sends (a StaticRoute with a few labels), as JSON.
    func object(_ i: Int, generation: Int = 0) -> JSONValue {
        ["apiVersion": "networking.digitalocean.com/v1", "kind": "StaticRoute",
         "metadata": ["name": .string("route-\(i)"), "labels": ["bench": "api", "shard": .string(String(i % 16))]],
         "spec": ["destinations": [.string("34.160.\((i >> 8) & 255).\(i & 255)")], "gateway": .string("10.116.\(generation % 250).4")]]
    }

    /// Runs `body(i)` for i in 0..<count with `concurrency` workers; returns elapsed seconds and latencies.
    func load(_ count: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws -> (Double, Samples) {
        let next = Ticket()
        let start = ContinuousClock.now
        let samples = try await withThrowingTaskGroup(of: Samples.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var s = Samples()
                    while true {
                        let i = next.take()
                        if i >= count { return s }
                        let t = ContinuousClock.now
                        try await body(i)
                        s.add((ContinuousClock.now - t).seconds)
                    }
                }
            }
            var all = Samples()
            for try await s in group { all.add(contentsOf: s) }
            return all
        }
        return ((ContinuousClock.now - start).seconds, samples)
    }

    // MARK: Baton

    func runBaton(_ http: HTTPClient, print: @Sendable (String) -> Void) async throws -> Result {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("baton-bench-\(UUID().uuidString.prefix(8))").path
        BenchProcess.removeOnInterrupt(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = BenchProcess.freePort()
        let server = try BenchProcess(binary: batonBinary, arguments: ["server", "--data-dir", dir, "--listen", "127.0.0.1:\(port)", "--log-level", "error"])
        defer { server.stop() }
        let base = "http://127.0.0.1:\(port)"
        try await BenchProcess.waitForHTTP(http, url: base + "/readyz")
        let token = try String(contentsOfFile: dir + "/admin.token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let client = BatonClient(server: base, token: token, http: http)
        let kind = KindInfo.staticRoute
        var result = Result(name: "Baton (SQLite)")
        print("Baton: applying \(objects) objects...")
        (result.applySeconds, result.apply) = try await load(objects) { i in
            _ = try await client.apply(object(i), kind: kind, name: "route-\(i)", namespace: nil)
        }
        (result.getSeconds, result.get) = try await load(objects) { i in
            _ = try await client.send(.GET, kind.objectPath(name: "route-\((i * 7919) % objects)", namespace: nil))
        }
        (result.listSeconds, result.list) = try await load(listRounds) { _ in
            let r = try await client.send(.GET, kind.collectionPath(namespace: nil))
            guard r.status == 200 else { throw APIError.internalError("list failed: \(r.status)") }
        }
        print("Baton: \(watchers) watchers, \(changes) changes...")
        result.fanout = try await fanout(http) { watcher, revision in
            var request = HTTPClientRequest(url: base + kind.collectionPath(namespace: nil) + "?watch=true&resourceVersion=\(revision)&labelSelector=fanout%3Dyes")
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            return request
        } write: { n in
            var o = object(0, generation: n)
            o["metadata"]?["labels"]?["fanout"] = "yes"
            let (r, _) = try await client.apply(o, kind: kind, name: "route-0", namespace: nil)
            return r.metadata.revision
        } current: {
            Int64(try await client.list(kind, namespace: nil, labelSelector: "fanout=none").revision) ?? 0
        } revision: { line in
            // A watch line carries the object's resourceVersion.
            FanoutBoard.number(after: "\"resourceVersion\":\"", in: line)
        }
        return result
    }

    /// Opens `watchers` streams, then makes `changes` writes one at a time; for each, measures
    /// from the write's start until every watcher has read the line for that revision.
    func fanout(_ http: HTTPClient, request: @escaping @Sendable (Int, Int64) -> HTTPClientRequest,
                write: @escaping @Sendable (Int) async throws -> Int64, current: @escaping @Sendable () async throws -> Int64,
                revision: @escaping @Sendable (String) -> Int64?) async throws -> Samples {
        let start = try await current()
        let seen = FanoutBoard(watchers: watchers)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<watchers {
                let req = request(w, start)
                group.addTask {
                    let response = try await http.execute(req, deadline: .now() + .seconds(600))
                    var pending = ""
                    for try await chunk in response.body {
                        pending += String(buffer: chunk)
                        while let nl = pending.firstIndex(of: "\n") {
                            let line = String(pending[..<nl])
                            pending = String(pending[pending.index(after: nl)...])
                            if let r = revision(line) {
                                seen.saw(watcher: w, revision: r)
                                if seen.stopped(at: r) { return }
                            }
                        }
                    }
                }
            }
            // A watch answers with its headers only when it has something to send, so the first
            // change (not timed) also proves every watcher is connected.
            var lastRevision = try await write(0)
            try await seen.waitAll(reached: lastRevision)
            var samples = Samples()
            for n in 1...changes {
                let t = ContinuousClock.now
                let revision = try await write(n)
                lastRevision = revision
                try await seen.waitAll(reached: revision)
                samples.add((ContinuousClock.now - t).seconds)
            }
            // Streaming bodies do not end on cancellation: a last change past `stop` ends each watcher.
            seen.stop(after: lastRevision)
            _ = try await write(changes + 1)
            try await group.waitForAll()
            return samples
        }
    }

    // MARK: etcd

    func runEtcd(_ http: HTTPClient, binary: String, print: @Sendable (String) -> Void) async throws -> Result {
        let etcd = try await EtcdInstance(binary: binary, http: http)
        defer { etcd.stop() }
        let base = etcd.base
        var result = Result(name: "etcd \(await etcd.version(http))")
        @Sendable func key(_ i: Int) -> String { "/registry/staticroutes/route-\(i)" }
        print("etcd: putting \(objects) objects...")
        (result.applySeconds, result.apply) = try await load(objects) { i in
            _ = try await EtcdJSON.put(http, base, key: key(i), value: object(i).jsonString())
        }
        (result.getSeconds, result.get) = try await load(objects) { i in
            _ = try await EtcdJSON.post(http, base + "/v3/kv/range", ["key": .string(EtcdJSON.b64(key((i * 7919) % objects)))])
        }
        (result.listSeconds, result.list) = try await load(listRounds) { _ in
            let prefix = "/registry/staticroutes/"
            _ = try await EtcdJSON.post(http, base + "/v3/kv/range", [
                "key": .string(EtcdJSON.b64(prefix)), "range_end": .string(EtcdJSON.b64(EtcdJSON.prefixEnd(prefix))),
            ])
        }
        print("etcd: \(watchers) watchers, \(changes) changes...")
        result.fanout = try await fanout(http) { _, revision in
            var request = HTTPClientRequest(url: base + "/v3/watch")
            request.method = .POST
            request.body = .bytes(ByteBuffer(data: JSONValue.object(["create_request": [
                "key": .string(EtcdJSON.b64(key(0))), "start_revision": .string(String(revision + 1)),
            ]]).jsonData()))
            return request
        } write: { n in
            let r = try await EtcdJSON.put(http, base, key: key(0), value: object(0, generation: n).jsonString())
            return Int64(r["header"]?["revision"]?.stringValue ?? "") ?? r["header"]?["revision"]?.intValue ?? 0
        } current: {
            let r = try await EtcdJSON.post(http, base + "/v3/kv/range", ["key": .string(EtcdJSON.b64("/none"))])
            return Int64(r["header"]?["revision"]?.stringValue ?? "") ?? 0
        } revision: { line in
            FanoutBoard.number(after: "\"mod_revision\":\"", in: line)
        }
        return result
    }
}

/// The newest revision each watcher has read; wakes the writer when all have reached a revision.
final class FanoutBoard: Sendable {
    struct State {
        var connected = 0
        var seen: [Int64]
        var waiting: (revision: Int64, gate: Gate)?
        var stop: Int64?
    }
    let watchers: Int
    let state: Mutex<State>
    let connectedGate = Gate()

    init(watchers: Int) {
        self.watchers = watchers
        self.state = Mutex(State(seen: [Int64](repeating: 0, count: watchers)))
    }

    func connected() {
        let all = state.withLock { s -> Bool in s.connected += 1; return s.connected == watchers }
        if all { connectedGate.open() }
    }
    func waitConnected() async throws { try await connectedGate.wait() }

    func saw(watcher: Int, revision: Int64) {
        let gate = state.withLock { s -> Gate? in
            s.seen[watcher] = max(s.seen[watcher], revision)
            guard let w = s.waiting, s.seen.allSatisfy({ $0 >= w.revision }) else { return nil }
            s.waiting = nil
            return w.gate
        }
        gate?.open()
    }

    /// Watchers return once they read a revision past `revision`.
    func stop(after revision: Int64) { state.withLock { $0.stop = revision } }
    func stopped(at revision: Int64) -> Bool { state.withLock { s in s.stop.map { revision > $0 } ?? false } }

    func waitAll(reached revision: Int64) async throws {
        let gate = Gate()
        let done = state.withLock { s -> Bool in
            if s.seen.allSatisfy({ $0 >= revision }) { return true }
            s.waiting = (revision, gate)
            return false
        }
        if !done { try await gate.wait() }
    }

    /// The decimal number after `marker` in `line`.
    static func number(after marker: String, in line: String) -> Int64? {
        guard let r = line.range(of: marker) else { return nil }
        return Int64(line[r.upperBound...].prefix { $0.isNumber })
    }
}

/// A one-shot signal with a timeout.
final class Gate: Sendable {
    let state = Mutex<(open: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))
    func open() {
        let w = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.open = true
            defer { s.waiter = nil }
            return s.waiter
        }
        w?.resume()
    }
    func wait() async throws {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiter = c
                return false
            }
            if now { c.resume() }
        }
    }
}

/// Hands out 0, 1, 2… to concurrent workers.
final class Ticket: Sendable {
    private let counter = Atomic<Int>(0)
    func take() -> Int { counter.wrappingAdd(1, ordering: .relaxed).oldValue }
}
