import BatonAPI
import BatonClient
import BatonCore
import BatonDataplane
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The agent's StaticRoutes: every StaticRoute whose node selector matches this node gets its
/// routes installed here, through the gateway(s) this node's own probes find healthy
/// (`GatewayHealth`, `GatewaySelection`), with conflicts between StaticRoutes settled by
/// `StaticRouteConflicts`. A gateway one node cannot reach may still serve another.
///
/// Probe verdicts are decided and carried out on the prober's thread, under one lock: a
/// failover costs a route replace over rtnetlink, not a trip through the control plane. Status
/// (`status.nodes.NODE`) and events (`GatewaySwitched`) are written afterwards, asynchronously.
/// Nothing is installed or removed before the Node and the StaticRoutes were listed once, so a
/// restarted agent keeps its predecessor's routes (it adopts them) and drops no packet.
public final class StaticRouteAgent: Service, Sendable {
    public struct Options: Sendable {
        public var node: String
        /// On a graceful exit, remove every route and rule Baton added (`--cleanup`).
        public var cleanup = false
        /// Priority of the rules that carry default routes (see `LinuxStaticRoutes`).
        public var rulePriority = 150
        /// Addresses and networks that must keep their path when a default route is installed
        /// (the server, the cluster's networks).
        public var pinned: [IPPrefix] = []
        public init(node: String) { self.node = node }
    }

    struct Running {
        var uid: String?
        var generation: Int64?
        var created: String
        var spec: StaticRouteSpec
        var check: StaticRouteSpec.HealthCheck.Resolved
        var selection: GatewaySelection
        var health: [IPAddress: GatewayHealth]
        var probers: [GatewayProber]
        var lastSwitch: String?
        var entry: StaticRouteStatus.NodeRoute?
    }

    struct State {
        var labels: [String: String]?
        var nodeListed = false
        var objects: [String: Resource]?
        var running: [String: Running] = [:]
        var installed = StaticRouteTable()
        var adopted: StaticRouteTable?
        var stopped = false
    }

    let client: BatonClient
    /// Closes `client`'s own connection pool.
    let closeClient: @Sendable () async -> Void
    let options: Options
    let clock: any BatonClock
    let logger: Logger
    let routes: any StaticRouteDataplane
    let reporter: StaticRouteStatusReporter
    private let state = Mutex(State())
    private let timerWake: AsyncStream<Void>
    private let timerWakeIn: AsyncStream<Void>.Continuation

    /// `client`'s server and token are used over a connection pool of the agent's own: its two
    /// watches must not take connections from the heartbeats.
    /// `dataplane` nil: the kernel's routes (`LinuxStaticRoutes` with `options`' rule priority and pins).
    public init(client: BatonClient, options: Options, dataplane: (any StaticRouteDataplane)? = nil,
                clock: any BatonClock = MonotonicClock(), logger: Logger) {
        let (own, close) = client.withOwnConnections()
        self.client = own
        self.closeClient = close
        let client = own
        self.options = options
        self.clock = clock
        self.logger = logger
        self.routes = dataplane ?? LinuxStaticRoutes(rulePriority: options.rulePriority, pinned: options.pinned)
        self.reporter = StaticRouteStatusReporter(client: client, node: options.node, logger: logger)
        (timerWake, timerWakeIn) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    var node: String { options.node }

    public func run() async throws {
        do {
            let found = try routes.installed()
            state.withLock { $0.adopted = found; $0.installed = found }
            if !found.routes.isEmpty {
                logger.notice("found static routes a previous agent installed; keeping them until the StaticRoutes are listed",
                              metadata: ["routes": "\(found.routes.count)"])
            }
        } catch {
            logger.error("cannot read the routing table; static routes are off on this node", metadata: ["error": "\(error)"])
            await closeClient()
            return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.reporter.run() }
            await withTaskGroup(of: Void.self) { inputs in
                inputs.addTask { await self.followNode() }
                inputs.addTask { await self.followStaticRoutes() }
                inputs.addTask { await self.timerLoop() }
                try? await gracefulShutdown()
                inputs.cancelAll()
            }
            timerWakeIn.finish()
            let names = state.withLock { s -> [String] in
                s.stopped = true
                for r in s.running.values { r.probers.forEach { $0.stop() } }
                return Array(s.running.keys)
            }
            if options.cleanup {
                do {
                    try routes.cleanup()
                    logger.notice("removed every static route and rule this agent added")
                } catch { logger.error("static route cleanup failed", metadata: ["error": "\(error)"]) }
                for n in names { reporter.set(n, nil) }
            }
            reporter.finish()
            await group.waitForAll()
        }
        await closeClient()
    }

