import BatonAPI

/// The controller's eviction decisions: which EgressTunnels go to `HeartbeatTimeout` and which
/// come back to `Ready`.
///
/// Freshness is judged only on the **server's receive time** of each heartbeat, read from the
/// controller's own monotonic clock (the caller owns it and passes `now` and receive instants
/// from it). `lastHeartbeatTime`, which the agent writes from its own clock, is never read here,
/// so clock skew between machines cannot cause or prevent an eviction.
///
/// A tunnel is evicted when `now - lastReceive > eipEvictionTimeout`; that is the bound
/// `FencingDeadline` relies on. With `suspectAfter` set, a tunnel silent for longer than that is
/// evicted earlier if, and only if, a probe of its node's own address started after its last
/// heartbeat finds the node unreachable (`probe`, then `probeFinished`): a node whose kernel still
/// answers (its agent killed, stopped or slow) waits for the full timeout, its own fence having
/// withdrawn its EIPs by then. The successor's address-conflict probe (`ARPProbe`) keeps the
/// early path from ever putting two nodes on the EIP (docs/egress-failover.md). Each transition is reported exactly once. Call `evaluate`
/// every `tunnelMonitorPeriod` (or at `nextDeadline`); it is cheap and idempotent between
/// transitions. Moving EIPs is not this type's job: feed the phases to `EgressPlacement`.
public struct HeartbeatMonitor: Sendable {
    public enum Decision: Sendable, Hashable {
        /// Write phase `HeartbeatTimeout`, log "update tunnel status to HeartbeatTimeout" and an event.
        /// `silentFor` is how long the server had heard nothing at `now`.
        case markHeartbeatTimeout(node: String, silentFor: Duration)
        /// Write phase `Ready`: a (new or returning) tunnel heartbeats again. Its EIPs do not come back.
        case markReady(node: String)
        /// Probe the node's own address, then report with `probeFinished`: it has been silent for
        /// longer than `suspectAfter`.
        case probe(node: String)
        /// Write phase `HeartbeatTimeout` before the timeout: silent for `silentFor` and not
        /// answering a probe started after its last heartbeat.
        case markUnreachable(node: String, silentFor: Duration)
    }

    private struct Tunnel: Sendable {
        /// Server receive time of the newest heartbeat, or the instant the monitor started
        /// watching the tunnel (a grace period, for a controller that has just become leader).
        var lastReceive: BatonInstant
        /// True once a heartbeat has been received by this monitor.
        var heard: Bool
        /// The phase this monitor last decided (nil: nothing decided yet).
        var phase: EgressTunnelStatus.Phase?
        /// When the probe of the current silence started (nil: none yet since the last heartbeat).
        var probeStarted: BatonInstant?
        /// A probe of the current silence found the node unreachable.
        var unreachable = false
    }

    public let eipEvictionTimeout: Duration
    public let tunnelMonitorPeriod: Duration
    /// Silence after which a node is probed (nil: never; eviction waits for the timeout).
    public let suspectAfter: Duration?
    private var tunnels: [String: Tunnel] = [:]

    public init(eipEvictionTimeout: Duration, tunnelMonitorPeriod: Duration, suspectAfter: Duration? = nil) {
        self.eipEvictionTimeout = eipEvictionTimeout
        self.tunnelMonitorPeriod = tunnelMonitorPeriod
        self.suspectAfter = suspectAfter.flatMap { $0 < eipEvictionTimeout ? $0 : nil }
    }

    public init(settings: EgressFailoverSettings) {
        self.init(eipEvictionTimeout: settings.eipEvictionTimeout, tunnelMonitorPeriod: settings.tunnelMonitorPeriod,
                  suspectAfter: settings.probeSuspectAfter)
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
            if receivedAt > t.lastReceive {
                t.lastReceive = receivedAt
                t.probeStarted = nil
                t.unreachable = false
            }
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
        var next: BatonInstant?
        for t in tunnels.values where t.phase != .heartbeatTimeout {
            var due = t.lastReceive + eipEvictionTimeout
            if let suspectAfter, t.heard, t.probeStarted == nil { due = t.lastReceive + suspectAfter }
            if t.unreachable { due = t.lastReceive }
            next = next.map { min($0, due) } ?? due
        }
        return next
    }

    /// The probe `probe(node:)` asked for, started at `startedAt`, has finished. An unreachable
    /// node is evicted at the next `evaluate` unless a heartbeat newer than the probe arrived.
    public mutating func probeFinished(_ node: String, reachable: Bool, startedAt: BatonInstant) {
        guard var t = tunnels[node], let started = t.probeStarted, started == startedAt else { return }
        t.unreachable = !reachable
        tunnels[node] = t
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
            } else if t.unreachable, t.phase != .heartbeatTimeout {
                t.phase = .heartbeatTimeout
                out.append(.markUnreachable(node: node, silentFor: silence))
            } else if let suspectAfter, silence > suspectAfter, t.heard, t.phase == .ready, t.probeStarted == nil {
                t.probeStarted = now
                out.append(.probe(node: node))
            } else if t.heard, t.phase != .ready, !(t.phase == .heartbeatTimeout && t.unreachable) {
                t.phase = .ready
                out.append(.markReady(node: node))
            }
            tunnels[node] = t
        }
        return out
    }
}
