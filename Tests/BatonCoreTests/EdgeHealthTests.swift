import BatonAPI
import BatonCore
import BatonTesting
import Testing

@Suite struct OutlierDetectorTests {
    static let a = EdgeEndpoint(address: "127.0.0.11", port: 8080)
    static let b = EdgeEndpoint(address: "127.0.0.12", port: 8080)

    func detector(_ edit: (inout OutlierDetector.Settings) -> Void = { _ in }) -> OutlierDetector {
        var s = OutlierDetector.Settings()
        edit(&s)
        var d = OutlierDetector(settings: s)
        d.track([Self.a, Self.b], now: .zero)
        return d
    }

    @Test(arguments: [
        (EdgeAttemptOutcome.connectFailure, 3, OutlierDetector.Reason.consecutiveLocalOriginFailures),
        (.reset, 3, .consecutiveLocalOriginFailures),
        (.timeout, 3, .consecutiveLocalOriginFailures),   // the proxy's own timeouts count
        (.status(503), 3, .consecutiveGatewayErrors),
        (.status(502), 3, .consecutiveGatewayErrors),
        (.status(500), 5, .consecutive5xx),
    ])
    func ejectsAfterConsecutiveFailures(outcome: EdgeAttemptOutcome, threshold: Int, reason: OutlierDetector.Reason) {
        var d = detector()
        for _ in 1..<threshold { #expect(d.record(outcome, for: Self.a, now: .zero) == []) }
        #expect(d.record(outcome, for: Self.a, now: .zero) == [.eject(Self.a, reason: reason, until: .zero + .seconds(5), count: 1)])
        #expect(d.isEjected(Self.a))
        #expect(!d.isEjected(Self.b))
        // Attempts that were in flight change nothing.
        #expect(d.record(outcome, for: Self.a, now: .zero) == [])
    }

    @Test func aSuccessOrA4xxResetsTheCount() {
        var d = detector()
        // Two connect failures, a success, two more: no ejection (without the reset, the third
        // failure in a row would eject; the threshold is 3).
        for outcome in [EdgeAttemptOutcome.connectFailure, .connectFailure, .success, .connectFailure, .connectFailure] {
            #expect(d.record(outcome, for: Self.a, now: .zero) == [], "\(outcome)")
        }
        // A 4xx is the client's fault, not the ingress's: it resets the count too (gateway errors
        // also eject at 3 in a row).
        for outcome in [EdgeAttemptOutcome.status(503), .status(503), .status(404), .status(503), .status(503)] {
            #expect(d.record(outcome, for: Self.a, now: .zero) == [], "\(outcome)")
        }
        #expect(!d.isEjected(Self.a))
        // And the count is real: a third gateway error in a row ejects.
        #expect(d.record(.status(503), for: Self.a, now: .zero).count == 1)
        #expect(d.isEjected(Self.a))
    }

    @Test func ejectionTimeGrowsOnRepeatsAndDecaysWhileHealthy() {
        let clock = ManualClock()
        var d = detector()
        func fail() -> [OutlierDetector.Decision] {
            (0..<3).flatMap { _ in d.record(.connectFailure, for: Self.a, now: clock.now) }
        }
        #expect(fail() == [.eject(Self.a, reason: .consecutiveLocalOriginFailures, until: clock.now + .seconds(5), count: 1)])
        #expect(d.nextDeadline == clock.now + .seconds(5))
        clock.advance(by: .milliseconds(4999))
        #expect(d.evaluate(now: clock.now) == [])
        clock.advance(by: .milliseconds(1))
        #expect(d.evaluate(now: clock.now) == [.uneject(Self.a)])
        #expect(!d.isEjected(Self.a))
        // Fails again at once: twice the base time.
        #expect(fail() == [.eject(Self.a, reason: .consecutiveLocalOriginFailures, until: clock.now + .seconds(10), count: 2)])
        clock.advance(by: .seconds(10))
        #expect(d.evaluate(now: clock.now) == [.uneject(Self.a)])
        #expect(fail().first == .eject(Self.a, reason: .consecutiveLocalOriginFailures, until: clock.now + .seconds(15), count: 3))
        clock.advance(by: .seconds(15))
        _ = d.evaluate(now: clock.now)
        // 10 s (two base times) in rotation: the count goes from 3 to 1, so the next is 2 × 5 s.
        clock.advance(by: .seconds(10))
        #expect(fail() == [.eject(Self.a, reason: .consecutiveLocalOriginFailures, until: clock.now + .seconds(10), count: 2)])
    }

    @Test func unejectEndsAnEjectionEarlyAndKeepsItsCount() {
        var d = detector()
        _ = (0..<3).map { _ in d.record(.connectFailure, for: Self.a, now: .zero) }
        let first = d.uneject(Self.a, now: .zero + .seconds(1))
        #expect(first)
        #expect(!d.isEjected(Self.a))
        #expect(d.evaluate(now: .zero + .seconds(5)) == [])
        let second = d.uneject(Self.a, now: .zero + .seconds(1))
        #expect(!second)
        let again = (0..<3).flatMap { _ in d.record(.connectFailure, for: Self.a, now: .zero + .seconds(2)) }
        #expect(again == [.eject(Self.a, reason: .consecutiveLocalOriginFailures, until: .zero + .seconds(12), count: 2)])
    }

    @Test func ejectionTimeIsCapped() {
        var d = detector { $0.maxEjectionTime = .seconds(12) }
        var now = BatonInstant.zero
        var times: [Duration] = []
        for _ in 0..<4 {
            for decision in (0..<3).flatMap({ _ in d.record(.reset, for: Self.a, now: now) }) {
                if case .eject(_, _, let until, _) = decision { times.append(until - now) }
            }
            now = now + .seconds(20)
            #expect(d.evaluate(now: now) == [.uneject(Self.a)])
        }
        #expect(times == [.seconds(5), .seconds(10), .seconds(12), .seconds(12)])
    }

    @Test func everyEndpointMayBeEjectedByDefaultButAPercentCapHolds() {
        var d = detector()
        _ = (0..<3).map { _ in d.record(.connectFailure, for: Self.a, now: .zero) }
        _ = (0..<3).map { _ in d.record(.connectFailure, for: Self.b, now: .zero) }
        #expect(d.ejected == [Self.a, Self.b])

        var capped = detector { $0.maxEjectionPercent = 50 }
        _ = (0..<3).map { _ in capped.record(.connectFailure, for: Self.a, now: .zero) }
        #expect(capped.record(.connectFailure, for: Self.b, now: .zero) == [])
        #expect(capped.ejected == [Self.a])
    }

    enum BadSetting: String, CaseIterable, Sendable { case consecutive5xx, maxEjectionPercent, maxEjectionTime }

    @Test(arguments: BadSetting.allCases)
    func badSettingsAreRefusedByName(bad: BadSetting) {
        var s = OutlierDetector.Settings()
        switch bad {
        case .consecutive5xx: s.consecutive5xx = 0
        case .maxEjectionPercent: s.maxEjectionPercent = 101
        case .maxEjectionTime: s.maxEjectionTime = .seconds(1)
        }
        #expect { try s.validate() } throws: { ($0 as? ConfigurationError)?.message.hasPrefix(bad.rawValue) == true }
    }
}

@Suite struct ActiveHealthCheckTests {
    static let a = EdgeEndpoint(address: "127.0.0.11", port: 8080)

