import BatonCore
import BatonTesting
import Testing

/// The response timer and the idle timer of an exchange, driven step by step: each test fires
/// the timer at the instant the last decision named, as the proxy does.
@Suite struct EdgeExchangeTimerTests {
    typealias Timers = EdgeExchangeTimers
    static let responseTimeout = Duration.seconds(15)
    static let checkEvery = Duration.milliseconds(250)
    static let idleTimeout = Duration.seconds(60)

    // MARK: Response timer

    @Test func aWaitLooksAtTheIngressEveryCheckAndTimesOutAtTheDeadline() {
        let clock = ManualClock()
        let deadline = clock.now + Self.responseTimeout
        var looks = 0
        var fires = 0
        while true {
            fires += 1
            let d = Timers.responseWait(now: clock.now, deadline: deadline, checkEvery: Self.checkEvery, idempotent: true,
                                        ingressDown: { looks += 1; return false })
            guard case .wait(let next) = d else {
                #expect(d == .timedOut)
                break
            }
            #expect(next > clock.now)
            #expect(next <= deadline)
            clock.set(to: next)
        }
        // 15 s in steps of 250 ms: 60 waits, then the timeout; the ingress was looked at each time
        // before the deadline, and not at the deadline.
        #expect(clock.now == deadline)
        #expect(fires == 61)
        #expect(looks == 60)
    }

    @Test func anIdempotentRequestWhoseIngressLeftRotationIsRetriedElsewhereAtTheNextLook() {
        let clock = ManualClock()
        let deadline = clock.now + Self.responseTimeout
        var down = false
        let first = Timers.responseWait(now: clock.now, deadline: deadline, checkEvery: Self.checkEvery, idempotent: true,
                                        ingressDown: { down })
        #expect(first == .wait(until: clock.now + Self.checkEvery))
        // The link is cut; passive detection ejects the ingress 100 ms later.
        clock.advance(by: .milliseconds(100))
        down = true
        clock.set(to: clock.now + .milliseconds(150))
        #expect(Timers.responseWait(now: clock.now, deadline: deadline, checkEvery: Self.checkEvery, idempotent: true,
                                    ingressDown: { down }) == .retryElsewhere)
    }

    @Test func aRequestThatIsNotIdempotentWaitsForItsTimeoutWithoutAsking() {
        let clock = ManualClock()
        let deadline = clock.now + .milliseconds(600)
        var asked = false
        let d = Timers.responseWait(now: clock.now, deadline: deadline, checkEvery: Self.checkEvery, idempotent: false,
                                    ingressDown: { asked = true; return true })
        #expect(d == .wait(until: clock.now + Self.checkEvery))
        clock.advance(by: .milliseconds(500))
        // The last wait ends at the deadline, not a whole check later.
        #expect(Timers.responseWait(now: clock.now, deadline: deadline, checkEvery: Self.checkEvery, idempotent: false,
                                    ingressDown: { asked = true; return true }) == .wait(until: deadline))
        clock.set(to: deadline)
        #expect(Timers.responseWait(now: clock.now, deadline: deadline, checkEvery: Self.checkEvery, idempotent: false,
                                    ingressDown: { asked = true; return true }) == .timedOut)
        #expect(!asked)
    }

    @Test func theTimeoutWinsOverAnIngressThatIsAlsoDown() {
        let t = BatonInstant.zero + .seconds(20)
        #expect(Timers.responseWait(now: t, deadline: .zero + Self.responseTimeout, checkEvery: Self.checkEvery, idempotent: true,
                                    ingressDown: { true }) == .timedOut)
    }

    // MARK: Idle timer

    /// Fires the idle timer until it decides something other than waiting; returns that and
    /// when it came. `progress` gives the instants bytes moved.
    func runIdle(_ s: Timers.Stream, from start: BatonInstant, progress: [BatonInstant] = []) -> (Timers.Idle, BatonInstant) {
        let clock = ManualClock(start)
        var last = start
        var fireAt = start + Self.idleTimeout
        for _ in 0..<100 {
            clock.set(to: fireAt)
            last = max(last, progress.filter { $0 <= clock.now }.max() ?? last)
            let d = Timers.idle(now: clock.now, lastProgress: last, timeout: Self.idleTimeout, s)
            guard case .wait(let next) = d else { return (d, clock.now) }
            #expect(next > clock.now)
            fireAt = next
        }
        Issue.record("the idle timer never decided")
        return (.wait(until: clock.now), clock.now)
    }

    @Test func progressPushesTheStallBackAndTheTimerFiresOnceMoreForIt() {
        let start = BatonInstant.zero
        // Response bytes moved at 30 s and 70 s; the ingress then sent nothing while the client
        // could take more.
        let stream = Timers.Stream(responseStarted: true, requestEnded: true)
        let (d, at) = runIdle(stream, from: start, progress: [start + .seconds(30), start + .seconds(70)])
        #expect(d == .ingressStoppedSending)
        #expect(at == start + .seconds(130))
    }

    @Test(arguments: [
        // A response stalls: whose fault depends on whether the client could take more.
        (Timers.Stream(responseStarted: true, requestEnded: true, clientWritable: true), Timers.Idle.ingressStoppedSending),
        (Timers.Stream(responseStarted: true, requestEnded: true, clientWritable: false), .clientStoppedReading),
        // A body stalls: the client stopped sending while the ingress could take more, or the
        // ingress stopped taking it.
        (Timers.Stream(requestEnded: false, ingressWritable: true), .clientStoppedSending),
        (Timers.Stream(requestEnded: false, ingressWritable: false), .ingressStoppedReading),
        // A response that started while the body still came (an early answer) is the response's stall.
        (Timers.Stream(responseStarted: true, requestEnded: false, clientWritable: true), .ingressStoppedSending),
    ])
    func aStallIsJudgedByWhoStoppedMoving(stream: Timers.Stream, expected: Timers.Idle) {
        let (d, at) = runIdle(stream, from: .zero)
        #expect(d == expected)
        #expect(at == BatonInstant.zero + Self.idleTimeout)
    }

    @Test func whileTheResponseTimerHasTheExchangeTheIdleTimerOnlyWaits() {
        let now = BatonInstant.zero + .seconds(500)
        let s = Timers.Stream(awaitingResponse: true, requestEnded: true)
        // Long past the last progress, still only a wait: the response timeout bounds this part.
        #expect(Timers.idle(now: now, lastProgress: .zero, timeout: Self.idleTimeout, s) == .wait(until: now + Self.idleTimeout))
    }
}
