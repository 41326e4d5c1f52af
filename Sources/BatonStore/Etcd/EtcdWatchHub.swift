import BatonAPI
import BatonEtcd
import Foundation
import Logging
import Synchronization

/// Fans one etcd watch on `PREFIX/objects/` out to an `EtcdStore`'s watchers, as
/// kube-apiserver's watch cache does: N watchers cost one etcd stream, not N (through the JSON
/// gateway, each stream is an HTTP connection).
///
/// The shared watch starts with the first subscriber, from etcd's revision then, and runs until
/// the store closes. It decodes each change once, queues it for every matching subscriber, and
/// keeps the latest `watchCacheSize` changes, so a subscriber from any revision at or after
/// `complete` (every change after it is held or yet to come) is served from memory. An older
/// start gets an etcd watch of its own (after a check that etcd still has that history: else
/// 410 at once), feeding a subscriber the same way.
///
/// When the shared watch cannot be resumed (etcd compacted past it while it was cut off, or no
/// endpoint served it for `watchOutageLimit`), every subscriber ends with 410 or 503 after what
/// it had queued, and the watch starts again from etcd's current revision.
final class EtcdWatchHub: Sendable {
    private struct State {
        /// Every change after this revision is in `recent` or yet to come; nil until started.
        var complete: Int64?
        var recent: [WatchHub.Change] = []
        var recentStart = 0
        var subscribers: [Int: WatchSubscriber] = [:]
        /// Subscribers with an etcd watch of their own, and the task feeding each.
        var dedicated: [Int: (WatchSubscriber, Task<Void, Never>)] = [:]
        var nextID = 0
        var closed = false
        var starting: Task<EtcdWatch, any Error>?
        var upstream: Task<Void, Never>?

        var recentCount: Int { recent.count - recentStart }
    }

    let client: EtcdClient
    let keys: EtcdKeys
    let configuration: EtcdStore.Configuration
    let logger: Logger
    private let state = Mutex(State())

    init(client: EtcdClient, keys: EtcdKeys, configuration: EtcdStore.Configuration, logger: Logger) {
        self.client = client
        self.keys = keys
        self.configuration = configuration
        self.logger = logger
    }

    var subscriberCount: Int { state.withLock { $0.subscribers.count + $0.dedicated.count } }

    /// What a watcher reads from, and how to let go of it.
    struct Subscription: Sendable {
        var subscriber: WatchSubscriber
        var release: @Sendable () -> Void
    }

    func subscribe(kind: String?, namespace: String?, since: Int64) async throws -> Subscription {
        try await ensureStarted()
        let shared = state.withLock { s -> WatchSubscriber?? in
            guard !s.closed else { return .some(nil) }
            guard let complete = s.complete, since >= complete else { return nil }
            s.nextID += 1
            let sub = WatchSubscriber(id: s.nextID, kind: kind, namespace: namespace, bufferLimit: max(1, configuration.watchBufferLimit))
            // What this subscriber missed is in memory: queue it now, under the lock, so that it
            // comes before every change delivered after this point.
            let missed = s.recent[s.recentStart...].filter { $0.event.revision > since }
            if !missed.isEmpty { _ = sub.push(missed) }  // nobody waits on a new subscriber yet
            s.subscribers[sub.id] = sub
            return .some(sub)
        }
        switch shared {
        case .some(.some(let sub)):
            return Subscription(subscriber: sub, release: { [weak self] in self?.unregister(sub.id) })
        case .some(.none):
            throw APIError.unavailable("the store is closed")
        case .none:
            return try await subscribeDedicated(kind: kind, namespace: namespace, since: since)
        }
    }

    /// A subscriber with an etcd watch of its own, for a start older than the shared watch holds.
    private func subscribeDedicated(kind: String?, namespace: String?, since: Int64) async throws -> Subscription {
        // A compacted start must fail this call: reading at since + 1 fails the same way.
        do {
            _ = try await client.range(keys.objects, revision: since + 1, countOnly: true)
        } catch let error as EtcdError where error.code == .compacted {
            throw APIError.gone("too old resource version: \(since) (etcd has compacted the history after it)")
        } catch let error as EtcdError where error.message.contains("future revision") {
            // Nothing happened after `since` yet: fine.
        }
        let prefix = keys.objects(kind: kind, namespace: namespace)
        let watch = EtcdWatch(client: client, key: prefix, rangeEnd: EtcdJSON.prefixEnd(prefix), after: since,
                              outageLimit: configuration.watchOutageLimit)
        try await watch.start()
        let sub = state.withLock { s -> WatchSubscriber? in
            guard !s.closed else { return nil }
            s.nextID += 1
            return WatchSubscriber(id: s.nextID, kind: kind, namespace: namespace, bufferLimit: max(1, configuration.watchBufferLimit))
        }
        guard let sub else { throw APIError.unavailable("the store is closed") }
        let keys = self.keys
        let logger = self.logger
        let task = Task {
            while !Task.isCancelled, !sub.isEnded {
                do {
                    let changes = try await watch.next().compactMap { Self.change($0, keys: keys, logger: logger) }
                    let pushed = sub.push(changes)
                    pushed.waiter?.resume()
                    if pushed.overflowed { return }
                } catch is CancellationError {
                    return
                } catch {
                    sub.end(.failed(Self.watchError(error)))
                    return
                }
            }
        }
        let added = state.withLock { s -> Bool in
            guard !s.closed else { return false }
            s.dedicated[sub.id] = (sub, task)
            return true
        }
        if !added {
            task.cancel()
            throw APIError.unavailable("the store is closed")
        }
        return Subscription(subscriber: sub, release: { [weak self] in self?.unregister(sub.id) })
    }

