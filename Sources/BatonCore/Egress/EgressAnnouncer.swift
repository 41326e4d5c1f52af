/// What an agent announces, decided from what it knows: the EIPs the controller placed on its
/// node, and when its last acknowledged heartbeat was sent. Pure: the agent feeds it events with
/// readings of its own monotonic clock and carries out the actions on the data plane.
///
/// Rules:
/// - Announce the placed EIPs only while `FencingDeadline` allows it; past the deadline,
///   withdraw everything (the controller may already have given the EIPs to another node).
/// - After a fence, a newer acknowledged heartbeat is not enough to announce again: the
///   placement the agent held may be stale (the EIPs moved while it was cut off). It waits for
///   a placement whose read *started* after that acknowledgement arrived.
public struct EgressAnnouncer: Sendable {
    public enum Action: Sendable, Hashable {
        case announce(Set<String>)
        case withdraw(Set<String>, reason: String)
    }

    public let fencing: FencingDeadline
    public private(set) var lastAcknowledgedSend: BatonInstant?
    public private(set) var placed: Set<String> = []
    public private(set) var announced: Set<String> = []
    /// True after a fence until a placement read after a newer acknowledged heartbeat arrives.
    public private(set) var needsFreshPlacement = false
    /// When the first acknowledgement after a fence arrived: a read started after it is fresh.
    public private(set) var acknowledgedAfterFenceAt: BatonInstant?

    public init(fencing: FencingDeadline) { self.fencing = fencing }

    /// A heartbeat sent at `sentAt` was acknowledged by the server.
    public mutating func heartbeatAcknowledged(sentAt: BatonInstant, now: BatonInstant) -> [Action] {
        // A deadline that went by before this acknowledgement arrived is a fence, even if no tick
        // saw it (the agent was frozen, or starved, past it): the EIPs may have moved meanwhile,
        // so the new acknowledgement must not carry on the old placement.
        var actions = reconcile(now: now)
        if lastAcknowledgedSend.map({ sentAt > $0 }) ?? true { lastAcknowledgedSend = sentAt }
        if needsFreshPlacement && acknowledgedAfterFenceAt == nil { acknowledgedAfterFenceAt = now }
        actions += reconcile(now: now)
        return actions
    }

    /// The controller's placement for this node. `readStartedAt` is when the read that returned
    /// it began (a list); nil for a watch event, which may be older than the last fence.
    public mutating func placement(_ eips: Set<String>, readStartedAt: BatonInstant?, now: BatonInstant) -> [Action] {
        placed = eips
        if needsFreshPlacement, let started = readStartedAt, let acked = acknowledgedAfterFenceAt, started >= acked,
           !fencing.mustFence(now: now, lastAcknowledgedSend: lastAcknowledgedSend) {
            needsFreshPlacement = false
            acknowledgedAfterFenceAt = nil
        }
        return reconcile(now: now)
    }

    /// Whether the agent should read the placement again (a fence happened and a heartbeat has
    /// been acknowledged since).
    public var wantsFreshRead: Bool { needsFreshPlacement && acknowledgedAfterFenceAt != nil }

    /// Time passed: fence if the deadline went by.
    public mutating func tick(now: BatonInstant) -> [Action] { reconcile(now: now) }

    /// When the next fence would happen if no heartbeat is acknowledged before it.
    public var nextDeadline: BatonInstant? {
        guard !announced.isEmpty, let last = lastAcknowledgedSend else { return nil }
        return fencing.deadline(lastAcknowledgedSend: last)
    }

    mutating func reconcile(now: BatonInstant) -> [Action] {
        let fenced = fencing.mustFence(now: now, lastAcknowledgedSend: lastAcknowledgedSend)
        if fenced && lastAcknowledgedSend != nil {
            needsFreshPlacement = true
            acknowledgedAfterFenceAt = nil
        }
        let target: Set<String> = (fenced || needsFreshPlacement) ? [] : placed
        var actions: [Action] = []
        let gone = announced.subtracting(target)
        if !gone.isEmpty {
            actions.append(.withdraw(gone, reason: fenced ? "no heartbeat acknowledged before the fence deadline" : "placed elsewhere"))
        }
        let new = target.subtracting(announced)
        if !new.isEmpty { actions.append(.announce(new)) }
        announced = target
        return actions
    }
}
