import BatonAPI

/// One VRRP virtual router on this node, as the state machine of RFC 9568 §6.4 (VRRPv3) or
/// RFC 3768 §6.4 (VRRPv2) runs it, with keepalived's FAULT state, `preempt_delay` and
/// `nopreempt`. Pure: no sockets and no clock. The caller (the VRRP speaker) feeds it events with
/// readings of its own monotonic clock, carries out the actions in order, and sleeps until
/// `nextDeadline` to deliver `.timerFired`.
///
///     var vrrp = VRRPInstance(configuration: cfg)
///     vrrp.handle(.startup, now: clock.now)        // [.becameBackup, .notify(.backup)]
///     vrrp.handle(.timerFired, now: clock.now)     // at nextDeadline: [.sendAdvertisement(priority: 100), .becameMaster, .notify(.master)]
///
/// RFC 9568 names the Master "Active" (`Active_Down_Interval`, `Active_Adver_Interval`); this
/// type keeps RFC 5798's and keepalived's words, which operators and the seed use.
///
/// Rules (RFC 9568 §6.4, and RFC 3768 §6.4 where VRRPv2 differs):
/// - Startup (§6.4.1): priority 255 sends an advertisement and becomes Master at once; any other
///   becomes Backup with `Master_Adver_Interval = advertInterval` and the master-down timer at
///   `Master_Down_Interval`.
/// - Backup (§6.4.2), on an advertisement:
///   - priority 0: master-down timer = `Skew_Time`;
///   - priority ≥ ours, or `preempt` off, or inside `preempt_delay`: accept it: learn
///     `Master_Adver_Interval` from it (VRRPv3 only) and reset the timer to `Master_Down_Interval`;
///   - otherwise (lower priority, preempting): discard it; the timer runs out and we take over.
///   When the timer fires: send an advertisement, become Master, advertise every `advertInterval`.
/// - Master (§6.4.3), on an advertisement:
///   - priority 0: send an advertisement at once and reset the advertisement timer;
///   - higher priority, or equal priority from a higher primary address: release the addresses,
///     learn the interval (VRRPv3), set the master-down timer and become Backup;
///   - otherwise: discard it and send an advertisement at once to assert Master (RFC 9568 added
///     this; RFC 5798 only discarded), then announce the addresses again, as keepalived does by
///     default (the other router may have held them). The advertisement timer keeps its schedule.
/// - Shutdown: a Master sends a priority-0 advertisement and releases the addresses; a Backup or
///   a faulted instance sends nothing. All notify STOP, as keepalived does.
/// - Fault (keepalived; the RFC has none): a Master sends a priority-0 advertisement and releases
///   the addresses first. In Fault nothing is sent and advertisements are ignored. Recovery starts
///   again as at startup; a fault reported before startup makes startup go straight to Fault.
/// - Priority change (keepalived; the RFC is silent): a non-owner's priority stays in 1...254 and
///   an owner's never changes; a running master-down timer moves by the change in `Skew_Time`; a
///   Master carries the new priority in its next scheduled advertisement.
///
/// `preempt_delay` follows keepalived 2.2.7's `vrrp_state_backup`: the delay starts when the
/// Backup first accepts a lower-priority advertisement (not at process start), is cancelled by an
/// advertisement of priority ≥ ours, and restarts whenever the instance enters Backup. Until it
/// ends the Backup accepts the lower-priority Master; from then on it discards its adverts, so it
/// takes over `Master_Down_Interval` after the last one it accepted.
///
/// Advertisements that cannot belong to this virtual router's election are ignored in every
/// state: from our own primary address (a looped-back copy), from the other address family,
/// VRRPv3 with interval 0 (RFC 9568 §7.1), and VRRPv2 with an interval other than ours (RFC 3768
/// §7.1 says MUST discard; keepalived drops them too).
public struct VRRPInstance: Sendable {
    public let configuration: Configuration
    public private(set) var state: State = .initialize
    /// The priority this router advertises and compares with: the configured one, changed by
    /// `.priorityChanged`.
    public private(set) var priority: UInt8
    /// `Master_Adver_Interval`: the Master's advertised interval as a VRRPv3 Backup learned it;
    /// otherwise this router's own `advertInterval`.
    public private(set) var masterAdverInterval: Duration
    /// The single timer: the master-down timer in Backup, the advertisement timer in Master, nil
    /// in Initialize and Fault. The caller delivers `.timerFired` at (or after) it.
    public private(set) var nextDeadline: BatonInstant?
    /// Why the instance is (or, before startup, will be) in Fault; nil when healthy.
    public private(set) var faultReason: String?
    /// When `preempt_delay` ends for the lower-priority Master this Backup is following; nil when
    /// no delay is running.
    public private(set) var preemptDelayEndsAt: BatonInstant?

    public init(configuration: Configuration) {
        self.configuration = configuration
        self.priority = configuration.priority
        self.masterAdverInterval = configuration.advertInterval
    }

    /// `Skew_Time` at the current priority and `Master_Adver_Interval`.
    public var skewTime: Duration {
        configuration.skewTime(priority: priority, masterAdverInterval: masterAdverInterval)
    }

