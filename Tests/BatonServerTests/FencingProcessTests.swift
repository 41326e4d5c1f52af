import BatonAPI
import BatonClient
import Foundation
import Testing

/// Clock skew and fencing, end to end: `baton server` and `baton agent --dataplane none`
/// processes on loopback. Agents that must be cut off reach the server through a
/// `CuttableProxy`, and write a data-plane journal stamped with CLOCK_MONOTONIC, which every
/// process on the machine shares, so the journals of two agents can be compared.
@Suite(.serialized, .enabled(if: BatonBinary.path != nil, "baton binary not built: run `swift build` before `swift test`"))
struct FencingProcessTests: EgressProcessSuite {
    /// Starts an agent whose log goes to `logDir/agent-NODE-*.log`.
    func startAgent(_ node: String, serverURL: String, token: String, logDir: String, _ extra: [String] = []) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: BatonBinary.path!)
        p.arguments = ["agent", "--server", serverURL, "--token", token, "--node", node, "--labels", "egress=true",
                       "--dataplane", "none", "--log-level", "info"] + extra
        let log = logDir + "/agent-\(node)-\(UUID().uuidString.prefix(4)).log"
        FileManager.default.createFile(atPath: log, contents: nil)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle(forWritingAtPath: log)
        try p.run()
        return p
    }

    /// The tunnel's phase (nil while the agent has not created it yet).
    func phase(_ client: BatonClient, _ node: String) async throws -> String? {
        do {
            return try await client.get(.egressTunnel, name: node, namespace: nil).status?["phase"]?.stringValue
        } catch let e as APIError where e.code == 404 {
            return nil
        }
    }

    func serverLog(_ dir: String) -> String {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".log") }
            .map { (try? String(contentsOfFile: dir + "/" + $0, encoding: .utf8)) ?? "" }.joined()
    }

    /// Agents whose wall clocks are 10 minutes behind and 10 minutes ahead of the server's are
    /// never evicted while they heartbeat, and the one from the future is still evicted when it dies.
    @Test func agentsWithClocksSkewedByMinutesAreJudgedOnlyByReceiveTime() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ServerProcess(dataDir: dir)
        defer { server.kill() }
        let client = server.client
        var agents: [String: Process] = [:]
        defer { for p in agents.values where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        agents["past"] = try startAgent("past", serverURL: server.url, token: server.adminToken, logDir: dir, ["--clock-skew=-600"])
        agents["future"] = try startAgent("future", serverURL: server.url, token: server.adminToken, logDir: dir, ["--clock-skew=600"])
        for n in ["past", "future"] {
            _ = try await waitFor("\(n) Ready") { try await phase(client, n) == "Ready" ? true : nil }
        }
        let applied = try BatonBinary.run(["apply", "-f", "-"], env: server.env,
                                          stdin: ([Self.gateway] + (0..<4).map(Self.policy)).joined(separator: "\n---\n"))
        #expect(applied.status == 0, "\(applied.err)")
        let placed = try await waitFor("four policies placed") { () -> [String: String]? in
            let p = try await placement(client)
            return p.count == 4 ? p : nil
        }
        #expect(Set(placed.values) == ["past", "future"])

        // The tunnels show the agents' own skewed times...
        let now = Date()
        for (node, skew) in [("past", -600.0), ("future", 600.0)] {
            let shown = try await waitFor("\(node)'s lastHeartbeatTime") { () -> Date? in
                try await client.get(.egressTunnel, name: node, namespace: nil).status?["lastHeartbeatTime"]?.stringValue
                    .flatMap(Timestamp.parse)
            }
            #expect(abs(shown.timeIntervalSince(now) - skew) < 60, "\(node) shows \(shown)")
        }
        // ...and over 4 eviction timeouts, neither is evicted and nothing moves.
        let watchUntil = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < watchUntil {
            #expect(try await phase(client, "past") == "Ready")
            #expect(try await phase(client, "future") == "Ready")
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await placement(client) == placed)
        #expect(!serverLog(dir).contains("update tunnel status to HeartbeatTimeout"))

        // The agent from the future dies: its timestamps lie ahead, and it is still evicted on time.
        let killedAt = ContinuousClock.now
        kill(agents["future"]!.processIdentifier, SIGKILL)
        agents["future"]!.waitUntilExit()
        _ = try await waitFor("future's EIPs on past") { () -> Bool? in
            try await placement(client).values.allSatisfy { $0 == "past" } ? true : nil
        }
        let moved = ContinuousClock.now - killedAt
        #expect(moved < .milliseconds(2500), "moved after \(moved)")
        #expect(try await phase(client, "future") == "HeartbeatTimeout")
    }

    /// One journal line: when (CLOCK_MONOTONIC ns), announce or withdraw, which EIPs.
    struct JournalEntry {
        var nanos: Int64
        var announce: Bool
        var eips: [String]
    }

    static func journal(_ path: String) -> [JournalEntry] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count >= 2, let nanos = Int64(f[0]) else { return nil }
            return JournalEntry(nanos: nanos, announce: f[1] == "announce", eips: f.count > 2 ? f[2].split(separator: ",").map(String.init) : [])
        }
    }

    /// When each agent announced `eip`: [start, end) in CLOCK_MONOTONIC ns; end nil while it still does.
    static func intervals(_ entries: [JournalEntry], eip: String) -> [(start: Int64, end: Int64?)] {
        var out: [(Int64, Int64?)] = []
        var open: Int64?
        for e in entries where e.eips.contains(eip) {
            if e.announce, open == nil { open = e.nanos }
            if !e.announce, let s = open { out.append((s, e.nanos)); open = nil }
        }
        if let open { out.append((open, nil)) }
        return out
    }

    /// Two agents, each behind its own proxy. Three times, the EIP's holder is cut off from the
    /// server (it keeps running, "still on the LAN"): it fences, the controller evicts it, the
    /// other agent takes the EIP, then the path heals and the cut-off agent comes back Ready
    /// without taking the EIP back. Across all of it, the journals show that the two agents never
    /// announced the EIP at the same time.
    @Test func aNodeCutOffFromTheServerNeverServesAnEIPAtTheSameTimeAsItsSuccessor() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ServerProcess(dataDir: dir)
        defer { server.kill() }
        let client = server.client
        let eip = "10.6.1.55"
        var proxies: [String: CuttableProxy] = [:]
        var agents: [String: Process] = [:]
        defer {
            for p in agents.values where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
            for p in proxies.values { p.close() }
        }
        func journalPath(_ node: String) -> String { dir + "/\(node).journal" }
        for node in ["node-a", "node-b"] {
            proxies[node] = try CuttableProxy(upstreamPort: server.port)
        }
        // node-a first, so the EIP lands there.
        agents["node-a"] = try startAgent("node-a", serverURL: proxies["node-a"]!.url, token: server.adminToken, logDir: dir,
                                         ["--dataplane-log", journalPath("node-a")])
        _ = try await waitFor("node-a Ready") { try await phase(client, "node-a") == "Ready" ? true : nil }
        let applied = try BatonBinary.run(["apply", "-f", "-"], env: server.env,
                                          stdin: [Self.gateway, Self.policy(0)].joined(separator: "\n---\n"))
        #expect(applied.status == 0, "\(applied.err)")
        _ = try await waitFor("node-a announces the EIP") { () -> Bool? in
            Self.intervals(Self.journal(journalPath("node-a")), eip: eip).last.map { $0.end == nil } == true ? true : nil
        }
        agents["node-b"] = try startAgent("node-b", serverURL: proxies["node-b"]!.url, token: server.adminToken, logDir: dir,
                                         ["--dataplane-log", journalPath("node-b")])
        _ = try await waitFor("node-b Ready") { try await phase(client, "node-b") == "Ready" ? true : nil }

        var holder = "node-a"
        for round in 1...3 {
            let successor = holder == "node-a" ? "node-b" : "node-a"
            let announcedBefore = Self.intervals(Self.journal(journalPath(successor)), eip: eip).count
            proxies[holder]!.cut()
            // The successor starts announcing (after the cut-off holder fenced, which the journals check below).
            _ = try await waitFor("round \(round): \(successor) announces the EIP") { () -> Bool? in
                let iv = Self.intervals(Self.journal(journalPath(successor)), eip: eip)
                return iv.count > announcedBefore && iv.last?.end == nil ? true : nil
            }
            #expect(try await placement(client)["policy0"] == successor)
            let fenced = Self.intervals(Self.journal(journalPath(holder)), eip: eip)
            #expect(fenced.last?.end != nil, "round \(round): the cut-off \(holder) withdrew the EIP")
            proxies[holder]!.heal()
            _ = try await waitFor("round \(round): \(holder) Ready again") { try await phase(client, holder) == "Ready" ? true : nil }
            holder = successor
        }
        // The cut-off agent, back on line, never took the EIP back: it stays with the last successor.
        let settleUntil = ContinuousClock.now + .milliseconds(500)
        while ContinuousClock.now < settleUntil {
            #expect(try await placement(client)["policy0"] == holder)
            try await Task.sleep(for: .milliseconds(50))
        }

        // No overlap, ever: every announcement interval of one agent ends before the other's next begins.
        var all: [(node: String, start: Int64, end: Int64?)] = []
        for node in ["node-a", "node-b"] {
            for iv in Self.intervals(Self.journal(journalPath(node)), eip: eip) { all.append((node, iv.start, iv.end)) }
        }
        all.sort { $0.start < $1.start }
        #expect(all.count == 4, "four holders in turn: \(all)")
        var gaps: [Double] = []
        for (a, b) in zip(all, all.dropFirst()) {
            #expect(a.node != b.node)
            let end = try #require(a.end, "\(a.node) still announced when \(b.node) started")
            #expect(end < b.start, "\(a.node) withdrew at \(end), \(b.node) announced at \(b.start)")
            gaps.append(Double(b.start - end) / 1e6)
        }
        #expect(all.last?.end == nil && all.last?.node == holder)
        print("fencing: gaps between the fenced holder's withdraw and the successor's announce (ms): \(gaps.map { String(format: "%.0f", $0) })")
    }
}
