import BatonAgent
import BatonDataplane
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The egress data plane for real, in network namespaces made by `Lab` (never the machine's
/// own): pods leave with the EIP from the EIP's node and through the VXLAN tunnel from the
/// others, and `--cleanup` leaves a node as it found it.
@Suite(.serialized, .enabled(if: LabPrerequisites.met,
                             "needs BATON_LAB_TESTS=1, root, iproute2 and nftables, and a built baton binary (.ci/run runs these as root, on their own after the other tests)"))
struct LabTests: EgressProcessSuite {
    /// A node namespace's data-plane state, as the issue compares it.
    static func snapshot(_ lab: Lab, node i: Int) throws -> [String] {
        let ns = lab.node(i)
        return [
            try Command.run("ip", ["-n", ns, "-d", "link"]).replacingOccurrences(of: #"\s+"#, with: " ", options: .regularExpression),
            try Command.run("ip", ["-n", ns, "rule"]),
            // IPv4: the kernel adds IPv6 link-local and multicast routes by itself once links settle.
            try Command.run("ip", ["-n", ns, "-4", "route", "show", "table", "all"]),
            try Command.run("ip", ["-n", ns, "-4", "addr"]),
            try Command.run("ip", ["netns", "exec", ns, "nft", "list", "ruleset"]),
        ]
    }

    @Test func podsLeaveWithTheEIPFromItsNodeAndThroughTheTunnelAndCleanupLeavesNothing() async throws {
        let lab = Lab(prefix: "bt\(getpid() % 100_000)", nodes: 3, binary: BatonBinary.path!)
        defer { lab.down { _ in } }
        try await lab.up(startAgents: false) { _ in }
        let before = try (1...3).map { try Self.snapshot(lab, node: $0) }
        for i in 1...3 { try lab.startAgent(i, extra: ["--cleanup"]) }

        // Once every node enforces the policy (Baton's table is in place), every pod reaches the
        // external host with the EIP as its source. Before that the lab's pods are plain pods.
        for i in 1...3 {
            _ = try await waitFor("node\(i)'s nftables table") { () -> Bool? in
                let table = (try? Command.run("ip", ["netns", "exec", lab.node(i), "nft", "list", "table", "ip", "baton_egress"])) ?? ""
                return table.contains("snat to") || table.contains("meta mark set") ? true : nil
            }
        }
        let echoBefore = try String(contentsOfFile: lab.stateDir + "/logs/echo.log", encoding: .utf8).count
        for i in 1...3 {
            _ = try await waitFor("pod\(i) seen as the EIP") { try lab.probe(from: lab.pod(i)) == Lab.defaultEIP ? true : nil }
        }
        // Exactly one node binds the EIP; the others send their pods' traffic through the tunnel.
        let holders = try (1...3).filter { i in
            try Command.run("ip", ["-n", lab.node(i), "-4", "addr", "show", "dev", "eth0"]).contains("\(Lab.defaultEIP)/32")
        }
        #expect(holders.count == 1)
        // The external host never saw a pod's packet with a node's own address.
        let echoLog = String(try String(contentsOfFile: lab.stateDir + "/logs/echo.log", encoding: .utf8).dropFirst(echoBefore))
        let sources = Set(echoLog.split(separator: "\n").compactMap { $0.split(separator: " ").dropFirst().first.map(String.init) })
        #expect(sources == [Lab.defaultEIP])

        // A node that does not hold the EIP: its agent exits with --cleanup and leaves the node as it was.
        let other = try #require((1...3).first { !holders.contains($0) })
        let pid = try #require(lab.recordedPIDs()["agent-node\(other)"])
        #expect(kill(pid, SIGTERM) == 0)
        _ = try await waitFor("agent-node\(other) to exit", timeout: .seconds(10)) { () -> Bool? in
            var status: Int32 = 0
            _ = waitpid(pid, &status, WNOHANG)
            return kill(pid, 0) != 0 ? true : nil
        }
        let after = try Self.snapshot(lab, node: other)
        for (b, a) in zip(before[other - 1], after) { #expect(a == b) }
    }
}

/// The lab tests start a whole cluster of processes and fork many `ip` commands: run beside the
/// other suites they starve the real-clock tests, so they run only when asked, on their own.
enum LabPrerequisites {
    static var met: Bool {
        ProcessInfo.processInfo.environment["BATON_LAB_TESTS"] == "1" && BatonBinary.path != nil
            && (try? Lab.checkPrerequisites()) != nil
    }
}
