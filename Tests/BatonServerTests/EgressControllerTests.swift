import BatonAPI
import BatonCore
import BatonServer
import BatonStore
import BatonTesting
import Foundation
import Logging
import Synchronization
import Testing

/// The egress controller's run loop on an in-memory store. A `ManualClock` and a hand-fed tick
/// stream drive the heartbeat monitor, so time moves only when a test steps it; conditions on
/// the store are awaited with a timeout.
@Suite struct EgressControllerTests {
    @Test func placesAGatewaysPoliciesOverItsReadyNodes() async throws {
        try await EgressWorld.with(nodes: ["node1", "node2", "node3"], policies: 6) { w in
            try await w.drive(until: "every policy placed") { try await w.placedPolicies().count == 6 }
            let placed = try await w.placedPolicies()
            #expect(Dictionary(grouping: placed.values, by: { $0 }).mapValues(\.count) == ["node1": 2, "node2": 2, "node3": 2])
            // Each `rr` policy holds its own EIP.
            let eips = try await w.policyEIPs()
            #expect(Set(eips.values).count == 6)

            let tunnels = try await w.tunnels()
            for (name, t) in tunnels {
                #expect(t.phase == .ready, "\(name)")
                #expect(t.markValue.map { $0 & 0xFF00_0000 } == 0x2600_0000, "\(name): \(t.mark ?? "nil")")
                #expect(t.tunnel?.ipv4.flatMap(IPAddress.init).map { IPPrefix("172.31.0.0/16")!.contains($0) } == true)
                #expect(t.tunnel?.ipv6 != nil)
                #expect(t.tunnel?.mac?.hasPrefix("66:") == true)
                // The agent's fields survive the controller's writes.
                #expect(t.tunnel?.parent?.name == "eth0")
                #expect(t.lastHeartbeatTime != nil)
            }
            #expect(Set(tunnels.values.compactMap(\.mark)).count == 3)
            #expect(Set(tunnels.values.compactMap(\.tunnel?.mac)).count == 3)
            #expect(Set(tunnels.values.compactMap(\.tunnel?.ipv4)).count == 3)

            try await w.waitFor("the gateway's status to show all six policies") { try await w.gatewayPolicyCount() == 6 }
            let status = try #require(try await w.gatewayStatus())
            #expect(status.nodeList?.map(\.name) == ["node1", "node2", "node3"])
            #expect(status.nodeList?.allSatisfy { $0.status == "Ready" && $0.eips?.count == 2 } == true)
            #expect(status.ipUsage?.ipv4Total == 10)
            #expect(status.ipUsage?.ipv4Free == 4)
        }
    }

