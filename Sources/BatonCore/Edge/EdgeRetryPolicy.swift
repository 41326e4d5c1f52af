/// Whether a failed attempt is tried again, on another cluster.
///
/// - Retried: a connect failure, a reset before any response byte reached the client, and a 503
///   from an ingress. Never on the cluster that failed: the next pick excludes every cluster the
///   request has tried (Envoy's previous-hosts predicate).
/// - A request with a body is retried only when its method is idempotent, or its body was
///   fully buffered within `maxBufferedBody` bytes, so the proxy still holds it to send again.
///   A body streamed past the buffer is never replayed.
/// - At most `maxRetries` retries per request, and the retry budget: retries in flight stay
///   within `budgetPercent` of the requests in flight, with `minRetryConcurrency` always allowed
///   (Envoy's retry budget). The defaults (50%, 10) are above Envoy's (20%, 3): when one of two
///   clusters dies, half of the requests in flight need a retry at the same moment, and the
///   budget is there to stop a storm when everything fails, not to fail those.
/// - A request taken back from an ingress that left rotation while it waited (`abandoned`) is
///   retried outside the budget: its ingress is known to be out, the pick can only send it to one
///   in rotation, and there is no storm to stop (when every cluster is out, the pick answers 503).
///   Counted in the budget, the requests a frozen cluster held would all come back at one check
///   and the budget would fail some of them.
/// - A strict weighted list never retries (`EdgeRoute.failsOver`): the seed's weights split traffic
///   without failover.
public struct EdgeRetryPolicy: Sendable, Hashable {
    public var maxRetries: Int = 2
    public var maxBufferedBody: Int = 64 * 1024
    public var budgetPercent: Int = 50
    public var minRetryConcurrency: Int = 10
    public init() {}

    /// What a request's body allows.
    public enum Body: Sendable, Hashable {
        case none
        /// Fully received and held by the proxy, `bytes` long.
        case buffered(bytes: Int)
        /// Streamed to the ingress as it came; it cannot be sent again.
        case streamed
    }

    public enum Failure: Sendable, Hashable {
        case connectFailure
        /// The ingress closed or reset the connection before the response's head.
        case reset
        /// The ingress answered with this status (only 503 is retried).
        case status(Int)
        /// The proxy's own timeout: not retried (the ingress may be working on it).
        case timeout
        /// The ingress left rotation while the request (idempotent, as the proxy sent it)
        /// waited for its response head: the proxy took it back.
        case abandoned
    }

    public enum Decision: Sendable, Hashable {
        case retry
        case giveUp(reason: String)
    }

    public static let idempotentMethods: Set<String> = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]

    /// `retriesSoFar` counts this request's earlier retries; `inFlight`/`retriesInFlight` are the
    /// edge's current totals (the budget), not counting this retry.
    public func decide(_ failure: Failure, method: String, body: Body, route: EdgeRoute, retriesSoFar: Int,
                       inFlight: Int, retriesInFlight: Int) -> Decision {
        guard route.failsOver else { return .giveUp(reason: "a strict weighted list does not fail over") }
        switch failure {
        case .connectFailure, .reset, .status(503), .abandoned: break
        case .status(let s): return .giveUp(reason: "status \(s) is not retried")
        case .timeout: return .giveUp(reason: "a timed-out request is not retried")
        }
        switch body {
        case .none: break
        case .streamed: return .giveUp(reason: "the body was streamed and cannot be sent again")
        case .buffered(let n):
            if !Self.idempotentMethods.contains(method.uppercased()) && n > maxBufferedBody {
                return .giveUp(reason: "a \(method) body of \(n) bytes is over the \(maxBufferedBody)-byte replay limit")
            }
        }
        if retriesSoFar >= maxRetries { return .giveUp(reason: "\(maxRetries) retries already") }
        if failure == .abandoned { return .retry }
        let allowed = max(minRetryConcurrency, inFlight * budgetPercent / 100)
        if retriesInFlight >= allowed { return .giveUp(reason: "the retry budget (\(allowed) in flight) is spent") }
        return .retry
    }
}
