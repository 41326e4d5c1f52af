import BatonAPI
import BatonCore
import BatonTesting
import Testing

/// Gateway health, the choice of gateways and conflicts between StaticRoutes, step by step on
/// a manual clock, as each node's agent takes these decisions.
@Suite struct StaticRouteDecisionTests {
    static let interval = Duration.milliseconds(50)
    static let primary = IPAddress("10.116.0.4")!
    static let secondary = IPAddress("10.116.0.12")!
    static let third = IPAddress("10.116.0.13")!

    static func health(_ now: BatonInstant, holdDown: Duration = .seconds(5)) -> GatewayHealth {
        GatewayHealth(failureThreshold: 3, successThreshold: 3, holdDown: holdDown, now: now)
    }

    @Test func thresholdsDecideHealthAndTheHoldDownStartsOnRecovery() {
        let clock = ManualClock()
        var h = Self.health(clock.now)
        #expect(h.state == .unknown && h.usable)
        #expect(h.record(answered: true, now: clock.now) == .healthy)
        // Two failures are not enough; an answer in between resets the count.
        for answered in [false, false, true, false, false] {
            #expect(h.record(answered: answered, now: clock.advance(by: Self.interval)) == nil)
        }
        #expect(h.record(answered: false, now: clock.advance(by: Self.interval)) == .unhealthy)
        #expect(!h.usable)
        #expect(h.record(answered: false, now: clock.advance(by: Self.interval)) == nil)
        // Back: successThreshold answers in a row, then the hold-down runs from that instant.
        #expect(h.record(answered: true, now: clock.advance(by: Self.interval)) == nil)
        #expect(h.record(answered: true, now: clock.advance(by: Self.interval)) == nil)
        let back = clock.advance(by: Self.interval)
        #expect(h.record(answered: true, now: back) == .healthy)
        #expect(h.inHoldDown(now: back))
        #expect(h.holdDownEnds(now: back) == back + .seconds(5))
        #expect(h.inHoldDown(now: back + .milliseconds(4999)))
        #expect(!h.inHoldDown(now: back + .seconds(5)))
        // An unknown gateway that never answers becomes unhealthy after failureThreshold probes.
        var silent = Self.health(.zero)
        #expect(silent.record(answered: false, now: .zero) == nil)
        #expect(silent.record(answered: false, now: .zero) == nil)
        #expect(silent.record(answered: false, now: .zero) == .unhealthy)
    }

    func selection(failback: Bool = true, _ candidates: [(IPAddress, Int64)] = [(primary, 0), (secondary, 10)]) -> GatewaySelection {
        GatewaySelection(candidates: candidates.map { .init(address: $0.0, priority: $0.1) }, failback: failback)
    }

