import BatonAPI
import BatonStore
import Foundation
import Synchronization
import Testing

/// What every `ResourceStore` must do, run once per `StoreFactory.all`.
@Suite("ResourceStore conformance")
struct StoreConformanceTests {
    static let modified = "Operation cannot be fulfilled on StaticRoute \"r1\": the object has been modified; please apply your changes to the latest version and try again"

    @Test(arguments: StoreFactory.all)
    func createSetsMetadataAndGetReadsItBack(_ factory: StoreFactory) async throws {
        try await factory.with { store in
            let before = try await store.currentRevision()
            var input = Fixture.route("r1", labels: ["app": "web"])
            input.status = ["phase": "Ready"]
            input.metadata.uid = "caller-chosen"
            input.metadata.generation = 7
            let created = try await store.create(input)

            #expect(factory.isNext(created.metadata.revision, after: before))
            #expect(created.metadata.generation == 1)
            #expect(created.metadata.creationTimestamp == "2025-01-02T03:04:05Z")
            let uid = try #require(created.metadata.uid)
            #expect(uid != "caller-chosen")
            #expect(UUID(uuidString: uid) != nil)
            #expect(created.spec == input.spec)
            #expect(created.status == ["phase": "Ready"])
            let after = try await store.currentRevision()
            #expect(factory.consecutiveRevisions ? after == before + 1 : after >= created.metadata.revision)

            let read = try await store.get(kind: "StaticRoute", namespace: nil, name: "r1")
            #expect(read == created)
        }
    }

