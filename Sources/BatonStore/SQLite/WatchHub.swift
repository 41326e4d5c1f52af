import BatonAPI
import GRDB
import Logging
import Synchronization

/// Fans the change log out to a store's watchers.
///
/// One tailer per store reads log rows after `lastSeen`, decodes each change once, and pushes
/// it into the queue of every matching subscriber. The tailer runs when a local commit signals
/// it and at every poll tick (for commits by other processes). It never waits for a
/// subscriber: a subscriber whose queue reaches `bufferLimit` is dropped with 410 Gone.
///
/// A new subscriber is registered first and replays history afterwards: everything at or
/// below `lastSeen` at registration is committed, so its replay (a later snapshot) covers it,
/// and everything after `lastSeen` reaches its queue. The overlap is removed by revision.
final class WatchHub: Sendable {
    private struct State {
        var lastSeen: Int64
        var subscribers: [Int: WatchSubscriber] = [:]
        var nextID = 0
        var closed = false
    }

    /// One decoded change with the key fields a subscriber filters on.
    struct Change: Sendable {
        var kind: String
        var namespace: String
        var event: WatchEvent
    }

    static let tailPageSize = 1_000

    let bufferLimit: Int
    let logger: Logger
    private let state: Mutex<State>
    private let signals: AsyncStream<Void>
    private let signalContinuation: AsyncStream<Void>.Continuation