    @Test func silentNodeTimesOutOnceAndItsEIPsSpreadWithNoFailBack() async throws {
        try await EgressWorld.with(nodes: ["node1", "node2", "node3"], policies: 6) { w in
            try await w.drive(until: "every policy placed") { try await w.placedPolicies().count == 6 }
            let before = try await w.placedPolicies()

            // node1 stops heartbeating.
            w.live = ["node2", "node3"]
            let silentFrom = w.clock.now
            var evictedAt: BatonInstant?
            for _ in 0..<40 {
                try await w.step()
                let phase = try await w.tunnels()["node1"]?.phase
                let silent = w.clock.now - silentFrom
                if silent <= .milliseconds(600) {
                    #expect(phase != .heartbeatTimeout, "evicted after only \(silent)")
                }
                if phase == .heartbeatTimeout { evictedAt = w.clock.now; break }
                try await Task.sleep(for: .milliseconds(30))
            }
            let at = try #require(evictedAt, "node1 never went HeartbeatTimeout")
            // eipEvictionTimeout + tunnelMonitorPeriod, plus a step for the watch delay.
            #expect(at - silentFrom <= .milliseconds(700 + 100 + 200))

            try await w.drive(until: "node1's EIPs moved") { try await !w.placedPolicies().values.contains("node1") }
            let after = try await w.placedPolicies()
            // Spread: node1's two EIPs went one each to node2 and node3.
            #expect(Dictionary(grouping: after.values, by: { $0 }).mapValues(\.count) == ["node2": 3, "node3": 3])
            for (ref, node) in before where node != "node1" { #expect(after[ref] == node, "\(ref) moved needlessly") }
            try await w.waitFor("the gateway's status to show node1 without EIPs") {
                try await w.gatewayStatus()?.nodeList?.first { $0.name == "node1" }?.eips == nil
            }
            let status = try #require(try await w.gatewayStatus())
            #expect(status.nodeList?.first { $0.name == "node1" }?.status == "HeartbeatTimeout")
            #expect(status.nodeList?.first { $0.name == "node1" }?.eips == nil)

            // More time passes: still one log line, one event, one EIPMoved per EIP.
            for _ in 0..<5 { try await w.step() }
            try await w.waitFor("EIPMoved events") { try await w.events(reason: "EIPMoved").count == 2 }
            #expect(w.logs.count("update tunnel status to HeartbeatTimeout", tunnel: "node1") == 1)
            let timeouts = try await w.events(reason: "HeartbeatTimeout")
            #expect(timeouts.count == 1)
            #expect(timeouts.first?.body["involvedObject"]?["name"]?.stringValue == "node1")
            #expect(timeouts.first?.body["type"]?.stringValue == "Warning")
            #expect(timeouts.first?.body["count"]?.intValue == 1)
            let moved = try await w.events(reason: "EIPMoved").compactMap { $0.body["message"]?.stringValue }
            #expect(moved.allSatisfy { $0.contains("from node1 to node") && $0.contains("HeartbeatTimeout") && $0.contains("10.6.1.") })

            // node1 comes back: Ready, and no EIP comes back.
            w.live = ["node1", "node2", "node3"]
            try await w.drive(until: "node1 Ready") { try await w.tunnels()["node1"]?.phase == .ready }
            for _ in 0..<5 { try await w.step() }
            try await w.waitFor("node1 Ready in the gateway's nodeList") {
                try await w.gatewayStatus()?.nodeList?.first { $0.name == "node1" }?.status == "Ready"
            }
            #expect(try await w.placedPolicies() == after)
            #expect(try await w.events(reason: "Ready").contains { $0.body["involvedObject"]?["name"]?.stringValue == "node1" })
            #expect(w.logs.count("update tunnel status to HeartbeatTimeout", tunnel: "node1") == 1)
        }
    }

    @Test func aNewLeaderMovesNothing() async throws {
        try await EgressWorld.with(nodes: ["node1", "node2", "node3"], policies: 6) { w in
            // Policy status is written before the gateway's: wait until the gateway shows all six too.
            try await w.drive(until: "every policy placed, on the policies and on the gateway") {
                let placed = try await w.placedPolicies().count
                let onGateway = try await w.gatewayPolicyCount()
                return placed == 6 && onGateway == 6
            }
            let placed = try await w.placedPolicies()
            let gateway = try await w.gatewayStatus()
            await w.stopController()
            // No controller for a while: agents keep heartbeating, nothing moves.
            for _ in 0..<3 { try await w.step() }
            w.startController()
            // node1's agent is gone at the handover: the new leader still gives it a full eipEvictionTimeout.
            w.live = ["node2", "node3"]
            for _ in 0..<5 { try await w.step() }
            try await Task.sleep(for: .milliseconds(50))
            #expect(try await w.placedPolicies() == placed)
            #expect(try await w.gatewayStatus() == gateway)
            #expect(try await w.tunnels()["node1"]?.phase == .ready)
            #expect(try await w.events(reason: "EIPMoved").isEmpty)
            // ...and evicts it once that has passed.
            try await w.drive(until: "node1 evicted") { try await w.tunnels()["node1"]?.phase == .heartbeatTimeout }
            try await w.drive(until: "node1's EIPs moved") { try await !w.placedPolicies().values.contains("node1") }
        }
    }

    /// The heartbeat log cannot be read for longer than eipEvictionTimeout (etcd lost quorum, so
    /// heartbeats could not be recorded either): nobody is evicted meanwhile, and afterwards every
    /// tunnel gets a full eipEvictionTimeout before a silent one is.
    @Test func anUnreadableHeartbeatLogEvictsNobody() async throws {
        let failing = UnreadableHeartbeatLog.Switch()
        try await EgressWorld.with(nodes: ["node1", "node2", "node3"], policies: 3,
                                   controllerHeartbeats: { UnreadableHeartbeatLog(inner: $0, failing: failing) }) { w in
            try await w.drive(until: "every policy placed") { try await w.placedPolicies().count == 3 }
            let placed = try await w.placedPolicies()
            failing.on.store(true, ordering: .relaxed)
            w.live = ["node2", "node3"]  // node1 also goes silent
            for _ in 0..<15 { try await w.step() }  // 1.5 s, twice the timeout
            try await Task.sleep(for: .milliseconds(50))
            #expect(try await w.tunnels().values.allSatisfy { $0.phase == .ready })
            #expect(try await w.placedPolicies() == placed)
            #expect(w.logs.count("cannot read heartbeats; nobody is evicted until they can be read again") == 1)

            failing.on.store(false, ordering: .relaxed)
            let readable = w.clock.now
            try await w.drive(until: "node1 evicted") { try await w.tunnels()["node1"]?.phase == .heartbeatTimeout }
            #expect(w.clock.now - readable > .milliseconds(700), "node1 got a full eipEvictionTimeout after the log came back")
            #expect(try await w.tunnels()["node2"]?.phase == .ready)
            #expect(w.logs.count("heartbeats readable again; every tunnel gets a full eipEvictionTimeout") == 1)
        }
    }

    /// The store elected a new leader between two reads of the heartbeat log, with no read
    /// failing: it may have been without quorum in between and answered heartbeats
    /// `StoreWithoutQuorum`, which agents take as leave to keep their EIPs. So the silence
    /// before counts for nothing: a silent node gets a full eipEvictionTimeout from the read
    /// that saw the new term.
    @Test func aNewStoreTermGivesEveryTunnelAFullTimeout() async throws {
        let term = TermedHeartbeatLog.Term()
        try await EgressWorld.with(nodes: ["node1", "node2", "node3"], policies: 3,
                                   controllerHeartbeats: { TermedHeartbeatLog(inner: $0, term: term) }) { w in
            try await w.drive(until: "every policy placed") { try await w.placedPolicies().count == 3 }
            w.live = ["node2", "node3"]
            for _ in 0..<5 { try await w.step() }  // node1 silent for 0.5 s of its 0.7 s
            #expect(try await w.tunnels()["node1"]?.phase == .ready)
            term.value.store(8, ordering: .relaxed)
            let bumped = w.clock.now
            try await w.drive(until: "node1 evicted") { try await w.tunnels()["node1"]?.phase == .heartbeatTimeout }
            #expect(w.clock.now - bumped > .milliseconds(700), "node1 was evicted \(w.clock.now - bumped) after the new term")
            #expect(try await w.tunnels()["node2"]?.phase == .ready)
            #expect(w.logs.count("the store changed leader; every tunnel gets a full eipEvictionTimeout") == 1)
        }
    }

    @Test func deletedTunnelLosesItsEIPs() async throws {
        try await EgressWorld.with(nodes: ["node1", "node2", "node3"], policies: 6) { w in
            try await w.drive(until: "every policy placed") { try await w.placedPolicies().count == 6 }
            w.live = ["node1", "node3"]
            _ = try await w.store.delete(kind: "EgressTunnel", namespace: nil, name: "node2", expectedRevision: nil)
            try await w.waitFor("node2's EIPs moved") { try await !w.placedPolicies().values.contains("node2") }
            // Its heartbeat record goes too (the log does not grow with every node that ever
            // came and went); the live nodes' stay.
            // (A read after cursor 0 returns every record the log holds.)
            try await w.waitFor("node2's heartbeat record removed") {
                try await !w.heartbeats.read(after: 0).records.map(\.node).contains("node2")
            }
            #expect(Set(try await w.heartbeats.read(after: 0).records.map(\.node)) == ["node1", "node3"])
            let after = try await w.placedPolicies()
            #expect(Dictionary(grouping: after.values, by: { $0 }).mapValues(\.count) == ["node1": 3, "node3": 3])
            // Events are recorded after the status writes: wait for them.
            try await w.waitFor("EIPMoved events") { try await w.events(reason: "EIPMoved").count == 2 }
            let moved = try await w.events(reason: "EIPMoved").compactMap { $0.body["message"]?.stringValue }
            #expect(moved.count == 2)
            #expect(moved.allSatisfy { $0.contains("from node2") && $0.contains("no EgressTunnel") })
        }
    }

    @Test func noReadyCandidateClearsThePolicyStatusWithAnEvent() async throws {
        try await EgressWorld.with(nodes: ["node1", "node2"], egressNodes: ["node1"], policies: 1) { w in
            try await w.drive(until: "placed on node1") { try await w.placedPolicies().values.first == "node1" }
            w.live = ["node2"]
            try await w.drive(until: "policy status cleared") { try await w.placedPolicies().isEmpty }
            let policy = try await w.store.get(kind: "EgressPolicy", namespace: "default", name: "policy0")
            let status = policy.decodeStatus(EgressPolicyStatus.self)
            #expect(status?.node == nil)
            #expect(status?.eip == nil)
            try await w.waitFor("NoReadyCandidate event") { try await w.events(reason: "NoReadyCandidate").count == 1 }
            let event = try #require(try await w.events(reason: "NoReadyCandidate").first)
            #expect(event.body["involvedObject"]?["name"]?.stringValue == "policy0")
            #expect(event.body["message"]?.stringValue?.contains("no Ready node") == true)
            for _ in 0..<5 { try await w.step() }
            #expect(try await w.events(reason: "NoReadyCandidate").first?.body["count"]?.intValue == 1)
        }
    }

    @Test func policyWithoutAGatewayNameUsesTheClusterDefault() async throws {
        try await EgressWorld.with(nodes: ["node1"], policies: 1, gatewayName: "") { w in
            try await w.drive(until: "placed") { try await w.placedPolicies().values.first == "node1" }
            #expect(try await w.policyEIPs().values.first == "10.6.1.50")
        }
    }

    /// Production wiring: the process's monotonic clock and `.sleeping` ticks every tunnelMonitorPeriod.
    @Test func realClockTunnelGoesReadyThenTimesOut() async throws {
        let store = try SQLiteStore.inMemory()
        let heartbeats = try SQLiteHeartbeatLog.inMemory()
        let logs = LogCapture()
        let logger = Logger(label: "egress-test") { _ in logs }
        let controller = EgressController(store: store, heartbeats: heartbeats, settings: FeatureSettings(), clock: MonotonicClock(),
                                          logger: logger,
                                          events: EventRecorder(store: store, component: "egress-controller", logger: logger))
        let task = Task { try await controller.run() }
        defer { task.cancel() }
        _ = try await store.create(Resource(apiVersion: "egressgateway.spidernet.io/v1beta1", kind: "EgressTunnel",
                                            metadata: ObjectMeta(name: "solo"), body: [:]))
        func phase() async throws -> String? {
            try await store.get(kind: "EgressTunnel", namespace: nil, name: "solo").status?["phase"]?.stringValue
        }
        // The agent heartbeats (a skewed clock: its timestamps are from 2000) until the tunnel is Ready, then dies.
        var beat = 0
        let deadline = ContinuousClock.now + .seconds(5)
        // The bound is measured from the last heartbeat recorded.
        var lastBeat = ContinuousClock.now
        while try await phase() != "Ready", ContinuousClock.now < deadline {
            beat += 1
            try await heartbeats.record(node: "solo", agentTime: String(format: "2000-01-01T00:00:%02dZ", beat % 60))
            lastBeat = ContinuousClock.now
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await phase() == "Ready")
        // A loaded machine may stall a heartbeat past the timeout while the tunnel comes up; what
        // counts is what happens once the heartbeats stop.
        let timeoutsBefore = logs.count("update tunnel status to HeartbeatTimeout", tunnel: "solo")
        // The displayed time is the agent's own (skewed) one; nothing compared it with the server's clock.
        #expect(try await store.get(kind: "EgressTunnel", namespace: nil, name: "solo").status?["lastHeartbeatTime"]?
            .stringValue?.hasPrefix("2000-01-01T00:00:") == true)
        while try await phase() != "HeartbeatTimeout", ContinuousClock.now < deadline + .seconds(3) {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(try await phase() == "HeartbeatTimeout")
        // eipEvictionTimeout 0.7 s + tunnelMonitorPeriod 0.1 s after the last heartbeat, with slack for a loaded machine.
        #expect(ContinuousClock.now - lastBeat > .milliseconds(500))
        #expect(ContinuousClock.now - lastBeat < .seconds(2))
        // Logged once, not again at every monitor period while the tunnel stays silent.
        try await Task.sleep(for: .milliseconds(400))
        #expect(logs.count("update tunnel status to HeartbeatTimeout", tunnel: "solo") == timeoutsBefore + 1)
        task.cancel()
        _ = try? await task.value
        await store.close()
    }

    /// 10,000 EIPs over 50 gateways and 21 nodes; node `n00` fails and its EIPs are re-placed.
    /// Prints the decision and write times. Run with BATON_EGRESS_BENCH=1 (ideally `-c release`).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["BATON_EGRESS_BENCH"] == "1"))
    func replacesAFailedNodesEIPsQuickly() async throws {
        let nodes = (0..<21).map { String(format: "n%02d", $0) }
        let reports = Mutex<[EgressController.PlacementReport]>([])
        let concurrency = ProcessInfo.processInfo.environment["BATON_EGRESS_WRITES"].flatMap { Int($0) } ?? 256
        try await EgressWorld.with(nodes: nodes, policies: 0, onPlacement: { r in reports.withLock { $0.append(r) } },
                                   writeConcurrency: concurrency) { w in
            // 50 gateways of 200 EIPs each, one rr policy per EIP.
            for g in 0..<50 {
                try await w.createGateway(name: "gw\(g)", pool: "10.\(100 + g).0.1-10.\(100 + g).0.200")
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for g in 0..<50 {
                    group.addTask {
                        for p in 0..<200 { try await w.createPolicy(name: "p\(g)-\(p)", gateway: "gw\(g)") }
                    }
                }
                try await group.waitForAll()
            }
            try await w.drive(until: "10,000 policies placed", steps: 400) { try await w.placedPolicies().count == 10_000 }
            let victims = try await w.placedPolicies().values.filter { $0 == "n00" }.count
            reports.withLock { $0.removeAll() }
            w.live = Set(nodes.dropFirst())
            try await w.drive(until: "n00 emptied", steps: 100) { try await !w.placedPolicies().values.contains("n00") }
            let r = try #require(reports.withLock { $0.first { $0.moves > 0 } })
            print("write concurrency \(concurrency): re-placed \(r.moves) EIPs (\(victims) policies on the failed node) of \(r.policies): decision \(r.decision), writes \(r.writes) (\(r.statusWrites) status writes)")
            #expect(r.moves == victims)
        }
    }
}

// MARK: - The world

/// A store, a controller on a manual clock, and simulated agents that heartbeat when stepped.
final class EgressWorld: @unchecked Sendable {
    let store: SQLiteStore
    let heartbeats: SQLiteHeartbeatLog
    let clock = ManualClock()
    let logs = LogCapture()
    /// Each controller gets its own tick stream (a cancelled consumer finishes an AsyncStream).
    private let tickContinuation = Mutex<AsyncStream<Void>.Continuation?>(nil)
    private let counter = Mutex(0)
    private let liveNodes: Mutex<Set<String>>
    var live: Set<String> {
        get { liveNodes.withLock { $0 } }
        set { liveNodes.withLock { $0 = newValue } }
    }