    @Test(arguments: StoreFactory.all)
    func createOnExistingIsAlreadyExists(_ factory: StoreFactory) async throws {
        try await factory.with { store in
            let first = try await store.create(Fixture.route("r1"))
            let revision = try await store.currentRevision()
            await expectAPIError(409, "StaticRoute \"r1\" already exists") {
                _ = try await store.create(Fixture.route("r1"))
            }
            #expect(try await store.get(kind: "StaticRoute", namespace: nil, name: "r1") == first)
            if factory.consecutiveRevisions { #expect(try await store.currentRevision() == revision) }
            // The same name in another kind or namespace is another object.
            _ = try await store.create(Fixture.policy("r1", namespace: "a"))
            _ = try await store.create(Fixture.policy("r1", namespace: "b"))
        }
    }

    @Test(arguments: StoreFactory.all)
    func missingObjectIsNotFound(_ factory: StoreFactory) async throws {
        try await factory.with { store in
            await expectAPIError(404, "StaticRoute \"nope\" not found") {
                _ = try await store.get(kind: "StaticRoute", namespace: nil, name: "nope")
            }
            await expectAPIError(404) { _ = try await store.update(Fixture.route("nope")) }
            await expectAPIError(404) { _ = try await store.updateStatus(Fixture.route("nope")) }
            await expectAPIError(404) {
                _ = try await store.delete(kind: "StaticRoute", namespace: nil, name: "nope", expectedRevision: nil)
            }
            _ = try await store.create(Fixture.policy("p", namespace: "a"))
            await expectAPIError(404) { _ = try await store.get(kind: "EgressPolicy", namespace: "b", name: "p") }
            // The failed writes wrote nothing.
            #expect(try await store.list(kind: "StaticRoute", namespace: nil, selector: nil).items.isEmpty)
            if factory.consecutiveRevisions { #expect(try await store.currentRevision() == 1) }
        }
    }

    @Test(arguments: StoreFactory.all)
    func staleResourceVersionIsConflict(_ factory: StoreFactory) async throws {
        try await factory.with { store in
            let v1 = try await store.create(Fixture.route("r1"))
            var change = v1
            change.spec?["gateway"] = "10.2.2.2"
            let v2 = try await store.update(change)  // carries v1's resourceVersion, which is current

            var stale = v1
            stale.spec?["gateway"] = "10.3.3.3"
            await expectAPIError(409, Self.modified) { _ = try await store.update(stale) }
            stale.status = ["phase": "Failed"]
            await expectAPIError(409, Self.modified) { _ = try await store.updateStatus(stale) }
            await expectAPIError(409, Self.modified) {
                _ = try await store.delete(kind: "StaticRoute", namespace: nil, name: "r1", expectedRevision: v1.metadata.revision)
            }
            #expect(try await store.get(kind: "StaticRoute", namespace: nil, name: "r1") == v2)

            // Without a resourceVersion, an update is unconditional.
            var blind = stale
            blind.metadata.resourceVersion = nil
            let v3 = try await store.update(blind)
            #expect(v3.spec?["gateway"] == "10.3.3.3")
            #expect(v3.metadata.revision > v2.metadata.revision)
        }
    }

    @Test(arguments: StoreFactory.all)
    func generationCountsSpecChangesOnly(_ factory: StoreFactory) async throws {
        try await factory.with { store in
            let v1 = try await store.create(Fixture.route("r1"))

            var relabel = v1
            relabel.metadata.labels = ["tier": "edge"]
            relabel.metadata.annotations = ["note": "metadata only"]
            let v2 = try await store.update(relabel)
            #expect(v2.metadata.generation == 1)
            #expect(factory.isNext(v2.metadata.revision, after: v1.metadata.revision))
            #expect(v2.labels == ["tier": "edge"])

            var respec = v2
            respec.spec?["gateway"] = "10.9.9.9"
            let v3 = try await store.update(respec)
            #expect(v3.metadata.generation == 2)

            var status = v3
            status.status = ["phase": "Ready"]
            let v4 = try await store.updateStatus(status)
            #expect(v4.metadata.generation == 2)

            var both = v4
            both.spec?["destinations"] = ["172.16.0.0/12"]
            both.metadata.labels = nil
            let v5 = try await store.update(both)
            #expect(v5.metadata.generation == 3)
        }
    }

    @Test(arguments: StoreFactory.all)
    func updateKeepsIdentityAndStoredStatus(_ factory: StoreFactory) async throws {
        let clock = TestClock(Date(timeIntervalSince1970: 1_700_000_000))
        try await factory.with(now: clock.callAsFunction) { store in
            var input = Fixture.route("r1")
            input.status = ["phase": "Ready"]
            let v1 = try await store.create(input)
            clock.advance(by: 3600)

            var change = v1
            change.metadata.uid = "forged"
            change.metadata.creationTimestamp = "1999-01-01T00:00:00Z"
            change.metadata.generation = 99
            change.spec?["gateway"] = "10.2.2.2"
            change.status = ["phase": "Failed"]
            let v2 = try await store.update(change)
            #expect(v2.metadata.uid == v1.metadata.uid)
            #expect(v2.metadata.creationTimestamp == "2023-11-14T22:13:20Z")
            #expect(v2.metadata.generation == 2)
            #expect(v2.status == ["phase": "Ready"])
            #expect(v2.spec?["gateway"] == "10.2.2.2")

            var noStatus = v2
            noStatus.status = nil
            noStatus.spec?["gateway"] = "10.3.3.3"
            let v3 = try await store.update(noStatus)
            #expect(v3.status == ["phase": "Ready"])
            #expect(try await store.get(kind: "StaticRoute", namespace: nil, name: "r1") == v3)
        }
    }

    @Test(arguments: StoreFactory.all)
    func noOpUpdateWritesNothing(_ factory: StoreFactory) async throws {
        try await factory.with { store in
            var input = Fixture.route("r1", labels: ["a": "b"])
            input.status = ["phase": "Ready"]
            let v1 = try await store.create(input)
            let revision = try await store.currentRevision()
            let watch = try await store.watch(kind: nil, namespace: nil, since: revision)

            #expect(try await store.update(v1) == v1)
            var unversioned = v1
            unversioned.metadata.resourceVersion = nil
            unversioned.status = ["phase": "ignored by update"]
            #expect(try await store.update(unversioned) == v1)
            #expect(try await store.updateStatus(v1) == v1)
            #expect(try await store.get(kind: "StaticRoute", namespace: nil, name: "r1") == v1)
            if factory.consecutiveRevisions { #expect(try await store.currentRevision() == revision) }

            // The next real change is the first thing the watch reports.
            var change = v1
            change.metadata.labels = ["a": "c"]
            let v2 = try await store.update(change)
            let events = try await take(1, from: watch)
            #expect(events.map(\.revision) == [v2.metadata.revision])
            #expect(factory.isNext(v2.metadata.revision, after: revision))
        }
    }

    @Test(arguments: StoreFactory.all)
    func updateStatusReplacesOnlyStatus(_ factory: StoreFactory) async throws {
        try await factory.with { store in
            let v1 = try await store.create(Fixture.route("r1", labels: ["a": "b"]))
            var request = v1
            request.spec?["gateway"] = "10.7.7.7"  // must be ignored
            request.metadata.labels = ["x": "y"]  // must be ignored
            request.status = ["phase": "Ready", "node": "node1"]
            let v2 = try await store.updateStatus(request)
            #expect(v2.status == ["phase": "Ready", "node": "node1"])
            #expect(v2.spec == v1.spec)
            #expect(v2.labels == ["a": "b"])
            #expect(v2.metadata.generation == 1)
            #expect(factory.isNext(v2.metadata.revision, after: v1.metadata.revision))

            var clear = v2
            clear.status = nil
            let v3 = try await store.updateStatus(clear)
            #expect(v3.status == nil)
            #expect(try await store.get(kind: "StaticRoute", namespace: nil, name: "r1") == v3)
        }
    }

    @Test(arguments: StoreFactory.all)
    func deleteReturnsObjectAtDeletionRevision(_ factory: StoreFactory) async throws {
        try await factory.with { store in
            let v1 = try await store.create(Fixture.policy("p", namespace: "ns1"))
            let deleted = try await store.delete(kind: "EgressPolicy", namespace: "ns1", name: "p",
                                                 expectedRevision: v1.metadata.revision)
            #expect(factory.isNext(deleted.metadata.revision, after: v1.metadata.revision))
            #expect(deleted.spec == v1.spec)
            #expect(deleted.metadata.uid == v1.metadata.uid)
            await expectAPIError(404) { _ = try await store.get(kind: "EgressPolicy", namespace: "ns1", name: "p") }
            #expect(try await store.list(kind: "EgressPolicy", namespace: nil, selector: nil).items.isEmpty)

            // A new object under the old name is a new object.
            let again = try await store.create(Fixture.policy("p", namespace: "ns1"))
            #expect(again.metadata.uid != v1.metadata.uid)
            #expect(again.metadata.generation == 1)
        }
    }

    @Test(arguments: StoreFactory.all)
    func listFiltersByNamespaceAndLabels(_ factory: StoreFactory) async throws {
        try await factory.with { store in
            _ = try await store.create(Fixture.policy("b", namespace: "ns1", labels: ["app": "web", "tier": "front"]))
            _ = try await store.create(Fixture.policy("a", namespace: "ns1", labels: ["app": "db"]))
            _ = try await store.create(Fixture.policy("c", namespace: "ns2", labels: ["app": "web"]))
            let last = try await store.create(Fixture.route("a", labels: ["app": "web"]))

            let all = try await store.list(kind: "EgressPolicy", namespace: nil, selector: nil)
            #expect(all.items.map(\.qualifiedName) == ["ns1/a", "ns1/b", "ns2/c"])
            #expect(factory.consecutiveRevisions ? all.revision == 4 : all.revision >= last.metadata.revision)

            let ns1 = try await store.list(kind: "EgressPolicy", namespace: "ns1", selector: nil)
            #expect(ns1.items.map(\.name) == ["a", "b"])
            #expect(try await store.list(kind: "EgressPolicy", namespace: "empty", selector: nil).items.isEmpty)
            #expect(try await store.list(kind: "Nothing", namespace: nil, selector: nil).items.isEmpty)

            let cases: [(String, [String])] = [
                ("app=web", ["ns1/b", "ns2/c"]),
                ("app!=web", ["ns1/a"]),
                ("app in (db,web),tier", ["ns1/b"]),
                ("!tier", ["ns1/a", "ns2/c"]),
                ("app notin (web)", ["ns1/a"]),
                ("", ["ns1/a", "ns1/b", "ns2/c"]),
            ]
            for (text, expected) in cases {
                let selector = try LabelSelector.parse(text)
                let found = try await store.list(kind: "EgressPolicy", namespace: nil, selector: selector)
                #expect(found.items.map(\.qualifiedName) == expected, "selector \(text)")
            }
            let routes = try await store.list(kind: "StaticRoute", namespace: nil,
                                              selector: LabelSelector(matchLabels: ["app": "web"]))
            #expect(routes.items.map(\.name) == ["a"])
        }
    }

    @Test(arguments: StoreFactory.all)
    func watchFromListRevisionMissesNothing(_ factory: StoreFactory) async throws {
        try await factory.with { store in
            for i in 0..<5 { _ = try await store.create(Fixture.route("before-\(i)")) }
            let listed = try await store.list(kind: "StaticRoute", namespace: nil, selector: nil)
            #expect(listed.items.count == 5)

            var expected: [Int64] = []
            for i in 0..<3 { expected.append(try await store.create(Fixture.route("after-\(i)")).metadata.revision) }
            let watch = try await store.watch(kind: "StaticRoute", namespace: nil, since: listed.revision)
            for i in 3..<6 { expected.append(try await store.create(Fixture.route("after-\(i)")).metadata.revision) }
            expected.append(try await store.delete(kind: "StaticRoute", namespace: nil, name: "before-0", expectedRevision: nil)
                .metadata.revision)

            let events = try await take(expected.count, from: watch)
            #expect(events.map(\.revision) == expected)
            #expect(events.map { $0.object.metadata.revision } == expected)
            #expect(events.last?.type == .deleted)
            #expect(events.last?.object.name == "before-0")
        }
    }

    @Test(arguments: StoreFactory.all)
    func watchFromZeroReplaysEverything(_ factory: StoreFactory) async throws {
        try await factory.with { store in
            let a = try await store.create(Fixture.route("a"))
            var change = a
            change.spec?["gateway"] = "10.4.4.4"
            let r2 = try await store.update(change).metadata.revision
            let r3 = try await store.create(Fixture.policy("p", namespace: "ns1")).metadata.revision
            let r4 = try await store.delete(kind: "StaticRoute", namespace: nil, name: "a", expectedRevision: nil).metadata.revision
            let r1 = a.metadata.revision
            if factory.consecutiveRevisions { #expect([r1, r2, r3, r4] == [1, 2, 3, 4]) }

            let events = try await take(4, from: try await store.watch(kind: nil, namespace: nil, since: 0))
            #expect(events.map(\.revision) == [r1, r2, r3, r4])
            #expect(events.map(\.type) == [.added, .modified, .added, .deleted])
            #expect(events.map(\.object.name) == ["a", "a", "p", "a"])
            #expect(events[1].object.spec?["gateway"] == "10.4.4.4")

            let routes = try await take(3, from: try await store.watch(kind: "StaticRoute", namespace: nil, since: 0))
            #expect(routes.map(\.revision) == [r1, r2, r4])
            let ns1 = try await take(1, from: try await store.watch(kind: "EgressPolicy", namespace: "ns1", since: 0))
            #expect(ns1.map(\.revision) == [r3])
        }
    }

    @Test(arguments: StoreFactory.all)
    func watchFiltersLiveChangesByKindAndNamespace(_ factory: StoreFactory) async throws {
        try await factory.with { store in
            let watch = try await store.watch(kind: "EgressPolicy", namespace: "ns2", since: 0)
            _ = try await store.create(Fixture.policy("p", namespace: "ns1"))
            _ = try await store.create(Fixture.route("p"))
            let wanted = try await store.create(Fixture.policy("p", namespace: "ns2"))
            let events = try await take(1, from: watch)
            #expect(events.map(\.revision) == [wanted.metadata.revision])
            #expect(events.first?.object == wanted)
        }
    }

    /// The criterion: a watcher that disconnects and resumes from its last
    /// resourceVersion sees every change exactly once during 1,000 concurrent updates.
    @Test(arguments: StoreFactory.all)
    func resumingWatcherSeesEveryChangeOnceDuringConcurrentUpdates(_ factory: StoreFactory) async throws {
        try await factory.with { store in
            let objects = 20
            let writers = 10
            let updatesPerWriter = 100
            for i in 0..<objects { _ = try await store.create(Fixture.route("obj-\(i)")) }
            let start = try await store.currentRevision()
            let total = writers * updatesPerWriter

            let (committed, seen, sessions) = try await withTimeout(120, "1,000 updates and their events") {
                try await withThrowingTaskGroup(of: ([Int64], [Int64], Int).self) { group in
                    // The watcher: resumes from the last revision it saw after a varying number of events,
                    // alternately by leaving the loop and by having its task cancelled.
                    group.addTask {
                        var seen: [Int64] = []
                        var last = start
                        var sessions = 0
                        while seen.count < total {
                            sessions += 1
                            let quota = 1 + (sessions * 37) % 120
                            let stream = try await store.watch(kind: "StaticRoute", namespace: nil, since: last)
                            let wanted = min(quota, total - seen.count)
                            let batch: [WatchEvent]
                            if sessions.isMultiple(of: 2) {
                                batch = try await take(wanted, from: stream, timeout: 60)
                            } else {
                                // Cancel the reading task while it waits inside the stream. Events past the
                                // quota (a group commit delivers them in bursts) are read and dropped: the next
                                // session resumes from the last kept revision, so it must see them again.
                                let collector = EventCollector()
                                let reader = Task {
                                    for try await event in stream where collector.count < wanted { collector.append(event) }
                                }
                                try await waitUntil("\(wanted) events", timeout: 60) { collector.count >= wanted }
                                reader.cancel()
                                try await reader.value
                                batch = collector.events
                            }
                            seen += batch.map(\.revision)
                            last = seen.last ?? last
                        }
                        return ([], seen, sessions)
                    }
                    for w in 0..<writers {
                        group.addTask {
                            var revisions: [Int64] = []
                            for u in 0..<updatesPerWriter {
                                var object = Fixture.route("obj-\((w * 7 + u) % objects)")
                                object.spec?["gateway"] = .string("10.\(w).\(u / 256).\(u % 256)")
                                object.metadata.labels = ["writer": "\(w)", "update": "\(u)"]
                                let updated = try await store.update(object)
                                revisions.append(updated.metadata.revision)
                            }
                            return (revisions, [], 0)
                        }
                    }
                    var committed: [Int64] = []
                    var seen: [Int64] = []
                    var sessions = 0
                    for try await (c, s, n) in group {
                        committed += c
                        seen += s
                        sessions += n
                    }
                    return (committed, seen, sessions)
                }
            }

            #expect(committed.count == total)
            #expect(Set(committed).count == total, "every update got its own revision")
            #expect(seen.count == total)
            #expect(Set(seen).count == seen.count, "no change was delivered twice")
            #expect(seen == committed.sorted(), "every committed change, in revision order")
            if factory.consecutiveRevisions {
                #expect(seen.first == start + 1)
                #expect(seen.last == start + Int64(total))
            }
            #expect(sessions > 10, "the watcher resumed many times")
        }
    }
}

/// Events gathered by a task that another task cancels.
final class EventCollector: Sendable {
    private let state = Mutex<[WatchEvent]>([])
    func append(_ event: WatchEvent) { state.withLock { $0.append(event) } }
    var count: Int { state.withLock { $0.count } }
    var events: [WatchEvent] { state.withLock { $0 } }
}
