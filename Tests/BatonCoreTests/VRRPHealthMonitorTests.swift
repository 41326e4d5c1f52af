import BatonCore
import BatonTesting
import Testing

private typealias Monitor = VRRPHealthMonitor
private typealias Action = VRRPHealthMonitor.Action

private func check(_ name: String = "tcp 10.0.0.1:80", interval: Duration = .seconds(2), timeout: Duration? = nil,
                   rise: Int = 1, fall: Int = 1, weight: Int = 0) -> Monitor.Check {
    try! Monitor.Check(name: name, interval: interval, timeout: timeout, rise: rise, fall: fall, weight: weight)
}

/// The runs a list of actions starts.
private func runs(_ actions: [Action]) -> [(check: Int, run: UInt64, deadline: BatonInstant)] {
    actions.compactMap { if case .run(let c, let r, let d) = $0 { (c, r, d) } else { nil } }
}

private func verdicts(_ actions: [Action]) -> [Monitor.Verdict] {
    actions.compactMap { if case .verdictChanged(let v) = $0 { v } else { nil } }
}

/// Starts the due runs at `clock.now` and completes each with `outcome`; returns every action.
private func turn(_ monitor: inout Monitor, clock: ManualClock, _ outcome: Monitor.Outcome) -> [Action] {
    var actions = monitor.handle(.timerFired, now: clock.now)
    for r in runs(actions) {
        actions += monitor.handle(.completed(check: r.check, run: r.run, outcome), now: clock.now)
    }
    return actions
}

@Suite struct VRRPCheckCounterTests {
    /// keepalived 2.2.7's `result` arithmetic, outcome by outcome.
    struct Case: Sendable, CustomTestStringConvertible {
        var rise: Int
        var fall: Int
        /// "+" success, "-" failure.
        var outcomes: String
        /// The status after each outcome: u(p), d(own).
        var statuses: String
        var testDescription: String { "rise \(rise) fall \(fall): \(outcomes)" }
    }

    @Test(arguments: [
        // The first outcome decides at once, whatever rise and fall are.
        Case(rise: 3, fall: 3, outcomes: "+", statuses: "u"),
        Case(rise: 3, fall: 3, outcomes: "-", statuses: "d"),
        // Up: fall failures in a row bring it down; a success in between starts again.
        Case(rise: 1, fall: 3, outcomes: "+---", statuses: "uuud"),
        Case(rise: 1, fall: 3, outcomes: "+--+--", statuses: "uuuuuu"),
        Case(rise: 1, fall: 3, outcomes: "+--+---", statuses: "uuuuuud"),
        // Down: rise successes in a row bring it up; a failure in between starts again.
        Case(rise: 2, fall: 1, outcomes: "-++", statuses: "ddu"),
        Case(rise: 3, fall: 1, outcomes: "-++-+++", statuses: "dddddd" + "u"),
        Case(rise: 2, fall: 2, outcomes: "-++--++", statuses: "dduuddu"),
        // rise 1 / fall 1 (keepalived's defaults, OpenShift's check): every outcome counts.
        Case(rise: 1, fall: 1, outcomes: "+-+-", statuses: "udud"),
    ])
    func riseAndFallAsKeepalivedCounts(_ c: Case) {
        var counter = VRRPCheckCounter(rise: c.rise, fall: c.fall)
        #expect(counter.status == .unknown)
        var seen = ""
        for outcome in c.outcomes {
            _ = counter.record(success: outcome == "+")
            seen += counter.status == .up ? "u" : "d"
        }
        #expect(seen == c.statuses)
    }

    @Test func recordReportsOnlyChanges() {
        var counter = VRRPCheckCounter(rise: 1, fall: 2)
        #expect(counter.record(success: true) == .up)      // from unknown
        #expect(counter.record(success: false) == nil)     // one failure tolerated
        #expect(counter.record(success: false) == .down)
        #expect(counter.record(success: false) == nil)
        #expect(counter.record(success: true) == .up)
    }
}

@Suite struct VRRPHealthMonitorTests {
    // MARK: - Scheduling

