/// Go's and Kubernetes' duration text (`50ms`, `1.5s`, `2m30s`), the form a manifest's times
/// take. Units: `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`; a unit is required (`0` alone is zero).
public enum GoDuration {
    /// The duration in nanoseconds, or nil when `text` is not a duration or is negative.
    public static func parse(_ text: String) -> Int64? {
        if text == "0" { return 0 }
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        var total: Double = 0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { !$0.isNumber && $0 != "." }
            rest = rest.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "µs": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            default: return nil
            }
            total += value * scale
        }
        guard total.isFinite, total < 9e18 else { return nil }
        return Int64(total.rounded())
    }

    /// Shortest text for `nanoseconds` in the units people write: `50ms`, `5s`, `1m30s`.
    public static func format(_ nanoseconds: Int64) -> String {
        if nanoseconds == 0 { return "0s" }
        if nanoseconds % 1_000_000_000 == 0 {
            let s = nanoseconds / 1_000_000_000
            if s >= 3600 && s % 3600 == 0 { return "\(s / 3600)h" }
            if s >= 60 && s % 60 == 0 { return "\(s / 60)m" }
            if s > 60 { return "\(s / 60)m\(s % 60)s" }
            return "\(s)s"
        }
        if nanoseconds % 1_000_000 == 0 { return "\(nanoseconds / 1_000_000)ms" }
        if nanoseconds % 1_000 == 0 { return "\(nanoseconds / 1_000)us" }
        return "\(nanoseconds)ns"
    }
}
