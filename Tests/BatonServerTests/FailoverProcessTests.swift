import BatonAPI
import BatonClient
import Foundation
import Testing

/// Egress failover end to end on loopback: `baton server` (controller under its lease) and three
/// `baton agent --dataplane none` processes.
@Suite(.serialized, .enabled(if: BatonBinary.path != nil, "baton binary not built: run `swift build` before `swift test`"))
struct FailoverProcessTests: EgressProcessSuite {
    func startAgent(_ node: String, server: ServerProcess, extraArguments: [String] = []) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: BatonBinary.path!)
        p.arguments = ["agent", "--server", server.url, "--token", server.adminToken, "--node", node, "--labels", "egress=true",
                       "--address", "10.0.0.\(node.last!.wholeNumberValue! + 10)", "--dataplane", "none", "--log-level", "warning"]
            + extraArguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    @Test func sigkilledAgentsEIPsMoveToTheOtherReadyNodesAndDoNotComeBack() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ServerProcess(dataDir: dir)
        defer { server.kill() }
        var agents: [String: Process] = [:]
        defer { for p in agents.values where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        for n in ["node1", "node2", "node3"] { agents[n] = try startAgent(n, server: server) }
        let client = server.client
        // Placement is sticky (no rebalancing), so let every node come up before the EIPs are placed.
        _ = try await waitFor("three Ready tunnels") { () -> Bool? in
            let tunnels = try await client.list(.egressTunnel, namespace: nil).items
            return tunnels.filter { $0.status?["phase"] == "Ready" }.count == 3 ? true : nil
        }
        // One file with the gateway and the policies that name it.
        let manifests = ([Self.gateway] + (0..<4).map(Self.policy)).joined(separator: "\n---\n")
        let applied = try BatonBinary.run(["apply", "-f", "-"], env: server.env, stdin: manifests)
        #expect(applied.status == 0, "\(applied.err)")
        let before = try await waitFor("all four policies placed") { () -> [String: String]? in
            let p = try await placement(client)
            return p.count == 4 ? p : nil
        }
        // Spread, not piled onto one node.
        #expect(Set(before.values).count >= 2, "\(before)")
        let victim = before["policy0"]!
        let held = Set(before.filter { $0.value == victim }.map(\.key))
        // An operator watching the tunnels, as the seed's troubleshooting guide does.
        let watcher = Process()
        watcher.executableURL = URL(fileURLWithPath: BatonBinary.path!)
        watcher.arguments = ["get", "egt", "-w"]
        watcher.environment = ProcessInfo.processInfo.environment.merging(server.env) { _, b in b }
        let watchOut = Pipe()
        watcher.standardOutput = watchOut
        watcher.standardError = FileHandle.nullDevice
        try watcher.run()
        defer { if watcher.isRunning { kill(watcher.processIdentifier, SIGKILL); watcher.waitUntilExit() } }
        let killedAt = ContinuousClock.now
        kill(agents[victim]!.processIdentifier, SIGKILL)
        agents[victim]!.waitUntilExit()
        let after = try await waitFor("the victim's EIPs to move") { () -> [String: String]? in
            let p = try await placement(client)
            return held.allSatisfy({ p[$0] != nil && p[$0] != victim }) ? p : nil
        }
        let moved = ContinuousClock.now - killedAt
        // eipEvictionTimeout 0.7 s + tunnelMonitorPeriod 0.1 s + the last heartbeat's age (≤ 0.2 s) + watch and write slack.
        #expect(moved < .milliseconds(2500), "EIPs moved after \(moved)")
        #expect(after.values.allSatisfy { $0 != victim })
        let tunnel = try await client.get(.egressTunnel, name: victim, namespace: nil)
        #expect(tunnel.status?["phase"] == "HeartbeatTimeout")
        // `baton get egt -w` printed a row for the victim in HeartbeatTimeout.
        kill(watcher.processIdentifier, SIGTERM)
        watcher.waitUntilExit()
        let watched = String(decoding: watchOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(watched.split(separator: "\n").contains { $0.hasPrefix(victim) && $0.hasSuffix("HeartbeatTimeout") }, "\(watched)")
        // The log line, exactly once.
        let logs = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".log") }
            .map { (try? String(contentsOfFile: dir + "/" + $0, encoding: .utf8)) ?? "" }.joined()
        let lines = logs.split(separator: "\n").filter { $0.contains("update tunnel status to HeartbeatTimeout") && $0.contains(victim) }
        #expect(lines.count == 1, "\(lines)")
        // The node comes back: Ready again, and no EIP returns to it.
        agents[victim] = try startAgent(victim, server: server)
        _ = try await waitFor("the victim's tunnel Ready again") { () -> Bool? in
            try await client.get(.egressTunnel, name: victim, namespace: nil).status?["phase"] == "Ready" ? true : nil
        }
        try await Task.sleep(for: .milliseconds(500))  // give a wrong fail-back the time to show
        #expect(try await placement(client) == after, "no fail-back")
    }

    /// The nodes whose entry in the gateway's `status.nodeList` carries `eip`.
    func carriers(of eip: String, _ client: BatonClient) async throws -> [String] {
        let status = try await client.get(.egressGateway, name: "egw1", namespace: nil).decodeStatus(EgressGatewayStatus.self)
        return (status?.nodeList ?? []).filter { ($0.eips ?? []).contains { $0.ipv4 == eip } }.compactMap(\.name)
    }

    /// `baton egw move`, the operator's fail-back: one line out, the EIP stays where it was put,
    /// and a refusal goes to stderr with a non-zero exit.
    @Test func egwMoveMovesAnEIPByHandAndGetShowsTheNewNode() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ServerProcess(dataDir: dir)
        defer { server.kill() }
        var agents: [String: Process] = [:]
        defer { for p in agents.values where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        for n in ["node1", "node2"] { agents[n] = try startAgent(n, server: server) }
        let client = server.client
        _ = try await waitFor("two Ready tunnels") { () -> Bool? in
            try await client.list(.egressTunnel, namespace: nil).items.filter { $0.status?["phase"] == "Ready" }.count == 2 ? true : nil
        }
        let applied = try BatonBinary.run(["apply", "-f", "-"], env: server.env, stdin: Self.gateway + "\n---\n" + Self.policy(0))
        #expect(applied.status == 0, "\(applied.err)")
        let from = try await waitFor("policy0 placed") { try await placement(client)["policy0"] }
        let to = from == "node1" ? "node2" : "node1"

        let moved = try BatonBinary.run(["egw", "move", "egw1", "--eip", "10.6.1.55", "--to", to], env: server.env)
        #expect(moved.status == 0, "\(moved.err)")
        #expect(moved.out == "EIP 10.6.1.55 of EgressGateway egw1 moved from \(from) to \(to)\n")
        let get = try BatonBinary.run(["get", "egp", "policy0"], env: server.env)
        let rows = get.out.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        let column = try #require(rows.first?.firstIndex(of: "EGRESSNODE"), "\(get.out)")
        #expect(rows.count == 2 && rows[1].count > column && rows[1][column] == to, "\(get.out)")
        // The controller re-places from the moved status: the nodeList follows, and the EIP stays.
        _ = try await waitFor("the nodeList to show 10.6.1.55 on \(to)") { () -> Bool? in
            try await carriers(of: "10.6.1.55", client) == [to] ? true : nil
        }
        #expect(try await placement(client) == ["policy0": to])

        // Through the long alias, and already there: a no-op that succeeds.
        let again = try BatonBinary.run(["egressgateway", "move", "egw1", "--eip", "10.6.1.55", "--to", to], env: server.env)
        #expect(again.status == 0, "\(again.err)")
        #expect(again.out == "EIP 10.6.1.55 of EgressGateway egw1 is already on \(to)\n")
        // A refusal: the server's message on stderr, exit non-zero, nothing on stdout.
        let refused = try BatonBinary.run(["egw", "move", "egw1", "--eip", "10.6.1.99", "--to", from], env: server.env)
        #expect(refused.status != 0)
        #expect(refused.out.isEmpty)
        #expect(refused.err.contains("EIP 10.6.1.99 is not assigned to any node in EgressGateway egw1"), "\(refused.err)")
        let missing = try BatonBinary.run(["egw", "move", "egw1", "--eip", "10.6.1.55", "--to", "node9"], env: server.env)
        #expect(missing.status != 0)
        #expect(missing.err.contains("node node9 not found"), "\(missing.err)")

        // And back by hand.
        let back = try BatonBinary.run(["egw", "move", "egw1", "--eip", "10.6.1.55", "--to", from], env: server.env)
        #expect(back.out == "EIP 10.6.1.55 of EgressGateway egw1 moved from \(to) to \(from)\n", "\(back.err)")
        _ = try await waitFor("the nodeList to show 10.6.1.55 on \(from)") { () -> Bool? in
            try await carriers(of: "10.6.1.55", client) == [from] ? true : nil
        }
        #expect(try await placement(client) == ["policy0": from])
    }

    /// The log text of the server listening on `port` (ServerProcess writes DATA_DIR/server-PORT-*.log).
    func log(of server: ServerProcess) -> String {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: server.dataDir)) ?? []
        return files.filter { $0.hasPrefix("server-\(server.port)-") }
            .map { (try? String(contentsOfFile: server.dataDir + "/" + $0, encoding: .utf8)) ?? "" }.joined()
    }

    @Test func killingTheLeaderServerHandsOverWithoutMovingAnEIP() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Two replicas on one store; exactly one takes the controller lease.
        let a = try await ServerProcess(dataDir: dir)
        defer { a.kill() }
        let b = try await ServerProcess(dataDir: dir)
        defer { b.kill() }
        let (leader, follower) = try await waitFor("a replica to lead") { () -> (ServerProcess, ServerProcess)? in
            if log(of: a).contains("became leader") { return (a, b) }
            if log(of: b).contains("became leader") { return (b, a) }
            return nil
        }
        var agents: [String: Process] = [:]
        defer { for p in agents.values where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        // The agents talk to the follower, which stays up.
        for n in ["node1", "node2", "node3"] { agents[n] = try startAgent(n, server: follower) }
        let client = follower.client
        _ = try await waitFor("three Ready tunnels") { () -> Bool? in
            try await client.list(.egressTunnel, namespace: nil).items.filter { $0.status?["phase"] == "Ready" }.count == 3 ? true : nil
        }
        let manifests = ([Self.gateway] + (0..<4).map(Self.policy)).joined(separator: "\n---\n")
        #expect(try BatonBinary.run(["apply", "-f", "-"], env: follower.env, stdin: manifests).status == 0)
        let before = try await waitFor("all four policies placed") { () -> [String: String]? in
            let p = try await placement(client)
            return p.count == 4 ? p : nil
        }
        let yamlBefore = try BatonBinary.run(["get", "egw", "egw1", "-o", "yaml"], env: follower.env).out
        leader.kill()
        // The follower takes the lease within its duration (2 s) plus a retry period.
        _ = try await waitFor("the follower to lead", timeout: .seconds(5)) { () -> Bool? in
            log(of: follower).contains("became leader") ? true : nil
        }
        // Its controller gives every tunnel a full eipEvictionTimeout: nothing moves.
        try await Task.sleep(for: .seconds(1.5))
        #expect(try await placement(client) == before, "a leader change moves no EIP")
        let yamlAfter = try BatonBinary.run(["get", "egw", "egw1", "-o", "yaml"], env: follower.env).out
        #expect(yamlBefore.components(separatedBy: "status:").last == yamlAfter.components(separatedBy: "status:").last,
                "`baton get egw -o yaml` shows the same placement before and after")
        // And the new leader does act: a node that dies now still loses its EIPs.
        let victim = before["policy0"]!
        kill(agents[victim]!.processIdentifier, SIGKILL)
        agents[victim]!.waitUntilExit()
        _ = try await waitFor("the new leader to move the victim's EIPs") { () -> Bool? in
            let p = try await placement(client)
            return p.count == 4 && !p.values.contains(victim) ? true : nil
        }
    }

    @Test func heartbeatDelaysShorterThanTheEvictionTimeoutEvictNothing() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Heartbeats every 0.2 s, eviction after 1.5 s; each delay below stops the agent for 0.3 s,
        // so the longest gap between received heartbeats is about 0.5 s.
        let values = dir + "/values.yaml"
        try "feature:\n  tunnelMonitorPeriod: 0.1\n  tunnelUpdatePeriod: 0.2\n  eipEvictionTimeout: 1.5\n  unreachableNodeProbe: false\n"
            .write(toFile: values, atomically: true, encoding: .utf8)
        let server = try await ServerProcess(dataDir: dir, extraArguments: ["--config", values])
        defer { server.kill() }
        let agent = try startAgent("node1", server: server, extraArguments: ["--config", values])
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL); agent.waitUntilExit() } }
        let client = server.client
        _ = try await waitFor("the tunnel Ready") { () -> Bool? in
            (try? await client.get(.egressTunnel, name: "node1", namespace: nil))?.status?["phase"] == "Ready" ? true : nil
        }
        for _ in 0..<100 {
            kill(agent.processIdentifier, SIGSTOP)
            try await Task.sleep(for: .milliseconds(300))
            kill(agent.processIdentifier, SIGCONT)
            try await Task.sleep(for: .milliseconds(200))
        }
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await client.get(.egressTunnel, name: "node1", namespace: nil).status?["phase"] == "Ready")
        let timeouts = try await client.list(.event, namespace: nil).items.filter { $0.body["reason"] == "HeartbeatTimeout" }
        #expect(timeouts.isEmpty, "0 evictions after 100 short delays")
        #expect(!log(of: server).contains("update tunnel status to HeartbeatTimeout"))
    }
}
