/// The health of the service behind a speaker's virtual IPs, decided from its checks as
/// keepalived decides it from the `vrrp_script`s an instance tracks. Pure: it says when to run
/// each check and what the outcomes mean; the caller (the speaker's health runner) runs the
/// checks, reads its own monotonic clock, and delivers `.timerFired` at `nextDeadline`.
///
///     var health = VRRPHealthMonitor(checks: [check], now: clock.now)   // every check is due now
///     health.handle(.timerFired, now: clock.now)      // [.run(check: 0, run: 1, deadline: now + timeout)]
///     health.handle(.completed(check: 0, run: 1, .failure("connection refused")), now: clock.now)
///                                                     // [.statusChanged(...), .verdictChanged(...)]
///
/// Rules, as keepalived 2.2.7 has them (`vrrp_scheduler.c`, `vrrp_track.c`):
/// - Every check runs at once on start, then every `interval` after it was last due. A run
///   still going when the next is due is not doubled: that turn is skipped.
/// - A run that has not ended `timeout` after it started counts as a failure, and the caller
///   is told to stop it (`.cancel`); an outcome that arrives later is ignored.
/// - Outcomes go through `VRRPCheckCounter` (`rise`, `fall`).
/// - A check with weight 0 holds every instance in FAULT while it is down (keepalived's
///   `vrrp_script` without `weight`); until its first outcome the instances wait, not started
///   (`Verdict.ready` is false), as keepalived keeps them in INIT.
/// - A check with a weight changes the priority instead: a negative weight is added while the
///   check is down, a positive one while it is up; nothing before its first outcome. The
///   effective priority stays in 1...254, and an address owner's (255) never changes.
public struct VRRPHealthMonitor: Sendable {
    /// One check's tracking settings (what it checks is the caller's business).
    public struct Check: Sendable, Hashable {
        /// What the check looks at, for logs and the FAULT reason, e.g. `tcp 10.0.0.1:80`.
        public let name: String
        /// How often it runs.
        public let interval: Duration
        /// How long one run may take before it counts as a failure.
        public let timeout: Duration
        public let rise: Int
        public let fall: Int
        /// 0: a failed check puts every instance in FAULT. Otherwise −253...253, keepalived's
        /// `weight`: added to the priority while the check is down (negative) or up (positive).
        public let weight: Int

        /// keepalived's `weight` range.
        public static let weightRange = -253...253

        /// Refuses a value keepalived would not take, naming it.
        public init(name: String, interval: Duration, timeout: Duration? = nil, rise: Int = 1, fall: Int = 1,
                    weight: Int = 0) throws(ConfigurationError) {
            guard interval > .zero else {
                throw ConfigurationError(.notPositive, "check \(name): interval must be more than 0, got \(interval)")
            }
            let timeout = timeout ?? interval
            guard timeout > .zero else {
                throw ConfigurationError(.notPositive, "check \(name): timeout must be more than 0, got \(timeout)")
            }
            guard rise >= 1 else { throw ConfigurationError(.outOfRange, "check \(name): rise must be at least 1, got \(rise)") }
            guard fall >= 1 else { throw ConfigurationError(.outOfRange, "check \(name): fall must be at least 1, got \(fall)") }
            guard Self.weightRange.contains(weight) else {
                throw ConfigurationError(.outOfRange, "check \(name): weight must be in -253...253, got \(weight)")
            }
            self.name = name
            self.interval = interval
            self.timeout = timeout
            self.rise = rise
            self.fall = fall
            self.weight = weight
        }
    }

    /// What the checks mean for every instance of the speaker.
    public struct Verdict: Sendable, Hashable, CustomStringConvertible {
        /// False until every weight-0 check has had its first outcome: instances wait, not
        /// started, until then.
        public var ready: Bool
        /// Why the instances must be in FAULT (the first weight-0 check that is down); nil when
        /// none is.
        public var fault: String?
        /// The sum of the weights that apply now.
        public var priorityOffset: Int

        public init(ready: Bool, fault: String?, priorityOffset: Int) {
            self.ready = ready
            self.fault = fault
            self.priorityOffset = priorityOffset
        }

        /// No checks: start at once, never in FAULT, priorities as configured.
        public static let healthy = Verdict(ready: true, fault: nil, priorityOffset: 0)

        /// The effective priority of an instance configured with `base`: kept in 1...254, and
        /// 255 (the address owner) unchanged, as keepalived's `vrrp_set_effective_priority`.
        public func priority(base: UInt8) -> UInt8 {
            guard base != VRRPInstance.Configuration.addressOwnerPriority else { return base }
            return UInt8(min(max(Int(base) + priorityOffset, 1), 254))
        }

        /// What an instance configured with `base` must be fed to start under this verdict,
        /// ending with `.startup` (empty while not `ready`).
        public func startupEvents(base: UInt8) -> [VRRPInstance.Event] {
            guard ready else { return [] }
            var events: [VRRPInstance.Event] = []
            if priority(base: base) != base { events.append(.priorityChanged(priority(base: base))) }
            if let fault { events.append(.fault(fault)) }
            return events + [.startup]
        }

