import BatonCore
@testable import BatonVRRP
import Testing

/// The instance runner's reading of an advertisement's arrival: the kernel's receive time
/// (`SO_TIMESTAMPNS`, wall clock) moved onto the instance's monotonic clock by its age, so the
/// master-down timer runs from the arrival rather than from the thread's wake-up.
@Suite struct VRRPArrivalTests {
    static let now = BatonInstant.zero + .seconds(100)
    static let wall: Int64 = 1_800_000_000_000_000_000

    @Test func theAgeMovesTheArrivalBack() {
        let arrived = VRRPInstanceRunner.arrival(now: Self.now, notBefore: .zero, receivedAt: Self.wall - 85_000, realtimeNow: Self.wall)
        #expect(arrived == Self.now - .microseconds(85))
    }

    @Test func neverBeforeTheLastEvent() {
        let last = Self.now - .microseconds(20)
        #expect(VRRPInstanceRunner.arrival(now: Self.now, notBefore: last, receivedAt: Self.wall - 85_000, realtimeNow: Self.wall) == last)
    }

    @Test(arguments: [nil, wall + 1_000, wall, wall - 100_000_000, wall - 5_000_000_000] as [Int64?])
    func anUnknownOrImplausibleAgeIsNow(_ receivedAt: Int64?) {
        #expect(VRRPInstanceRunner.arrival(now: Self.now, notBefore: .zero, receivedAt: receivedAt, realtimeNow: Self.wall) == Self.now)
    }
}
