import BatonAPI
import BatonEtcd
import BatonStore
import BatonTesting
import Foundation
import Testing

/// What `EtcdStore` does beyond the conformance suite: compaction, endpoint failover, losing
/// etcd members and quorum. Each test that kills or compacts starts an etcd of its own.
@Suite(.enabled(if: LocalEtcdCluster.binary != nil, Comment(rawValue: LocalEtcdCluster.missingMessage)))
struct EtcdStoreTests {
    /// Runs `body` with a store on `cluster` (all its endpoints), then closes both.
    func withStore<T>(_ endpoints: [String], prefix: String = "/baton/", watchCacheSize: Int? = nil,
                      _ body: (EtcdStore, EtcdClient) async throws -> T) async throws -> T {
        let client = try EtcdClient(endpoints: endpoints)
        var config = EtcdStore.Configuration()
        config.prefix = prefix
        if let watchCacheSize { config.watchCacheSize = watchCacheSize }
        let store = try EtcdStore(client: client, configuration: config)
        do {
            let result = try await body(store, client)
            await store.close()
            await client.shutdown()
            return result
        } catch {
            await store.close()
            await client.shutdown()
            throw error
        }
    }

    @Test func badEndpointsAndPrefixesAreRefusedByName() async throws {
        #expect(throws: EtcdError.self) { _ = try EtcdClient(endpoints: []) }
        do {
            _ = try EtcdClient(endpoints: ["10.0.0.1:2379", "h2"])
            Issue.record("h2 has no port")
        } catch {
            #expect("\(error)" == "etcd endpoint \"h2\" is not host:port (for example 10.0.0.1:2379)")
        }
        do {
            _ = try EtcdClient(endpoints: ["https://h1:2379"])
            Issue.record("https is refused")
        } catch {
            #expect("\(error)".contains("TLS (https) is not supported"))
        }
        let client = try EtcdClient(endpoints: ["h1:2379", "http://h2:2379/"])
        #expect(client.endpoints == ["http://h1:2379", "http://h2:2379"])
        await client.shutdown()
        let other = try EtcdClient(endpoints: ["127.0.0.1:1"])
        await expectAPIError(400, "etcd key prefix \"baton\" must start and end with \"/\", for example /baton/") {
            var config = EtcdStore.Configuration()
            config.prefix = "baton"
            _ = try EtcdStore(client: other, configuration: config)
        }
        await other.shutdown()
    }

    /// An object larger than etcd takes in one request (1.5 MiB by default, below the API's
    /// 3 MiB body limit) is a 413 that says so, not a 500, and nothing is stored.
    @Test func anObjectTooLargeForEtcdIs413() async throws {
        try await StoreFactory.etcd.with { store in
            // etcd says "request is too large" past 1.5 MiB, and gRPC "message larger than max"
            // past 2 MiB.
            for size in [1_700_000, 2 * 1024 * 1024] {
                var big = Fixture.route("big")
                big.metadata.annotations = ["note": String(repeating: "x", count: size)]
                do {
                    _ = try await store.create(big)
                    Issue.record("etcd took a \(size)-byte object")
                } catch let error as APIError {
                    #expect(error.code == 413 && error.reason == .tooLarge, "\(size): \(error.code) \(error.message)")
                    #expect(error.message.hasPrefix("create failed: the object is larger than etcd takes in one request"), "\(error.message)")
                }
            }
            await expectAPIError(404) { _ = try await store.get(kind: "StaticRoute", namespace: nil, name: "big") }
            _ = try await store.create(Fixture.route("small"))
        }
    }

