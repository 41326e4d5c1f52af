import BatonAPI
import Testing

@Suite struct GoDurationTests {
    @Test(arguments: [
        ("50ms", Int64(50_000_000)), ("1s", 1_000_000_000), ("1.5s", 1_500_000_000), ("1m30s", 90_000_000_000),
        ("2h", 7_200_000_000_000), ("250us", 250_000), ("250µs", 250_000), ("10ns", 10), ("0", 0), ("0s", 0),
    ])
    func parses(text: String, nanoseconds: Int64) {
        #expect(GoDuration.parse(text) == nanoseconds)
    }

    @Test(arguments: ["", "50", "fast", "-5s", "5 s", "1d", "1e3s", "ms", "1.2.3s"])
    func refuses(text: String) {
        #expect(GoDuration.parse(text) == nil)
    }

    @Test func formatsAsPeopleWriteIt() {
        #expect(GoDuration.format(50_000_000) == "50ms")
        #expect(GoDuration.format(5_000_000_000) == "5s")
        #expect(GoDuration.format(90_000_000_000) == "1m30s")
        #expect(GoDuration.format(3_600_000_000_000) == "1h")
        #expect(GoDuration.format(0) == "0s")
    }
}