    @Test func everyCheckRunsAtOnceThenEveryInterval() {
        let clock = ManualClock()
        var monitor = Monitor(checks: [check(interval: .seconds(2)), check("http", interval: .seconds(3))], now: clock.now)
        #expect(monitor.nextDeadline == clock.now)
        var started = runs(monitor.handle(.timerFired, now: clock.now))
        #expect(started.map(\.check) == [0, 1])
        #expect(started.map(\.deadline) == [.zero + .seconds(2), .zero + .seconds(3)], "the timeout defaults to the interval")
        for r in started { _ = monitor.handle(.completed(check: r.check, run: r.run, .success), now: clock.now) }
        #expect(monitor.nextDeadline == .zero + .seconds(2))

        // Early wake-ups do nothing.
        clock.advance(by: .seconds(1))
        #expect(monitor.handle(.timerFired, now: clock.now).isEmpty)

        clock.set(to: .zero + .seconds(2))
        started = runs(monitor.handle(.timerFired, now: clock.now))
        #expect(started.map(\.check) == [0])
        #expect(started.first?.run == 3, "run numbers never repeat")
        _ = monitor.handle(.completed(check: 0, run: 3, .success), now: clock.now)
        #expect(monitor.nextDeadline == .zero + .seconds(3))
    }

    @Test func aRunStillGoingIsNotDoubledAndItsTimeoutIsAFailure() {
        let clock = ManualClock()
        var monitor = Monitor(checks: [check(interval: .seconds(1), timeout: .milliseconds(2500))], now: clock.now)
        let first = runs(monitor.handle(.timerFired, now: clock.now))
        #expect(first.count == 1)

        // Due again at 1 s and 2 s, but the run is still going: skipped.
        clock.set(to: .zero + .seconds(1))
        #expect(monitor.handle(.timerFired, now: clock.now).isEmpty)
        clock.set(to: .zero + .seconds(2))
        #expect(monitor.handle(.timerFired, now: clock.now).isEmpty)
        #expect(monitor.nextDeadline == .zero + .milliseconds(2500), "the timeout comes before the next turn")

        // At its deadline: cancelled, counted as a failure (the first outcome: FAULT at once).
        clock.set(to: .zero + .milliseconds(2500))
        let actions = monitor.handle(.timerFired, now: clock.now)
        #expect(actions.contains(.cancel(check: 0, run: first[0].run)))
        #expect(actions.contains(.statusChanged(check: 0, .down, reason: "timed out after 2.5 seconds")))
        #expect(verdicts(actions) == [Monitor.Verdict(ready: true, fault: "check tcp 10.0.0.1:80 failed: timed out after 2.5 seconds", priorityOffset: 0)])

        // Its outcome, arriving late, is ignored.
        #expect(monitor.handle(.completed(check: 0, run: first[0].run, .success), now: clock.now).isEmpty)
        #expect(monitor.status(ofCheck: 0) == .down)

        // The next turn runs again.
        clock.set(to: .zero + .seconds(3))
        #expect(runs(monitor.handle(.timerFired, now: clock.now)).count == 1)
    }

    @Test func outcomesOfUnknownRunsAreIgnored() {
        let clock = ManualClock()
        var monitor = Monitor(checks: [check()], now: clock.now)
        let run = runs(monitor.handle(.timerFired, now: clock.now))[0].run
        #expect(monitor.handle(.completed(check: 0, run: run + 1, .failure("x")), now: clock.now).isEmpty)
        #expect(monitor.handle(.completed(check: 7, run: run, .failure("x")), now: clock.now).isEmpty)
        #expect(monitor.status(ofCheck: 0) == .unknown)
    }

    // MARK: - FAULT (weight 0)