        /// What a started instance configured with `base` must be fed when the verdict changes
        /// from `old` to this one: the priority first (so that a recovery starts with it), then
        /// `.fault` or `.recovered`.
        public func events(since old: Verdict, base: UInt8) -> [VRRPInstance.Event] {
            var events: [VRRPInstance.Event] = []
            if priority(base: base) != old.priority(base: base) { events.append(.priorityChanged(priority(base: base))) }
            switch (old.fault, fault) {
            case (nil, let reason?): events.append(.fault(reason))
            case (.some, nil): events.append(.recovered)
            default: break
            }
            return events
        }

        public var description: String {
            "ready: \(ready), fault: \(fault ?? "none"), priority offset: \(priorityOffset)"
        }
    }

    public enum Outcome: Sendable, Hashable {
        case success
        /// The check failed, and why (`connection refused`, `exit status 1`).
        case failure(String)
    }

    public enum Event: Sendable, Hashable {
        /// The caller's sleep until `nextDeadline` ended. Harmless when early.
        case timerFired
        /// Run `run` of check `check` (an index into `checks`) ended.
        case completed(check: Int, run: UInt64, Outcome)
    }

    public enum Action: Sendable, Hashable {
        /// Start run `run` of check `check`; give up on it at `deadline` (it counts as failed then).
        case run(check: Int, run: UInt64, deadline: BatonInstant)
        /// Run `run` of check `check` timed out: stop it (kill a script). Its outcome is ignored.
        case cancel(check: Int, run: UInt64)
        /// A check came up or went down (`reason`: the failure that brought it down). For logs.
        case statusChanged(check: Int, VRRPCheckCounter.Status, reason: String?)
        /// The verdict changed: tell every instance.
        case verdictChanged(Verdict)
    }

    private struct Tracked: Sendable {
        var counter: VRRPCheckCounter
        var nextRunAt: BatonInstant
        var running: (run: UInt64, deadline: BatonInstant)?
        /// The failure that brought the check down (kept while it stays down).
        var downReason: String?
    }

    public let checks: [Check]
    public private(set) var verdict: Verdict
    private var tracked: [Tracked]
    private var lastRun: UInt64 = 0

    /// Every check is due at `now`.
    public init(checks: [Check], now: BatonInstant) {
        self.checks = checks
        tracked = checks.map { Tracked(counter: VRRPCheckCounter(rise: $0.rise, fall: $0.fall), nextRunAt: now) }
        verdict = .healthy
        verdict = decide()
    }

    /// When the caller must deliver `.timerFired`: the next run due or the next timeout; nil
    /// without checks.
    public var nextDeadline: BatonInstant? {
        tracked.map { t in t.running.map { min($0.deadline, t.nextRunAt) } ?? t.nextRunAt }.min()
    }

    /// A check's status now.
    public func status(ofCheck index: Int) -> VRRPCheckCounter.Status { tracked[index].counter.status }

    public mutating func handle(_ event: Event, now: BatonInstant) -> [Action] {
        var actions: [Action] = []
        switch event {
        case .timerFired:
            for i in tracked.indices {
                if let running = tracked[i].running, now >= running.deadline {
                    tracked[i].running = nil
                    actions.append(.cancel(check: i, run: running.run))
                    actions += record(i, .failure("timed out after \(checks[i].timeout)"))
                }
                if now >= tracked[i].nextRunAt {
                    tracked[i].nextRunAt = now + checks[i].interval
                    if tracked[i].running == nil {
                        lastRun += 1
                        let deadline = now + checks[i].timeout
                        tracked[i].running = (lastRun, deadline)
                        actions.append(.run(check: i, run: lastRun, deadline: deadline))
                    }
                }
            }
        case .completed(let i, let run, let outcome):
            guard tracked.indices.contains(i), tracked[i].running?.run == run else { return [] }
            tracked[i].running = nil
            actions += record(i, outcome)
        }
        let next = decide()
        if next != verdict {
            verdict = next
            actions.append(.verdictChanged(next))
        }
        return actions
    }

    private mutating func record(_ i: Int, _ outcome: Outcome) -> [Action] {
        let success = outcome == .success
        guard let status = tracked[i].counter.record(success: success) else { return [] }
        if case .failure(let why) = outcome, status == .down {
            tracked[i].downReason = why
        } else {
            tracked[i].downReason = nil
        }
        return [.statusChanged(check: i, status, reason: tracked[i].downReason)]
    }

    private func decide() -> Verdict {
        var ready = true
        var fault: String? = nil
        var offset = 0
        for (check, t) in zip(checks, tracked) {
            let status = t.counter.status
            if check.weight == 0 {
                if status == .unknown { ready = false }
                if status == .down, fault == nil {
                    fault = "check \(check.name) failed: \(t.downReason ?? "down")"
                }
            } else if (check.weight < 0 && status == .down) || (check.weight > 0 && status == .up) {
                offset += check.weight
            }
        }
        return Verdict(ready: ready, fault: fault, priorityOffset: offset)
    }
}
