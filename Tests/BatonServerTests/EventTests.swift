import BatonAPI
import BatonServer
import BatonStore
import Foundation
import Logging
import Testing

@Suite struct EventTests {
    @Test func repeatsAggregateIntoOneRecordWithACount() async throws {
        let store = try SQLiteStore.inMemory()
        let clock = TestClock()
        let recorder = EventRecorder(store: store, component: "test", now: { clock.now }, logger: Logger(label: "test"))
        let tunnel = Resource(apiVersion: "egressgateway.spidernet.io/v1beta1", kind: "EgressTunnel",
                              metadata: ObjectMeta(name: "node2"))
        try #require(await recorder.record(tunnel, reason: "HeartbeatTimeout", message: "update tunnel status to HeartbeatTimeout", type: "Warning") != nil)
        clock.advance(1.5)
        let second = try #require(await recorder.record(tunnel, reason: "HeartbeatTimeout", message: "update tunnel status to HeartbeatTimeout", type: "Warning"))
        _ = await recorder.record(tunnel, reason: "Ready", message: "tunnel is Ready")
        #expect(second.body["count"]?.intValue == 2)
        #expect(second.body["firstTimestamp"] != second.body["lastTimestamp"])
        let events = try await store.list(kind: "Event", namespace: "default", selector: nil).items
        #expect(events.count == 2)
        #expect(events.allSatisfy { $0.body["involvedObject"]?["name"] == "node2" })
        // Timestamps keep milliseconds, so a timeline keeps its order.
        #expect(second.body["lastTimestamp"]?.stringValue?.contains(".500") == true)
    }
}

/// A clock a test moves by hand.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current = Date(timeIntervalSince1970: 1_700_000_000)
    var now: Date { lock.withLock { current } }
    func advance(_ seconds: TimeInterval) { lock.withLock { current += seconds } }
}