    @Test func aWeightZeroCheckHoldsTheInstancesUntilItsFirstOutcomeThenFaultsAndRecovers() {
        let clock = ManualClock()
        var monitor = Monitor(checks: [check(interval: .seconds(2))], now: clock.now)
        #expect(monitor.verdict == Monitor.Verdict(ready: false, fault: nil, priorityOffset: 0))
        #expect(monitor.verdict.startupEvents(base: 100).isEmpty, "instances wait for the first outcome")

        // Nothing listens: the first failure is FAULT at once.
        var actions = turn(&monitor, clock: clock, .failure("connection refused"))
        let fault = Monitor.Verdict(ready: true, fault: "check tcp 10.0.0.1:80 failed: connection refused", priorityOffset: 0)
        #expect(verdicts(actions) == [fault])
        #expect(actions.contains(.statusChanged(check: 0, .down, reason: "connection refused")))
        #expect(fault.startupEvents(base: 100) == [.fault("check tcp 10.0.0.1:80 failed: connection refused"), .startup])

        // Still failing, with another reason: no new verdict (the reason that brought it down stays).
        clock.advance(by: .seconds(2))
        #expect(verdicts(turn(&monitor, clock: clock, .failure("timed out"))).isEmpty)

        // A listener: recovered at the next turn.
        clock.advance(by: .seconds(2))
        actions = turn(&monitor, clock: clock, .success)
        #expect(verdicts(actions) == [.healthy])
        #expect(Monitor.Verdict.healthy.events(since: fault, base: 100) == [.recovered])
        #expect(fault.events(since: .healthy, base: 100) == [.fault("check tcp 10.0.0.1:80 failed: connection refused")])
    }

    @Test func fallFailuresInARowBeforeFaultAndRiseSuccessesBeforeRecovery() {
        let clock = ManualClock()
        var monitor = Monitor(checks: [check(interval: .seconds(1), rise: 2, fall: 3)], now: clock.now)
        var log: [Monitor.Verdict] = []
        func step(_ outcome: Monitor.Outcome) {
            log += verdicts(turn(&monitor, clock: clock, outcome))
            clock.advance(by: .seconds(1))
        }
        step(.success)
        #expect(log == [.healthy])
        step(.failure("refused")); step(.failure("refused"))
        #expect(log.count == 1, "two failures are tolerated with fall 3")
        step(.failure("refused"))
        #expect(log.last?.fault == "check tcp 10.0.0.1:80 failed: refused")
        step(.success)
        #expect(log.count == 2, "one success is not enough with rise 2")
        step(.success)
        #expect(log.last == .healthy)
        #expect(log.count == 3)
    }

    @Test func theFirstWeightZeroCheckDownGivesTheReason() {
        let clock = ManualClock()
        var monitor = Monitor(checks: [check("tcp a"), check("script b")], now: clock.now)
        var actions = monitor.handle(.timerFired, now: clock.now)
        let started = runs(actions)
        actions += monitor.handle(.completed(check: 1, run: started[1].run, .failure("exit status 1")), now: clock.now)
        #expect(monitor.verdict.ready == false, "check a has not answered yet")
        actions += monitor.handle(.completed(check: 0, run: started[0].run, .success), now: clock.now)
        #expect(monitor.verdict == Monitor.Verdict(ready: true, fault: "check script b failed: exit status 1", priorityOffset: 0))
    }

    // MARK: - Weights

    @Test func aNegativeWeightLowersThePriorityWhileTheCheckIsDown() {
        let clock = ManualClock()
        var monitor = Monitor(checks: [check(weight: -60)], now: clock.now)
        #expect(monitor.verdict.ready, "a weighted check does not hold the instances back")
        #expect(monitor.verdict.startupEvents(base: 150) == [.startup], "no change before its first outcome")

        var actions = turn(&monitor, clock: clock, .failure("connection refused"))
        let lowered = Monitor.Verdict(ready: true, fault: nil, priorityOffset: -60)
        #expect(verdicts(actions) == [lowered])
        #expect(lowered.events(since: .healthy, base: 150) == [.priorityChanged(90)])

        clock.advance(by: .seconds(2))
        actions = turn(&monitor, clock: clock, .success)
        #expect(verdicts(actions) == [.healthy])
        #expect(Monitor.Verdict.healthy.events(since: lowered, base: 150) == [.priorityChanged(150)])
    }

    @Test func aPositiveWeightRaisesThePriorityWhileTheCheckIsUp() {
        let clock = ManualClock()
        var monitor = Monitor(checks: [check(weight: 20), check("b", weight: -5)], now: clock.now)
        let actions = monitor.handle(.timerFired, now: clock.now)
        let started = runs(actions)
        _ = monitor.handle(.completed(check: 0, run: started[0].run, .success), now: clock.now)
        _ = monitor.handle(.completed(check: 1, run: started[1].run, .failure("x")), now: clock.now)
        #expect(monitor.verdict.priorityOffset == 15)
        #expect(monitor.verdict.startupEvents(base: 100) == [.priorityChanged(115), .startup])
    }

