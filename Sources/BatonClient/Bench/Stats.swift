import Foundation

/// Latency samples and the figures a benchmark prints.
public struct Samples: Sendable {
    public private(set) var values: [Double] = []  // seconds
    public init() {}
    public mutating func add(_ seconds: Double) { values.append(seconds) }
    public mutating func add(contentsOf other: Samples) { values.append(contentsOf: other.values) }

    public func percentile(_ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
        return sorted[max(0, min(sorted.count - 1, rank))]
    }
}

extension Duration {
    package var seconds: Double {
        let (s, a) = components
        return Double(s) + Double(a) / 1e18
    }
}

package func ms(_ seconds: Double) -> String { seconds.isNaN ? "-" : String(format: "%.2f ms", seconds * 1000) }
package func rate(_ count: Int, _ seconds: Double) -> String { String(format: "%.0f/s", Double(count) / seconds) }
