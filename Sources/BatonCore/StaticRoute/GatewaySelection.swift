import BatonAPI

/// Which gateways one StaticRoute uses on one node, decided from each gateway's health: the
/// lowest priority value among the gateways that may carry traffic, every one of them at that
/// value (ECMP). Pure and deterministic; the agent calls `select` after every probe verdict and
/// at `nextDeadline` (a hold-down ending).
public struct GatewaySelection: Sendable, Hashable {
    public struct Candidate: Sendable, Hashable {
        public var address: IPAddress
        public var priority: Int64
        public init(address: IPAddress, priority: Int64) { self.address = address; self.priority = priority }
    }

    /// A change of the gateways in use, with the reason an operator reads in the event.
    public struct Switch: Sendable, Hashable {
        public var from: [IPAddress]
        public var to: [IPAddress]
        public var reason: String
        public init(from: [IPAddress], to: [IPAddress], reason: String) { self.from = from; self.to = to; self.reason = reason }
    }

    /// Candidates by priority, then list order.
    public let candidates: [Candidate]
    public let failback: Bool
    /// The gateways in use now, in candidate order (empty before the first `select`).
    public private(set) var current: [IPAddress] = []

    public init(candidates: [Candidate], failback: Bool) {
        self.candidates = candidates.enumerated().sorted { ($0.element.priority, $0.offset) < ($1.element.priority, $1.offset) }.map(\.element)
        self.failback = failback
    }

    public init(spec: StaticRouteSpec, failback: Bool? = nil) {
        self.init(candidates: spec.candidates.compactMap { g in IPAddress(g.address).map { Candidate(address: $0, priority: g.priority ?? 0) } },
                  failback: failback ?? spec.resolvedHealthCheck?.failback ?? true)
    }

    /// Starts from gateways a previous agent installed (a restart keeps them until health says otherwise).
    public mutating func adopt(_ gateways: [IPAddress]) {
        current = candidates.map(\.address).filter(gateways.contains)
    }

    /// Decides the gateways in use at `now`; returns the switch when they changed.
    ///
    /// - Healthy gateways past their hold-down are eligible (before the first choice, gateways
    ///   not probed yet are too, so the original API installs at once); the lowest priority
    ///   value among them wins, with every eligible gateway at that value.
    /// - With `failback` false, the gateways in use stay while any of them is usable (an
    ///   unhealthy one leaves; a peer at the same priority may join): a recovered better
    ///   gateway does not take traffic back.
    /// - Otherwise the gateways in use stay while usable (a restarted agent keeps what it found
    ///   until the others are probed); then a gateway in its hold-down or not probed yet serves
    ///   rather than nothing.
    /// - When every gateway is unhealthy the routes stay where they are: a route through a dead
    ///   gateway drops traffic, no route would send it out of the default path instead.
    @discardableResult
    public mutating func select(health: [IPAddress: GatewayHealth], now: BatonInstant) -> Switch? {
        func usable(_ a: IPAddress) -> Bool { health[a]?.usable ?? true }
        func settled(_ a: IPAddress) -> Bool {
            guard let h = health[a] else { return current.isEmpty }
            switch h.state {
            case .healthy: return !h.inHoldDown(now: now)
            case .unknown: return current.isEmpty
            case .unhealthy: return false
            }
        }

        var chosen: [IPAddress]
        var reason = ""
        let kept = current.filter(usable)
        if !failback, !kept.isEmpty {
            let p = candidates.first { $0.address == kept[0] }?.priority ?? 0
            chosen = candidates.filter { $0.priority == p && (kept.contains($0.address) || settled($0.address)) }.map(\.address)
        } else if let best = lowest(candidates.filter { settled($0.address) }) {
            chosen = best
        } else if !kept.isEmpty {
            chosen = kept
        } else if let best = lowest(candidates.filter { usable($0.address) }) {
            chosen = best
            reason = "no gateway is healthy and past its hold-down; using one that is not known to be down"
        } else {
            chosen = current.isEmpty ? lowest(candidates) ?? [] : current
            reason = "every gateway is unhealthy; keeping the routes where they are"
        }
        guard chosen != current else { return nil }
        let old = current
        current = chosen
        if reason.isEmpty { reason = Self.explain(from: old, to: chosen, health: health, now: now) }
        return Switch(from: old, to: chosen, reason: reason)
    }

    func lowest(_ list: [Candidate]) -> [IPAddress]? {
        guard let p = list.map(\.priority).min() else { return nil }
        return list.filter { $0.priority == p }.map(\.address)
    }

    /// Why the gateways in use changed: the first gateway that left and its health, or the
    /// first that joined.
    static func explain(from old: [IPAddress], to new: [IPAddress], health: [IPAddress: GatewayHealth], now: BatonInstant) -> String {
        if old.isEmpty { return "first selection" }
        if let gone = old.first(where: { !new.contains($0) }) {
            if let h = health[gone], h.state == .unhealthy {
                return "gateway \(gone) is unhealthy (\(h.failureThreshold) probes failed in a row)"
            }
            if let came = new.first(where: { !old.contains($0) }) {
                return "gateway \(came) is healthy again and past its hold-down: failing back from \(gone)"
            }
            return "gateway \(gone) is no longer selected"
        }
        if let came = new.first(where: { !old.contains($0) }) {
            return "gateway \(came) is healthy: joining the gateways in use (ECMP)"
        }
        return "the order of preference changed"
    }

    /// When `select` must run again although no probe changed anything: the end of the first
    /// hold-down that could change the choice.
    public func nextDeadline(health: [IPAddress: GatewayHealth], now: BatonInstant) -> BatonInstant? {
        guard failback else { return nil }
        return candidates.compactMap { health[$0.address]?.holdDownEnds(now: now) }.min()
    }
}