    init(lastSeen: Int64, bufferLimit: Int, logger: Logger) {
        self.state = Mutex(State(lastSeen: lastSeen))
        self.bufferLimit = bufferLimit
        self.logger = logger
        (signals, signalContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    var lastSeen: Int64 { state.withLock { $0.lastSeen } }
    var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// Wakes the tailer: a commit was made through this store.
    func signal() {
        signalContinuation.yield()
    }

    func register(kind: String?, namespace: String?) throws(APIError) -> WatchSubscriber {
        let subscriber = state.withLock { s -> WatchSubscriber? in
            guard !s.closed else { return nil }
            s.nextID += 1
            let sub = WatchSubscriber(id: s.nextID, kind: kind, namespace: namespace, bufferLimit: bufferLimit)
            s.subscribers[sub.id] = sub
            return sub
        }
        guard let subscriber else { throw APIError.unavailable("the store is closed") }
        return subscriber
    }

    func unregister(_ id: Int) {
        _ = state.withLock { $0.subscribers.removeValue(forKey: id) }
    }

    /// Ends every subscriber's stream normally and refuses new ones.
    func close() {
        let subscribers = state.withLock { s -> [WatchSubscriber] in
            s.closed = true
            defer { s.subscribers = [:] }
            return Array(s.subscribers.values)
        }
        for sub in subscribers { sub.end(.finished) }
        signalContinuation.finish()
    }

    /// The tailer: runs until its task is cancelled or the hub is closed.
    func runTailer(reader: any DatabaseReader, pollInterval: Duration?) async {
        await withTaskGroup(of: Void.self) { group in
            if let pollInterval {
                group.addTask { [signalContinuation] in
                    while !Task.isCancelled {
                        do { try await Task.sleep(for: pollInterval) } catch { return }
                        signalContinuation.yield()
                    }
                }
            }
            group.addTask { [self] in
                for await _ in signals {
                    await drain(reader)
                }
            }
            // The signal stream ends on close(); stop polling then too.
            _ = await group.next()
            group.cancelAll()
        }
    }

    /// Reads and delivers every change after `lastSeen`.
    private func drain(_ reader: any DatabaseReader) async {
        while !Task.isCancelled {
            let from = lastSeen
            let page: (state: ChangeLog.State, changes: [LoggedChange])
            do {
                page = try await reader.read { db in try ChangeLog.page(db, after: from, limit: Self.tailPageSize) }
            } catch {
                logger.warning("watch tailer could not read the change log; retrying at the next signal",
                               metadata: ["error": "\(error)"])
                return
            }
            if page.state.compacted > from {
                // Another process wrote and compacted past us while we were not looking.
                failAll(ChangeLog.tooOld(from, compacted: page.state.compacted), advancingTo: page.state.compacted)
                continue
            }
            guard !page.changes.isEmpty else { return }
            deliver(page.changes)
            if page.changes.count < Self.tailPageSize { return }
        }
    }

    private func deliver(_ logged: [LoggedChange]) {
        guard let last = logged.last?.revision else { return }
        let idle = state.withLock { s -> Bool in
            guard s.subscribers.isEmpty else { return false }
            s.lastSeen = max(s.lastSeen, last)
            return true
        }
        if idle { return }

        // Decode outside the lock; a subscriber registered meanwhile still gets these
        // (lastSeen has not moved yet) and drops what its replay already delivered.
        var changes: [Change] = []
        changes.reserveCapacity(logged.count)
        for row in logged {
            do {
                changes.append(Change(kind: row.kind, namespace: row.namespace, event: try row.event()))
            } catch {
                logger.error("skipping an unreadable change log row",
                             metadata: ["revision": "\(row.revision)", "error": "\(error)"])
            }
        }

        var wake: [CheckedContinuation<Void, Never>] = []
        var dropped: [Int] = []
        state.withLock { s in
            let fresh = changes.filter { $0.event.revision > s.lastSeen }
            for (id, sub) in s.subscribers {
                let result = sub.push(fresh)
                if let waiter = result.waiter { wake.append(waiter) }
                if result.overflowed { dropped.append(id) }
            }
            for id in dropped { s.subscribers[id] = nil }
            s.lastSeen = max(s.lastSeen, last)
        }
        for waiter in wake { waiter.resume() }
        if !dropped.isEmpty {
            logger.notice("dropped slow watchers: more than \(bufferLimit) changes were waiting",
                          metadata: ["watchers": "\(dropped.count)", "revision": "\(last)"])
        }
    }

    private func failAll(_ error: APIError, advancingTo revision: Int64) {
        let subscribers = state.withLock { s -> [WatchSubscriber] in
            s.lastSeen = max(s.lastSeen, revision)
            defer { s.subscribers = [:] }
            return Array(s.subscribers.values)
        }
        for sub in subscribers { sub.end(.failed(error)) }
        logger.warning("the change log was compacted past the watch tailer; watchers must resume",
                       metadata: ["watchers": "\(subscribers.count)", "error": "\(error.message)"])
    }
}

/// The queue between the tailer and one watcher.
final class WatchSubscriber: Sendable {
    enum Ending: Sendable {
        case finished
        case failed(APIError)
    }

    enum Wakeup: Sendable {
        case events([WatchEvent])
        case ended(Ending)
        case cancelled
    }

    private struct State {
        var queue: [WatchEvent] = []
        var waiter: CheckedContinuation<Void, Never>?
        var ending: Ending?
        var cancelled = false

        mutating func takeWaiter() -> CheckedContinuation<Void, Never>? {
            defer { waiter = nil }
            return waiter
        }
    }

    let id: Int
    let kind: String?
    let namespace: String?
    let bufferLimit: Int
    private let state = Mutex(State())

    init(id: Int, kind: String?, namespace: String?, bufferLimit: Int) {
        self.id = id
        self.kind = kind
        self.namespace = namespace
        self.bufferLimit = bufferLimit
    }

    func matches(_ change: WatchHub.Change) -> Bool {
        if let kind, change.kind != kind { return false }
        if let namespace, change.namespace != namespace { return false }
        return true
    }

    /// Queues the matching changes. Returns the waiter to resume (outside any lock), and
    /// whether the queue overflowed, which ends this subscriber with 410 Gone once it has
    /// taken what was queued.
    func push(_ changes: [WatchHub.Change]) -> (waiter: CheckedContinuation<Void, Never>?, overflowed: Bool) {
        state.withLock { s in
            guard s.ending == nil else { return (nil, false) }
            var added = false
            for change in changes where matches(change) {
                if s.queue.count >= bufferLimit {
                    s.ending = .failed(APIError.gone(
                        "watch fell more than \(bufferLimit) changes behind at revision \(change.event.revision); "
                            + "watch again from the last resourceVersion received"))
                    return (s.takeWaiter(), true)
                }
                s.queue.append(change.event)
                added = true
            }
            return (added ? s.takeWaiter() : nil, false)
        }
    }

    /// Whether the subscription has ended (its queue may still hold changes).
    var isEnded: Bool { state.withLock { $0.ending != nil || $0.cancelled } }

    func end(_ ending: Ending) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.ending == nil { s.ending = ending }
            return s.takeWaiter()
        }
        waiter?.resume()
    }