    @Test(arguments: [true, false])
    func failoverThenFailbackAfterTheHoldDownOnlyWhenAsked(failback: Bool) {
        let clock = ManualClock()
        var s = selection(failback: failback)
        var health = [Self.primary: Self.health(clock.now), Self.secondary: Self.health(clock.now)]
        // Nothing probed yet: the preferred gateway at once (the original API installs without waiting).
        #expect(s.select(health: health, now: clock.now) == .init(from: [], to: [Self.primary], reason: "first selection"))
        for _ in 0..<3 { for g in [Self.primary, Self.secondary] { health[g]!.record(answered: true, now: clock.advance(by: Self.interval)) } }
        #expect(s.select(health: health, now: clock.now) == nil)

        // The primary dies: the third failed probe moves the route, not the second.
        health[Self.primary]!.record(answered: false, now: clock.advance(by: Self.interval))
        health[Self.primary]!.record(answered: false, now: clock.advance(by: Self.interval))
        #expect(s.select(health: health, now: clock.now) == nil)
        health[Self.primary]!.record(answered: false, now: clock.advance(by: Self.interval))
        let moved = s.select(health: health, now: clock.now)
        #expect(moved?.to == [Self.secondary])
        #expect(moved?.reason == "gateway 10.116.0.4 is unhealthy (3 probes failed in a row)")

        // It comes back: nothing moves during the hold-down, whatever failback says.
        for _ in 0..<3 { health[Self.primary]!.record(answered: true, now: clock.advance(by: Self.interval)) }
        #expect(s.select(health: health, now: clock.now) == nil)
        let ends = s.nextDeadline(health: health, now: clock.now)
        #expect(ends == (failback ? clock.now + .seconds(5) : nil))
        clock.advance(by: .milliseconds(4999))
        #expect(s.select(health: health, now: clock.now) == nil)
        clock.advance(by: .milliseconds(1))
        let back = s.select(health: health, now: clock.now)
        if failback {
            #expect(back == .init(from: [Self.secondary], to: [Self.primary],
                                  reason: "gateway 10.116.0.4 is healthy again and past its hold-down: failing back from 10.116.0.12"))
        } else {
            #expect(back == nil)
            #expect(s.current == [Self.secondary])
            // Without failback the route moves back only when the gateway in use fails.
            for _ in 0..<3 { health[Self.secondary]!.record(answered: false, now: clock.advance(by: Self.interval)) }
            #expect(s.select(health: health, now: clock.now)?.to == [Self.primary])
        }
    }

    @Test func aGatewayThatFlapsDuringItsHoldDownStartsItAgain() {
        let clock = ManualClock()
        var s = selection()
        var health = [Self.primary: Self.health(clock.now), Self.secondary: Self.health(clock.now)]
        s.select(health: health, now: clock.now)
        for _ in 0..<3 { health[Self.primary]!.record(answered: false, now: clock.advance(by: Self.interval)) }
        #expect(s.select(health: health, now: clock.now)?.to == [Self.secondary])
        var switches = 0
        // Up for 2 s, down for 150 ms, over and over: never 5 s healthy, so never back.
        for _ in 0..<10 {
            for _ in 0..<40 { health[Self.primary]!.record(answered: true, now: clock.advance(by: Self.interval)); if s.select(health: health, now: clock.now) != nil { switches += 1 } }
            for _ in 0..<3 { health[Self.primary]!.record(answered: false, now: clock.advance(by: Self.interval)); if s.select(health: health, now: clock.now) != nil { switches += 1 } }
        }
        #expect(switches == 0)
        #expect(s.current == [Self.secondary])
    }

    @Test func healthyGatewaysAtTheLowestPriorityShareTheRoute() {
        let clock = ManualClock()
        var s = selection([(Self.primary, 5), (Self.secondary, 5), (Self.third, 9)])
        var health = [Self.primary: Self.health(clock.now), Self.secondary: Self.health(clock.now), Self.third: Self.health(clock.now)]
        #expect(s.select(health: health, now: clock.now)?.to == [Self.primary, Self.secondary])
        for _ in 0..<3 { health[Self.secondary]!.record(answered: false, now: clock.advance(by: Self.interval)) }
        #expect(s.select(health: health, now: clock.now)?.to == [Self.primary])
        for _ in 0..<3 { health[Self.primary]!.record(answered: false, now: clock.advance(by: Self.interval)) }
        #expect(s.select(health: health, now: clock.now)?.to == [Self.third])
        // Everything dead: the routes stay where they are rather than vanish.
        for _ in 0..<3 { health[Self.third]!.record(answered: false, now: clock.advance(by: Self.interval)) }
        #expect(s.select(health: health, now: clock.now) == nil)
        #expect(s.current == [Self.third])
        // One comes back: while it is in its hold-down it still beats nothing.
        for _ in 0..<3 { health[Self.secondary]!.record(answered: true, now: clock.advance(by: Self.interval)) }
        let sw = s.select(health: health, now: clock.now)
        #expect(sw?.to == [Self.secondary])
        #expect(sw?.reason == "no gateway is healthy and past its hold-down; using one that is not known to be down")
    }

    @Test func aRestartKeepsTheInstalledGatewayUntilABetterOneAnswers() {
        var s = selection()
        s.adopt([Self.secondary])
        var health = [Self.primary: Self.health(.zero), Self.secondary: Self.health(.zero)]
        // Nothing probed yet: the restarted agent keeps what its predecessor installed.
        #expect(s.select(health: health, now: .zero) == nil)
        #expect(s.current == [Self.secondary])
        // The primary stays silent: still no switch.
        for _ in 0..<3 { health[Self.primary]!.record(answered: false, now: .zero) }
        health[Self.secondary]!.record(answered: true, now: .zero)
        #expect(s.select(health: health, now: .zero) == nil)
        // Another restart, and this time the primary answers: it is preferred.
        var again = selection()
        again.adopt([Self.secondary])
        var fresh = [Self.primary: Self.health(.zero), Self.secondary: Self.health(.zero)]
        fresh[Self.primary]!.record(answered: true, now: .zero)
        #expect(again.select(health: fresh, now: .zero)?.to == [Self.primary])
    }

    static func prefix(_ s: String) -> IPPrefix { IPSyntax.destination(s)! }

    @Test func theLowerPriorityValueWinsAConflictAndBothSaySo() {
        let d = Self.prefix("34.160.111.145")
        let other = Self.prefix("10.42.0.0/16")
        let out = StaticRouteConflicts.resolve([
            .init(name: "secondary", priority: 10, created: "2026-01-01T00:00:00Z", destinations: [d]),
            .init(name: "primary", priority: 0, created: "2026-01-02T00:00:00Z", destinations: [d, other]),
        ])
        #expect(out["primary"]?.owned == [d, other])
        #expect(out["primary"]?.conflicts == [.init(destination: "34.160.111.145/32", staticRoute: "secondary", winner: true)])
        #expect(out["secondary"]?.owned == [])
        #expect(out["secondary"]?.conflicts == [.init(destination: "34.160.111.145/32", staticRoute: "primary", winner: false)])
        // A tie: the older object, then the name.
        let tie = StaticRouteConflicts.resolve([
            .init(name: "b", priority: 0, created: "2026-01-01T00:00:00Z", destinations: [d]),
            .init(name: "a", priority: 0, created: "2026-01-02T00:00:00Z", destinations: [d]),
            .init(name: "c", priority: 0, created: "2026-01-01T00:00:00Z", destinations: [d]),
        ])
        #expect(tie["b"]?.owned == [d] && tie["a"]?.owned == [] && tie["c"]?.owned == [])
    }

    @Test func aGatewayChangeIsOneReplaceAndAGoneRouteOneDelete() {
        let d = Self.prefix("34.160.111.145"), e = Self.prefix("0.0.0.0/0"), f = Self.prefix("10.42.0.0/16")
        let installed = StaticRouteTable([d: [Self.primary], e: [Self.primary, Self.secondary], f: [Self.primary]])
        let wanted = StaticRouteTable([d: [Self.secondary], e: [Self.secondary, Self.primary]])
        #expect(installed.changes(to: wanted) == [.replace(d, via: [Self.secondary]), .delete(f, via: [Self.primary])])
        #expect(wanted.changes(to: wanted) == [])
    }
}
