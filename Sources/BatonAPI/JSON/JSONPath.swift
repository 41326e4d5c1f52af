/// The small JSONPath subset that printer columns use: `.a.b`, `.a[0].b`, `.a[*].b`.
public enum JSONPath {
    /// The values the path selects in `root` (several when it crosses `[*]`).
    public static func select(_ path: String, in root: JSONValue) -> [JSONValue] {
        var current: [JSONValue] = [root]
        for step in steps(path) {
            var next: [JSONValue] = []
            for v in current {
                switch step {
                case .key(let k): if let c = v[k] { next.append(c) }
                case .index(let i): if let a = v.arrayValue, i >= 0, i < a.count { next.append(a[i]) }
                case .all:
                    // A list's items; a map's values in key order (Baton keys per-node status by name).
                    if let a = v.arrayValue { next.append(contentsOf: a) }
                    else if case .object(let o) = v { next.append(contentsOf: o.sorted { $0.key < $1.key }.map(\.value)) }
                }
            }
            current = next
        }
        return current
    }

    /// The column text of a path, as kubectl prints it: scalars as they are, lists and objects
    /// as compact JSON, several selected values joined by commas, nothing as `<none>`.
    public static func text(_ path: String, in root: JSONValue) -> String {
        let values = select(path, in: root).filter { !$0.isNull }
        if values.isEmpty { return "<none>" }
        return values.map(scalarText).joined(separator: ",")
    }

    public static func scalarText(_ v: JSONValue) -> String {
        switch v {
        case .string(let s): s
        case .int(let i): String(i)
        case .double(let d): String(d)
        case .bool(let b): b ? "true" : "false"
        case .null: "<none>"
        case .array, .object: v.jsonString()
        }
    }

    enum Step { case key(String), index(Int), all }

    static func steps(_ path: String) -> [Step] {
        var out: [Step] = []
        var token = ""
        var i = path.startIndex
        func flush() { if !token.isEmpty { out.append(.key(token)); token = "" } }
        while i < path.endIndex {
            let c = path[i]
            if c == "." { flush() }
            else if c == "[" {
                flush()
                let close = path[i...].firstIndex(of: "]") ?? path.endIndex
                let inner = path[path.index(after: i)..<close]
                if inner == "*" { out.append(.all) } else if let n = Int(inner) { out.append(.index(n)) }
                i = close
                if i == path.endIndex { break }
            } else { token.append(c) }
            i = path.index(after: i)
        }
        flush()
        return out
    }
}
