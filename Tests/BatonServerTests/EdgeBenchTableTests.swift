@testable import BatonEdge
import Testing

/// `baton lab bench edge` prints the median run of each proxy, and every round's ratio.
@Suite struct EdgeBenchTableTests {
    @Test func theTableShowsMediansAndEveryRoundsRatio() {
        var bench = EdgeBench(batonBinary: "/nonexistent")
        bench.threads = [1]
        bench.rounds = 3
        func run(_ proxy: String, _ rps: Double, _ p99: Double) -> EdgeBench.Run {
            EdgeBench.Run(proxy: proxy, threads: 1, requestsPerSecond: rps, p50ms: 0.5, p99ms: p99, errors: 0)
        }
        let runs = [run("HAProxy", 50_000, 1.0), run("Baton", 45_000, 1.3),
                    run("Baton", 52_000, 1.1), run("HAProxy", 40_000, 3.0),
                    run("HAProxy", 55_000, 0.9), run("Baton", 60_000, 1.2)]
        let medians = bench.medians(runs)
        #expect(medians.map(\.proxy) == ["HAProxy", "Baton"])
        #expect(medians.map(\.requestsPerSecond) == [50_000, 52_000])
        let table = bench.table(runs)
        #expect(table.contains("| 1 | HAProxy | 50000 | 0.50 ms | 1.00 ms | 0 |"))
        #expect(table.contains("| 1 | Baton | 52000 | 0.50 ms | 1.10 ms | 0 |"))
        #expect(table.contains("1.04×"))
        #expect(table.contains("Baton / HAProxy in each round: 1 thread: 0.90×, 1.30×, 1.09×."))
    }
}
