import BatonAPI
import BatonClient
import BatonCore
import BatonVRRP
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The agent's managed mode: runs every IPFailover whose node selector matches this node's
/// Node, each as the ipfailover pod's keepalived would run it here
/// (`VRRPSpeakerConfiguration.fromIPFailover`), and reports each instance's state in the
/// IPFailover's `status.nodes.NODE`.
///
/// It follows its own Node (a watch on `metadata.name`, so an operator's `baton label` counts)
/// and every IPFailover (list, then watch), and feeds what it reads to `IPFailoverReconciler`,
/// which decides what to start, restart and stop; one task carries the decisions out in order,
/// waiting for a speaker to have left (priority 0 sent, VIPs, table and macvlans removed)
/// before the next action. A speaker that fails on its own is retried on the reconciler's
/// schedule. On graceful shutdown every speaker leaves and the node's status entries are
/// removed.
///
/// The data plane never waits on the control plane: if the server goes away, the speakers keep
/// running as they are until a decision changes them.
public final class IPFailoverAgent: Service, Sendable {
    let client: BatonClient
    let node: String
    let speakers: any IPFailoverSpeakerFactory
    let clock: any BatonClock
    let logger: Logger
    let reporter: IPFailoverStatusReporter
    private let reconciler: Mutex<IPFailoverReconciler>
    private let actions: AsyncStream<[IPFailoverReconciler.Action]>
    private let actionsIn: AsyncStream<[IPFailoverReconciler.Action]>.Continuation
    private let timerWake: AsyncStream<Void>
    private let timerWakeIn: AsyncStream<Void>.Continuation
    /// This node's status entry of each IPFailover it runs (or refused), as last reported.
    private let entries = Mutex<[String: IPFailoverStatus.NodeState]>([:])
    /// The last list of IPFailovers, until its stale status entries have been looked for.
    private let listedSinceCheck = Mutex<[Resource]?>(nil)

