/// The leader-election decisions behind a `LeaseLock`, as client-go's `leaderelection` makes them,
/// with no I/O: the caller reads and writes the lease record in the store and reports back.
///
/// Durations are the caller's settings; every instant is on this replica's own monotonic clock,
/// which the caller owns. A lease held by another replica is judged expired by when *this*
/// replica last saw the record change (plus the record's lease duration), never by a time written
/// into the record, so clock skew between replicas cannot hand out the lease twice.
///
/// Safety: a leader stops (`lostLeadership`) once `renewDeadline` has passed since the start of
/// its last successful write; other replicas wait at least `leaseDuration` after they observed
/// that write. `leaseDuration > renewDeadline` leaves the difference as a margin.
///
///     var lease = LeaderLease(identity: "server-a", configuration: cfg)
///     lease.handle(.observed(recordFromStore), now: clock.now)
///     lease.handle(.tick, now: clock.now)        // [.tryAcquire(record)] -> compare-and-swap it
///     lease.handle(.renewed, now: clock.now)     // [.becameLeader]
public struct LeaderLease: Sendable {
    /// The three client-go timings.
    public struct Configuration: Sendable, Hashable {
        /// How long followers wait, from when they last saw the record change, before taking it.
        public var leaseDuration: Duration
        /// How long the leader keeps leading without a successful renewal.
        public var renewDeadline: Duration
        /// How often to try to acquire or renew (`tick` period).
        public var retryPeriod: Duration

        /// Refuses any timing that is not positive, or `leaseDuration > renewDeadline > retryPeriod` not holding.
        public init(leaseDuration: Duration, renewDeadline: Duration, retryPeriod: Duration) throws(ConfigurationError) {
            for (key, value) in [("leaseDuration", leaseDuration), ("renewDeadline", renewDeadline), ("retryPeriod", retryPeriod)]
            where value <= .zero {
                throw ConfigurationError(.notPositive, "\(key) must be greater than 0, got \(value)")
            }
            guard leaseDuration > renewDeadline else {
                throw ConfigurationError(.ordering, "leaseDuration (\(leaseDuration)) must be greater than renewDeadline (\(renewDeadline))")
            }
            guard renewDeadline > retryPeriod else {
                throw ConfigurationError(.ordering, "renewDeadline (\(renewDeadline)) must be greater than retryPeriod (\(retryPeriod))")
            }
            self.leaseDuration = leaseDuration
            self.renewDeadline = renewDeadline
            self.retryPeriod = retryPeriod
        }
    }

    /// The lease as stored. `renewCount` changes on every write, so observers can tell a renewed
    /// lease from a stale one without comparing wall-clock times.
    public struct Record: Sendable, Hashable {
        public var holderIdentity: String?
        public var leaseDuration: Duration
        public var leaderTransitions: Int
        public var renewCount: UInt64

        public init(holderIdentity: String?, leaseDuration: Duration, leaderTransitions: Int = 0, renewCount: UInt64 = 0) {
            self.holderIdentity = holderIdentity
            self.leaseDuration = leaseDuration
            self.leaderTransitions = leaderTransitions
            self.renewCount = renewCount
        }
    }

    public enum Event: Sendable, Hashable {
        /// The retry timer fired (every `retryPeriod`).
        case tick
        /// The caller read the lease from the store (nil: there is none yet).
        case observed(Record?)
        /// The last `tryAcquire`/`renew` write succeeded.
        case renewed
        /// The last `tryAcquire`/`renew` write failed (conflict, store unreachable, timeout).
        case renewFailed
        /// The process is shutting down gracefully.
        case resign
    }

    public enum Action: Sendable, Hashable {
        /// Write this record if the stored lease is still the observed one (compare-and-swap), then report `.renewed` or `.renewFailed`.
        case tryAcquire(Record)
        /// Write this record if the stored lease is still ours, then report `.renewed` or `.renewFailed`.
        case renew(Record)
        /// Start the controllers.
        case becameLeader
        /// Stop the controllers now.
        case lostLeadership
        /// Another replica holds an unexpired lease; try again at the next tick.
        case standBy(holder: String, until: BatonInstant)
        /// Write this record (no holder) so a follower can take over at once.
        case release(Record)
    }

    public enum Role: Sendable, Hashable { case follower, leader }

    /// Who decides that another replica's lease has expired.
    public enum Expiry: Sendable, Hashable {
        /// This replica, from when it last saw the record change (client-go's way; any store).
        case observed
        /// The store, which deletes a lease whose holder stopped renewing it (an etcd lease's
        /// TTL). A follower never takes a lease another replica holds, however long it has gone
        /// unchanged (renewals need not change it); it acquires once the lease is gone.
        case store
    }

    public let identity: String
    public let configuration: Configuration
    public let expiry: Expiry
    public private(set) var role: Role = .follower
    /// The newest record seen, and when (this replica's clock) it was first seen in that form.
    public private(set) var observed: Record?
    public private(set) var observedAt: BatonInstant?
    /// The start of the leader's last successful write.
    public private(set) var lastRenewal: BatonInstant?
    private var pending: (record: Record, startedAt: BatonInstant)?

    public init(identity: String, configuration: Configuration, expiry: Expiry = .observed) {
        self.identity = identity
        self.configuration = configuration
        self.expiry = expiry
    }

    public mutating func handle(_ event: Event, now: BatonInstant) -> [Action] {
        switch event {
        case .observed(let record):
            if record != observed {
                observed = record
                observedAt = now
            }
            if role == .leader, let holder = record?.holderIdentity, holder != identity {
                return loseLeadership()
            }
            return []

        case .tick:
            if role == .leader {
                if let lastRenewal, now - lastRenewal >= configuration.renewDeadline { return loseLeadership() }
                guard pending == nil, let current = observed else { return [] }
                var next = current
                next.renewCount &+= 1
                next.leaseDuration = configuration.leaseDuration
                pending = (next, now)
                return [.renew(next)]
            }
            guard pending == nil else { return [] }
            if let current = observed, let holder = current.holderIdentity, !holder.isEmpty, holder != identity,
               let seen = observedAt, expiry == .store || now < seen + current.leaseDuration {
                return [.standBy(holder: holder, until: seen + current.leaseDuration)]
            }
            let previousHolder = observed?.holderIdentity
            let next = Record(holderIdentity: identity, leaseDuration: configuration.leaseDuration,
                              leaderTransitions: (observed?.leaderTransitions ?? 0) + (previousHolder == identity ? 0 : 1),
                              renewCount: (observed?.renewCount ?? 0) &+ 1)
            pending = (next, now)
            return [.tryAcquire(next)]

        case .renewed:
            guard let done = pending else { return [] }
            pending = nil
            observed = done.record
            observedAt = now
            lastRenewal = done.startedAt
            if role == .follower {
                role = .leader
                return [.becameLeader]
            }
            return []

        case .renewFailed:
            pending = nil
            if role == .leader, let lastRenewal, now - lastRenewal >= configuration.renewDeadline { return loseLeadership() }
            return []

        case .resign:
            guard role == .leader, var record = observed else { return [] }
            record.holderIdentity = nil
            record.renewCount &+= 1
            role = .follower
            pending = nil
            lastRenewal = nil
            return [.lostLeadership, .release(record)]
        }
    }

    /// When the caller should next deliver `.tick`.
    public func nextTick(after now: BatonInstant) -> BatonInstant { now + configuration.retryPeriod }

    private mutating func loseLeadership() -> [Action] {
        role = .follower
        pending = nil
        lastRenewal = nil
        return [.lostLeadership]
    }
}