    func unregister(_ id: Int) {
        let task = state.withLock { s -> Task<Void, Never>? in
            s.subscribers[id] = nil
            return s.dedicated.removeValue(forKey: id)?.1
        }
        task?.cancel()
    }

    /// Stops every etcd watch without waiting (the store is going away unclosed).
    func cancel() {
        state.withLock { s in
            s.upstream?.cancel()
            for (_, task) in s.dedicated.values { task.cancel() }
        }
    }

    /// Ends every subscriber normally and stops every etcd watch.
    func close() async {
        let (subs, tasks) = state.withLock { s -> ([WatchSubscriber], [Task<Void, Never>]) in
            s.closed = true
            let subs = Array(s.subscribers.values) + s.dedicated.values.map(\.0)
            let tasks = s.dedicated.values.map(\.1) + [s.upstream].compactMap { $0 }
            s.subscribers = [:]
            s.dedicated = [:]
            s.upstream = nil
            return (subs, tasks)
        }
        for sub in subs { sub.end(.finished) }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }

    // MARK: - The shared watch

    /// Starts the shared watch from etcd's current revision, once. The etcd watch is created
    /// before any subscriber is taken, so history the subscriber relies on cannot be compacted
    /// away before the watch holds it.
    private func ensureStarted() async throws {
        let task = state.withLock { s -> Task<EtcdWatch, any Error>? in
            guard s.complete == nil, !s.closed else { return nil }
            if let t = s.starting { return t }
            let (client, key, outage) = (self.client, keys.objects, configuration.watchOutageLimit)
            let t = Task {
                let watch = EtcdWatch(client: client, key: key, rangeEnd: EtcdJSON.prefixEnd(key),
                                      after: try await client.currentRevision(), outageLimit: outage)
                try await watch.start()
                return watch
            }
            s.starting = t
            return t
        }
        guard let task else { return }
        let watch: EtcdWatch
        do {
            watch = try await task.value
        } catch {
            state.withLock { s in if s.starting == task { s.starting = nil } }
            throw error
        }
        state.withLock { s in
            guard s.complete == nil, !s.closed else { return }
            s.complete = watch.lastRevision
            s.starting = nil
            s.upstream = Task { [self] in await runUpstream(watch) }
        }
    }

    private func runUpstream(_ first: EtcdWatch) async {
        var next: EtcdWatch? = first
        while !Task.isCancelled {
            let watch = next ?? EtcdWatch(client: client, key: keys.objects, rangeEnd: EtcdJSON.prefixEnd(keys.objects),
                                          after: state.withLock { $0.complete ?? 0 }, outageLimit: configuration.watchOutageLimit)
            next = nil
            while !Task.isCancelled {
                do {
                    let events = try await watch.next()
                    deliver(events.compactMap { Self.change($0, keys: keys, logger: logger) }, through: watch.lastRevision)
                } catch is CancellationError {
                    return
                } catch {
                    // The watch cannot go on from where it is: end every subscriber (they resume or
                    // list again) and start over from etcd's current revision.
                    let restart = (try? await client.currentRevision()) ?? watch.lastRevision
                    failAll(Self.watchError(error), restartingAt: restart)
                    if (error as? EtcdError)?.code != .compacted { try? await Task.sleep(for: .milliseconds(200)) }
                    break
                }
            }
        }
    }