    @Test func checksEveryIntervalOneInFlightAndThresholdsBothWays() {
        let clock = ManualClock()
        var h = ActiveHealthCheck()   // 500 ms interval, thresholds 2
        h.track([Self.a], now: clock.now)
        #expect(h.isHealthy(Self.a))
        #expect(h.evaluate(now: clock.now) == [.check(Self.a)])
        #expect(h.evaluate(now: clock.advance(by: .seconds(1))) == [])          // still in flight
        #expect(h.record(Self.a, passed: false, now: clock.now) == [])
        #expect(h.evaluate(now: clock.now) == [.check(Self.a)])                 // overdue: at once
        #expect(h.record(Self.a, passed: false, now: clock.now) == [.markUnhealthy(Self.a)])
        #expect(!h.isHealthy(Self.a))
        #expect(h.nextDeadline == clock.now + .milliseconds(500))
        #expect(h.evaluate(now: clock.advance(by: .milliseconds(499))) == [])
        #expect(h.evaluate(now: clock.advance(by: .milliseconds(1))) == [.check(Self.a)])
        #expect(h.record(Self.a, passed: true, now: clock.now) == [])
        _ = h.evaluate(now: clock.advance(by: .milliseconds(500)))
        #expect(h.record(Self.a, passed: true, now: clock.now) == [.markHealthy(Self.a)])
        // A failure between successes resets the count.
        _ = h.evaluate(now: clock.advance(by: .milliseconds(500)))
        #expect(h.record(Self.a, passed: false, now: clock.now) == [])
        _ = h.evaluate(now: clock.advance(by: .milliseconds(500)))
        #expect(h.record(Self.a, passed: true, now: clock.now) == [])
        _ = h.evaluate(now: clock.advance(by: .milliseconds(500)))
        #expect(h.record(Self.a, passed: false, now: clock.now) == [])
        #expect(h.isHealthy(Self.a))
    }

