import BatonStore
import Foundation
import Testing

@Suite struct HeartbeatLogTests {
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
