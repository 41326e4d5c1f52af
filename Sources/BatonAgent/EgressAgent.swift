import BatonAPI
import BatonClient
import BatonCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// `baton agent`: registers its Node and EgressTunnel, heartbeats every `tunnelUpdatePeriod`,
/// follows the EgressGateways' placement for its node, and announces or withdraws EIPs as
/// `EgressAnnouncer` decides (fencing included). It never waits on the control plane to keep
/// what it has: if the server goes away, it keeps announcing until the fence deadline, then
/// withdraws (docs/egress-failover.md explains the timing).
public final class EgressAgent: Service, Sendable {
    public struct Options: Sendable {
        public var node: String
        public var labels: [String: String]
        public var addresses: [String]
        public var settings: FeatureSettings
        /// Subtracted from eipEvictionTimeout to get the fence deadline.
        public var fenceMargin: Duration
        /// Added to the wall-clock time the agent reports in its heartbeats: simulates a machine
        /// whose clock is off (tests and simulations; the server must not care).
        public var clockSkew: Duration = .zero
        /// The interface towards the LAN, reported as the tunnel's `parent.name`.
        public var interface = "eth0"
        /// On a graceful exit, remove everything the data plane added (`--cleanup`). Without
        /// it a Linux data plane stays as it is, so a restarted agent loses no packet.
        public var cleanup = false

        public init(node: String, labels: [String: String] = [:], addresses: [String] = [],
                    settings: FeatureSettings = FeatureSettings(), fenceMargin: Duration = .milliseconds(100)) {
            self.node = node
            self.labels = labels
            self.addresses = addresses
            self.settings = settings
            self.fenceMargin = fenceMargin
        }
    }

    let client: BatonClient
    let options: Options
    let dataplane: any EgressDataplane
    let clock: any BatonClock
    let logger: Logger
    let announcer: Mutex<EgressAnnouncer>
    /// Orders for the data plane, carried out in order by one task.
    enum Order: Sendable {
        case act(EgressAnnouncer.Action)
        /// The announced EIPs' kernel lease runs until this instant (the fence deadline).
        case renew(until: BatonInstant)
        /// The first placement decision is made (see `EgressDataplane.settle`).
        case settle
    }
    let orders: AsyncStream<[Order]>
    let ordersIn: AsyncStream<[Order]>.Continuation
    /// Whether a heartbeat was acknowledged, a placement listed, and `settle` ordered.
    private let settling = Mutex<(acknowledged: Bool, listed: Bool, settled: Bool)>((false, false, false))
    /// Wakes the fence loop when the agent starts announcing (a fence deadline appears).
    let fenceWake: AsyncStream<Void>
    let fenceWakeIn: AsyncStream<Void>.Continuation
    private let acknowledgedAt = Mutex<ContinuousClock.Instant?>(nil)
    /// Heartbeats not acknowledged since the last one that was (for the log).
    private let missedHeartbeats = Mutex(0)
    private let heartbeatsInFlight = Atomic<Int>(0)

    /// When the newest heartbeat was acknowledged (real time), for simulations and benchmarks.
    public var lastHeartbeatAcknowledgedAt: ContinuousClock.Instant? { acknowledgedAt.withLock { $0 } }

