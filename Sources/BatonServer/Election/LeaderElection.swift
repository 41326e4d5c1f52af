import BatonCore
import BatonStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Leader election for `baton server` replicas that share one store: a `Service` that campaigns
/// for a `LeaseLock` and, while this replica leads, runs `whileLeader` (the controllers).
///
/// Every `retryPeriod` it reads the lease, feeds what it saw to `LeaderLease` (the decisions,
/// in BatonCore) and carries out the actions: create or compare-and-swap the lease, start the
/// body on `becameLeader`, cancel it on `lostLeadership`. The body also stops, without waiting
/// for a tick, once `renewDeadline` has passed since the last successful renewal, even when a
/// store write hangs.
///
/// - Graceful shutdown (the `ServiceGroup`'s): cancels the body, waits for it, then releases the
///   lease (writes it with no holder), so a standby takes over within one `retryPeriod`.
/// - Cancellation (the group's cancel, or the task running `run()`): cancels the body and
///   returns *without* releasing, as a crash would; standbys take over once the lease expires.
/// - The body should run until cancelled. If it returns or throws on its own, the election
///   releases the lease and `run()` returns or rethrows, so another replica takes over and the
///   `ServiceGroup` sees it.
///
/// Call `run()` once. The body runs in a child task of `run()`; nothing outlives `run()`.
public final class LeaderElection: Service, Sendable {
    /// This replica's name in the lease: `hostname-pid-random`, unique per process start, so a
    /// restarted replica never mistakes its predecessor's lease for its own.
    public let identity: String
    public let lock: any LeaseLock
    public let configuration: LeaderLease.Configuration

    private let clock: any BatonClock
    private let logger: Logger
    private let body: @Sendable () async throws -> Void
    private let state: Mutex<State>

    private struct State: Sendable {
        var lease: LeaderLease
        /// The lease as last read or written, with its version (the next compare-and-swap's token).
        var current: LeaseLockRecord?
    }

    /// Baton's defaults: `leaseDuration` 2 s, `renewDeadline` 1.5 s, `retryPeriod` 0.25 s
    /// (client-go uses 15 s, 10 s and 2 s).
    ///
    /// Why these suit sub-second EIP failover without thrash:
    /// - A leader change moves no EIP. The data plane never waits on the controllers, and a new
    ///   leader gives every tunnel a full `eipEvictionTimeout` from the moment it takes over. So
    ///   the lease only bounds how long *new* failures go unhandled while the leader itself is
    ///   dead. 2 s keeps that short next to a node failover (0.8 s), and a graceful handover
    ///   (release) takes a single `retryPeriod`.
    /// - Eight renewal attempts fit in the lease (2 s / 0.25 s), and six fit before the leader's
    ///   `renewDeadline`, so a leader survives five failed or slow writes in a row (an fsync
    ///   stall, a busy SQLite lock, a GC pause of ~1 s) and does not flap.
    /// - The 0.5 s between `renewDeadline` and `leaseDuration` is the safety margin: a leader
    ///   that cannot renew stops its controllers at least 0.5 s (by this replica's monotonic
    ///   clock) before any standby may take the lease, which covers clock-rate drift and the
    ///   time it takes to cancel the controllers. Expiry is judged by each standby from when it
    ///   saw the lease change, never from times written into it, so wall-clock skew cannot hand
    ///   the lease out twice.
    /// - A read and a conditional write every 0.25 s per replica is negligible load next to the
    ///   agents' heartbeats.
    public static let defaultConfiguration = try! LeaderLease.Configuration(
        leaseDuration: .seconds(2), renewDeadline: .milliseconds(1500), retryPeriod: .milliseconds(250))

    /// `hostname-pid-random`, e.g. `node-a-4711-9f3c2a1b`.
    public static func defaultIdentity() -> String {
        let random = String(UInt32.random(in: .min ... .max), radix: 16)
        return "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(random)"
    }

    /// - Parameters:
    ///   - lock: the shared lease, e.g. `StoreLeaseLock(store: store, name: "baton-controller")`.
    ///   - identity: this replica's name in the lease; must differ between replicas.
    ///   - clock: the monotonic clock the lease decisions use (owned by the caller).
    ///   - whileLeader: runs while this replica leads, cancelled when it stops leading.
    public init(
        lock: any LeaseLock,
        identity: String = LeaderElection.defaultIdentity(),
        configuration: LeaderLease.Configuration = LeaderElection.defaultConfiguration,
        clock: any BatonClock = MonotonicClock(),
        logger: Logger,
        whileLeader body: @escaping @Sendable () async throws -> Void
    ) {
        self.lock = lock
        self.identity = identity
        self.configuration = configuration
        self.clock = clock
        self.body = body
        var logger = logger
        logger[metadataKey: "identity"] = "\(identity)"
        logger[metadataKey: "lease"] = "\(lock.name)"
        self.logger = logger
        self.state = Mutex(State(lease: LeaderLease(identity: identity, configuration: configuration, expiry: lock.expiry)))
    }

    /// Whether this replica leads now (its body is running or about to).
    public var isLeader: Bool { state.withLock { $0.lease.role == .leader } }

    public func run() async throws {
        let outcome = try await cancelWhenGracefulShutdown { try await self.campaign() }
        switch outcome {
        case .cancelled:
            if Task.isShuttingDownGracefully {
                await resign(reason: "shutting down")
            } else if isLeader {
                logger.info("cancelled while leading; the lease is left to expire")
            }
        case .bodyReturned:
            await resign(reason: "the leader's work returned")
        case .bodyFailed(let error):
            await resign(reason: "the leader's work failed: \(error)")
            throw error
        }
    }

