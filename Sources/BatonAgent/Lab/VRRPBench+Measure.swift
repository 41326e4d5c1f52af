import BatonClient
import Foundation

/// One failover of `baton lab bench vrrp` as its client saw it: a UDP probe to the VIP every
/// 5 ms, each answered by whichever router holds the VIP with that router's own address.
public struct VRRPBenchTrial: Sendable, Equatable {
    /// The longest run of probes that got no answer from any router, from the last probe answered
    /// before the failure on (`LabSender.outage`'s measure: from the first unanswered probe's
    /// sending to the next answered one's); zero when none was lost.
    public var outage: Duration
    /// From the failure to the sending of the first probe that the backup answered: how long the
    /// client would have been cut off had the whole master died. Nil when the backup never did.
    public var takeover: Duration?
    /// Probes that got no answer, over the whole log.
    public var lost: Int
    /// The backup's reaction on the wire (`VRRPBenchReaction`): from the master's last
    /// advertisement reaching the backup to the backup's first advertisement or gratuitous ARP,
    /// by kernel timestamps. Nil when not measured or not seen.
    public var reaction: Duration?

    public init(outage: Duration, takeover: Duration?, lost: Int, reaction: Duration? = nil) {
        self.outage = outage
        self.takeover = takeover
        self.lost = lost
        self.reaction = reaction
    }

    /// Measures a trial from the client's send log. `failureAt` is CLOCK_MONOTONIC nanoseconds,
    /// the clock the sender logs with; `backup` is the address the backup answers with.
    public init(records: [SenderRecord], failureAt: UInt64, backup: String) {
        let sorted = records.sorted { $0.seq < $1.seq }
        // A run of losses before the failure (the client still resolving the VIP) is not the
        // failover's: the window starts at the last probe answered before the failure.
        let start = sorted.lastIndex { $0.sent < failureAt && $0.received != nil } ?? 0
        let answered = "answered"
        let window = sorted[start...].map { r in
            SenderRecord(seq: r.seq, sent: r.sent, received: r.received, source: r.received == nil ? nil : answered)
        }
        outage = LabSender.outage(window, expectedSource: answered).outage
        takeover = sorted.first { $0.sent >= failureAt && $0.source == backup }.map { .nanoseconds(Int64($0.sent - failureAt)) }
        lost = sorted.filter { $0.received == nil }.count
    }
}

/// What a speaker's notify script logged, one state a line (`MASTER`, `BACKUP`, `FAULT`, `STOP`:
/// the third argument keepalived and `baton vrrp` both pass).
public struct NotifyLog: Sendable, Equatable {
    public var states: [String]

    public init(_ text: String) {
        states = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// How many times the router entered `state` (false failovers: a backup's MASTER lines).
    public func count(_ state: String) -> Int { states.filter { $0 == state }.count }
}

/// Figures of a set of durations as the bench prints them: nearest-rank percentiles, as
/// `baton bench api` computes them (`Samples`, here holding milliseconds).
public struct DurationFigures: Sendable {
    var samples = Samples()
    public private(set) var count = 0

    public init(_ durations: [Duration]) {
        for d in durations { samples.add(d.milliseconds) }
        count = durations.count
    }

    /// The `p`th percentile (0...100) in milliseconds; nil without samples.
    public func percentile(_ p: Double) -> Double? { count == 0 ? nil : samples.percentile(p) }
}
