import BatonAPI

/// The controller's eviction decisions: which EgressTunnels go to `HeartbeatTimeout` and which
/// come back to `Ready`.
///
/// Freshness is judged only on the **server's receive time** of each heartbeat, read from the
/// controller's own monotonic clock (the caller owns it and passes `now` and receive instants
/// from it). `lastHeartbeatTime`, which the agent writes from its own clock, is never read here,
/// so clock skew between machines cannot cause or prevent an eviction.
///
/// A tunnel is evicted when `now - lastReceive > eipEvictionTimeout`, never earlier; that is the
/// bound `FencingDeadline` relies on. Each transition is reported exactly once. Call `evaluate`
/// every `tunnelMonitorPeriod` (or at `nextDeadline`); it is cheap and idempotent between
/// transitions. Moving EIPs is not this type's job: feed the phases to `EgressPlacement`.
public struct HeartbeatMonitor: Sendable {
    public enum Decision: Sendable, Hashable {
        /// Write phase `HeartbeatTimeout`, log "update tunnel status to HeartbeatTimeout" and an event.
        /// `silentFor` is how long the server had heard nothing at `now`.
        case markHeartbeatTimeout(node: String, silentFor: Duration)
        /// Write phase `Ready`: a (new or returning) tunnel heartbeats again. Its EIPs do not come back.
        case markReady(node: String)
    }

    private struct Tunnel: Sendable {
        /// Server receive time of the newest heartbeat, or the instant the monitor started
        /// watching the tunnel (a grace period, for a controller that has just become leader).
        var lastReceive: BatonInstant
        /// True once a heartbeat has been received by this monitor.
        var heard: Bool
        /// The phase this monitor last decided (nil: nothing decided yet).
        var phase: EgressTunnelStatus.Phase?
    }

    public let eipEvictionTimeout: Duration
    public let tunnelMonitorPeriod: Duration
    private var tunnels: [String: Tunnel] = [:]

    public init(eipEvictionTimeout: Duration, tunnelMonitorPeriod: Duration) {
        self.eipEvictionTimeout = eipEvictionTimeout
        self.tunnelMonitorPeriod = tunnelMonitorPeriod
    }

    public init(settings: EgressFailoverSettings) {
        self.init(eipEvictionTimeout: settings.eipEvictionTimeout, tunnelMonitorPeriod: settings.tunnelMonitorPeriod)
    }

    /// Starts watching a tunnel the store already holds, in the phase the store shows, with a full
    /// `eipEvictionTimeout` of grace from `now`. A controller that has just become leader calls this
    /// for every tunnel: receive times recorded by another server's clock mean nothing here.
    public mutating func track(_ node: String, phase: EgressTunnelStatus.Phase?, now: BatonInstant) {
        guard tunnels[node] == nil else { return }
        tunnels[node] = Tunnel(lastReceive: now, heard: false, phase: phase)
    }

    /// Records a heartbeat from `node`, received at `receivedAt` on the controller's clock.
    /// An older receive time than one already recorded is ignored.
    public mutating func heartbeatReceived(_ node: String, at receivedAt: BatonInstant) {
        if var t = tunnels[node] {
            t.lastReceive = max(t.lastReceive, receivedAt)
            t.heard = true
            tunnels[node] = t
        } else {
            tunnels[node] = Tunnel(lastReceive: receivedAt, heard: true, phase: nil)
        }
    }

    /// Gives every tunnel not timed out a full `eipEvictionTimeout` from `now`, as `track` gives a
    /// controller that has just become leader: for when the heartbeat log could not be read for
    /// a while, so that silence says nothing about the nodes (their heartbeats could not be
    /// recorded either). It only ever delays an eviction, which the fencing argument allows.
    public mutating func grantGrace(now: BatonInstant) {
        for (node, var t) in tunnels where t.phase != .heartbeatTimeout {
            t.lastReceive = max(t.lastReceive, now)
            tunnels[node] = t
        }
    }

    /// Stops watching a tunnel whose object was deleted (its EIPs leave through placement).
    public mutating func forget(_ node: String) { tunnels[node] = nil }

    /// The phase decided for `node`, if any.
    public func phase(of node: String) -> EgressTunnelStatus.Phase? { tunnels[node]?.phase }

    /// Every watched tunnel and its decided phase, for placement.
    public var phases: [String: EgressTunnelStatus.Phase?] { tunnels.mapValues(\.phase) }

    /// The earliest instant at which a tunnel not yet timed out would be evicted, if any.
    public var nextDeadline: BatonInstant? {
        tunnels.values.filter { $0.phase != .heartbeatTimeout }.map { $0.lastReceive + eipEvictionTimeout }.min()
    }

    /// The transitions due at `now`, sorted by node name. A tunnel is reported once per
    /// transition: repeated calls with no new heartbeat report nothing.
    public mutating func evaluate(now: BatonInstant) -> [Decision] {
        var out: [Decision] = []
        for node in tunnels.keys.sorted() {
            var t = tunnels[node]!
            let silence = now - t.lastReceive
            if silence > eipEvictionTimeout {
                if t.phase != .heartbeatTimeout {
                    t.phase = .heartbeatTimeout
                    out.append(.markHeartbeatTimeout(node: node, silentFor: silence))
                }
            } else if t.heard, t.phase != .ready {
                t.phase = .ready
                out.append(.markReady(node: node))
            }
            tunnels[node] = t
        }
        return out
    }
}
