import BatonEtcd
import BatonStore
import BatonTesting
import Foundation
import Testing


/// Both logs: `prune` removes exactly the nodes not kept, a removal is never read as a heartbeat,
/// and a pruned node that beats again is read again.
func checkPrune(_ log: any HeartbeatLog) async throws {
    let (_, c0) = try await log.read(after: nil)
    for i in 0..<200 { try await log.record(node: "n\(i)", agentTime: nil) }
    let (_, c1) = try await log.read(after: c0)
    let kept = Set((0..<200).filter { $0 % 3 == 0 }.map { "n\($0)" })
    #expect(try await log.prune(keeping: kept) == 200 - kept.count)
    #expect(try await log.prune(keeping: kept) == 0)
    let (afterPrune, c2) = try await log.read(after: c1)
    #expect(afterPrune.isEmpty, "a removal read as a heartbeat: \(afterPrune)")
    try await log.record(node: "n1", agentTime: "t")
    try await log.record(node: "n0", agentTime: nil)
    #expect(Set(try await log.read(after: c2).records.map(\.node)) == ["n0", "n1"])
    // Everything left: the kept nodes and n1, which beat again.
    #expect(try await log.prune(keeping: kept.union(["n1"])) == 0)
    #expect(try await log.prune(keeping: []) == kept.count + 1)
}

@Suite struct HeartbeatLogTests {
    @Test func pruneForgetsTheNodesNotKept() async throws {
        try await checkPrune(try SQLiteHeartbeatLog.inMemory())
    }

    @Test func readerSeesEachNodeThatBeatSinceItsCursorOnce() async throws {
        let log = try SQLiteHeartbeatLog.inMemory()
        let (none, c0) = try await log.read(after: nil)
        #expect(none.isEmpty)
        try await log.record(node: "a", agentTime: "t1")
        try await log.record(node: "b", agentTime: nil)
        let (r1, c1) = try await log.read(after: c0)
        #expect(Set(r1) == [HeartbeatRecord(node: "a", agentTime: "t1"), HeartbeatRecord(node: "b", agentTime: nil)])
        #expect(c1 > c0)
        // Nothing new: nothing read, cursor unchanged.
        let (r2, c2) = try await log.read(after: c1)
        #expect(r2.isEmpty)
        #expect(c2 == c1)
        // a beats twice: one record, the newest time.
        try await log.record(node: "a", agentTime: "t2")
        try await log.record(node: "a", agentTime: "t3")
        let (r3, _) = try await log.read(after: c2)
        #expect(r3 == [HeartbeatRecord(node: "a", agentTime: "t3")])
    }

    @Test func concurrentHeartbeatsAllLand() async throws {
        let log = try SQLiteHeartbeatLog.inMemory()
        let (_, c0) = try await log.read(after: nil)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<500 { group.addTask { try await log.record(node: "n\(i)", agentTime: nil) } }
            try await group.waitForAll()
        }
        let (records, _) = try await log.read(after: c0)
        #expect(Set(records.map(\.node)) == Set((0..<500).map { "n\($0)" }))
    }

    /// Two logs on one file, as two `baton server` processes share a data dir: what one records,
    /// the other reads.
    @Test func twoOpenersOfOneFileSeeEachOther() async throws {
        let dir = NSTemporaryDirectory() + "hb-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let a = try SQLiteHeartbeatLog(directory: dir)
        let b = try SQLiteHeartbeatLog(directory: dir)
        let (_, c0) = try await b.read(after: nil)
        try await a.record(node: "x", agentTime: "t")
        let (records, c1) = try await b.read(after: c0)
        #expect(records == [HeartbeatRecord(node: "x", agentTime: "t")])
        try await b.record(node: "y", agentTime: nil)
        #expect(try await a.read(after: c1).records == [HeartbeatRecord(node: "y", agentTime: nil)])
        a.close()
        b.close()
        await #expect(throws: (any Error).self) { try await a.record(node: "z", agentTime: nil) }
    }
}

/// `EtcdHeartbeatLog`: the same contract as the SQLite log, on the shared etcd, one prefix per test.
@Suite(.enabled(if: LocalEtcdCluster.binary != nil, Comment(rawValue: LocalEtcdCluster.missingMessage)))
struct EtcdHeartbeatLogTests {
    func withLogs(_ count: Int, _ body: ([EtcdHeartbeatLog]) async throws -> Void) async throws {
        let cluster = try await SharedEtcd.cluster()
        let prefix = "/hb-\(UUID().uuidString.prefix(8))/"
        let clients = try (0..<count).map { _ in try EtcdClient(endpoints: cluster.endpoints) }
        let logs = clients.map { EtcdHeartbeatLog(client: $0, prefix: prefix) }
        do { try await body(logs) } catch {
            for c in clients { await c.shutdown() }
            throw error
        }
        for c in clients { await c.shutdown() }
    }

    @Test func pruneForgetsTheNodesNotKept() async throws {
        try await withLogs(1) { logs in try await checkPrune(logs[0]) }
    }

    @Test func readerSeesEachNodeThatBeatSinceItsCursorOnce() async throws {
        try await withLogs(1) { logs in
            let log = logs[0]
            let (none, c0) = try await log.read(after: nil)
            #expect(none.isEmpty)
            try await log.record(node: "a", agentTime: "t1")
            try await log.record(node: "b", agentTime: nil)
            let (r1, c1) = try await log.read(after: c0)
            #expect(Set(r1) == [HeartbeatRecord(node: "a", agentTime: "t1"), HeartbeatRecord(node: "b", agentTime: nil)])
            #expect(c1 > c0)
            let (r2, c2) = try await log.read(after: c1)
            #expect(r2.isEmpty)
            #expect(c2 >= c1)
            try await log.record(node: "a", agentTime: "t2")
            try await log.record(node: "a", agentTime: "t3")
            let (r3, _) = try await log.read(after: c2)
            #expect(r3 == [HeartbeatRecord(node: "a", agentTime: "t3")])
        }
    }

    /// 500 concurrent heartbeats through one replica, batched into a few txns, all read by another.
    @Test func concurrentHeartbeatsAllLandAndAnotherReplicaReadsThem() async throws {
        try await withLogs(2) { logs in
            let (_, c0) = try await logs[1].read(after: nil)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<500 { group.addTask { try await logs[0].record(node: "n\(i)", agentTime: nil) } }
                try await group.waitForAll()
            }
            let (records, _) = try await logs[1].read(after: c0)
            #expect(Set(records.map(\.node)) == Set((0..<500).map { "n\($0)" }))
            // Batched: the keys carry far fewer distinct revisions (one per txn) than heartbeats.
            let keys = try await logs[0].client.rangePrefix(logs[0].keyPrefix)
            let txns = Set(keys.kvs.map(\.modRevision)).count
            #expect(keys.kvs.count == 500)
            #expect(txns <= 100, "\(txns) txns for 500 heartbeats")
            logs[0].close()
            await #expect(throws: (any Error).self) { try await logs[0].record(node: "z", agentTime: nil) }
        }
    }
}
