import BatonAPI
import BatonCore
import BatonStore
import Logging
import Synchronization

/// The egress controller's run loop: it watches EgressTunnels, Nodes, EgressGateways and egress
/// policies, turns heartbeats into `HeartbeatMonitor` decisions and the store's state into
/// `EgressPlacement` inputs, and writes the results back. It decides nothing itself.
///
/// Heartbeats come from the `HeartbeatLog`, read every `heartbeatPollInterval` (and at every
/// tick): each node that beat since the last read is stamped with `clock.now`, the controller's
/// own monotonic clock. The agent's reported time is never compared with anything. A controller
/// that starts gives every tunnel a full `eipEvictionTimeout` of grace, so a leader change alone
/// evicts nothing.
///
/// Ownership of `EgressTunnel.status`: the controller writes `phase`, `tunnel.{mac,ipv4,ipv6}`,
/// `mark`, and `lastHeartbeatTime` (the agent's reported time, for display: at each phase change
/// and at most every `heartbeatDisplayPeriod`); the agent writes `tunnel.parent`, which every
/// write here keeps.
///
/// Run it only while leader: `run()` returns when its task is cancelled.
public struct EgressController: Sendable {
    /// Where the controller's monitor ticks come from. Production uses `.sleeping`, which ticks
    /// every `tunnelMonitorPeriod` of real time; tests pass their own stream and step a manual clock.
    public struct TickSource: Sendable {
        enum Source: Sendable {
            case sleeping
            case stream(AsyncStream<Void>)
        }
        let source: Source

        /// One tick every `tunnelMonitorPeriod`, by `ContinuousClock`, inside the controller's task.
        public static let sleeping = TickSource(source: .sleeping)

        /// Ticks whenever `stream` yields (one controller per stream: an AsyncStream has one consumer).
        public static func stream(_ stream: AsyncStream<Void>) -> TickSource { TickSource(source: .stream(stream)) }
    }

    /// The kinds the controller lists and watches.
    static let watchedKinds = ["EgressTunnel", "Node", "EgressGateway", "EgressPolicy", "EgressClusterPolicy"]

    let store: any ResourceStore
    let settings: FeatureSettings
    let failover: EgressFailoverSettings
    let clock: any BatonClock
    let logger: Logger
    let events: EventRecorder
    let ticks: TickSource
    /// How many status writes run at once (the store batches concurrent writes into one commit).
    let writeConcurrency: Int
    let placementObserver: (@Sendable (PlacementReport) -> Void)?
    let heartbeats: (any HeartbeatLog)?
    /// How often the heartbeat log is read between ticks (with `.sleeping` ticks only).
    let heartbeatPollInterval: Duration
    /// How often a tunnel's `lastHeartbeatTime` is refreshed while nothing else changes.
    let heartbeatDisplayPeriod: Duration
    /// Whether a silent node's address answers (`HeartbeatMonitor.suspectAfter`); nil: no probes,
    /// eviction waits for `eipEvictionTimeout`.
    let probe: (@Sendable (String) async -> Bool)?

    /// What one placement run did and how long it took (real time), for benchmarks and tests.
    public struct PlacementReport: Sendable, Hashable {
        public var policies: Int
        /// EIPs (or node-IP policies) that changed from one node to another.
        public var moves: Int
        public var statusWrites: Int
        public var unassigned: Int
        /// Building the inputs, running `EgressPlacement` and computing the statuses to write.
        public var decision: Duration
        /// Writing the changed statuses.
        public var writes: Duration
    }

