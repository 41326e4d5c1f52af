import BatonAPI
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
        try await waitExited(pid, "agent-node\(other)")
        let after = try Self.snapshot(lab, node: other)
        for (b, a) in zip(before[other - 1], after) { #expect(a == b) }
    }
}

extension EgressProcessSuite {
    /// Waits (10 s at most) until process `pid`, a child of this one, has exited, reaping it.
    func waitExited(_ pid: Int32, _ name: String) async throws {
        _ = try await waitFor("\(name) to exit", timeout: .seconds(10)) { () -> Bool? in
            var status: Int32 = 0
            _ = waitpid(pid, &status, WNOHANG)
            return kill(pid, 0) != 0 ? true : nil
        }
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

/// Failover and the policy shapes, each in a lab of its own.
@Suite(.serialized, .enabled(if: LabPrerequisites.met,
                             "needs BATON_LAB_TESTS=1, root, iproute2, nftables and conntrack, and a built baton binary"))
struct LabFailoverTests: EgressProcessSuite {
    func upAndEnforced(_ lab: Lab) async throws {
        try await lab.up { _ in }
        for i in 1...lab.nodes {
            _ = try await waitFor("pod\(i) seen as the EIP") { try lab.probe(from: lab.pod(i)) == Lab.defaultEIP ? true : nil }
        }
    }

    /// Each kind of failure (link cut, agent killed, node frozen, node cut off from the server only)
    /// moves the EIP to another node, with no packet from a wrong source and no moment when two
    /// nodes answer for it; the failed node comes back and the EIP stays.
    @Test func everyKindOfFailureMovesTheEIPCleanlyAndItNeverFailsBack() async throws {
        let lab = Lab(prefix: "bf\(getpid() % 100_000)", nodes: 3, binary: BatonBinary.path!)
        defer { lab.down { _ in } }
        try await upAndEnforced(lab)
        for mode in LabFailureMode.allCases {
            let trial = try await lab.failover(mode: mode)
            let moved = try #require(trial.newNode, "\(mode): no node took the EIP over")
            #expect(moved != trial.failedNode)
            #expect(trial.firstPacketAt != nil, "\(mode): no packet from the EIP through the new node")
            #expect(trial.evictedAt != nil, "\(mode): the server never marked the failed node")
            #expect(trial.wrongSource == 0, "\(mode): a pod's packet left with another source")
            #expect(trial.dualAnswer == .zero, "\(mode): two nodes answered for the EIP")
            if mode == .link || mode == .partition, let evicted = trial.evictedAt {
                // Neither heartbeats nor the probe reach the server: evicted well before the
                // 0.7 s timeout. A partitioned node still holds the EIP on the LAN until its fence
                // (0.6 s after its last acknowledged heartbeat): its successor announces only then.
                let after = evicted - trial.failureAt
                #expect(after < 600_000_000, "\(mode): evicted \(after / 1_000_000) ms after the failure")
                if mode == .partition, let announced = trial.announcedAt {
                    #expect(announced > evicted, "the successor waited for the partitioned node's fence")
                }
            }
            // The lab settled: the failed node is back (every tunnel Ready), and the EIP stayed put.
            #expect(try lab.eipHolders() == [moved], "\(mode): the EIP failed back")
        }
    }

    /// An agent that restarts (SIGTERM, then a new process) on the EIP's node loses no datagram:
    /// the data plane stays, the kernel lease holds, and the new agent adopts what it finds.
    @Test func anAgentRestartOnTheEIPsNodeLosesNoPacket() async throws {
        let lab = Lab(prefix: "br\(getpid() % 100_000)", nodes: 3, binary: BatonBinary.path!)
        defer { lab.down { _ in } }
        try await upAndEnforced(lab)
        let holder = try #require(try lab.eipHolders().first)
        let pod = holder == 1 ? 2 : 1
        let path = lab.stateDir + "/restart-send.log"
        let sender = try lab.child(netns: lab.pod(pod), [lab.binary, "lab", "send", "--to", "\(Lab.externalAddress):\(Lab.echoPort)",
                                                        "--interval-ms", "10", "--duration-ms", "3000"], output: path)
        try await Task.sleep(for: .milliseconds(500))
        let pid = try #require(lab.recordedPIDs()["agent-node\(holder)"])
        #expect(kill(pid, SIGTERM) == 0)
        try await waitExited(pid, "agent-node\(holder)")
        try lab.startAgent(holder)
        sender.waitUntilExit()
        let records = SenderLog.parse(try String(contentsOfFile: path, encoding: .utf8))
        #expect(records.count > 250)
        let result = LabSender.outage(records, expectedSource: Lab.defaultEIP)
        #expect(result.lost == 0, "datagrams lost across the restart")
        #expect(result.wrongSource == 0)
        #expect(try lab.eipHolders() == [holder])
    }

    /// Two gateways with separate pools, `useNodeIP`, and a policy narrowed by `destSubnet`.
    @Test func gatewaysPoolsUseNodeIPAndDestSubnet() async throws {
        let lab = Lab(prefix: "bp\(getpid() % 100_000)", nodes: 3, binary: BatonBinary.path!)
        defer { lab.down { _ in } }
        try await upAndEnforced(lab)
        // A second address on the external host, with an echo of its own (so its answers come from
        // that address): destSubnet picks it out.
        try lab.ip(["address add 192.168.77.101/24 dev eth0"], netns: lab.external)
        try lab.spawn("echo-101", netns: lab.external, [lab.binary, "lab", "echo", "--listen", "192.168.77.101:9001"])
        let manifest = """
        apiVersion: egressgateway.spidernet.io/v1beta1
        kind: EgressGateway
        metadata:
          name: egw2
        spec:
          ippools:
            ipv4:
              - 192.168.77.210-192.168.77.219
            ipv4DefaultEIP: 192.168.77.210
          nodeSelector:
            selector:
              matchLabels:
                egress: "true"
        ---
        apiVersion: egressgateway.spidernet.io/v1beta1
        kind: EgressPolicy
        metadata:
          name: pod2-egw2
          namespace: default
        spec:
          egressGatewayName: egw2
          appliedTo:
            podSubnet:
              - 10.244.2.0/24
        ---
        apiVersion: egressgateway.spidernet.io/v1beta1
        kind: EgressPolicy
        metadata:
          name: pod3-node-ip
          namespace: default
        spec:
          egressGatewayName: egw1
          egressIP:
            useNodeIP: true
          appliedTo:
            podSubnet:
              - 10.244.3.0/24
        ---
        apiVersion: egressgateway.spidernet.io/v1beta1
        kind: EgressPolicy
        metadata:
          name: pod3-to-101
          namespace: default
        spec:
          egressGatewayName: egw2
          destSubnet:
            - 192.168.77.101/32
          appliedTo:
            podSubnet:
              - 10.244.3.0/24
        """
        let path = lab.stateDir + "/policies.yaml"
        try manifest.write(toFile: path, atomically: true, encoding: .utf8)
        try await lab.runInServer(["delete", "egcp", "lab-pods"])
        try await lab.runInServer(["apply", "-f", path])
        let nodeOfPod3Policy = try await waitFor("pod3-node-ip placed") { () -> String? in
            let out = try await lab.runInServer(["get", "egp", "pod3-node-ip", "-n", "default", "-o", "json"])
            guard let node = (try? JSONValue.parse(Data(out.utf8)))?["status"]?["node"]?.stringValue, !node.isEmpty else { return nil }
            return node
        }
        let nodeIP = Lab.nodeAddress(Int(nodeOfPod3Policy.dropFirst(4))!)
        _ = try await waitFor("pod2 seen as egw2's EIP") { try lab.probe(from: lab.pod(2)) == "192.168.77.210" ? true : nil }
        _ = try await waitFor("pod3 seen as its gateway node's own IP") { try lab.probe(from: lab.pod(3)) == nodeIP ? true : nil }
        _ = try await waitFor("pod3 to .101 seen as egw2's EIP") {
            try lab.probe(from: lab.pod(3), to: "192.168.77.101", port: 9001) == "192.168.77.210" ? true : nil
        }
    }
}