    @Test func timeoutOverIntervalIsRefused() {
        var s = ActiveHealthCheck.Settings()
        s.timeout = .seconds(2)
        #expect { try s.validate() } throws: { ($0 as? ConfigurationError)?.message.contains("must not exceed its interval") == true }
    }
}

@Suite struct EdgeRetryPolicyTests {
    static let failover = EdgeRoute(mode: .locality, clusters: [])
    static let strict = EdgeRoute(mode: .weighted(healthAware: false), clusters: [])
    static let aware = EdgeRoute(mode: .weighted(healthAware: true), clusters: [])

    func decide(_ f: EdgeRetryPolicy.Failure, method: String = "GET", body: EdgeRetryPolicy.Body = .none,
                route: EdgeRoute = failover, so far: Int = 0, inFlight: Int = 10, retries: Int = 0) -> EdgeRetryPolicy.Decision {
        EdgeRetryPolicy().decide(f, method: method, body: body, route: route, retriesSoFar: far, inFlight: inFlight, retriesInFlight: retries)
    }

    @Test func retriesConnectFailuresResetsAnd503Only() {
        #expect(decide(.connectFailure) == .retry)
        #expect(decide(.reset) == .retry)
        #expect(decide(.status(503)) == .retry)
        #expect(decide(.status(500)) == .giveUp(reason: "status 500 is not retried"))
        #expect(decide(.timeout) == .giveUp(reason: "a timed-out request is not retried"))
        #expect(decide(.connectFailure, route: Self.aware) == .retry)
        #expect(decide(.connectFailure, route: Self.strict) == .giveUp(reason: "a strict weighted list does not fail over"))
    }

    @Test func bodiesOnlyWhenIdempotentOrBufferedUnderTheLimit() {
        #expect(decide(.reset, method: "PUT", body: .buffered(bytes: 1 << 20)) == .retry)
        #expect(decide(.reset, method: "POST", body: .buffered(bytes: 1000)) == .retry)
        #expect(decide(.reset, method: "POST", body: .buffered(bytes: 100_000))
            == .giveUp(reason: "a POST body of 100000 bytes is over the 65536-byte replay limit"))
        #expect(decide(.reset, method: "PUT", body: .streamed) == .giveUp(reason: "the body was streamed and cannot be sent again"))
    }

    @Test func boundedPerRequestAndByTheBudget() {
        #expect(decide(.reset, so: 2) == .giveUp(reason: "2 retries already"))
        #expect(decide(.reset, inFlight: 10, retries: 9) == .retry)             // min concurrency 10
        #expect(decide(.reset, inFlight: 10, retries: 10) == .giveUp(reason: "the retry budget (10 in flight) is spent"))
        #expect(decide(.reset, inFlight: 100, retries: 49) == .retry)           // 50% of 100
        #expect(decide(.reset, inFlight: 100, retries: 50) == .giveUp(reason: "the retry budget (50 in flight) is spent"))
    }

    /// A request taken back from an ingress that left rotation is retried outside the budget
    /// (16 requests held by a frozen cluster come back at one check), but within everything else.
    @Test func anAbandonedRequestIsRetriedOutsideTheBudgetOnly() {
        #expect(decide(.reset, inFlight: 16, retries: 10) == .giveUp(reason: "the retry budget (10 in flight) is spent"))
        #expect(decide(.abandoned, inFlight: 16, retries: 10) == .retry)
        #expect(decide(.abandoned, inFlight: 16, retries: 1000) == .retry)
        #expect(decide(.abandoned, so: 2) == .giveUp(reason: "2 retries already"))
        #expect(decide(.abandoned, route: Self.strict) == .giveUp(reason: "a strict weighted list does not fail over"))
        #expect(decide(.abandoned, method: "PUT", body: .streamed) == .giveUp(reason: "the body was streamed and cannot be sent again"))
    }
}