    /// Waits until changes are queued, the subscription ends, or the task is cancelled.
    /// Queued changes come out before the ending.
    func next() async -> Wakeup {
        while true {
            let ready = state.withLock { s -> Wakeup? in
                if !s.queue.isEmpty {
                    defer { s.queue = [] }
                    return .events(s.queue)
                }
                if let ending = s.ending { return .ended(ending) }
                if s.cancelled { return .cancelled }
                return nil
            }
            if let ready { return ready }
            if Task.isCancelled { return .cancelled }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { s -> Bool in
                        if !s.queue.isEmpty || s.ending != nil || s.cancelled { return true }
                        s.waiter = c
                        return false
                    }
                    if resumeNow { c.resume() }
                }
            } onCancel: {
                state.withLock { s -> CheckedContinuation<Void, Never>? in
                    s.cancelled = true
                    return s.takeWaiter()
                }?.resume()
            }
        }
    }
}

/// The consumer's side of one watch: replays history from the log page by page as the
/// consumer pulls, then takes live changes from its subscriber, delivering each revision once.
/// Dropping it (the stream is released or its task cancelled) unregisters the subscriber.
final class WatchCursor: Sendable {
    private struct State {
        /// The last revision delivered (or the starting revision): anything at or below is a duplicate.
        var cursor: Int64
        var replaying = true
        var batch: [WatchEvent] = []
        var index = 0
        var done = false
    }

    private enum Step {
        case event(WatchEvent)
        case replay(after: Int64)
        case live
        case end
    }

    static let replayPageSize = 500

    let subscriber: WatchSubscriber
    let hub: WatchHub
    let reader: any DatabaseReader
    let configuration: SQLiteStore.Configuration
    private let state: Mutex<State>

    init(subscriber: WatchSubscriber, hub: WatchHub, reader: any DatabaseReader, since: Int64,
         configuration: SQLiteStore.Configuration) {
        self.subscriber = subscriber
        self.hub = hub
        self.reader = reader
        self.configuration = configuration
        self.state = Mutex(State(cursor: since))
    }

    deinit {
        hub.unregister(subscriber.id)
    }

    /// Reads the first page of history, so that a compacted start fails the watch call itself.
    func start() async throws {
        let since = state.withLock { $0.cursor }
        do {
            try await replay(after: since)
        } catch {
            hub.unregister(subscriber.id)
            throw error
        }
    }

    func next() async throws -> WatchEvent? {
        while true {
            let step = state.withLock { s -> Step in
                if s.done { return .end }
                while s.index < s.batch.count {
                    let event = s.batch[s.index]
                    s.index += 1
                    if event.revision > s.cursor {
                        s.cursor = event.revision
                        return .event(event)
                    }
                }
                s.batch = []
                s.index = 0
                return s.replaying ? .replay(after: s.cursor) : .live
            }
            switch step {
            case .event(let event):
                return event
            case .end:
                return nil
            case .replay(let after):
                do {
                    try await replay(after: after)
                } catch is CancellationError {
                    finish()
                    return nil
                } catch {
                    finish()
                    throw error
                }
            case .live:
                switch await subscriber.next() {
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
    }

    /// Loads the next page of history into the batch; the last page switches the cursor to live.
    private func replay(after revision: Int64) async throws {
        let kind = subscriber.kind
        let namespace = subscriber.namespace
        let limit = Self.replayPageSize
        let page: (state: ChangeLog.State, changes: [LoggedChange])
        do {
            page = try await reader.read { db in
                let page = try ChangeLog.page(db, after: revision, kind: kind, namespace: namespace, limit: limit)
                if revision < page.state.compacted {
                    throw ChangeLog.tooOld(revision, compacted: page.state.compacted)
                }
                return page
            }
        } catch {
            throw SQLiteStore.storageError(error, doing: "watch replay", configuration: configuration)
        }
        let events = try page.changes.map { change throws(APIError) in try change.event() }
        state.withLock { s in
            s.batch = events
            s.index = 0
            if page.changes.count < limit { s.replaying = false }
        }
    }

    private func finish() {
        state.withLock { s in
            s.done = true
            s.batch = []
        }
        hub.unregister(subscriber.id)
    }
}