    private init(nodes: [String]) throws {
        store = try SQLiteStore.inMemory()
        heartbeats = try SQLiteHeartbeatLog.inMemory()
        liveNodes = Mutex(Set(nodes))
    }

    /// Builds the world, runs `body` with the controller running, and tears everything down, even on failure.
    static func with(nodes: [String], egressNodes: [String]? = nil, policies: Int, gatewayName: String = "egw1",
                     onPlacement: (@Sendable (EgressController.PlacementReport) -> Void)? = nil, writeConcurrency: Int = 256,
                     controllerStore: (@Sendable (SQLiteStore) -> any ResourceStore)? = nil,
                     controllerHeartbeats: (@Sendable (SQLiteHeartbeatLog) -> any HeartbeatLog)? = nil,
                     _ body: (EgressWorld) async throws -> Void) async throws {
        let w = try EgressWorld(nodes: nodes)
        let egress = Set(egressNodes ?? nodes)
        for n in nodes {
            try await w.createNode(n, egress: egress.contains(n))
            try await w.createTunnel(n)
        }
        w.makeController = { [unowned w] in
            var logger = Logger(label: "egress-test") { _ in w.logs }
            logger.logLevel = .info
            let events = EventRecorder(store: w.store, component: "egress-controller", logger: logger)
            return EgressController(store: controllerStore?(w.store) ?? w.store,
                                    heartbeats: controllerHeartbeats?(w.heartbeats) ?? w.heartbeats, settings: FeatureSettings(),
                                    clock: w.clock, logger: logger,
                                    events: events, ticks: .stream(w.newTickStream()), writeConcurrency: writeConcurrency,
                                    onPlacement: onPlacement)
        }
        w.startController()
        do {
            // Every tunnel goes Ready first, so where the policies land does not depend on which
            // heartbeat the controller happened to see first.
            try await w.drive(until: "every tunnel Ready") {
                let t = try await w.tunnels()
                return t.count == nodes.count && t.values.allSatisfy { $0.phase == .ready }
            }
            if policies > 0 {
                try await w.createGateway(name: "egw1", pool: "10.6.1.50-10.6.1.59", clusterDefault: true)
                for i in 0..<policies { try await w.createPolicy(name: "policy\(i)", gateway: gatewayName) }
            }
            try await body(w)
        } catch {
            await w.stopController()
            await w.store.close()
            throw error
        }
        await w.stopController()
        await w.store.close()
    }