    public init(client: BatonClient, node: String, speakers: any IPFailoverSpeakerFactory,
                reconciler: IPFailoverReconciler = IPFailoverReconciler(),
                clock: any BatonClock = MonotonicClock(), logger: Logger) {
        self.client = client
        self.node = node
        self.speakers = speakers
        self.clock = clock
        self.logger = logger
        self.reporter = IPFailoverStatusReporter(client: client, node: node, logger: logger)
        self.reconciler = Mutex(reconciler)
        (actions, actionsIn) = AsyncStream.makeStream()
        (timerWake, timerWakeIn) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.execute() }
            group.addTask { await self.reporter.run() }
            await withTaskGroup(of: Void.self) { inputs in
                inputs.addTask { await self.followNode() }
                inputs.addTask { await self.followIPFailovers() }
                inputs.addTask { await self.timerLoop() }
                try? await gracefulShutdown()
                inputs.cancelAll()
            }
            // Every speaker leaves (priority 0), then the action stream ends the executor.
            decide(.shutdown)
            actionsIn.finish()
            timerWakeIn.finish()
            await group.next()
            reporter.finish()
            await group.waitForAll()
        }
    }

    /// Feeds one event to the reconciler and queues its actions, in the order decided.
    func decide(_ event: IPFailoverReconciler.Event) {
        let now = clock.now
        reconciler.withLock { r in
            let decided = r.handle(event, now: now)
            if !decided.isEmpty { actionsIn.yield(decided) }
        }
        timerWakeIn.yield()
        removeStaleEntries()
    }

    // MARK: Inputs

    /// This node's labels: its Node object only (the server filters), listed then watched.
    func followNode() async {
        let selector = "metadata.name=\(node)"
        while !Task.isCancelled {
            do {
                let (items, revision) = try await client.list(.node, namespace: nil, fieldSelector: selector)
                decide(.nodeObserved(labels: items.first.map(\.labels)))
                for try await event in try await client.watch(.node, namespace: nil, resourceVersion: revision, fieldSelector: selector) {
                    decide(.nodeObserved(labels: event.type == "DELETED" ? nil : event.object.labels))
                }
            } catch {
                if Task.isCancelled { return }
                logger.debug("node watch ended; listing again", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    /// Every IPFailover: the selector is the node's business, so the agent reads them all.
    func followIPFailovers() async {
        while !Task.isCancelled {
            do {
                let (items, revision) = try await client.list(.ipFailover, namespace: nil)
                listedSinceCheck.withLock { $0 = items }
                decide(.listed(items.compactMap(desired)))
                for try await event in try await client.watch(.ipFailover, namespace: nil, resourceVersion: revision) {
                    if event.type == "DELETED" {
                        decide(.deleted(name: event.object.name))
                    } else if let d = desired(event.object) {
                        decide(.changed(d))
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.debug("IPFailover watch ended; listing again", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    /// Removes this node's status entry from the listed IPFailovers it does not run (left by an
    /// agent that crashed, or that ran before the node was relabelled while it was down), once
    /// the reconciler has decided on that list.
    func removeStaleEntries() {
        guard let (items, applying) = reconciler.withLock({ r -> ([Resource], Set<String>)? in
            guard r.isDeciding, let items = listedSinceCheck.withLock({ l in defer { l = nil }; return l }) else { return nil }
            return (items, r.applying)
        }) else { return }
        for item in items where !applying.contains(item.name) && item.status?["nodes"]?[node] != nil {
            logger.info("removing this node's stale status entry", metadata: ["ipfailover": "\(item.name)"])
            reporter.set(item.name, nil)
        }
    }

    func desired(_ object: Resource) -> IPFailoverReconciler.Desired? {
        do {
            return IPFailoverReconciler.Desired(name: object.name, uid: object.metadata.uid, generation: object.metadata.generation,
                                                spec: try object.decodeSpec(IPFailoverSpec.self))
        } catch {
            logger.warning("cannot read an IPFailover's spec; ignoring it", metadata: ["ipfailover": "\(object.name)", "error": "\(error)"])
            return nil
        }
    }

    /// Delivers `.timerFired` at the reconciler's `nextDeadline` (a failed speaker's retry).
    /// While a deadline is pending it looks again at least every second, so an earlier
    /// deadline that appears meanwhile is not missed by more than that.
    func timerLoop() async {
        var wakes = timerWake.makeAsyncIterator()
        while !Task.isCancelled {
            let deadline = reconciler.withLock { $0.nextDeadline }
            if let deadline {
                let now = clock.now
                if deadline <= now { decide(.timerFired); continue }
                try? await Task.sleep(for: min(deadline - now, .seconds(1)))
            } else if await wakes.next() == nil {
                return
            }
        }
    }

    // MARK: Carrying out

    /// A speaker this node runs, and how to wait for it to leave.
    final class Running: Sendable {
        let speaker: (any IPFailoverSpeaker)?
        let done: AsyncStream<Void>
        /// Set before the speaker is asked to leave: an error after that is not a failure.
        let stopping: Mutex<Bool>

        init(speaker: (any IPFailoverSpeaker)?, done: AsyncStream<Void>, stopping: Bool) {
            self.speaker = speaker
            self.done = done
            self.stopping = Mutex(stopping)
        }
    }

    func execute() async {
        var running: [String: Running] = [:]
        await withTaskGroup(of: Void.self) { group in
            for await batch in actions {
                for action in batch {
                    switch action {
                    case .start(let d):
                        running[d.name] = start(d, in: &group)
                    case .restart(let d):
                        logger.notice("restarting an IPFailover: its spec changed", metadata: ["ipfailover": "\(d.name)", "generation": "\(d.generation ?? 0)"])
                        if let r = running.removeValue(forKey: d.name) { await stop(r) }
                        running[d.name] = start(d, in: &group)
                    case .stop(let name, let reason):
                        logger.notice("stopping an IPFailover", metadata: ["ipfailover": "\(name)", "reason": "\(reason)"])
                        if let r = running.removeValue(forKey: name) { await stop(r) }
                        entries.withLock { _ = $0.removeValue(forKey: name) }
                        if reason == .deleted { reporter.forget(name) } else { reporter.set(name, nil) }
                    }
                }
            }
            for r in running.values { await stop(r) }
            await group.waitForAll()
        }
    }

    /// Maps the IPFailover onto this node's speaker and starts it. A refusal is reported in the
    /// status and not retried (the spec must change); a speaker that fails is reported and
    /// retried by the reconciler.
    func start(_ d: IPFailoverReconciler.Desired, in group: inout TaskGroup<Void>) -> Running {
        let (done, doneIn) = AsyncStream<Void>.makeStream()
        let interface = d.spec.effectiveInterface
        let configuration: VRRPSpeakerConfiguration
        let speaker: any IPFailoverSpeaker
        var speakerLogger = logger
        speakerLogger[metadataKey: "ipfailover"] = "\(d.name)"
        do {
            configuration = try VRRPSpeakerConfiguration.fromIPFailover(
                name: d.name, spec: d.spec, nodeAddress: speakers.nodeAddress(interface: interface), seed: "\(node)/\(d.name)")
            speaker = try speakers.makeSpeaker(name: d.name, configuration: configuration, logger: speakerLogger) { [self] t in
                transition(d.name, t)
            }
        } catch {
            let message = (error as? VRRPConfigError)?.message ?? "\(error)"
            logger.error("cannot run an IPFailover on this node", metadata: ["ipfailover": "\(d.name)", "error": "\(message)"])
            report(d.name, IPFailoverStatus.NodeState(observedGeneration: d.generation, lastTransitionTime: Self.now(), message: message))
            doneIn.finish()
            return Running(speaker: nil, done: done, stopping: true)
        }
        logger.notice("running an IPFailover on this node", metadata: [
            "ipfailover": "\(d.name)", "generation": "\(d.generation ?? 0)", "interface": "\(interface)",
            "instances": "\(RecordingIPFailoverSpeakers.describe(configuration))",
        ])
        report(d.name, IPFailoverStatus.NodeState(
            observedGeneration: d.generation,
            instances: configuration.instances.map { .init(name: $0.name, vrid: Int64($0.vrid), state: "init", priority: Int64($0.priority)) },
            lastTransitionTime: Self.now()))
        let running = Running(speaker: speaker, done: done, stopping: false)
        group.addTask { [self] in
            do {
                try await speaker.run()
            } catch {
                let stopping = running.stopping.withLock { $0 }
                if !stopping {
                    logger.error("an IPFailover's speaker failed; it will be started again", metadata: ["ipfailover": "\(d.name)", "error": "\(error)"])
                    report(d.name, IPFailoverStatus.NodeState(observedGeneration: d.generation, lastTransitionTime: Self.now(),
                                                              message: "the speaker failed: \(error)"))
                    decide(.speakerFailed(name: d.name))
                }
            }
            doneIn.finish()
        }
        return running
    }

    /// Asks the speaker to leave and waits until it has.
    func stop(_ r: Running) async {
        r.stopping.withLock { $0 = true }
        r.speaker?.requestStop()
        for await _ in r.done {}
    }

    /// An instance changed state: its entry in the status follows (STOP is the speaker leaving,
    /// which the entry's removal reports).
    func transition(_ name: String, _ t: VRRPSpeaker.Transition) {
        guard t.state != .stop else { return }
        let updated: IPFailoverStatus.NodeState? = entries.withLock { all in
            guard var entry = all[name], var instances = entry.instances,
                  let i = instances.firstIndex(where: { $0.name == t.instance }) else { return nil }
            instances[i].state = t.state.rawValue.lowercased()
            instances[i].priority = Int64(t.priority)
            entry.instances = instances
            entry.lastTransitionTime = Self.now()
            all[name] = entry
            return entry
        }
        if let updated { reporter.set(name, updated) }
    }

    func report(_ name: String, _ entry: IPFailoverStatus.NodeState) {
        entries.withLock { $0[name] = entry }
        reporter.set(name, entry)
    }

    static func now() -> String { Timestamp.format(Date()) }
}
