/// What an exchange's two timers decide when they fire. The proxy keeps one lazy timer of each
/// kind per client connection: it fires at the instant the last decision named, and asks again.
/// Pure: the proxy passes `now` and every instant from its event loop's monotonic clock.
///
/// - The **response timer** runs while a request has gone out whole and no response head has
///   come. It ends the wait at the response timeout, and looks every `checkEvery` whether the
///   ingress left rotation meanwhile: a cut link neither answers nor resets, and an idempotent
///   request then goes elsewhere at once instead of waiting out the timeout.
/// - The **idle timer** runs while a request body or a response streams. It ends an exchange
///   in which no byte moved either way, and neither side became able to take more, for the
///   idle timeout. Whose stall it was decides the answer and whether the ingress is counted.
public enum EdgeExchangeTimers {
    /// The response timer's decision.
    public enum ResponseWait: Sendable, Hashable {
        /// Nothing to do yet: fire again at this instant.
        case wait(until: BatonInstant)
        /// The ingress left rotation while the idempotent request waited: give this attempt up
        /// and retry on another cluster. Nothing more is counted against the ingress (its
        /// ejection already was).
        case retryElsewhere
        /// The response timeout passed: a timeout, counted against the ingress (it may be
        /// retried as `EdgeRetryPolicy` says).
        case timedOut
    }

    /// - Parameters:
    ///   - deadline: when the response timeout ends.
    ///   - checkEvery: how often to look whether the ingress left rotation.
    ///   - idempotent: whether the request's method may be sent again.
    ///   - ingressDown: whether the ingress is out of rotation now; asked only for an idempotent
    ///     request before its deadline.
    public static func responseWait(now: BatonInstant, deadline: BatonInstant, checkEvery: Duration,
                                    idempotent: Bool, ingressDown: () -> Bool) -> ResponseWait {
        if now >= deadline { return .timedOut }
        if idempotent && ingressDown() { return .retryElsewhere }
        return .wait(until: min(deadline, now + checkEvery))
    }

    /// Where an exchange stands when its idle timer fires.
    public struct Stream: Sendable, Hashable {
        /// The request went out whole and no response head came: the response timer has it.
        public var awaitingResponse = false
        public var responseStarted = false
        /// The client's request body has ended (or it had none).
        public var requestEnded = false
        /// The client's connection can take more (its last writability change said so).
        public var clientWritable = true
        /// The ingress connection can take more of the body.
        public var ingressWritable = true

        public init(awaitingResponse: Bool = false, responseStarted: Bool = false, requestEnded: Bool = false,
                    clientWritable: Bool = true, ingressWritable: Bool = true) {
            self.awaitingResponse = awaitingResponse
            self.responseStarted = responseStarted
            self.requestEnded = requestEnded
            self.clientWritable = clientWritable
            self.ingressWritable = ingressWritable
        }
    }

    /// The idle timer's decision.
    public enum Idle: Sendable, Hashable {
        /// Nothing to do yet: fire again at this instant.
        case wait(until: BatonInstant)
        /// The response stalled while the client could take more: the ingress stopped sending.
        /// The client's connection is cut, and a timeout is counted against the ingress.
        case ingressStoppedSending
        /// The response stalled because the client stopped reading: its connection is cut, and
        /// nothing is counted against the ingress.
        case clientStoppedReading
        /// The client stopped sending its body: `408`, and the ingress connection (which holds
        /// part of a request) closes, not counted against it.
        case clientStoppedSending
        /// The ingress stopped taking the body: a timeout, counted against it (`504`, or a
        /// retry where `EdgeRetryPolicy` allows one).
        case ingressStoppedReading
    }

    /// - Parameters:
    ///   - lastProgress: when a byte last moved either way, or either side last became able to
    ///     take more.
    ///   - timeout: the idle timeout.
    public static func idle(now: BatonInstant, lastProgress: BatonInstant, timeout: Duration, _ s: Stream) -> Idle {
        if s.awaitingResponse { return .wait(until: now + timeout) }
        if now < lastProgress + timeout { return .wait(until: lastProgress + timeout) }
        if s.responseStarted { return s.clientWritable ? .ingressStoppedSending : .clientStoppedReading }
        if !s.requestEnded && s.ingressWritable { return .clientStoppedSending }
        return .ingressStoppedReading
    }
}
