import BatonAPI
import BatonCore
@testable import BatonEdge
import Foundation
import NIOCore
import Testing

/// The proxy's timers decide on `BatonInstant`s made from NIO deadlines (`NIODeadline.instant`):
/// the two must convert without losing order or time.
@Suite struct DeadlineInstantTests {
    @Test(arguments: [UInt64(0), 1, 999_999_999, 1_000_000_000, 86_400_123_456_789])
    func aDeadlineGoesToAnInstantAndBackUnchanged(nanos: UInt64) {
        let d = NIODeadline.uptimeNanoseconds(nanos)
        #expect(d.instant == BatonInstant(sinceOrigin: .nanoseconds(Int64(nanos))))
        #expect(NIODeadline(d.instant) == d)
        #expect(NIODeadline(d.instant + .milliseconds(250)) == d + .milliseconds(250))
    }

    @Test func instantsCompareAsTheirDeadlinesDo() {
        let now = NIODeadline.now()
        #expect(now.instant < (now + .nanoseconds(1)).instant)
        #expect((now + .seconds(60)).instant - now.instant == .seconds(60))
    }
}

/// The access log formats its times itself (no Foundation formatter per request); they must
/// read as `Timestamp.format` writes resources' times.
@Suite struct AccessLogTimestampTests {
    @Test(arguments: [(0, 0), (1_795_953_600, 123), (1_795_996_799, 999), (951_782_400, 7), (4_102_444_799, 50)])
    func theAccessLogWritesTimesAsResourcesDo(seconds: Int, milliseconds: Int) {
        let date = Date(timeIntervalSince1970: Double(seconds) + Double(milliseconds) / 1000 + 0.0001)
        #expect(AccessLog.timestamp(seconds: seconds, milliseconds: milliseconds) == Timestamp.format(date))
    }

    @Test func nowReadsAsAnRFC3339UTCTimeWithMilliseconds() throws {
        let stamp = AccessLog.timestamp()
        #expect(stamp.count == 24)
        #expect(stamp.hasSuffix("Z"))
        let parsed = try #require(Timestamp.parse(stamp))
        #expect(abs(parsed.timeIntervalSinceNow) < 60)
    }
}
