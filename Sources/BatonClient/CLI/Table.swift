import BatonAPI
import Foundation

/// Prints objects as `kubectl get` does: upper-case headers, columns padded to the widest
/// cell plus three spaces, NAME first (NAMESPACE before it across namespaces), and the
/// kind's printer columns after it.
public struct Table {
    public let kind: KindInfo
    public let wide: Bool
    public let withNamespace: Bool
    public let now: Date

    public init(kind: KindInfo, wide: Bool, withNamespace: Bool, now: Date = Date()) {
        self.kind = kind
        self.wide = wide
        self.withNamespace = withNamespace
        self.now = now
    }

    var columns: [PrinterColumn] { kind.columns.filter { wide || $0.priority == 0 } }

    public var header: [String] {
        (withNamespace ? ["NAMESPACE"] : []) + ["NAME"] + columns.map(\.name)
    }

    public func row(_ object: Resource) -> [String] {
        let json = object.json
        var cells: [String] = []
        if withNamespace { cells.append(object.namespace ?? "") }
        cells.append(object.name)
        for c in columns {
            if c.type == "date" {
                let t = JSONPath.select(c.jsonPath, in: json).first?.stringValue.flatMap(Timestamp.parse)
                cells.append(t.map { Self.age(now.timeIntervalSince($0)) } ?? "<unknown>")
            } else {
                cells.append(c.text(in: json))
            }
        }
        return cells
    }

    /// Column widths for these rows (and the header).
    public func widths(_ rows: [[String]]) -> [Int] {
        var w = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < w.count { w[i] = max(w[i], c.count) } }
        return w
    }

    public static func format(_ cells: [String], widths: [Int]) -> String {
        var line = ""
        for (i, c) in cells.enumerated() {
            if i == cells.count - 1 { line += c } else {
                line += c + String(repeating: " ", count: max(0, (i < widths.count ? widths[i] : c.count) - c.count + 3))
            }
        }
        return line
    }

    public func render(_ objects: [Resource]) -> String {
        let rows = objects.map(row)
        let w = widths(rows)
        return ([header] + rows).map { Self.format($0, widths: w) }.joined(separator: "\n")
    }

    /// kubectl's human duration: `45s`, `119s`, `5m10s`, `3h`, `2d5h`, `400d`.
    public static func age(_ seconds: TimeInterval) -> String {
        let s = Int(max(0, seconds))
        if s < 120 { return "\(s)s" }
        let m = s / 60
        if m < 10 { return s % 60 == 0 ? "\(m)m" : "\(m)m\(s % 60)s" }
        if m < 180 { return "\(m)m" }
        let h = s / 3600
        if h < 8 { return m % 60 == 0 ? "\(h)h" : "\(h)h\(m % 60)m" }
        if h < 48 { return "\(h)h" }
        let d = h / 24
        if d < 8 { return h % 24 == 0 ? "\(d)d" : "\(d)d\(h % 24)h" }
        if d < 365 * 2 { return "\(d)d" }
        return "\(d / 365)y"
    }
}
