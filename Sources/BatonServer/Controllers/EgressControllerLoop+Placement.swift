import BatonAPI
import BatonCore
import BatonStore
import Logging
import Metrics

extension EgressControllerLoop {
    /// Builds `EgressPlacement`'s inputs from the cached store state, runs it, writes the statuses
    /// that changed (concurrently) and queues one event per move and per newly unassigned policy.
    /// `scope`: the gateways to decide (nil: all); the others' units count as base load.
    mutating func place(scope: Set<String>?) async {
        let started = ContinuousClock.now
        var specs: [String: EgressGatewaySpec] = [:]
        for (name, g) in gateways where scope?.contains(name) ?? true {
            if let s = g.spec { specs[name] = s }
        }
        var baseLoad: [String: Int] = [:]
        if let scope {
            for (g, load) in unitLoad where !scope.contains(g) {
                for (node, n) in load { baseLoad[node, default: 0] += n }
            }
        }

        var inputs: [EgressPlacementPolicy] = []
        var current: [EgressPolicyRef: EgressAssignment] = [:]
        var inScope: [EgressPolicyRef] = []
        inputs.reserveCapacity(scope == nil ? policies.count : 0)
        for (ref, p) in policies {
            let gateway = gateway(of: p)
            if let scope, !scope.contains(gateway) { continue }
            inScope.append(ref)
            inputs.append(p.placementPolicy(gateway: gateway))
            if let a = p.assignment(gateway: gateway) { current[ref] = a }
        }
        let egressNodes = nodes.values.map { n in
            EgressNode(name: n.resource.name, labels: n.resource.labels, status: n.status,
                       phase: tunnels[n.resource.name] != nil ? monitor.phase(of: n.resource.name) : nil)
        }
        let placement = EgressPlacement(gateways: specs, policies: inputs, nodes: egressNodes, current: current,
                                        baseLoad: baseLoad)
        if let scope {
            for g in scope { unitLoad[g] = placement.unitLoad[g] }
        } else {
            unitLoad = placement.unitLoad
        }

        // Status writes: only what differs from the store.
        let store = self.store, logger = self.logger
        var jobs: [@Sendable () async -> Resource?] = []
        for ref in inScope {
            let p = policies[ref]!
            var desired = placement.policyStatus(ref)
            desired.observedGeneration = p.resource.metadata.generation
            desiredPolicy[ref] = desired
            guard !Self.sameStatus(p.status, desired) else { continue }
            let start = p.resource, basedOn = p.status, want = desired
            jobs.append {
                await EgressStatusWriter.write(store: store, start: start, logger: logger) { latest in
                    let stored = latest.decodeStatus(EgressPolicyStatus.self)
                    if Self.sameStatus(stored, want) { return nil }
                    // Placement decided from `basedOn`. If another writer (`baton egw move`) changed the
                    // node or EIP since, writing would undo it: skip. Its watch event marks us dirty and
                    // the next placement starts from the new status.
                    guard Self.sameAssignment(stored, basedOn) else {
                        logger.debug("policy status changed by another writer; placing again", metadata: [
                            "policy": "\(ref)", "node": "\(stored?.node ?? "")"])
                        return nil
                    }
                    return EgressStatusWriter.withStatus(latest, want)
                }
            }
        }
        for (name, g) in gateways where g.spec != nil && scope?.contains(name) ?? true {
            guard var desired = placement.gatewayStatus(name) else { continue }
            desired.observedGeneration = g.resource.metadata.generation
            desiredGateway[name] = desired
            guard g.status != desired else { continue }
            let start = g.resource, want = desired
            jobs.append {
                await EgressStatusWriter.write(store: store, start: start, logger: logger) { latest in
                    latest.decodeStatus(EgressGatewayStatus.self) == want ? nil : EgressStatusWriter.withStatus(latest, want)
                }
            }
        }
        let writes = jobs.count
        let decided = ContinuousClock.now
        for r in await EgressStatusWriter.concurrently(jobs, limit: controller.writeConcurrency) {
            guard let r else { continue }
            absorb(r)
        }
        let written = ContinuousClock.now

        // Moves and unassigned policies: a log line and an event each.
        var moved = 0
        for move in placement.moves {
            guard let to = move.to else { continue }
            let eip = [move.ipv4, move.ipv6].compactMap { $0?.description }.joined(separator: ",")
            let what = eip.isEmpty ? "node IP of \(move.policies.map(\.description).joined(separator: ","))" : "EIP \(eip)"
            if let from = move.from {
                moved += 1
                let message = "\(what) moved from \(from) to \(to): \(move.reason)"
                logger.info("EIP moved", metadata: ["gateway": "\(move.gateway)", "eip": "\(eip)", "from": "\(from)",
                                                    "to": "\(to)", "reason": "\(move.reason)"])
                if let g = gateways[move.gateway] {
                    pendingEvents.append(PendingEvent(object: g.resource, reason: "EIPMoved", message: message, type: "Normal"))
                }
            } else {
                logger.debug("EIP assigned", metadata: ["gateway": "\(move.gateway)", "eip": "\(eip)", "to": "\(to)",
                                                        "reason": "\(move.reason)"])
            }
        }
        for ref in inScope where placement.unassigned[ref] == nil { unassignedReported[ref] = nil }
        for (ref, why) in placement.unassigned.sorted(by: { $0.key < $1.key }) where unassignedReported[ref] != why {
            unassignedReported[ref] = why
            logger.warning("policy has no egress node", metadata: ["policy": "\(ref)", "reason": "\(why)"])
            if let p = policies[ref] {
                pendingEvents.append(PendingEvent(object: p.resource, reason: Self.eventReason(why), message: why.description,
                                                  type: "Warning"))
            }
        }
        if moved > 0 {
            // The latest re-placement that moved EIPs (a failover), for `baton bench egress` and dashboards.
            Gauge(label: "baton_egress_last_failover_moves").record(moved)
            Gauge(label: "baton_egress_last_failover_decision_seconds").record((decided - started).seconds)
            Gauge(label: "baton_egress_last_failover_write_seconds").record((written - decided).seconds)
        }
        if moved > 0 || writes > 0 {
            logger.notice("placed egress IPs", metadata: [
                "moved": "\(moved)", "statusWrites": "\(writes)", "unassigned": "\(placement.unassigned.count)",
                "decideMs": "\(Self.ms(decided - started))", "writeMs": "\(Self.ms(written - decided))",
            ])
        }
        controller.placementObserver?(EgressController.PlacementReport(
            policies: policies.count, moves: moved, statusWrites: writes, unassigned: placement.unassigned.count,
            decision: decided - started, writes: written - decided))
    }