    @Test(arguments: [
        (UInt8(100), -200, UInt8(1)),     // never below 1
        (UInt8(200), 100, UInt8(254)),    // never 255: that is the address owner's
        (UInt8(255), -100, UInt8(255)),   // the owner's priority never changes
        (UInt8(100), 0, UInt8(100)),
    ])
    func theEffectivePriorityStaysInRange(base: UInt8, offset: Int, expected: UInt8) {
        #expect(Monitor.Verdict(ready: true, fault: nil, priorityOffset: offset).priority(base: base) == expected)
    }

    @Test func aFaultWithALoweredPrioritySetsThePriorityFirst() {
        let both = Monitor.Verdict(ready: true, fault: "check a failed: x", priorityOffset: -10)
        #expect(both.startupEvents(base: 100) == [.priorityChanged(90), .fault("check a failed: x"), .startup])
        #expect(Monitor.Verdict.healthy.events(since: both, base: 100) == [.priorityChanged(100), .recovered])
    }

    // MARK: - Refusals

    @Test(arguments: [
        (Duration.zero, nil as Duration?, 1, 1, 0, "check c: interval must be more than 0, got 0.0 seconds"),
        (.seconds(1), .zero, 1, 1, 0, "check c: timeout must be more than 0, got 0.0 seconds"),
        (.seconds(1), nil, 0, 1, 0, "check c: rise must be at least 1, got 0"),
        (.seconds(1), nil, 1, 0, 0, "check c: fall must be at least 1, got 0"),
        (.seconds(1), nil, 1, 1, 254, "check c: weight must be in -253...253, got 254"),
        (.seconds(1), nil, 1, 1, -300, "check c: weight must be in -253...253, got -300"),
    ])
    func refusedChecksNameTheValue(interval: Duration, timeout: Duration?, rise: Int, fall: Int, weight: Int, message: String) {
        #expect(throws: ConfigurationError.self) {
            _ = try Monitor.Check(name: "c", interval: interval, timeout: timeout, rise: rise, fall: fall, weight: weight)
        }
        do {
            _ = try Monitor.Check(name: "c", interval: interval, timeout: timeout, rise: rise, fall: fall, weight: weight)
        } catch { #expect(error.message == message) }
    }

    // MARK: - With the instance

    /// The verdicts drive a real `VRRPInstance`: a Master whose weight-0 check fails leaves with
    /// a priority-0 advertisement and notifies FAULT; recovery starts it again as Backup.
    @Test func aFailedCheckTakesAMasterToFaultAndRecoveryBringsItBack() {
        let clock = ManualClock()
        var monitor = Monitor(checks: [check(interval: .seconds(1))], now: clock.now)
        let cfg = try! VRRPInstance.Configuration(version: .v3, vrid: 51, priority: 150, advertInterval: .seconds(1),
                                                  primaryAddress: .init("10.0.0.1")!)
        var vrrp = VRRPInstance(configuration: cfg)
        _ = turn(&monitor, clock: clock, .success)
        for e in monitor.verdict.startupEvents(base: 150) { _ = vrrp.handle(e, now: clock.now) }
        clock.set(to: vrrp.nextDeadline!)
        _ = vrrp.handle(.timerFired, now: clock.now)
        #expect(vrrp.state == .master)

        clock.advance(by: .seconds(1))
        var applied = monitor.verdict
        _ = turn(&monitor, clock: clock, .failure("connection refused"))
        var actions: [VRRPInstance.Action] = []
        for e in monitor.verdict.events(since: applied, base: 150) { actions += vrrp.handle(e, now: clock.now) }
        applied = monitor.verdict
        #expect(actions == [.sendAdvertisement(priority: 0), .releaseAddresses,
                            .becameFault(reason: "check tcp 10.0.0.1:80 failed: connection refused"), .notify(.fault)])
        #expect(vrrp.state == .fault)

        clock.advance(by: .seconds(1))
        _ = turn(&monitor, clock: clock, .success)
        actions = []
        for e in monitor.verdict.events(since: applied, base: 150) { actions += vrrp.handle(e, now: clock.now) }
        #expect(actions == [.becameBackup, .notify(.backup)])
    }
}
