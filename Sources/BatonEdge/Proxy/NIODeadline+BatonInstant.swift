import BatonCore
import NIOCore

/// The proxy's timers run on NIO's monotonic clock; `EdgeExchangeTimers` decides on
/// `BatonInstant`s. The two meet here: an instant is the deadline's uptime, so instants made
/// from deadlines compare as the deadlines do.
extension NIODeadline {
    var instant: BatonInstant { BatonInstant(sinceOrigin: .nanoseconds(Int64(clamping: uptimeNanoseconds))) }

    init(_ instant: BatonInstant) {
        let (seconds, attoseconds) = instant.sinceOrigin.components
        self = .uptimeNanoseconds(UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds / 1_000_000_000)))
    }
}