    /// Takes a status write's result into the cache (unless a newer copy is already there).
    mutating func absorb(_ r: Resource) {
        switch r.kind {
        case "EgressGateway":
            if let c = gateways[r.name], Self.revision(c.resource) > Self.revision(r) { return }
            gateways[r.name] = Self.gatewayEntry(r)
        case "EgressPolicy", "EgressClusterPolicy":
            let ref = Self.ref(r)
            if let c = policies[ref], Self.revision(c.resource) > Self.revision(r) { return }
            policies[ref] = PolicyEntry(r)
        default:
            break
        }
    }

    mutating func recordEvents() async {
        let events = pendingEvents
        pendingEvents = []
        let recorder = controller.events
        let jobs: [@Sendable () async -> Resource?] = events.map { e in
            { await recorder.record(e.object, reason: e.reason, message: e.message, type: e.type) }
        }
        _ = await EgressStatusWriter.concurrently(jobs, limit: controller.writeConcurrency)
    }

    static func eventReason(_ why: EgressUnassignedReason) -> String {
        switch why {
        case .noReadyCandidate: "NoReadyCandidate"
        case .gatewayNotFound: "GatewayNotFound"
        case .eipNotInPool: "EIPNotInPool"
        case .noPool: "NoPool"
        }
    }

    static func ms(_ d: Duration) -> String {
        let (s, atto) = d.components
        return String(format: "%.1f", Double(s) * 1000 + Double(atto) / 1e15)
    }
}