    // MARK: Inputs

    func followNode() async {
        let selector = "metadata.name=\(node)"
        while !Task.isCancelled {
            do {
                let (items, revision) = try await client.list(.node, namespace: nil, fieldSelector: selector)
                state.withLock { $0.labels = items.first?.labels ?? [:]; $0.nodeListed = true }
                update()
                for try await event in try await client.watch(.node, namespace: nil, resourceVersion: revision, fieldSelector: selector) {
                    state.withLock { $0.labels = event.type == "DELETED" ? [:] : event.object.labels }
                    update()
                }
            } catch {
                if Task.isCancelled { return }
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    func followStaticRoutes() async {
        while !Task.isCancelled {
            do {
                let (items, revision) = try await client.list(.staticRoute, namespace: nil)
                state.withLock { $0.objects = Dictionary(items.map { ($0.name, $0) }, uniquingKeysWith: { _, b in b }) }
                update()
                for try await event in try await client.watch(.staticRoute, namespace: nil, resourceVersion: revision) {
                    state.withLock { $0.objects?[event.object.name] = event.type == "DELETED" ? nil : event.object }
                    update()
                }
            } catch {
                if Task.isCancelled { return }
                logger.debug("StaticRoute watch ended; listing again", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    /// Runs `update` at the next hold-down's end (looking again at least every second).
    func timerLoop() async {
        var wakes = timerWake.makeAsyncIterator()
        while !Task.isCancelled {
            let now = clock.now
            let deadline = state.withLock { s in s.running.values.compactMap { $0.selection.nextDeadline(health: $0.health, now: now) }.min() }
            if let deadline {
                // Once the hold-down has ended it is no deadline any more: decide now.
                if deadline > now { try? await Task.sleep(for: min(deadline - now, .seconds(1))) }
                if clock.now >= deadline { update() }
            } else if await wakes.next() == nil {
                return
            }
        }
    }

    // MARK: Deciding

    /// One probe's verdict, on the prober's thread.
    func verdict(route: String, uid: String?, gateway: IPAddress, answered: Bool) {
        let now = clock.now
        let changed = state.withLock { s -> Bool in
            guard !s.stopped, var r = s.running[route], r.uid == uid, var h = r.health[gateway] else { return false }
            let moved = h.record(answered: answered, now: now)
            r.health[gateway] = h
            s.running[route] = r
            if let moved {
                logger.info("gateway health changed", metadata: ["staticroute": "\(route)", "gateway": "\(gateway)", "state": "\(moved.rawValue)"])
            }
            return moved != nil
        }
        if changed { update() }
    }

    /// Brings the running StaticRoutes, the kernel's routes and the status in line with what
    /// is known now. Cheap when nothing changed (no netlink request, no write).
    func update() {
        let now = clock.now
        let wall = Timestamp.format(Date())
        state.withLock { s in
            guard !s.stopped, s.nodeListed, let objects = s.objects, let labels = s.labels else { return }
            // Which StaticRoutes run here, each with its current spec.
            var wanted: [String: Resource] = [:]
            for (name, o) in objects {
                guard let spec = try? o.decodeSpec(StaticRouteSpec.self) else { continue }
                if spec.nodeSelector?.matches(labels) ?? true { wanted[name] = o }
            }
            var previous: [String: (gateways: [IPAddress], lastSwitch: String?)] = [:]
            for (name, r) in s.running {
                let o = wanted[name]
                if o == nil || o!.metadata.uid != r.uid || o!.metadata.generation != r.generation {
                    r.probers.forEach { $0.stop() }
                    s.running[name] = nil
                    if o?.metadata.uid == r.uid { previous[name] = (r.selection.current, r.lastSwitch) }
                    if o == nil {
                        logger.notice("StaticRoute no longer applies to this node", metadata: ["staticroute": "\(name)"])
                        if objects[name] == nil { reporter.forget(name) } else { reporter.set(name, nil) }
                    }
                }
            }
            for (name, o) in wanted where s.running[name] == nil {
                guard let spec = try? o.decodeSpec(StaticRouteSpec.self), let check = spec.resolvedHealthCheck else { continue }
                s.running[name] = start(name, o, spec: spec, check: check, adopted: s.adopted ?? s.installed, now: now)
            }
            s.adopted = nil

            // Gateways per StaticRoute, then who owns each destination.
            var switches: [(String, GatewaySelection.Switch)] = []
            for name in s.running.keys.sorted() {
                if let p = previous[name] { s.running[name]!.lastSwitch = p.lastSwitch }
                if var sw = s.running[name]!.selection.select(health: s.running[name]!.health, now: now) {
                    // An edited spec (spec.gateway changed in place): the switch is the edit's.
                    if sw.from.isEmpty, let p = previous[name], !p.gateways.isEmpty, p.gateways != sw.to {
                        sw = .init(from: p.gateways, to: sw.to, reason: "the StaticRoute's gateways changed (generation \(s.running[name]!.generation ?? 0))")
                    }
                    switches.append((name, sw))
                    if !sw.from.isEmpty { s.running[name]!.lastSwitch = wall }
                }
            }
            let claims = s.running.map { name, r in
                StaticRouteConflicts.Claim(name: name, priority: r.spec.priority, created: r.created,
                                           destinations: r.spec.destinations.compactMap(IPSyntax.destination))
            }
            let outcomes = StaticRouteConflicts.resolve(claims)
            var table = StaticRouteTable()
            for (name, r) in s.running {
                for d in outcomes[name]?.owned ?? [] where !r.selection.current.isEmpty { table.routes[d] = r.selection.current }
            }
            var failed: [IPPrefix: String] = [:]
            if table != s.installed {
                do {
                    failed = try routes.apply(from: s.installed, to: table)
                    s.installed = try routes.installed()
                } catch {
                    logger.error("cannot change the routing table", metadata: ["error": "\(error)"])
                    if let now = try? routes.installed() { s.installed = now }
                    for d in table.routes.keys where s.installed.routes[d] != table.routes[d] { failed[d] = "\(error)" }
                }
            }
            for (name, sw) in switches where !sw.from.isEmpty {
                let r = s.running[name]!
                let message = "node \(node): gateway \(Self.list(sw.from)) -> \(Self.list(sw.to)): \(sw.reason)"
                logger.notice("gateway switched", metadata: ["staticroute": "\(name)", "from": "\(Self.list(sw.from))",
                                                             "to": "\(Self.list(sw.to))", "reason": "\(sw.reason)"])
                reporter.event(.init(name: name, uid: r.uid, reason: "GatewaySwitched", message: message, type: "Normal"))
            }
            for name in s.running.keys {
                let entry = entry(s.running[name]!, outcome: outcomes[name] ?? .init(), failed: failed, installed: s.installed, wall: wall)
                if entry.withoutTimes != s.running[name]!.entry?.withoutTimes {
                    var e = entry
                    if e.phase == s.running[name]!.entry?.phase { e.lastTransitionTime = s.running[name]!.entry?.lastTransitionTime ?? wall }
                    s.running[name]!.entry = e
                    reporter.set(name, e)
                }
            }
        }
        timerWakeIn.yield()
    }

    func start(_ name: String, _ o: Resource, spec: StaticRouteSpec, check: StaticRouteSpec.HealthCheck.Resolved,
               adopted: StaticRouteTable, now: BatonInstant) -> Running {
        var selection = GatewaySelection(spec: spec)
        if let first = spec.destinations.compactMap(IPSyntax.destination).first, let there = adopted.routes[first] {
            selection.adopt(there)
        }
        var health: [IPAddress: GatewayHealth] = [:]
        var probers: [GatewayProber] = []
        let uid = o.metadata.uid
        for c in selection.candidates {
            health[c.address] = GatewayHealth(check, now: now)
            let method: GatewayProber.Method
            guard routes.probes else { continue }
            switch check.kind {
            case .none: continue
            case .icmp: method = .icmp
            case .tcp(let port): method = .tcp(port: port)
            }
            let gateway = c.address
            let p = GatewayProber(target: gateway, method: method, interval: .nanoseconds(check.interval), timeout: .nanoseconds(check.timeout)) {
                [weak self] answered in self?.verdict(route: name, uid: uid, gateway: gateway, answered: answered)
            }
            probers.append(p)
        }
        probers.forEach { $0.start() }
        logger.notice("StaticRoute applies to this node", metadata: [
            "staticroute": "\(name)", "destinations": "\(spec.destinations)", "gateways": "\(spec.gatewaysByPriority)",
            "healthCheck": "\(check)"])
        return Running(uid: uid, generation: o.metadata.generation, created: o.metadata.creationTimestamp ?? "",
                       spec: spec, check: check, selection: selection, health: health, probers: probers)
    }

    /// This node's status entry for one StaticRoute.
    func entry(_ r: Running, outcome: StaticRouteConflicts.Outcome, failed: [IPPrefix: String], installed: StaticRouteTable,
               wall: String) -> StaticRouteStatus.NodeRoute {
        let inUse = r.selection.current
        let clock = self.clock.now
        let health = r.selection.candidates.map { c -> StaticRouteStatus.GatewayHealth in
            let h = r.health[c.address]
            let since = h.map { Timestamp.format(Date().addingTimeInterval(-Self.seconds(clock - $0.since))) }
            let probed = r.check.kind != .none && routes.probes
            return .init(address: c.address.description, state: probed ? (h?.state.rawValue ?? "Unknown") : "Unknown", since: since)
        }
        let mine = outcome.owned
        let errors = mine.compactMap { failed[$0] }
        let lost = outcome.conflicts.filter { !$0.winner }
        var phase = "Ready"
        var message: String?
        if !errors.isEmpty {
            phase = "Failed"
            message = errors.joined(separator: "; ")
        } else if mine.isEmpty {
            phase = "NotReady"
            message = "every destination is routed on this node by another StaticRoute with a lower priority value (or older): "
                + lost.map { "\($0.destination) by \($0.staticRoute)" }.joined(separator: ", ")
        } else if !inUse.isEmpty, inUse.allSatisfy({ r.health[$0]?.state == .unhealthy }) {
            phase = "NotReady"
            message = "no gateway answers; the routes stay through \(Self.list(inUse))"
        } else if !lost.isEmpty {
            message = "routed by another StaticRoute on this node: " + lost.map { "\($0.destination) by \($0.staticRoute)" }.joined(separator: ", ")
        } else if mine.contains(where: { installed.routes[$0] == nil }) {
            phase = "NotReady"
            message = "routes not installed yet"
        }
        return .init(gateway: mine.isEmpty ? nil : inUse.first?.description, gateways: mine.isEmpty ? nil : inUse.map(\.description),
                     phase: phase, message: message, observedGeneration: r.generation, health: health,
                     lastSwitchTime: r.lastSwitch, lastTransitionTime: wall,
                     conflicts: outcome.conflicts.isEmpty ? nil : outcome.conflicts)
    }

    static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
    static func list(_ a: [IPAddress]) -> String { a.isEmpty ? "none" : a.map(\.description).joined(separator: ",") }
}

extension StaticRouteStatus.NodeRoute {
    /// The entry without its timestamps: what decides whether it is worth a write.
    var withoutTimes: StaticRouteStatus.NodeRoute {
        var e = self
        e.lastTransitionTime = nil
        e.health = health?.map { .init(address: $0.address, state: $0.state) }
        return e
    }
}