    /// `Master_Down_Interval` at the current priority and `Master_Adver_Interval`.
    public var masterDownInterval: Duration {
        configuration.masterDownInterval(priority: priority, masterAdverInterval: masterAdverInterval)
    }

    public mutating func handle(_ event: Event, now: BatonInstant) -> [Action] {
        switch event {
        case .startup:
            guard state == .initialize else { return [] }
            if let reason = faultReason { return enterFault(reason: reason) }
            return start(now: now)

        case .shutdown:
            let wasMaster = state == .master
            guard state != .initialize else { return [] }
            leave(to: .initialize)
            return wasMaster ? [.sendAdvertisement(priority: 0), .releaseAddresses, .notify(.stop)] : [.notify(.stop)]

        case .advertisementReceived(let advertised, let interval, let source):
            guard state == .backup || state == .master, belongsToThisRouter(interval: interval, source: source) else { return [] }
            return state == .backup
                ? backupReceived(priority: advertised, interval: interval, now: now)
                : masterReceived(priority: advertised, interval: interval, source: source, now: now)

        case .timerFired:
            guard let deadline = nextDeadline, now >= deadline else { return [] }
            switch state {
            case .backup:
                return becomeMaster(now: now)
            case .master:
                nextDeadline = now + configuration.advertInterval
                return [.sendAdvertisement(priority: priority)]
            case .initialize, .fault:
                return []
            }

        case .fault(let reason):
            faultReason = reason
            switch state {
            case .initialize, .fault:
                return []
            case .backup:
                return enterFault(reason: reason)
            case .master:
                return [.sendAdvertisement(priority: 0), .releaseAddresses] + enterFault(reason: reason)
            }

        case .recovered:
            faultReason = nil
            guard state == .fault else { return [] }
            return start(now: now)

        case .priorityChanged(let requested):
            guard !configuration.isAddressOwner else { return [] }
            let new = min(max(requested, 1), Configuration.addressOwnerPriority - 1)
            guard new != priority else { return [] }
            let oldDownInterval = masterDownInterval
            priority = new
            // keepalived moves a running master-down timer by the change in Skew_Time.
            if state == .backup, let deadline = nextDeadline {
                nextDeadline = deadline + (masterDownInterval - oldDownInterval)
            }
            return []
        }
    }

    // MARK: - Transitions

    /// RFC 9568 §6.4.1 (also the way out of Fault).
    private mutating func start(now: BatonInstant) -> [Action] {
        if configuration.isAddressOwner { return becomeMaster(now: now) }
        leave(to: .backup)
        nextDeadline = now + masterDownInterval
        return [.becameBackup, .notify(.backup)]
    }

    private mutating func becomeMaster(now: BatonInstant) -> [Action] {
        leave(to: .master)
        nextDeadline = now + configuration.advertInterval
        return [.sendAdvertisement(priority: priority), .becameMaster, .notify(.master)]
    }

    private mutating func enterFault(reason: String) -> [Action] {
        leave(to: .fault)
        return [.becameFault(reason: reason), .notify(.fault)]
    }

    /// Enters `next`, clearing what belonged to the state left: the timer, the preempt delay and
    /// a learned interval (each state sets its own).
    private mutating func leave(to next: State) {
        state = next
        nextDeadline = nil
        preemptDelayEndsAt = nil
        masterAdverInterval = configuration.advertInterval
    }

    // MARK: - Advertisements

    private func belongsToThisRouter(interval: Duration, source: IPAddress) -> Bool {
        guard source.family == configuration.primaryAddress.family, source != configuration.primaryAddress else { return false }
        switch configuration.version {
        case .v2: return interval == configuration.advertInterval
        case .v3: return interval > .zero
        }
    }

    /// RFC 9568 §6.4.2, with keepalived's `preempt_delay`.
    private mutating func backupReceived(priority advertised: UInt8, interval: Duration, now: BatonInstant) -> [Action] {
        if advertised == 0 {
            nextDeadline = now + skewTime
            return []
        }
        let lower = advertised < priority
        let preemptDelayed = configuration.preemptDelay > .zero && (preemptDelayEndsAt.map { now < $0 } ?? true)
        guard !configuration.preempt || !lower || preemptDelayed else {
            return []   // discard: the master-down timer keeps running, and we take over when it fires
        }
        if configuration.version == .v3 { masterAdverInterval = interval }
        nextDeadline = now + masterDownInterval
        if !lower {
            preemptDelayEndsAt = nil
        } else if configuration.preempt, preemptDelayEndsAt == nil {
            preemptDelayEndsAt = now + configuration.preemptDelay
        }
        return []
    }

    /// RFC 9568 §6.4.3.
    private mutating func masterReceived(priority advertised: UInt8, interval: Duration, source: IPAddress, now: BatonInstant) -> [Action] {
        if advertised == 0 {
            nextDeadline = now + configuration.advertInterval
            return [.sendAdvertisement(priority: priority)]
        }
        guard advertised > priority || (advertised == priority && source > configuration.primaryAddress) else {
            return [.sendAdvertisement(priority: priority), .announceAddresses]
        }
        leave(to: .backup)
        if configuration.version == .v3 { masterAdverInterval = interval }
        nextDeadline = now + masterDownInterval
        return [.releaseAddresses, .becameBackup, .notify(.backup)]
    }
}
