import BatonCore
import BatonEtcd
import BatonServer
import BatonStore
import BatonTesting
import Foundation
import Logging
import ServiceLifecycle
import Testing

/// Leader election on etcd leases (`EtcdLeaseLock`): two replicas, each with its own client, on
/// a single-member etcd of their own. Real time; conditions are awaited with timeouts.
@Suite("LeaderElection on etcd", .serialized, .enabled(if: LocalEtcdCluster.binary != nil, Comment(rawValue: LocalEtcdCluster.missingMessage)))
struct EtcdLeaderElectionTests {
    typealias Bodies = LeaderElectionTests.Bodies
    static let logger = Logger(label: "baton.test.election")
    /// A 2 s etcd lease; generous renew deadline for a loaded machine.
    static let config = try! LeaderLease.Configuration(leaseDuration: .seconds(2), renewDeadline: .milliseconds(1500),
                                                       retryPeriod: .milliseconds(100))

    /// A cluster and two clients on it, torn down afterwards.
    static func withTwoClients(_ test: (LocalEtcdCluster, EtcdClient, EtcdClient) async throws -> Void) async throws {
        let cluster = try await LocalEtcdCluster(size: 1)
        let a = try EtcdClient(endpoints: cluster.endpoints)
        let b = try EtcdClient(endpoints: cluster.endpoints)
        do {
            try await test(cluster, a, b)
        } catch {
            await a.shutdown(); await b.shutdown(); cluster.stop()
            throw error
        }
        await a.shutdown(); await b.shutdown(); cluster.stop()
    }

    @Test("one leader; a crashed leader's etcd lease expires and the other takes over within the TTL")
    func crashTakeover() async throws {
        try await Self.withTwoClients { _, clientA, clientB in
            let bodies = Bodies()
            let lockA = EtcdLeaseLock(client: clientA, name: "controller")
            let a = LeaderElection(lock: lockA, identity: "a", configuration: Self.config, logger: Self.logger, whileLeader: bodies.body("a"))
            let b = LeaderElection(lock: EtcdLeaseLock(client: clientB, name: "controller"), identity: "b",
                                   configuration: Self.config, logger: Self.logger, whileLeader: bodies.body("b"))
            let taskA = Task { try await a.run() }
            #expect(await LeaderElectionTests.waitUntil(timeout: .seconds(5)) { bodies.running == ["a"] })
            let taskB = Task { try await b.run() }
            defer { taskA.cancel(); taskB.cancel() }
            // Three TTLs of steady state: keep-alives hold the lease, and b never takes it.
            try await Task.sleep(for: .seconds(6))
            #expect(bodies.running == ["a"])
            let held = try #require(try await lockA.get())
            #expect(held.lease.holderIdentity == "a")
            #expect(lockA.etcdLease?.ttl == 2)

            let crashedAt = ContinuousClock.now
            taskA.cancel()
            _ = try? await taskA.value
            // Not released: the key is still a's until etcd expires the lease.
            #expect(try await lockA.get()?.lease.holderIdentity == "a")
            #expect(await LeaderElectionTests.waitUntil(timeout: .seconds(8)) { bodies.running == ["b"] })
            let takeover = try #require(bodies.started("b")) - crashedAt
            // etcd expires the lease TTL (2 s) after a's last keep-alive (≤ 0.1 s before the crash),
            // checking every 0.5 s; b campaigns at its next retry. Slack for a loaded machine.
            #expect(takeover >= .milliseconds(2000 - 100 - 100), "took over after \(takeover)")
            #expect(takeover < .milliseconds(2000 + 500 + 100 + 900), "took over after \(takeover)")
            #expect(bodies.maxConcurrent == 1)
        }
    }

    @Test("graceful shutdown revokes the etcd lease: takeover within a retry period or so")
    func gracefulHandover() async throws {
        try await Self.withTwoClients { _, clientA, clientB in
            let bodies = Bodies()
            let lockA = EtcdLeaseLock(client: clientA, name: "controller")
            let a = LeaderElection(lock: lockA, identity: "a", configuration: Self.config, logger: Self.logger, whileLeader: bodies.body("a"))
            let group = ServiceGroup(services: [a], logger: Self.logger)
            let groupTask = Task { try await group.run() }
            defer { groupTask.cancel() }
            #expect(await LeaderElectionTests.waitUntil(timeout: .seconds(5)) { bodies.running == ["a"] })
            let b = LeaderElection(lock: EtcdLeaseLock(client: clientB, name: "controller"), identity: "b",
                                   configuration: Self.config, logger: Self.logger, whileLeader: bodies.body("b"))
            let taskB = Task { try await b.run() }
            defer { taskB.cancel() }
            try await Task.sleep(for: .milliseconds(300))
            #expect(bodies.running == ["a"])

            let stoppedAt = ContinuousClock.now
            await group.triggerGracefulShutdown()
            try await groupTask.value
            #expect(lockA.etcdLease == nil, "the etcd lease was revoked")
            #expect(await LeaderElectionTests.waitUntil(timeout: .seconds(3)) { bodies.running == ["b"] })
            let takeover = try #require(bodies.started("b")) - stoppedAt
            #expect(takeover < .milliseconds(1000), "took over after \(takeover); the TTL is 2 s")
            #expect(bodies.maxConcurrent == 1)
        }
    }

    @Test("a leader that loses etcd stops its body within renewDeadline, before etcd can give the lease away")
    func leaderCutOffFromEtcdStops() async throws {
        try await Self.withTwoClients { cluster, clientA, _ in
            let bodies = Bodies()
            let a = LeaderElection(lock: EtcdLeaseLock(client: clientA, name: "controller"), identity: "a",
                                   configuration: Self.config, logger: Self.logger, whileLeader: bodies.body("a"))
            let task = Task { try await a.run() }
            defer { task.cancel() }
            #expect(await LeaderElectionTests.waitUntil(timeout: .seconds(5)) { bodies.running == ["a"] })
            let killedAt = ContinuousClock.now
            cluster.kill(0)
            #expect(await LeaderElectionTests.waitUntil(timeout: .seconds(5)) { bodies.running.isEmpty && !a.isLeader })
            // renewDeadline (1.5 s) from the last keep-alive, which began ≤ 0.1 s before the kill.
            #expect(ContinuousClock.now - killedAt < .milliseconds(1500 + 1000), "slack for a loaded machine")
        }
    }
}
