/// What an agent announces, decided from what it knows: the EIPs the controller placed on its
/// node, and when its last acknowledged heartbeat was sent. Pure: the agent feeds it events with
/// readings of its own monotonic clock and carries out the actions on the data plane.
///
/// Rules:
/// - Announce the placed EIPs only while `FencingDeadline` allows it; past the deadline,
///   withdraw everything (the controller may already have given the EIPs to another node).
/// - After a fence, a newer acknowledged heartbeat is not enough to announce again: the
///   placement the agent held may be stale (the EIPs moved while it was cut off). It waits for
///   a placement read after that acknowledgement (`fresh: true`).
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

    public init(fencing: FencingDeadline) { self.fencing = fencing }

    /// A heartbeat sent at `sentAt` was acknowledged by the server.
    public mutating func heartbeatAcknowledged(sentAt: BatonInstant, now: BatonInstant) -> [Action] {
        if lastAcknowledgedSend.map({ sentAt > $0 }) ?? true { lastAcknowledgedSend = sentAt }
        return reconcile(now: now)
    }

    /// The controller's placement for this node. `fresh` means it was read after the latest
    /// acknowledged heartbeat (a list made after the acknowledgement, not an older watch event).
    public mutating func placement(_ eips: Set<String>, fresh: Bool, now: BatonInstant) -> [Action] {
        placed = eips
        if fresh && !fencing.mustFence(now: now, lastAcknowledgedSend: lastAcknowledgedSend) { needsFreshPlacement = false }
        return reconcile(now: now)
    }

    /// Time passed: fence if the deadline went by.
    public mutating func tick(now: BatonInstant) -> [Action] { reconcile(now: now) }

    /// When the next fence would happen if no heartbeat is acknowledged before it.
    public var nextDeadline: BatonInstant? {
        guard !announced.isEmpty, let last = lastAcknowledgedSend else { return nil }
        return fencing.deadline(lastAcknowledgedSend: last)
    }

    mutating func reconcile(now: BatonInstant) -> [Action] {
        let fenced = fencing.mustFence(now: now, lastAcknowledgedSend: lastAcknowledgedSend)
        if fenced && lastAcknowledgedSend != nil { needsFreshPlacement = true }
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