    func newTickStream() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
        tickContinuation.withLock { $0 = continuation }
        return stream
    }

    var makeController: (() -> EgressController)?
    private let running = Mutex<Task<Void, any Error>?>(nil)

    /// Starts a controller (as a newly elected leader would).
    func startController() {
        let controller = makeController!()
        running.withLock { $0 = Task { try await controller.run() } }
    }

    /// Cancels the running controller and waits for it to end (as a lost lease would).
    func stopController() async {
        guard let task = running.withLock({ t in defer { t = nil }; return t }) else { return }
        task.cancel()
        _ = try? await task.value
    }

    // MARK: Objects

    func createNode(_ name: String, egress: Bool) async throws {
        let status: JSONValue = .object(["addresses": .array([.object(["type": .string("InternalIP"), "address": .string("192.168.0.\(abs(name.hashValue % 200) + 1)")])])])
        _ = try await store.create(Resource(apiVersion: "baton.io/v1", kind: "Node",
                                            metadata: ObjectMeta(name: name, labels: egress ? ["egress": "true"] : [:]),
                                            body: ["spec": .object([:]), "status": status]))
    }

    func createTunnel(_ name: String) async throws {
        _ = try await store.create(Resource(apiVersion: "egressgateway.spidernet.io/v1beta1", kind: "EgressTunnel",
                                            metadata: ObjectMeta(name: name),
                                            body: ["spec": .object([:]),
                                                   "status": .object(["tunnel": .object(["parent": .object(["name": .string("eth0")])])])]))
    }