    /// Nothing listens: every call is a 503 that names etcd and each endpoint.
    @Test func unreachableEtcdIs503NamingEveryEndpoint() async throws {
        let dead = [LocalEtcdCluster.freePort(), LocalEtcdCluster.freePort()].map { "http://127.0.0.1:\($0)" }
        try await withStore(dead) { store, _ in
            do {
                _ = try await store.create(Fixture.route("r1"))
                Issue.record("the create succeeded with no etcd")
            } catch let error as APIError {
                #expect(error.code == 503)
                #expect(error.message.hasPrefix("create failed: etcd is unavailable: "), "\(error.message)")
                for endpoint in dead { #expect(error.message.contains(endpoint), "\(error.message)") }
            }
            await expectAPIError(503) { _ = try await store.list(kind: "StaticRoute", namespace: nil, selector: nil) }
            await expectAPIError(503) { _ = try await store.watch(kind: nil, namespace: nil, since: 0) }
        }
    }

    /// The first endpoint is dead: calls go to the next one, which is then remembered.
    @Test func callsFailOverToTheNextEndpointAndRememberIt() async throws {
        let cluster = try await SharedEtcd.cluster()
        let dead = "http://127.0.0.1:\(LocalEtcdCluster.freePort())"
        try await withStore([dead] + cluster.endpoints, prefix: "/failover-\(UUID().uuidString.prefix(6))/") { store, client in
            #expect(client.preferredEndpoint == dead)
            let created = try await store.create(Fixture.route("r1"))
            #expect(client.preferredEndpoint == cluster.endpoints[0])
            #expect(try await store.get(kind: "StaticRoute", namespace: nil, name: "r1") == created)
        }
    }

    /// Watches from a compacted revision are 410 at once, with the resourceVersion in the message;
    /// a watch from a revision the shared watch still holds in memory is served.
    @Test func aWatchFromACompactedRevisionIsGone() async throws {
        let cluster = try await LocalEtcdCluster(size: 1)
        defer { cluster.stop() }
        try await withStore(cluster.endpoints) { store, _ in
            let first = try await store.create(Fixture.route("a"))
            // The shared watch starts here, at the current revision.
            let live = try await store.watch(kind: nil, namespace: nil, since: first.metadata.revision)
            var revisions: [Int64] = []
            for i in 0..<5 { revisions.append(try await store.create(Fixture.route("b\(i)")).metadata.revision) }
            try await store.compact(upTo: revisions[3])
            await expectAPIError(410, "too old resource version: \(first.metadata.revision - 1) (etcd has compacted the history after it)") {
                _ = try await store.watch(kind: nil, namespace: nil, since: first.metadata.revision - 1)
            }
            // Held in memory: nothing is lost by the compaction.
            let replay = try await take(3, from: try await store.watch(kind: nil, namespace: nil, since: revisions[1]))
            #expect(replay.map(\.revision) == Array(revisions[2...]))
            #expect(try await take(5, from: live).map(\.revision) == revisions)
        }
    }

    /// A watcher of a kind and namespace gets only those, from the shared watch or its own.
    @Test func sharedAndDedicatedWatchesFilterAlike() async throws {
        let cluster = try await SharedEtcd.cluster()
        try await withStore(cluster.endpoints, prefix: "/filter-\(UUID().uuidString.prefix(6))/", watchCacheSize: 2) { store, _ in
            let start = try await store.currentRevision()
            _ = try await store.create(Fixture.policy("p", namespace: "ns1"))
            let shared = try await store.watch(kind: "EgressPolicy", namespace: "ns2", since: try await store.currentRevision())
            var wanted: [Int64] = []
            for i in 0..<4 {
                _ = try await store.create(Fixture.route("r\(i)"))
                _ = try await store.create(Fixture.policy("q\(i)", namespace: "ns1"))
                wanted.append(try await store.create(Fixture.policy("q\(i)", namespace: "ns2")).metadata.revision)
            }
            // Older than the 2 changes the shared watch keeps: a watch of its own.
            let dedicated = try await store.watch(kind: "EgressPolicy", namespace: "ns2", since: start)
            #expect(try await take(4, from: shared).map(\.revision) == wanted)
            #expect(try await take(4, from: dedicated).map(\.revision) == wanted)
            #expect(store.watcherCount == 2)
        }
    }

    /// Three members. The member serving the store's calls and its shared watch is killed while
    /// writes go on: every write succeeds (after failing over) and the watch delivers every
    /// change exactly once, in order. Then a second member is killed: writes fail at once with
    /// a 503 that names etcd and the lost quorum, and the watch waits. Both come back, and
    /// everything written before is still there.
    @Test func surviveAMemberAndReport503WithoutQuorum() async throws {
        let cluster = try await LocalEtcdCluster(size: 3)
        defer { cluster.stop() }
        try await withStore(cluster.endpoints) { store, client in
            let start = try await store.currentRevision()
            let watch = try await store.watch(kind: "StaticRoute", namespace: nil, since: start)
            let collector = EventCollector()
            let reader = Task {
                do { for try await event in watch { collector.append(event) } } catch {}
            }
            defer { reader.cancel() }
            var written: [Int64] = []
            for i in 0..<20 { written.append(try await store.create(Fixture.route("before-\(i)")).metadata.revision) }
            try await waitUntil("the watch sees the first writes", timeout: 30) { collector.count >= 20 }

            let victim = try #require(cluster.endpoints.firstIndex(of: client.preferredEndpoint))
            cluster.kill(victim)
            for i in 0..<40 {
                var route = Fixture.route("before-\(i % 20)")
                route.spec?["gateway"] = .string("10.9.\(i / 20).\(i % 20)")
                written.append(try await store.update(route).metadata.revision)
            }
            #expect(client.preferredEndpoint != cluster.endpoints[victim])
            let total = written.count
            try await waitUntil("the watch sees every write", timeout: 30) { collector.count >= total }
            #expect(collector.events.map(\.revision) == written, "every change once, in order")

            // A second member down: no quorum. With the member count known and an endpoint for
            // every member, the client can prove it (the survivor has no leader, the others
            // refuse connections); a client that knows only two of the three endpoints cannot.
            #expect(try await client.refreshMembership() == 3)
            let second = (victim + 1) % 3
            let survivor = (victim + 2) % 3
            let partial = try EtcdClient(endpoints: [cluster.endpoints[survivor], cluster.endpoints[second]])
            defer { Task { await partial.shutdown() } }
            #expect(try await partial.refreshMembership() == 3)
            cluster.kill(second)
            let began = ContinuousClock.now
            var refused: APIError?
            while refused == nil, ContinuousClock.now - began < .seconds(30) {
                do {
                    _ = try await store.create(Fixture.route("during-\(UUID().uuidString.prefix(4))"))
                    try await Task.sleep(for: .milliseconds(50))  // the survivor has not noticed yet
                } catch let error as APIError where error.message.contains("no leader") {
                    refused = error
                } catch {
                    // A write caught in the moment quorum went: etcd could not confirm it.
                }
            }
            let error = try #require(refused)
            #expect(error.code == 503)
            #expect(error.reason == .storeWithoutQuorum, "\(error.reason.rawValue)")
            #expect(error.message.contains("etcd is unavailable (the cluster has lost quorum: no member has a leader or accepts connections)"),
                    "\(error.message)")
            #expect(error.message.contains("etcdserver: no leader"), "\(error.message)")
            do {
                _ = try await partial.range("/", countOnly: true)
                Issue.record("a read succeeded without quorum")
            } catch let e as EtcdError {
                #expect(e.code == .unavailable, "a client without every member's endpoint claimed proof: \(e)")
                #expect(e.message.contains("(has the cluster lost quorum?)"), "\(e.message)")
            }
            // Refused fast: a member without a leader answers at once.
            let timed = ContinuousClock.now
            await expectAPIError(503) { _ = try await store.create(Fixture.route("refused")) }
            #expect(ContinuousClock.now - timed < .seconds(5))

            try await cluster.restart(victim)
            try await cluster.restart(second)
            try await cluster.waitForLeader()
            var after: Resource?
            let restored = ContinuousClock.now
            while after == nil, ContinuousClock.now - restored < .seconds(30) {
                after = try? await store.create(Fixture.route("after"))
                if after == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            let listed = try await store.list(kind: "StaticRoute", namespace: nil, selector: nil)
            #expect(Set(listed.items.map(\.name)).isSuperset(of: Set((0..<20).map { "before-\($0)" } + ["after"])))
            #expect(listed.items.first { $0.name == "before-19" }?.spec?["gateway"] == "10.9.1.19")
            let afterRevision = try #require(after?.metadata.revision)
            try await waitUntil("the watch sees the write after the outage", timeout: 30) {
                collector.events.contains { $0.revision == afterRevision }
            }
            let revisions = collector.events.map(\.revision)
            #expect(revisions == revisions.sorted() && Set(revisions).count == revisions.count, "no duplicate, in order")
        }
    }
}
