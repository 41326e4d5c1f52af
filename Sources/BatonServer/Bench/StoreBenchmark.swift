import BatonAPI
import BatonEtcd
import BatonStore
import Foundation

/// `baton bench store`: the same work on each `ResourceStore` and `HeartbeatLog` Baton has,
/// side by side, in this process (no API in between): object creates from `concurrency`
/// writers (throughput, p50, p99), then heartbeats from `nodes` nodes with `heartbeatConcurrency`
/// in flight for `heartbeatSeconds` (throughput, p99). SQLite runs with `synchronous=FULL` (as
/// `baton server` does); etcd fsyncs every commit.
public struct StoreBenchmark: Sendable {
    public var objects = 2_000
    public var concurrency = 16
    public var nodes = 1_000
    public var heartbeatConcurrency = 256
    public var heartbeatSeconds = 5.0

    public init() {}

    public struct Result: Sendable {
        public var name: String
        public var applyPerSecond = 0.0
        public var applyP50 = 0.0
        public var applyP99 = 0.0
        public var heartbeatsPerSecond = 0.0
        public var heartbeatP99 = 0.0
    }

    /// Measures one store and its heartbeat log.
    public func measure(name: String, store: any ResourceStore, heartbeats: any HeartbeatLog,
                        print: @Sendable (String) -> Void) async throws -> Result {
        var result = Result(name: name)
        print("\(name): creating \(objects) objects with \(concurrency) writers...")
        let (applySeconds, apply) = try await Self.load(objects, concurrency: concurrency) { i in
            _ = try await store.create(Self.object(i))
        }
        result.applyPerSecond = Double(objects) / applySeconds
        result.applyP50 = Self.percentile(apply, 50)
        result.applyP99 = Self.percentile(apply, 99)

        print("\(name): heartbeats from \(nodes) nodes, \(heartbeatConcurrency) in flight, for \(heartbeatSeconds) s...")
        let nodes = self.nodes
        let stop = ContinuousClock.now + .milliseconds(Int64(heartbeatSeconds * 1000))
        let started = ContinuousClock.now
        let samples = try await withThrowingTaskGroup(of: [Double].self) { group in
            for worker in 0..<heartbeatConcurrency {
                group.addTask {
                    var latencies: [Double] = []
                    var n = worker
                    while ContinuousClock.now < stop {
                        let t = ContinuousClock.now
                        try await heartbeats.record(node: "node-\(n % nodes)", agentTime: Timestamp.format(Date()))
                        latencies.append(Self.seconds(ContinuousClock.now - t))
                        n += 1 + worker % 7
                    }
                    return latencies
                }
            }
            var all: [Double] = []
            for try await part in group { all += part }
            return all
        }
        result.heartbeatsPerSecond = Double(samples.count) / Self.seconds(ContinuousClock.now - started)
        result.heartbeatP99 = Self.percentile(samples, 99)
        return result
    }

    /// The results as a table, one column per store.
    public static func table(_ results: [Result]) -> String {
        func row(_ label: String, _ value: (Result) -> String) -> String {
            label.padding(toLength: 34, withPad: " ", startingAt: 0) + results.map { value($0).leftPad(18) }.joined()
        }
        func ms(_ s: Double) -> String { String(format: "%.2f ms", s * 1000) }
        return ([String(repeating: " ", count: 34) + results.map { $0.name.leftPad(18) }.joined()] + [
            row("apply (create) throughput") { String(format: "%.0f/s", $0.applyPerSecond) },
            row("apply p50") { ms($0.applyP50) },
            row("apply p99") { ms($0.applyP99) },
            row("heartbeats/s (sustained)") { String(format: "%.0f/s", $0.heartbeatsPerSecond) },
            row("heartbeat p99") { ms($0.heartbeatP99) },
        ]).joined(separator: "\n")
    }

    /// A StaticRoute of the size `baton bench api` uses.
    static func object(_ i: Int) -> Resource {
        Resource(apiVersion: "networking.digitalocean.com/v1", kind: "StaticRoute",
                 metadata: ObjectMeta(name: "route-\(i)", labels: ["bench": "store", "shard": "\(i % 16)"]),
                 body: ["spec": ["destinations": [.string("192.168.\(i % 256).0/24"), .string("10.\(i % 256).0.0/16")],
                                 "gateway": .string("10.1.\(i % 256).\(i / 256 % 256)")]])
    }

    /// Runs `count` calls of `body` from `concurrency` workers; returns the elapsed seconds and
    /// each call's latency.
    static func load(_ count: Int, concurrency: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws -> (Double, [Double]) {
        let next = NextIndex()
        let started = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for _ in 0..<max(1, concurrency) {
                group.addTask {
                    var out: [Double] = []
                    while let i = next.take(below: count) {
                        let t = ContinuousClock.now
                        try await body(i)
                        out.append(seconds(ContinuousClock.now - t))
                    }
                    return out
                }
            }
            var all: [Double] = []
            for try await part in group { all += part }
            return all
        }
        return (seconds(ContinuousClock.now - started), latencies)
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        return sorted[max(0, min(sorted.count - 1, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1))]
    }

    static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
}

/// Hands out 0, 1, 2… below a bound to concurrent workers.
final class NextIndex: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func take(below bound: Int) -> Int? {
        lock.withLock {
            guard value < bound else { return nil }
            defer { value += 1 }
            return value
        }
    }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? " " + self : String(repeating: " ", count: width - count) + self }
}
