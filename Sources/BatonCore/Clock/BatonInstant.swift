/// A point on a monotonic time line, as the elapsed `Duration` since an origin that the clock's
/// owner chose (process start, test start). Instants from two different clocks (two machines,
/// two processes) are not comparable, and the core never compares them: every decision takes
/// `now` and the instants it is compared with from the same clock, owned by the caller.
public struct BatonInstant: InstantProtocol, Sendable, Hashable, Comparable, CustomStringConvertible {
    public typealias Duration = Swift.Duration

    /// Time since the clock's origin.
    public var sinceOrigin: Swift.Duration

    public init(sinceOrigin: Swift.Duration) { self.sinceOrigin = sinceOrigin }

    /// The clock's origin.
    public static let zero = BatonInstant(sinceOrigin: .zero)

    public func advanced(by duration: Swift.Duration) -> BatonInstant { BatonInstant(sinceOrigin: sinceOrigin + duration) }
    public func duration(to other: BatonInstant) -> Swift.Duration { other.sinceOrigin - sinceOrigin }

    public static func < (a: BatonInstant, b: BatonInstant) -> Bool { a.sinceOrigin < b.sinceOrigin }
    public static func + (a: BatonInstant, d: Swift.Duration) -> BatonInstant { a.advanced(by: d) }
    public static func - (a: BatonInstant, d: Swift.Duration) -> BatonInstant { a.advanced(by: .zero - d) }
    public static func - (a: BatonInstant, b: BatonInstant) -> Swift.Duration { a.sinceOrigin - b.sinceOrigin }

    public var description: String { "t+\(sinceOrigin)" }
}
