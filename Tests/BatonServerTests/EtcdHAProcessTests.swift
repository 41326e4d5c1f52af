import BatonAPI
import BatonClient
import BatonEtcd
import BatonStore
import BatonTesting
import Foundation
import Testing

/// The HA control plane end to end on loopback: a 3-member etcd (fast elections), three
/// `baton server --store etcd://...` processes, a failover proxy in front of them (as a VIP or a
/// load balancer would be), and `baton agent --dataplane none` agents behind the proxy, each
/// writing a data-plane journal. Everything is stopped by PID and removed afterwards.
@Suite(.serialized, .enabled(if: BatonBinary.path != nil, "baton binary not built: run `swift build` before `swift test`"),
       .enabled(if: LocalEtcdCluster.binary != nil, Comment(rawValue: LocalEtcdCluster.missingMessage)))
struct EtcdHAProcessTests: EgressProcessSuite {
    /// A 5 s eviction timeout: etcd's elections (a few hundred ms here) and the restarts below
    /// must not look like dead nodes; agents fence 4.9 s after their last acknowledged heartbeat.
    static let values = """
        feature:
          tunnelMonitorPeriod: 0.1
          tunnelUpdatePeriod: 0.2
          eipEvictionTimeout: 5
        """
    static let evictionTimeout = Duration.seconds(5)
    /// The server's leader lease (`LeaderElection.defaultConfiguration`): a 2 s etcd lease.
    static let leaseTTL = Duration.seconds(2)

    final class World: @unchecked Sendable {
        let etcd: LocalEtcdCluster
        let dir: String
        let ports: [Int]
        private(set) var servers: [ServerProcess?]
        let proxy: CuttableProxy
        let etcdClient: EtcdClient
        var agents: [String: Process] = [:]
        var token = ""

        init(values: String = EtcdHAProcessTests.values) async throws {
            etcd = try await LocalEtcdCluster(size: 3)
            dir = temporaryDirectory()
            ports = (0..<3).map { _ in ServerProcess.freePort() }
            servers = [nil, nil, nil]
            proxy = try CuttableProxy(upstreamPorts: ports)
            etcdClient = try EtcdClient(endpoints: etcd.endpoints)
            try values.write(toFile: dir + "/values.yaml", atomically: true, encoding: .utf8)
        }

        /// `etcd://` with every member, server `i` listing member `i` first.
        func storeURL(_ i: Int) -> String {
            let hosts = (0..<3).map { etcd.members[($0 + i) % 3].clientPort }.map { "127.0.0.1:\($0)" }
            return "etcd://" + hosts.joined(separator: ",")
        }

        func startServer(_ i: Int) async throws {
            try FileManager.default.createDirectory(atPath: dir + "/server\(i)", withIntermediateDirectories: true)
            servers[i] = try await ServerProcess(dataDir: dir + "/server\(i)", port: ports[i],
                                                 extraArguments: ["--store", storeURL(i), "--config", dir + "/values.yaml"])
        }

        func killServer(_ i: Int) {
            servers[i]?.kill()
            servers[i] = nil
        }

        /// Through the proxy, with the cluster's admin token.
        var client: BatonClient { BatonClient(server: proxy.url, token: token) }
        func client(_ i: Int) -> BatonClient { BatonClient(server: "http://127.0.0.1:\(ports[i])", token: token) }

        func journal(_ node: String) -> String { dir + "/\(node).journal" }

