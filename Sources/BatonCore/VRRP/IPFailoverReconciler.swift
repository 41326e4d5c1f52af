import BatonAPI

/// Which IPFailovers one node runs, and what its agent must start, restart or stop to get
/// there: the agent's managed mode. Pure: it is fed the node's labels, the IPFailovers (a full
/// list, then changes one by one) and what became of each speaker, with `now` from the
/// caller's clock, and returns actions. The caller carries them out in order and calls
/// `handle(.timerFired)` at `nextDeadline`.
///
///     var r = IPFailoverReconciler()
///     r.handle(.nodeObserved(labels: ["ipfailover": "web"]), now: t)   // [] (nothing listed yet)
///     r.handle(.listed([web]), now: t)                                 // [.start(web)]
///     r.handle(.changed(webWithOffset20), now: t)                      // [.restart(web')]
///     r.handle(.deleted(name: "web"), now: t)                          // [.stop("web", .deleted)]
///
/// Rules:
/// - Nothing is decided before both the node and the IPFailovers have been read once: an agent
///   that starts does not stop what it has not yet seen.
/// - An IPFailover applies when its `nodeSelector` (absent: every node) matches the node's
///   labels and its `replicas` is not 0. OpenShift runs its keepalived pods on `replicas` of
///   the selected nodes; Baton runs it on every selected node (as a DaemonSet would), and
///   `replicas` only steers the priorities, as `OPENSHIFT_HA_REPLICA_COUNT` does in the pod.
///   `replicas: 0` stops it everywhere, as scaling the deployment to 0 does.
/// - A change of spec (or a new object under the same name: another uid) restarts the
///   IPFailover: its speaker leaves (priority 0, VIPs removed) and a new one starts. A change
///   to metadata or status alone changes nothing.
/// - A speaker that fails on its own (an interface that is missing, a socket that cannot open)
///   is started again after `retryDelay`, doubling up to `maxRetryDelay`, unless its spec
///   changes first (then at once) or it stops applying.
/// - Stops come first, then restarts, then starts, each in name order: an IPFailover that gives
///   up VRIDs or VIPs on an edit frees them before another takes them.
public struct IPFailoverReconciler: Sendable {
    /// What one IPFailover asks of the nodes.
    public struct Desired: Sendable, Hashable {
        public var name: String
        public var uid: String?
        public var generation: Int64?
        public var spec: IPFailoverSpec

        public init(name: String, uid: String? = nil, generation: Int64? = nil, spec: IPFailoverSpec) {
            self.name = name
            self.uid = uid
            self.generation = generation
            self.spec = spec
        }

        /// Whether running `self` instead of `other` needs a restart.
        func differs(from other: Desired) -> Bool { spec != other.spec || uid != other.uid }
    }

    public enum StopReason: String, Sendable, Hashable, CustomStringConvertible {
        /// The IPFailover was deleted.
        case deleted
        /// Its node selector does not match the node (any more).
        case notSelected
        /// `replicas: 0`.
        case scaledToZero
        /// The node's Node object is gone.
        case nodeGone
        /// The agent is shutting down.
        case shutdown

        public var description: String {
            switch self {
            case .deleted: "the IPFailover was deleted"
            case .notSelected: "its node selector does not match this node"
            case .scaledToZero: "replicas is 0"
            case .nodeGone: "this node's Node object is gone"
            case .shutdown: "the agent is shutting down"
            }
        }
    }

    public enum Action: Sendable, Hashable {
        case start(Desired)
        /// Stop what runs under `Desired.name`, then start this.
        case restart(Desired)
        /// Stop the IPFailover's speaker (idempotent: it may have failed and be waiting to retry).
        case stop(name: String, reason: StopReason)
    }

    public enum Event: Sendable, Hashable {
        /// The node's labels; nil when its Node object does not exist.
        case nodeObserved(labels: [String: String]?)
        /// Every IPFailover, read at once (at start, and again after a watch broke).
        case listed([Desired])
        /// One IPFailover created or changed.
        case changed(Desired)
        case deleted(name: String)
        /// The IPFailover's speaker ended on its own with an error; it is no longer running.
        case speakerFailed(name: String)
        case timerFired
        /// Stop everything, and decide nothing more.
        case shutdown
    }