    // MARK: - Campaign

    private enum Outcome: Sendable {
        case cancelled
        case bodyReturned
        case bodyFailed(any Error)
    }

    private enum TermEnd: Sendable {
        case lost
        case bodyReturned
        case bodyFailed(any Error)
    }

    /// Stands by until leading, leads until leadership is lost, and again, until cancelled or
    /// the body ends on its own.
    private func campaign() async throws -> Outcome {
        while !Task.isCancelled {
            while !Task.isCancelled, !isLeader {
                await step()
                if isLeader { break }
                try? await Task.sleep(for: configuration.retryPeriod)
            }
            guard !Task.isCancelled else { break }

            let end = await withTaskGroup(of: TermEnd.self) { group in
                let body = self.body
                group.addTask {
                    do {
                        try await body()
                        // Returning because it was cancelled (leadership lost, shutdown) is not returning on its own.
                        return Task.isCancelled ? .lost : .bodyReturned
                    } catch {
                        return Task.isCancelled ? .lost : .bodyFailed(error)
                    }
                }
                group.addTask {
                    while !Task.isCancelled, self.isLeader {
                        try? await Task.sleep(for: self.configuration.retryPeriod)
                        guard !Task.isCancelled else { break }
                        await self.step()
                    }
                    return .lost
                }
                group.addTask {
                    await self.enforceRenewDeadline()
                    return .lost
                }
                let first = await group.next() ?? .lost
                group.cancelAll()
                return first
            }
            switch end {
            case .lost: continue
            case .bodyReturned: return .bodyReturned
            case .bodyFailed(let error): return .bodyFailed(error)
            }
        }
        return .cancelled
    }

    /// One retry period's work: read the lease, tell `LeaderLease`, then acquire or renew if it says so.
    private func step() async {
        var readFailed = false
        do {
            let read = try await lock.get()
            decide(.observed(read?.lease), update: { $0.current = read })
        } catch {
            readFailed = true
            logger.debug("reading the lease failed", metadata: ["error": "\(error)"])
        }
        for action in decide(.tick) {
            switch action {
            case .tryAcquire(let record), .renew(let record):
                guard !readFailed else {
                    decide(.renewFailed)
                    continue
                }
                let current = state.withLock { $0.current }
                do {
                    let written = if let current {
                        try await lock.update(record, replacing: current)
                    } else {
                        try await lock.create(record)
                    }
                    decide(.renewed, update: { $0.current = written })
                } catch {
                    logger.debug("writing the lease failed", metadata: ["error": "\(error)"])
                    decide(.renewFailed)
                }
            case .becameLeader, .lostLeadership, .standBy, .release:
                break
            }
        }
    }

    /// Ends (after handing `LeaderLease` the tick that makes it step down) once `renewDeadline`
    /// has passed since the last successful renewal, or at once when no longer leading.
    private func enforceRenewDeadline() async {
        while !Task.isCancelled {
            let now = clock.now
            let deadline: BatonInstant? = state.withLock { s in
                guard s.lease.role == .leader, let last = s.lease.lastRenewal else { return nil }
                return last + configuration.renewDeadline
            }
            guard let deadline else { return }
            if now >= deadline {
                // Check again and step down in one critical section, so a renewal landing in between wins.
                decide(.tick, at: now, when: { s in
                    guard s.lease.role == .leader, let last = s.lease.lastRenewal else { return false }
                    return now - last >= self.configuration.renewDeadline
                })
                continue
            }
            try? await Task.sleep(for: min(deadline - now, configuration.retryPeriod))
        }
    }

    /// Graceful handover: step down and write the lease with no holder, if it is still ours.
    private func resign(reason: String) async {
        let fresh = try? await lock.get()
        if let fresh { decide(.observed(fresh.lease), reason: reason, update: { $0.current = fresh }) }
        for case .release(let record) in decide(.resign, reason: reason) {
            guard let current = state.withLock({ $0.current }), current.lease.holderIdentity == identity else { continue }
            do {
                let written = try await lock.update(record, replacing: current)
                state.withLock { $0.current = written }
                logger.info("released the lease")
            } catch {
                logger.warning("releasing the lease failed; standbys take over when it expires", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Hands `event` to `LeaderLease` under the lock (if `condition` holds, after `update`), logs the leadership
    /// changes it reports, and returns its actions.
    @discardableResult
    private func decide(_ event: LeaderLease.Event, at instant: BatonInstant? = nil, reason: String? = nil,
                        when condition: (State) -> Bool = { _ in true },
                        update: (inout State) -> Void = { _ in }) -> [LeaderLease.Action] {
        let now = instant ?? clock.now
        let (actions, holder) = state.withLock { s -> ([LeaderLease.Action], String?) in
            guard condition(s) else { return ([], nil) }
            update(&s)
            return (s.lease.handle(event, now: now), s.lease.observed?.holderIdentity)
        }
        for action in actions {
            switch action {
            case .becameLeader:
                logger.info("became leader")
            case .lostLeadership:
                let why = reason ?? {
                    if let holder, holder != identity { return "\(holder) holds the lease" }
                    return "no renewal within renewDeadline (\(configuration.renewDeadline))"
                }()
                // A handover on shutdown is routine; anything else is worth a look.
                logger.log(level: reason == nil ? .warning : .info, "lost leadership", metadata: ["reason": "\(why)"])
            default:
                break
            }
        }
        return actions
    }
}
