import BatonCore
import Testing

@Suite struct RiseFallTests {
    /// Outcomes fed one by one, with whether each completes a run.
    @Test(arguments: [
        // rise 2, fall 3: a run completes at its threshold and stays complete while it lasts.
        (2, 3, [true, true, true], [false, true, true]),
        (2, 3, [false, false, false, false], [false, false, true, true]),
        // A pass between failures starts the count again (and the other way round).
        (2, 3, [false, false, true, false, false, false], [false, false, false, false, false, true]),
        (2, 3, [true, false, true, true], [false, false, false, true]),
        // Thresholds of 1: every outcome completes its run.
        (1, 1, [true, false, true], [true, true, true]),
        // Thresholds below 1 count as 1.
        (0, -2, [false, true], [true, true]),
    ])
    func aRunCompletesAfterItsThresholdInARow(rise: Int, fall: Int, outcomes: [Bool], complete: [Bool]) {
        var r = RiseFall(rise: rise, fall: fall)
        #expect(outcomes.map { r.record(passed: $0) } == complete)
    }

    @Test func itKeepsTheCountsOfTheCurrentRun() {
        var r = RiseFall(rise: 2, fall: 3)
        _ = r.record(passed: false)
        _ = r.record(passed: false)
        #expect((r.passes, r.failures) == (0, 2))
        _ = r.record(passed: true)
        #expect((r.passes, r.failures) == (1, 0))
    }
}