        func startAgent(_ node: String) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: BatonBinary.path!)
            p.arguments = ["agent", "--server", proxy.url, "--token", token, "--node", node, "--labels", "egress=true",
                           "--dataplane", "none", "--dataplane-log", journal(node), "--config", dir + "/values.yaml",
                           "--log-level", "info"]
            let log = dir + "/agent-\(node).log"
            FileManager.default.createFile(atPath: log, contents: nil)
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle(forWritingAtPath: log)
            try p.run()
            agents[node] = p
        }

        func killAgent(_ node: String) {
            guard let p = agents.removeValue(forKey: node) else { return }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
        }

        /// The index of the server holding the controllers' lease, read from etcd (its identity
        /// is `host-PID-random`).
        func leader() async -> Int? {
            guard let holder = try? await EtcdLeaseLock(client: etcdClient, name: "baton-controller").get()?.lease.holderIdentity else {
                return nil
            }
            let parts = holder.split(separator: "-")
            guard parts.count >= 3, let pid = Int32(parts[parts.count - 2]) else { return nil }
            return servers.firstIndex { $0?.process.processIdentifier == pid }
        }

        func tearDown() async {
            for node in Array(agents.keys) { killAgent(node) }
            for i in servers.indices { killServer(i) }
            proxy.close()
            await etcdClient.shutdown()
            etcd.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }

        func logs() -> String {
            ((try? FileManager.default.subpathsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".log") }
                .map { "== \($0)\n" + ((try? String(contentsOfFile: dir + "/" + $0, encoding: .utf8)).map { String($0.suffix(6000)) } ?? "") }
                .joined(separator: "\n")
        }
    }

    /// Three servers, agents node1..node3 Ready, the gateway and four policies placed.
    func withWorld(values: String = Self.values, _ body: (World) async throws -> Void) async throws {
        let world = try await World(values: values)
        do {
            for i in 0..<3 { try await world.startServer(i) }
            // Every replica wrote the one cluster token, which the first to start created.
            let tokens = Set((0..<3).map { world.servers[$0]!.adminToken })
            #expect(tokens.count == 1 && tokens.first?.count == 64, "\(tokens)")
            world.token = world.servers[0]!.adminToken
            for n in ["node1", "node2", "node3"] { try world.startAgent(n) }
            let client = world.client
            _ = try await waitFor("three Ready tunnels") { () -> Bool? in
                let tunnels = try await client.list(.egressTunnel, namespace: nil).items
                return tunnels.filter { $0.status?["phase"] == "Ready" }.count == 3 ? true : nil
            }
            let applied = try BatonBinary.run(["apply", "-f", "-"], env: ["BATON_SERVER": world.proxy.url, "BATON_TOKEN": world.token],
                                              stdin: ([Self.gateway] + (0..<4).map(Self.policy)).joined(separator: "\n---\n"))
            #expect(applied.status == 0, "\(applied.err)")
            _ = try await waitFor("four policies placed") { () -> Bool? in try await placement(client).count == 4 ? true : nil }
            try await body(world)
        } catch {
            print(world.logs())
            await world.tearDown()
            throw error
        }
        await world.tearDown()
    }

    /// Every replica accepts every valid token, and killing the leader server hands the
    /// controllers to another replica within the lease TTL (plus etcd's 0.5 s expiry tick and
    /// a retry period); the new leader's controllers then move a dead agent's EIPs.
    @Test func killingTheLeaderServerPutsAnotherInTheLeadWithinTheLeaseTTL() async throws {
        try await withWorld { world in
            // A node token issued through one replica works on the others.
            let issued = try BatonBinary.run(["token", "create", "node9"], env: world.servers[1]!.env)
            #expect(issued.status == 0, "\(issued.err)")
            let nodeToken = issued.out.trimmingCharacters(in: .whitespacesAndNewlines)
            for i in [0, 2] {
                let reply = try await BatonClient(server: "http://127.0.0.1:\(world.ports[i])", token: nodeToken)
                    .send(.GET, KindInfo.egressPolicy.collectionPath(namespace: nil))
                #expect(reply.status == 200, "server\(i) refused a token issued by server1: \(reply.status)")
            }

            let leader = try await waitFor("a leader") { await world.leader() }
            let killedAt = ContinuousClock.now
            world.killServer(leader)
            let next = try await waitFor("another server in the lead", timeout: .seconds(15)) { () -> Int? in
                guard let l = await world.leader(), l != leader else { return nil }
                return l
            }
            let handover = ContinuousClock.now - killedAt
            print("etcd HA: the controllers' lease moved from server\(leader) to server\(next) \(handover) after a SIGKILL (lease TTL \(Self.leaseTTL))")
            #expect(handover < Self.leaseTTL + .milliseconds(500 + 250 + 1250), "handover took \(handover)")

            // The new leader's controllers work: a dead agent's EIPs move.
            let client = world.client
            let before = try await placement(client)
            let victim = before["policy0"]!
            let held = Set(before.filter { $0.value == victim }.map(\.key))
            let diedAt = ContinuousClock.now
            world.killAgent(victim)
            let after = try await waitFor("the victim's EIPs to move", timeout: .seconds(30)) { () -> [String: String]? in
                let p = try await placement(client)
                return held.allSatisfy({ p[$0] != nil && p[$0] != victim }) ? p : nil
            }
            #expect(ContinuousClock.now - diedAt < Self.evictionTimeout + .seconds(3))
            for (policy, node) in before where node != victim { #expect(after[policy] == node, "\(policy) moved needlessly") }
        }
    }

    /// The etcd member that the leader server prefers dies. The API and the controllers keep
    /// working (a new policy is placed, a dead agent's EIPs move), and a watch served through that
    /// server misses and repeats nothing: its last event for every policy is the policy's
    /// current version, and its revisions only go up.
    @Test func losingOneEtcdMemberLeavesTheAPIAndTheControllersWorking() async throws {
        try await withWorld { world in
            let leader = try await waitFor("a leader") { await world.leader() }
            let leaderClient = world.client(leader)
            let start = try await leaderClient.list(.egressPolicy, namespace: nil)
            let events = EventLog()
            let watch = try await leaderClient.watch(.egressPolicy, namespace: nil, resourceVersion: start.revision)
            let reader = Task {
                do { for try await e in watch { events.append(e) } } catch { events.fail(error) }
            }
            defer { reader.cancel() }

            // Server `leader` lists member `leader` first: that member goes.
            world.etcd.kill(leader)
            let client = world.client
            let created = try BatonBinary.run(["apply", "-f", "-"], env: ["BATON_SERVER": world.proxy.url, "BATON_TOKEN": world.token],
                                              stdin: Self.policy(4))
            #expect(created.status == 0, "\(created.err)")
            _ = try await waitFor("policy4 placed") { () -> Bool? in try await placement(client)["policy4"] != nil ? true : nil }

            let before = try await placement(client)
            let victim = before["policy0"]!
            let held = Set(before.filter { $0.value == victim }.map(\.key))
            world.killAgent(victim)
            _ = try await waitFor("the victim's EIPs to move", timeout: .seconds(30)) { () -> Bool? in
                let p = try await placement(client)
                return held.allSatisfy({ p[$0] != nil && p[$0] != victim }) ? true : nil
            }
            #expect(await world.leader() != nil)

            // The watch: every policy's latest version arrived, once, in order.
            // (Listed again each time: the controllers may still be writing status.)
            var current: [Resource] = []
            do {
                _ = try await waitFor("the watch to catch up") { () -> Bool? in
                    current = try await leaderClient.list(.egressPolicy, namespace: nil).items
                    let last = events.lastVersion
                    let changed = current.filter { $0.metadata.revision > Int64(start.revision) ?? 0 }
                    return changed.allSatisfy { last[$0.name] == $0.metadata.resourceVersion } ? true : nil
                }
            } catch {
                print("watch saw \(events.lastVersion), \(events.revisions), error \(String(describing: events.error)); list: \(current.map { "\($0.name)@\($0.metadata.resourceVersion ?? "")" }), start \(start.revision)")
                throw error
            }
            let revisions = events.revisions
            #expect(revisions == revisions.sorted() && Set(revisions).count == revisions.count, "\(revisions)")
            #expect(events.types["policy4"]?.first == "ADDED")
            #expect(events.error == nil, "\(String(describing: events.error))")
            try await world.etcd.restart(leader)
        }
    }

    /// Two of three etcd members die: writes fail at once with a 503 that names etcd, and the
    /// agents keep every EIP (none withdraws: the outage is shorter than their fence deadline,
    /// and no controller can move anything without etcd). The members come back: writes work,
    /// the three servers agree, and nothing written before is lost.
    @Test func losingTwoEtcdMembersRefusesWritesWith503ThenEverythingComesBack() async throws {
        try await withWorld { world in
            let client = world.client
            let before = try await placement(client)
            let journals = Dictionary(uniqueKeysWithValues: world.agents.keys.map { ($0, FencingProcessTests.journal(world.journal($0)).count) })
            let leader = try await waitFor("a leader") { await world.leader() }
            let lost = [(leader + 1) % 3, (leader + 2) % 3]
            let outage = ContinuousClock.now
            for m in lost { world.etcd.kill(m) }

            // A write sent in the instant quorum goes waits for etcd's own timeout; probe with a short one.
            var probe = client
            probe.timeout = .seconds(1)
            let refused = try await waitFor("a write refused with 503", timeout: .seconds(15)) { () -> APIError? in
                do {
                    _ = try await probe.create(Resource(apiVersion: "baton.io/v1", kind: "Node", metadata: ObjectMeta(name: "during"),
                                                         body: ["spec": [:]]))
                    return nil
                } catch let e as APIError where e.code == 503 && e.message.contains("no leader") {
                    return e
                } catch {
                    return nil  // a write caught in the moment quorum went (etcd could not confirm it)
                }
            }
            #expect(refused.message.contains("etcd is unavailable (the cluster has lost quorum"), "\(refused.message)")
            #expect(refused.reason == .storeWithoutQuorum, "\(refused.reason.rawValue)")
            print("etcd HA: writes refused \(ContinuousClock.now - outage) after losing quorum: \(refused.message)")
            let cli = try BatonBinary.run(["apply", "-f", "-"], env: ["BATON_SERVER": world.proxy.url, "BATON_TOKEN": world.token],
                                          stdin: Self.policy(4))
            #expect(cli.status != 0)
            #expect(cli.err.contains("etcd is unavailable"), "\(cli.err)")

            let restarting = ContinuousClock.now
            for m in lost { try await world.etcd.restart(m) }
            try await world.etcd.waitForLeader()
            print("etcd HA: two members restarted and a leader elected in \(ContinuousClock.now - restarting)")
            print("etcd HA: quorum lost for \(ContinuousClock.now - outage)")
            #expect(ContinuousClock.now - outage < Self.evictionTimeout - .milliseconds(100), "the outage outlasted the agents' fence deadline")

            // Writes work again, through every server.
            var lastError = ""
            let applied: Bool
            do {
                applied = try await waitFor("writes work again", timeout: .seconds(30)) { () -> Bool? in
                    let r = try BatonBinary.run(["apply", "-f", "-"], env: ["BATON_SERVER": world.proxy.url, "BATON_TOKEN": world.token],
                                                stdin: Self.policy(4))
                    lastError = r.err
                    return r.status == 0 ? true : nil
                }
            } catch {
                Issue.record("the last apply said: \(lastError)")
                throw error
            }
            #expect(applied)
            _ = try await waitFor("policy4 placed") { () -> Bool? in try await placement(client)["policy4"] != nil ? true : nil }
            // Nothing moved, nothing was lost, and every agent announced throughout.
            let after = try await placement(client)
            for (policy, node) in before { #expect(after[policy] == node, "\(policy) moved from \(node)") }
            for (node, count) in journals {
                let entries = FencingProcessTests.journal(world.journal(node))
                #expect(!entries.dropFirst(count).contains { !$0.announce }, "\(node) withdrew during the outage: \(entries.dropFirst(count))")
            }
            let tunnels = try await client.list(.egressTunnel, namespace: nil).items
            #expect(tunnels.filter { $0.status?["phase"] == "Ready" }.count == 3)
            // The three servers agree, object for object.
            let views = try await (0..<3).asyncMap { i in
                try await world.client(i).list(.egressPolicy, namespace: nil).items.map { "\($0.name)@\($0.metadata.resourceVersion ?? "")" }
            }
            #expect(views[0] == views[1] && views[1] == views[2], "\(views)")
            #expect(views[0].count == 5)
        }
    }

    /// Quorum lost for 4 s, far longer than the agents' fence window (1.4 s here; it must hold
    /// etcd's own detection of the loss, up to two election timeouts of 250 ms, and a heartbeat
    /// or two; at 0.7 s it sometimes does not, and an agent fences before the proof comes): with
    /// `holdEIPsWithoutQuorum` (the default) the servers answer heartbeats `StoreWithoutQuorum`
    /// and no agent withdraws anything; with it off, every agent fences and announces again
    /// once the store is back. Either way nothing moves, and no tunnel times out afterwards.
    @Test(arguments: [true, false])
    func agentsKeepTheirEIPsThroughALostQuorumOnlyWhenTheStoreProvesIt(hold: Bool) async throws {
        let values = """
            feature:
              tunnelMonitorPeriod: 0.1
              tunnelUpdatePeriod: 0.2
              eipEvictionTimeout: 1.5
              unreachableNodeProbe: false
              holdEIPsWithoutQuorum: \(hold)
            """
        try await withWorld(values: values) { world in
            let client = world.client
            let before = try await placement(client)
            let journals = Dictionary(uniqueKeysWithValues: world.agents.keys.map { ($0, FencingProcessTests.journal(world.journal($0)).count) })
            let survivor = try await waitFor("a leader") { await world.leader() }
            let lost = [(survivor + 1) % 3, (survivor + 2) % 3]
            let outage = ContinuousClock.now
            for m in lost { world.etcd.kill(m) }
            // Long enough for any agent without proof to pass its fence deadline twice over.
            try await Task.sleep(for: .seconds(4))
            for m in lost { try await world.etcd.restart(m) }
            try await world.etcd.waitForLeader()
            print("etcd HA (hold \(hold)): quorum lost for \(ContinuousClock.now - outage)")

            // Back to agreement: every tunnel Ready (again) and every EIP where it was.
            _ = try await waitFor("writes to work and every tunnel to be Ready", timeout: .seconds(30)) { () -> Bool? in
                let tunnels = try await client.list(.egressTunnel, namespace: nil).items
                return tunnels.filter { $0.status?["phase"] == "Ready" }.count == 3 ? true : nil
            }
            // A full eviction timeout and more after the store's return: nobody is evicted.
            try await Task.sleep(for: .seconds(2))
            let after = try await placement(client)
            for (policy, node) in before { #expect(after[policy] == node, "\(policy) moved from \(node)") }
            let tunnels = try await client.list(.egressTunnel, namespace: nil).items
            #expect(tunnels.filter { $0.status?["phase"] == "Ready" }.count == 3)
            for (node, count) in journals {
                let entries = Array(FencingProcessTests.journal(world.journal(node)).dropFirst(count))
                if hold {
                    #expect(!entries.contains { !$0.announce }, "\(node) withdrew while the store proved it had lost quorum: \(entries)")
                } else {
                    // Fenced during the outage, then announced again once the store was back.
                    let withdrew = entries.firstIndex { !$0.announce }
                    #expect(withdrew != nil, "\(node) kept its EIPs without holdEIPsWithoutQuorum: \(entries)")
                    if let withdrew { #expect(entries[withdrew...].contains { $0.announce }, "\(node) never announced again: \(entries)") }
                }
            }
            if hold {
                let logs = world.logs()
                #expect(logs.contains("the store has lost quorum; keeping EIPs until it is back"))
            }
        }
    }
}

/// What a watch through the API delivered.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var all: [BatonClient.Event] = []
    private var failure: (any Error)?

    func append(_ e: BatonClient.Event) { lock.withLock { all.append(e) } }
    func fail(_ e: any Error) { lock.withLock { failure = e } }
    var error: (any Error)? { lock.withLock { failure } }
    var revisions: [Int64] { lock.withLock { all.map(\.object.metadata.revision) } }
    var lastVersion: [String: String] {
        lock.withLock { Dictionary(all.map { ($0.object.name, $0.object.metadata.resourceVersion ?? "") }, uniquingKeysWith: { $1 }) }
    }
    var types: [String: [String]] { lock.withLock { Dictionary(grouping: all, by: \.object.name).mapValues { $0.map(\.type) } } }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await transform(e)) }
        return out
    }
}