    /// `ticks` drives the heartbeat monitor (default: every `tunnelMonitorPeriod`); `onPlacement`
    /// is called after every placement run.
    public init(store: any ResourceStore, heartbeats: (any HeartbeatLog)?, settings: FeatureSettings, clock: some BatonClock,
                logger: Logger, events: EventRecorder, ticks: TickSource = .sleeping, writeConcurrency: Int = 256,
                heartbeatPollInterval: Duration = .milliseconds(25), heartbeatDisplayPeriod: Duration = .seconds(10),
                probe: (@Sendable (String) async -> Bool)? = nil,
                onPlacement: (@Sendable (PlacementReport) -> Void)? = nil) {
        self.placementObserver = onPlacement
        self.probe = probe
        self.heartbeats = heartbeats
        self.heartbeatPollInterval = heartbeatPollInterval
        self.heartbeatDisplayPeriod = heartbeatDisplayPeriod
        self.store = store
        self.settings = settings
        var failover = EgressFailoverSettings(settings)
        if probe == nil { failover.probeSuspectAfter = nil }
        self.failover = failover
        self.clock = clock
        self.logger = logger
        self.events = events
        self.ticks = ticks
        self.writeConcurrency = max(1, writeConcurrency)
    }

    /// Lists, watches and ticks until the task is cancelled. Throws when the store fails (a watch
    /// that falls behind is listed again instead).
    public func run() async throws {
        let queue = InputQueue()
        defer { queue.finish() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for kind in Self.watchedKinds {
                group.addTask { try await pump(kind: kind, into: queue) }
            }
            group.addTask {
                switch ticks.source {
                case .sleeping:
                    let period = failover.tunnelMonitorPeriod
                    while (try? await Task.sleep(for: period)) != nil { queue.push(.tick) }
                case .stream(let stream):
                    for await _ in stream { queue.push(.tick) }
                }
            }
            if case .sleeping = ticks.source, heartbeats != nil {
                group.addTask {
                    let period = heartbeatPollInterval
                    while (try? await Task.sleep(for: period)) != nil { queue.push(.pollHeartbeats) }
                }
            }
            group.addTask {
                var loop = EgressControllerLoop(controller: self)
                loop.post = { queue.push($0) }
                for await _ in queue.signal {
                    if Task.isCancelled { break }
                    let batch = queue.drain()
                    if batch.isEmpty { continue }
                    await loop.handle(batch)
                }
            }
            // Children end only when cancelled; a store error thrown by a pump ends the others.
            while let _ = try await group.next() {}
        }
    }

    /// Lists one kind, then watches it from the list's revision; lists again when the watch is gone (410).
    private func pump(kind: String, into queue: InputQueue) async throws {
        var revision: Int64?
        while !Task.isCancelled {
            if revision == nil {
                let list = try await store.list(kind: kind, namespace: nil, selector: nil)
                queue.push(.snapshot(kind: kind, items: list.items, at: clock.now))
                revision = list.revision
            }
            do {
                let stream = try await store.watch(kind: kind, namespace: nil, since: revision!)
                for try await event in stream {
                    queue.push(.event(event, at: clock.now))
                    revision = event.revision
                }
                if Task.isCancelled { return }
                throw APIError.unavailable("the \(kind) watch ended")
            } catch let error as APIError where error.code == 410 {
                logger.info("watch fell behind; listing again", metadata: ["kind": "\(kind)"])
                revision = nil
            }
        }
    }
}

/// What the controller's loop consumes: list snapshots, watch events (stamped with the
/// controller's clock when they arrived) and monitor ticks.
enum EgressControllerInput: Sendable {
    case snapshot(kind: String, items: [Resource], at: BatonInstant)
    case event(WatchEvent, at: BatonInstant)
    case tick
    /// Read the heartbeat log (a tick reads it too).
    case pollHeartbeats
    /// A probe of a silent node's address (`HeartbeatMonitor.Decision.probe`) finished.
    case probed(node: String, reachable: Bool, startedAt: BatonInstant)
}

/// A queue the loop drains in batches, so a burst of changes costs one placement.
final class InputQueue: Sendable {
    private let buffer = Mutex<[EgressControllerInput]>([])
    let signal: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (signal, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func push(_ input: EgressControllerInput) {
        buffer.withLock { $0.append(input) }
        continuation.yield()
    }

    func drain() -> [EgressControllerInput] {
        buffer.withLock { b in
            defer { b.removeAll(keepingCapacity: true) }
            return b
        }
    }

    func finish() { continuation.finish() }
}
