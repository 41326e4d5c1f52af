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

    /// wrk 4.1's `--latency` report, with socket errors and non-2xx answers counted as errors.
    @Test func wrkReportsAreRead() throws {
        let report = """
            Running 10s test @ http://127.0.0.1:8080/
              1 threads and 32 connections
              Thread Stats   Avg      Stdev     Max   +/- Stdev
                Latency   580.12us  210.33us  12.01ms   91.20%
                Req/Sec    54.21k     2.10k   58.00k    70.00%
              Latency Distribution
                 50%  520.00us
                 75%  610.00us
                 90%  750.00us
                 99%    1.14ms
              542100 requests in 10.00s, 60.12MB read
              Socket errors: connect 0, read 2, write 1, timeout 4
              Non-2xx or 3xx responses: 5
            Requests/sec:  54205.31
            Transfer/sec:      6.01MB
            """
        let r = try EdgeBench.parseWrk(report)
        #expect(r.rps == 54205.31)
        #expect(r.p50 == 0.52)
        #expect(r.p99 == 1.14)
        #expect(r.errors == 12)
        #expect(EdgeBench.millis("1.50s") == 1500)
        #expect(EdgeBench.millis("250.00us") == 0.25)
        #expect(throws: EdgeBench.Failure.self) { try EdgeBench.parseWrk("unable to connect to 127.0.0.1:8080 Connection refused") }
    }
}