    /// How long a failed speaker waits before its first retry.
    public let retryDelay: Duration
    public let maxRetryDelay: Duration

    private var labels: [String: String]?? = nil
    private var resources: [String: Desired]? = nil
    /// What the caller runs (or is starting), by name.
    public private(set) var running: [String: Desired] = [:]
    /// Failed speakers waiting to start again.
    private var failed: [String: (desired: Desired, retryAt: BatonInstant)] = [:]
    /// The last retry delay of each IPFailover whose speaker failed, until its spec changes or
    /// it stops applying.
    private var retryDelays: [String: Duration] = [:]
    private var stopped = false

    public init(retryDelay: Duration = .seconds(1), maxRetryDelay: Duration = .seconds(30)) {
        self.retryDelay = retryDelay
        self.maxRetryDelay = maxRetryDelay
    }

    /// Whether the node and the IPFailovers have both been read, so that decisions are made.
    public var isDeciding: Bool {
        guard case .some = labels, resources != nil else { return false }
        return !stopped
    }

    /// Every IPFailover this node runs or will run again after a failure.
    public var applying: Set<String> { Set(running.keys).union(failed.keys) }

    /// When `handle(.timerFired)` is due: the earliest retry of a failed speaker.
    public var nextDeadline: BatonInstant? { failed.values.map(\.retryAt).min() }

    /// Whether `spec` applies to a node with `labels`: its selector (absent: every node) matches
    /// and `replicas` is not 0.
    public static func applies(_ spec: IPFailoverSpec, to labels: [String: String]) -> Bool {
        spec.effectiveReplicas > 0 && (spec.nodeSelector?.matches(labels) ?? true)
    }

    public mutating func handle(_ event: Event, now: BatonInstant) -> [Action] {
        guard !stopped else { return [] }
        switch event {
        case .nodeObserved(let l):
            labels = .some(l)
        case .listed(let all):
            resources = Dictionary(all.map { ($0.name, $0) }, uniquingKeysWith: { _, b in b })
        case .changed(let d):
            resources?[d.name] = d
        case .deleted(let name):
            resources?[name] = nil
        case .speakerFailed(let name):
            guard let d = running.removeValue(forKey: name) else { return [] }
            let delay = retryDelays[name].map { min(maxRetryDelay, $0 * 2) } ?? retryDelay
            retryDelays[name] = delay
            failed[name] = (d, now + delay)
            return []
        case .timerFired:
            break
        case .shutdown:
            stopped = true
            let names = Set(running.keys).union(failed.keys).sorted()
            running = [:]
            failed = [:]
            retryDelays = [:]
            return names.map { .stop(name: $0, reason: .shutdown) }
        }
        return reconcile(now: now)
    }

    /// Why `name` does not apply to this node, or nil when it does.
    private func exclusion(_ name: String) -> StopReason? {
        guard case .some(let nodeLabels) = labels else { return nil }
        guard let nodeLabels else { return .nodeGone }
        guard let d = resources?[name] else { return .deleted }
        if d.spec.effectiveReplicas == 0 { return .scaledToZero }
        return Self.applies(d.spec, to: nodeLabels) ? nil : .notSelected
    }

    private mutating func reconcile(now: BatonInstant) -> [Action] {
        guard case .some = labels, let resources else { return [] }
        var stops: [Action] = [], restarts: [Action] = [], starts: [Action] = []
        for name in Set(running.keys).union(failed.keys).sorted() {
            if let reason = exclusion(name) {
                running[name] = nil
                failed[name] = nil
                retryDelays[name] = nil
                stops.append(.stop(name: name, reason: reason))
            }
        }
        for name in resources.keys.sorted() where exclusion(name) == nil {
            let d = resources[name]!
            if let current = running[name] {
                if d.differs(from: current) {
                    running[name] = d
                    retryDelays[name] = nil
                    restarts.append(.restart(d))
                } else {
                    running[name] = d   // a newer generation of the same spec: nothing to do
                }
            } else if let waiting = failed[name] {
                if d.differs(from: waiting.desired) || waiting.retryAt <= now {
                    if d.differs(from: waiting.desired) { retryDelays[name] = nil }
                    failed[name] = nil
                    running[name] = d
                    starts.append(.start(d))
                }
            } else {
                running[name] = d
                starts.append(.start(d))
            }
        }
        return stops + restarts + starts
    }
}