/// Status writes with the store's optimistic concurrency: write on the latest stored object,
/// re-read and retry on 409, give up quietly when the object is gone.
enum EgressStatusWriter {
    static func write(store: any ResourceStore, start: Resource, logger: Logger,
                      mutate: @Sendable (Resource) -> Resource?) async -> Resource? {
        var latest = start
        for _ in 0..<10 {
            guard let next = mutate(latest) else { return latest }
            do {
                return try await store.updateStatus(next)
            } catch let e as APIError where e.code == 409 {
                do {
                    latest = try await store.get(kind: start.kind, namespace: start.namespace, name: start.name)
                } catch {
                    return nil  // deleted meanwhile: its watch event follows
                }
            } catch let e as APIError where e.code == 404 {
                return nil
            } catch {
                logger.warning("cannot write status", metadata: ["kind": "\(start.kind)", "name": "\(start.qualifiedName)",
                                                                "error": "\(error)"])
                return nil
            }
        }
        logger.warning("cannot write status: it keeps changing", metadata: ["kind": "\(start.kind)", "name": "\(start.qualifiedName)"])
        return nil
    }

    /// `r` with `status` replaced by `value`.
    static func withStatus(_ r: Resource, _ value: some Encodable) -> Resource? {
        guard let json = try? JSONValue(encoding: value) else { return nil }
        var out = r
        out.status = json
        return out
    }

    /// `r` with the controller's tunnel fields set (phase, displayed heartbeat time, mark, tunnel
    /// mac/ipv4/ipv6); the agent's `tunnel.parent` and anything else are kept. nil: nothing to change.
    static func tunnelStatus(_ r: Resource, phase: EgressTunnelStatus.Phase?, heartbeatTime: String? = nil,
                             allocation: EgressTunnelAllocator.Allocation?) -> Resource? {
        var status = r.status?.objectValue ?? [:]
        var changed = false
        if let heartbeatTime, status["lastHeartbeatTime"]?.stringValue != heartbeatTime {
            status["lastHeartbeatTime"] = .string(heartbeatTime)
            changed = true
        }
        if let phase, status["phase"]?.stringValue != phase.rawValue {
            status["phase"] = .string(phase.rawValue)
            changed = true
        }
        if let a = allocation {
            if status["mark"]?.stringValue != a.mark {
                status["mark"] = .string(a.mark)
                changed = true
            }
            var tunnel = status["tunnel"]?.objectValue ?? [:]
            for (key, value) in [("mac", a.mac), ("ipv4", a.ipv4), ("ipv6", a.ipv6)] {
                if let value, tunnel[key]?.stringValue != value {
                    tunnel[key] = .string(value)
                    changed = true
                }
            }
            status["tunnel"] = .object(tunnel)
        }
        guard changed else { return nil }
        var out = r
        out.status = .object(status)
        return out
    }

    /// Runs `jobs` with at most `limit` at a time; results in no particular order.
    static func concurrently<T: Sendable>(_ jobs: [@Sendable () async -> T], limit: Int) async -> [T] {
        guard !jobs.isEmpty else { return [] }
        return await withTaskGroup(of: T.self) { group in
            var results: [T] = []
            results.reserveCapacity(jobs.count)
            var next = 0
            while next < min(limit, jobs.count) {
                let job = jobs[next]
                group.addTask { await job() }
                next += 1
            }
            while let r = await group.next() {
                results.append(r)
                if next < jobs.count {
                    let job = jobs[next]
                    group.addTask { await job() }
                    next += 1
                }
            }
            return results
        }
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