    private func deliver(_ changes: [WatchHub.Change], through revision: Int64) {
        var wake: [CheckedContinuation<Void, Never>] = []
        var dropped = 0
        state.withLock { s in
            for (id, sub) in s.subscribers {
                let result = sub.push(changes)
                if let waiter = result.waiter { wake.append(waiter) }
                if result.overflowed {
                    s.subscribers[id] = nil
                    dropped += 1
                }
            }
            s.recent.append(contentsOf: changes)
            let excess = s.recentCount - max(0, configuration.watchCacheSize)
            if excess > 0 {
                s.complete = s.recent[s.recentStart + excess - 1].event.revision
                s.recentStart += excess
            }
            if s.recentStart > 4_096, s.recentStart * 2 > s.recent.count {
                s.recent.removeFirst(s.recentStart)
                s.recentStart = 0
            }
            if configuration.watchCacheSize <= 0 { s.complete = max(s.complete ?? revision, revision) }
        }
        for waiter in wake { waiter.resume() }
        if dropped > 0 {
            logger.notice("dropped slow watchers: more than \(configuration.watchBufferLimit) changes were waiting",
                          metadata: ["watchers": "\(dropped)", "revision": "\(revision)"])
        }
    }

    private func failAll(_ error: APIError, restartingAt revision: Int64) {
        let subs = state.withLock { s -> [WatchSubscriber] in
            defer { s.subscribers = [:] }
            s.recent = []
            s.recentStart = 0
            s.complete = revision
            return Array(s.subscribers.values)
        }
        for sub in subs { sub.end(.failed(error)) }
        logger.warning("the shared etcd watch could not resume; watchers must watch again",
                       metadata: ["watchers": "\(subs.count)", "error": "\(error.message)", "restartAt": "\(revision)"])
    }

    static func watchError(_ error: any Error) -> APIError {
        if let api = EtcdStore.apiError(error, doing: "watch") as? APIError { return api }
        return APIError.unavailable("watch failed: \(error)")
    }

    /// A change as watchers see it; nil (logged) for a key or value this store cannot read.
    static func change(_ event: EtcdEvent, keys: EtcdKeys, logger: Logger) -> WatchHub.Change? {
        guard let (kind, namespace, name) = keys.parse(event.kv.key) else { return nil }
        do {
            switch event.type {
            case .put:
                var object = try Resource(json: try JSONValue.parse(event.kv.value))
                object.metadata.resourceVersion = String(event.revision)
                let type: WatchEventType = event.kv.createRevision == event.kv.modRevision ? .added : .modified
                return WatchHub.Change(kind: kind, namespace: namespace, event: WatchEvent(type: type, object: object, revision: event.revision))
            case .delete:
                var object: Resource
                if let previous = event.prevKV {
                    object = try Resource(json: try JSONValue.parse(previous.value))
                } else {
                    object = Resource(apiVersion: "", kind: kind, metadata: ObjectMeta(name: name, namespace: namespace.isEmpty ? nil : namespace))
                }
                object.metadata.resourceVersion = String(event.revision)
                return WatchHub.Change(kind: kind, namespace: namespace, event: WatchEvent(type: .deleted, object: object, revision: event.revision))
            }
        } catch {
            logger.error("skipping an unreadable etcd change", metadata: ["key": "\(event.kv.key)", "revision": "\(event.revision)",
                                                                        "error": "\(error)"])
            return nil
        }
    }
}

/// The consumer's side of one `EtcdStore` watch: takes the subscriber's queued changes and
/// delivers each revision once, after the start revision. Dropping it lets go of the subscriber.
final class EtcdWatchCursor: Sendable {
    private struct State {
        var cursor: Int64
        var batch: [WatchEvent] = []
        var index = 0
        var done = false
    }

    let subscription: EtcdWatchHub.Subscription
    private let state: Mutex<State>

    init(subscription: EtcdWatchHub.Subscription, since: Int64) {
        self.subscription = subscription
        self.state = Mutex(State(cursor: since))
    }

    deinit { subscription.release() }

    func next() async throws -> WatchEvent? {
        while true {
            let ready = state.withLock { s -> (event: WatchEvent?, done: Bool) in
                if s.done { return (nil, true) }
                while s.index < s.batch.count {
                    let event = s.batch[s.index]
                    s.index += 1
                    if event.revision > s.cursor {
                        s.cursor = event.revision
                        return (event, false)
                    }
                }
                s.batch = []
                s.index = 0
                return (nil, false)
            }
            if let event = ready.event { return event }
            if ready.done { return nil }
            switch await subscription.subscriber.next() {
            case .events(let events):
                state.withLock { s in
                    s.batch = events
                    s.index = 0
                }
            case .ended(.finished), .cancelled:
                finish()
                return nil
            case .ended(.failed(let error)):
                finish()
                throw error
            }
        }
    }

    private func finish() {
        state.withLock { s in
            s.done = true
            s.batch = []
        }
        subscription.release()
    }
}