    public init(client: BatonClient, options: Options, dataplane: any EgressDataplane,
                clock: any BatonClock = MonotonicClock(), logger: Logger) throws {
        self.client = client
        self.options = options
        self.dataplane = dataplane
        self.clock = clock
        self.logger = logger
        let timeout = Duration.milliseconds(Int64((options.settings.eipEvictionTimeout * 1000).rounded()))
        self.announcer = Mutex(EgressAnnouncer(fencing: try FencingDeadline(eipEvictionTimeout: timeout, safetyMargin: options.fenceMargin)))
        (orders, ordersIn) = AsyncStream<[Order]>.makeStream()
        (fenceWake, fenceWakeIn) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    var updatePeriod: Duration { .milliseconds(Int64((options.settings.tunnelUpdatePeriod * 1000).rounded())) }

    public func run() async throws {
        try await register()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.carryOutOrders() }
            group.addTask { await self.heartbeatLoop() }
            group.addTask { await self.placementLoop() }
            group.addTask { await self.fenceLoop() }
            if let linux = dataplane as? LinuxDataplaneDriver {
                for kind in [KindInfo.egressTunnel, .egressPolicy, .egressClusterPolicy] {
                    group.addTask { await linux.follow(kind, client: self.client) }
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
            ordersIn.finish()
        }
        if let linux = dataplane as? LinuxDataplaneDriver {
            // A real data plane stays as it is unless asked to clean up: a restarted agent then
            // finds its EIPs bound and loses no packet.
            if options.cleanup {
                do { try await linux.cleanup() } catch { logger.error("cleanup failed", metadata: ["error": "\(error)"]) }
            }
            return
        }
        // Leaving on purpose: stop announcing, the controller will move the EIPs on timeout.
        let held = announcer.withLock { $0.announced }
        if !held.isEmpty { try? await dataplane.withdraw(held) }
    }

    // MARK: Registration

    /// Creates or updates the Node (keeping labels an operator set) and ensures the tunnel exists.
    func register() async throws {
        var attempt = 0
        while true {
            do {
                var node: Resource
                if let existing = try? await client.get(.node, name: options.node, namespace: nil) {
                    node = existing
                    var labels = existing.metadata.labels ?? [:]
                    for (k, v) in options.labels { labels[k] = v }
                    node.metadata.labels = labels.isEmpty ? nil : labels
                    if node.metadata.labels != existing.metadata.labels { node = try await client.update(node) }
                } else {
                    var meta = ObjectMeta(name: options.node)
                    meta.labels = options.labels.isEmpty ? nil : options.labels
                    node = try await client.create(Resource(apiVersion: KindInfo.node.apiVersion, kind: "Node", metadata: meta, body: ["spec": [:]]))
                }
                if !options.addresses.isEmpty {
                    let addresses: [JSONValue] = options.addresses.map { ["type": "InternalIP", "address": .string($0)] }
                    _ = try await client.mergeStatus(.node, name: options.node, namespace: nil, status: ["addresses": .array(addresses)])
                }
                try await ensureTunnel()
                logger.notice("registered node", metadata: ["node": "\(options.node)"])
                return
            } catch let e as APIError where e.code == 401 || e.code == 403 || e.code == 422 {
                throw e
            } catch {
                attempt += 1
                if attempt % 20 == 1 { logger.warning("cannot register yet; retrying", metadata: ["error": "\(error)"]) }
                try await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    /// Creates the EgressTunnel if it is missing and writes its `tunnel.parent` (the agent's part
    /// of the tunnel status; the controller owns the rest).
    func ensureTunnel() async throws {
        let tunnel: JSONValue = ["apiVersion": .string(KindInfo.egressTunnel.apiVersion), "kind": "EgressTunnel",
                                 "metadata": ["name": .string(options.node)], "spec": [:]]
        let existing = try? await client.get(.egressTunnel, name: options.node, namespace: nil)
        if existing == nil { _ = try await client.apply(tunnel, kind: .egressTunnel, name: options.node, namespace: nil) }
        var parent: [String: JSONValue] = ["name": .string(options.interface)]
        for a in options.addresses {
            if let ip = IPAddress(a) { parent[ip.family == .v4 ? "ipv4" : "ipv6"] = .string(a) }
        }
        if existing?.status?["tunnel"]?["parent"] != .object(parent) {
            _ = try await client.mergeStatus(.egressTunnel, name: options.node, namespace: nil,
                                             status: ["tunnel": ["parent": .object(parent)]])
        }
    }

    // MARK: Loops

    func carryOutOrders() async {
        // The end of the kernel lease last handed to the data plane. An announcement is carried
        // out only inside it: on a machine loaded enough that the order is read after its
        // deadline, binding the EIP would announce past the fence (the fence loop withdraws it
        // at once, and the next acknowledgement and fresh read announce it again).
        var leaseUntil: BatonInstant?
        for await batch in orders {
            for order in batch {
                do {
                    switch order {
                    case .act(.announce(let eips)):
                        guard let until = leaseUntil, until > clock.now else {
                            logger.notice("announcement dropped: the fence deadline passed before it could be carried out",
                                          metadata: ["eips": "\(eips.sorted())"])
                            continue
                        }
                        try await dataplane.announce(eips)
                    case .act(.withdraw(let eips, let reason)):
                        logger.notice("withdrawing EIPs", metadata: ["eips": "\(eips.sorted())", "reason": "\(reason)"])
                        try await dataplane.withdraw(eips)
                    case .renew(let until):
                        leaseUntil = until
                        let remaining = until - clock.now
                        if remaining > .zero { try await dataplane.renew(for: remaining) }
                    case .settle: try await dataplane.settle()
                    }
                } catch {
                    logger.error("data plane failed", metadata: ["order": "\(order)", "error": "\(error)"])
                }
            }
        }
    }

    /// Queues the announcer's actions, preceded by the kernel lease up to `deadline` (so an EIP
    /// is bound with its lease in place) and followed by `settle` once the agent has both an
    /// acknowledged heartbeat and a listed placement.
    func order(_ actions: [EgressAnnouncer.Action], deadline: BatonInstant?, acknowledged: Bool = false, listed: Bool = false) {
        var batch: [Order] = deadline.map { [.renew(until: $0)] } ?? []
        batch += actions.map(Order.act)
        let settle = settling.withLock { s in
            s.acknowledged = s.acknowledged || acknowledged
            s.listed = s.listed || listed
            guard s.acknowledged && s.listed && !s.settled else { return false }
            s.settled = true
            return true
        }
        if settle { batch.append(.settle) }
        guard !batch.isEmpty else { return }
        ordersIn.yield(batch)
        if actions.contains(where: { if case .announce = $0 { true } else { false } }) { fenceWakeIn.yield() }
    }

    /// At most this many heartbeats wait for an answer at once: enough that one goes out every
    /// `tunnelUpdatePeriod` even while every earlier one waits out its timeout
    /// (`eipEvictionTimeout`), so ceil(E / U) + 1, at most 16. The rate stays one per period;
    /// what grows while the server is slow is the number of open connections (5 at the defaults).
    public static func maxHeartbeatsInFlight(_ settings: FeatureSettings) -> Int {
        let periods = (settings.eipEvictionTimeout / max(settings.tunnelUpdatePeriod, 0.001)).rounded(.up)
        return min(16, max(2, Int(periods) + 1))
    }

    /// Every tunnelUpdatePeriod: a heartbeat (with the agent's wall-clock time, for display). The
    /// send instant of each acknowledged heartbeat moves the fence deadline. A 404 means the
    /// tunnel is gone (deleted by hand): the agent creates it again.
    ///
    /// A heartbeat goes out every period even while earlier ones wait for their answer (up to
    /// `maxHeartbeatsInFlight`): one held by a store that is changing leader must not delay the
    /// next, whose answer may come at once. Answers may arrive out of order; the fence follows
    /// the newest acknowledged send.
    func heartbeatLoop() async {
        // A heartbeat answered later than eipEvictionTimeout is worth nothing (the fence deadline
        // has passed): give up on it then and send the next one, rather than wait for 30 s.
        let inFlightLimit = Self.maxHeartbeatsInFlight(options.settings)
        // A pool of their own: the agent's watches (egress, IPFailover, ...) hold connections
        // of the shared pool for as long as they run, and a heartbeat must never wait for one.
        let pool = self.client.withOwnConnections(connections: inFlightLimit + 1)
        var client = pool.client
        client.timeout = .milliseconds(Int64(max(0.2, options.settings.eipEvictionTimeout) * 1000))
        let beatClient = client
        await withDiscardingTaskGroup { group in
            var next = ContinuousClock.now
            while !Task.isCancelled {
                if heartbeatsInFlight.load(ordering: .relaxed) < inFlightLimit {
                    heartbeatsInFlight.add(1, ordering: .relaxed)
                    let sent = clock.now
                    group.addTask {
                        await self.beat(beatClient, sentAt: sent)
                        self.heartbeatsInFlight.subtract(1, ordering: .relaxed)
                    }
                }
                next = next.advanced(by: updatePeriod)
                let now = ContinuousClock.now
                if next < now { next = now }
                try? await Task.sleep(until: next, clock: .continuous)
            }
            group.cancelAll()
        }
        await pool.shutdown()
    }

    /// One heartbeat, sent at `sentAt` (agent clock), and what its answer means for the fence.
    func beat(_ client: BatonClient, sentAt sent: BatonInstant) async {
        let skew = TimeInterval(Double(options.clockSkew.components.seconds) + Double(options.clockSkew.components.attoseconds) / 1e18)
        do {
            do {
                try await client.heartbeat(node: options.node, agentTime: Timestamp.format(Date().addingTimeInterval(skew)))
            } catch let e as APIError where e.code == 404 {
                logger.warning("the tunnel is gone; registering it again", metadata: ["node": "\(options.node)"])
                try await ensureTunnel()
                throw e
            }
            acknowledgedAt.withLock { $0 = ContinuousClock.now }
            let now = clock.now
            let (actions, wantsRead, deadline) = announcer.withLock { a in
                (a.heartbeatAcknowledged(sentAt: sent, now: now), a.wantsFreshRead, a.nextDeadline)
            }
            order(actions, deadline: deadline, acknowledged: true)
            if wantsRead { await freshRead() }
            let missed = missedHeartbeats.withLock { f in defer { f = 0 }; return f }
            if missed > 0 { logger.notice("heartbeats acknowledged again", metadata: ["missed": "\(missed)"]) }
        } catch let error as APIError where error.code == 503 && error.reason == .storeWithoutQuorum {
            // The server is up and its store provably cannot commit anything, so no replica
            // can evict this node or move its EIPs until the store is back, when every node
            // gets a full eipEvictionTimeout (docs/etcd.md). Such an answer moves the fence
            // deadline as an acknowledgement does: the agent keeps its EIPs.
            let now = clock.now
            let (actions, deadline) = announcer.withLock { a in (a.heartbeatAcknowledged(sentAt: sent, now: now), a.nextDeadline) }
            order(actions, deadline: deadline, acknowledged: true)
            let missed = missedHeartbeats.withLock { f in f += 1; return f }
            if missed == 1 || missed % 50 == 0 {
                logger.warning("the store has lost quorum; keeping EIPs until it is back",
                               metadata: ["error": "\(error.message)", "missed": "\(missed)"])
            }
        } catch {
            if Task.isCancelled { return }
            let missed = missedHeartbeats.withLock { f in f += 1; return f }
            if missed == 1 || missed % 50 == 0 {
                logger.warning("heartbeat not acknowledged", metadata: ["error": "\(error)", "missed": "\(missed)"])
            }
        }
    }

    /// Follows every EgressGateway's `status.nodeList` for this node. Each (re)connection starts
    /// with a fresh list, which also ends a fence's wait for a fresh placement.
    func placementLoop() async {
        while !Task.isCancelled {
            do {
                let started = clock.now
                let (items, revision) = try await client.list(.egressGateway, namespace: nil, fieldSelector: Self.mine(options.node))
                var gateways: [String: Resource] = Dictionary(uniqueKeysWithValues: items.map { ($0.name, $0) })
                publish(gateways, readStartedAt: started)
                for try await event in try await client.watch(.egressGateway, namespace: nil, resourceVersion: revision,
                                                              fieldSelector: Self.mine(options.node)) {
                    if event.type == "DELETED" { gateways[event.object.name] = nil } else { gateways[event.object.name] = event.object }
                    publish(gateways, readStartedAt: nil)
                }
            } catch {
                if Task.isCancelled { return }
                logger.debug("placement watch ended; re-listing", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// After a fence and a new acknowledgement: read the placement now rather than trust what
    /// the agent held before it was cut off.
    func freshRead() async {
        let started = clock.now
        guard let (items, _) = try? await client.list(.egressGateway, namespace: nil, fieldSelector: Self.mine(options.node)) else { return }
        publish(Dictionary(uniqueKeysWithValues: items.map { ($0.name, $0) }), readStartedAt: started)
    }

    /// Only the gateways whose nodeList names this node: an agent needs nothing else, and a
    /// change to another gateway then costs it nothing (the server filters; a gateway that stops
    /// naming the node arrives as DELETED).
    static func mine(_ node: String) -> String { "status.nodeList[*].name=\(node)" }

    func publish(_ gateways: [String: Resource], readStartedAt: BatonInstant?) {
        var eips: Set<String> = []
        for g in gateways.values {
            for entry in g.status?["nodeList"]?.arrayValue ?? [] where entry["name"]?.stringValue == options.node {
                for e in entry["eips"]?.arrayValue ?? [] {
                    if let v4 = e["ipv4"]?.stringValue, !v4.isEmpty { eips.insert(v4) }
                    if let v6 = e["ipv6"]?.stringValue, !v6.isEmpty { eips.insert(v6) }
                }
            }
        }
        let now = clock.now
        let (actions, deadline) = announcer.withLock { a in (a.placement(eips, readStartedAt: readStartedAt, now: now), a.nextDeadline) }
        order(actions, deadline: deadline, listed: readStartedAt != nil)
    }

    /// Sleeps until the fence deadline and withdraws if no acknowledgement moved it meanwhile.
    /// The deadline only moves later (it follows the last acknowledged send), so sleeping until
    /// the one in force is never late; while nothing is announced there is no deadline, and the
    /// loop waits for the first announcement to wake it.
    func fenceLoop() async {
        var wakes = fenceWake.makeAsyncIterator()
        while !Task.isCancelled {
            let now = clock.now
            let (actions, deadline) = announcer.withLock { a in (a.tick(now: now), a.nextDeadline) }
            order(actions, deadline: nil)
            if let deadline {
                try? await Task.sleep(for: max(.milliseconds(1), deadline - now))
            } else if await wakes.next() == nil {
                return
            }
        }
    }
}