    func createGateway(name: String, pool: String, clusterDefault: Bool = false) async throws {
        let spec = EgressGatewaySpec(clusterDefault: clusterDefault, ippools: .init(ipv4: [pool]),
                                     nodeSelector: .init(selector: LabelSelector(matchLabels: ["egress": "true"])))
        _ = try await store.create(Resource(apiVersion: "egressgateway.spidernet.io/v1beta1", kind: "EgressGateway",
                                            metadata: ObjectMeta(name: name), body: ["spec": try JSONValue(encoding: spec)]))
    }

    func createPolicy(name: String, gateway: String) async throws {
        let spec = EgressPolicySpec(egressGatewayName: gateway, egressIP: EgressIP(allocatorPolicy: gateway.isEmpty ? nil : "rr"),
                                    appliedTo: .init(podSubnet: ["10.0.0.0/24"]))
        _ = try await store.create(Resource(apiVersion: "egressgateway.spidernet.io/v1beta1", kind: "EgressPolicy",
                                            metadata: ObjectMeta(name: name, namespace: "default"),
                                            body: ["spec": try JSONValue(encoding: spec)]))
    }

    // MARK: Time

    /// Every live agent heartbeats (with a timestamp from a clock far from the controller's), then
    /// the clock moves one `tunnelMonitorPeriod` and the controller ticks.
    func step() async throws {
        let n = counter.withLock { $0 += 1; return $0 }
        let stamp = String(format: "2023-11-27T%02d:%02d:%02dZ", (n / 3600) % 24, (n / 60) % 60, n % 60)
        for node in live.sorted() { try await heartbeats.record(node: node, agentTime: stamp) }
        clock.advance(by: .milliseconds(100))
        _ = tickContinuation.withLock { $0 }?.yield()
    }

