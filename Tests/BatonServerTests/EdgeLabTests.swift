import BatonAgent
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The seed's three drills as `baton lab edge` runs them, in network namespaces of the test's
/// own (`be<pid>-*`), for each of the three modes: traffic stays in region-1, fails over to
/// region-2 (auto and named) or gets 503 for the dead share (weights), and comes home.
@Suite(.serialized, .enabled(if: LabPrerequisites.met,
                             "needs BATON_LAB_TESTS=1, root, iproute2 and nftables, and a built baton binary"))
struct EdgeLabTests {
    /// Waits (up to 30 s) until 20 requests in a row get exactly the answers in `expected`.
    /// An ejected ingress comes back early only if its active checks had failed (and then pass
    /// again); otherwise when its ejection ends, after 5 s × its ejection count. Live traffic
    /// ejects an ingress that answers 503 within a few requests, often before its checks (every
    /// 0.3 s) have failed enough to count, and stop-ingress has ejected it once already: so
    /// after fail-ingress is restored, traffic may come home only after 10 s. One CI run saw
    /// exactly that with a 10 s wait.
    static func settle(_ lab: EdgeLab, _ expected: Set<String>) async throws -> Set<String> {
        let deadline = ContinuousClock.now + .seconds(30)
        var last: Set<String> = []
        while ContinuousClock.now < deadline {
            last = Set(try lab.traffic(count: 20).keys)
            if last == expected { return last }
            try await Task.sleep(for: .milliseconds(100))
        }
        return last
    }

    @Test(arguments: EdgeLab.Mode.allCases)
    func theSeedsDrillsInEachMode(mode: EdgeLab.Mode) async throws {
        let lab = EdgeLab(prefix: "be\(getpid() % 100_000)", binary: BatonBinary.path!)
        defer { lab.down { _ in } }
        try await lab.up(mode: mode) { _ in }
        let home: Set<String> = mode == .weights ? ["cluster-1", "cluster-2"] : ["cluster-1"]
        #expect(try await Self.settle(lab, home) == home)
        for drill in EdgeLab.Drill.allCases {
            _ = try await lab.drill(drill, cluster: "cluster-1", restore: false)
            let failed: Set<String>
            switch (mode, drill) {
            case (.weights, .stopIngress): failed = ["cluster-2", "503 no healthy upstream"]
            // A strict split does not retry: the dead share sees the ingress's own 503 until
            // outlier detection and the checks take the ingress out, then "no healthy upstream".
            case (.weights, .failIngress): failed = ["cluster-2", "503 no healthy upstream"]
            // Without the hostname, cluster-1 has no ingress for it: its share gets 503 too.
            case (.weights, .deleteGateway): failed = ["cluster-2", "503 no healthy upstream"]
            default: failed = ["cluster-2"]
            }
            #expect(try await Self.settle(lab, failed) == failed, "\(mode) \(drill)")
            _ = try await lab.drill(drill, cluster: "cluster-1", restore: true)
            #expect(try await Self.settle(lab, home) == home, "\(mode) \(drill) restored")
        }
        lab.down { _ in }
        #expect(lab.lab.existingNamespaces().isEmpty)
    }
}