    /// Steps until `condition` holds, giving the controller a moment after each step.
    func drive(until what: String, steps: Int = 60, _ condition: () async throws -> Bool) async throws {
        for _ in 0..<steps {
            try await step()
            for _ in 0..<10 {
                if try await condition() { return }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        Issue.record("timed out waiting for \(what)")
        throw CancellationError()
    }

    /// Waits (without stepping) up to 5 s for `condition`.
    func waitFor(_ what: String, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("timed out waiting for \(what)")
        throw CancellationError()
    }

    // MARK: Reading

    /// Policy name → node, for every policy whose status names one.
    func placedPolicies() async throws -> [String: String] {
        var out: [String: String] = [:]
        for p in try await store.list(kind: "EgressPolicy", namespace: nil, selector: nil).items {
            if let node = p.decodeStatus(EgressPolicyStatus.self)?.node, !node.isEmpty { out[p.name] = node }
        }
        return out
    }

    func policyEIPs() async throws -> [String: String] {
        var out: [String: String] = [:]
        for p in try await store.list(kind: "EgressPolicy", namespace: nil, selector: nil).items {
            if let ip = p.decodeStatus(EgressPolicyStatus.self)?.eip?.ipv4 { out[p.name] = ip }
        }
        return out
    }

    func tunnels() async throws -> [String: EgressTunnelStatus] {
        var out: [String: EgressTunnelStatus] = [:]
        for t in try await store.list(kind: "EgressTunnel", namespace: nil, selector: nil).items {
            out[t.name] = t.decodeStatus(EgressTunnelStatus.self)
        }
        return out
    }

    func gatewayStatus(_ name: String = "egw1") async throws -> EgressGatewayStatus? {
        try await store.get(kind: "EgressGateway", namespace: nil, name: name).decodeStatus(EgressGatewayStatus.self)
    }

    /// How many policies the gateway's `status.nodeList` names, over every node and EIP.
    func gatewayPolicyCount(_ name: String = "egw1") async throws -> Int {
        let nodes = try await gatewayStatus(name)?.nodeList ?? []
        return nodes.reduce(0) { $0 + ($1.eips ?? []).reduce(0) { $0 + ($1.policies?.count ?? 0) } }
    }

    func events(reason: String) async throws -> [Resource] {
        try await store.list(kind: "Event", namespace: nil, selector: nil).items.filter { $0.body["reason"]?.stringValue == reason }
    }
}

/// A log handler that keeps every message, for checking that a line appears exactly once.
final class LogCapture: LogHandler, @unchecked Sendable {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let lines = Mutex<[Line]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lines.withLock { $0.append(Line(level: event.level, message: event.message.description, metadata: event.metadata ?? [:])) }
    }

    /// How many lines at any level carry exactly `message`.
    func count(_ message: String) -> Int {
        lines.withLock { $0.filter { $0.message == message }.count }
    }

    func count(_ message: String, tunnel: String) -> Int {
        lines.withLock { $0.filter { $0.level == .notice && $0.message == message && $0.metadata["tunnel"]?.description == tunnel }.count }
    }
}

/// A heartbeat log whose reads fail while `failing` is set.
struct UnreadableHeartbeatLog: HeartbeatLog {
    final class Switch: Sendable {
        let on = Atomic<Bool>(false)
    }

    let inner: SQLiteHeartbeatLog
    let failing: Switch
    func record(node: String, agentTime: String?) async throws { try await inner.record(node: node, agentTime: agentTime) }
    func read(after cursor: Int64?) async throws -> (records: [HeartbeatRecord], cursor: Int64) {
        if failing.on.load(ordering: .relaxed) { throw APIError.unavailable("etcd is unavailable (test)") }
        return try await inner.read(after: cursor)
    }
    func prune(keeping nodes: Set<String>) async throws -> Int { try await inner.prune(keeping: nodes) }
}

/// A heartbeat log that reports a store term, which the test bumps as an election would.
struct TermedHeartbeatLog: HeartbeatLog {
    final class Term: Sendable {
        let value = Atomic<Int64>(7)
    }

    let inner: SQLiteHeartbeatLog
    let term: Term
    func record(node: String, agentTime: String?) async throws { try await inner.record(node: node, agentTime: agentTime) }
    func read(after cursor: Int64?) async throws -> (records: [HeartbeatRecord], cursor: Int64) {
        try await inner.read(after: cursor)
    }
    var lastReadTerm: Int64? { term.value.load(ordering: .relaxed) }
    func prune(keeping nodes: Set<String>) async throws -> Int { try await inner.prune(keeping: nodes) }
}
