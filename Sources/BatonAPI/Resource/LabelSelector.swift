/// A Kubernetes label selector: `matchLabels` and `matchExpressions` in manifests, or the
/// string form `k=v,k!=v,k in (a,b),k notin (c),k,!k` on the command line and in `?labelSelector=`.
public struct LabelSelector: Sendable, Hashable, Codable {
    public struct Requirement: Sendable, Hashable, Codable {
        public var key: String
        /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
        public var `operator`: String
        public var values: [String]?

        public init(key: String, operator op: String, values: [String]? = nil) {
            self.key = key
            self.operator = op
            self.values = values
        }
    }

    public var matchLabels: [String: String]?
    public var matchExpressions: [Requirement]?

    public init(matchLabels: [String: String]? = nil, matchExpressions: [Requirement]? = nil) {
        self.matchLabels = matchLabels
        self.matchExpressions = matchExpressions
    }

    public static let operators = ["In", "NotIn", "Exists", "DoesNotExist"]

    /// True when the selector has no terms (it selects everything).
    public var isEmpty: Bool { (matchLabels ?? [:]).isEmpty && (matchExpressions ?? []).isEmpty }

    public func matches(_ labels: [String: String]) -> Bool {
        for (k, v) in matchLabels ?? [:] where labels[k] != v { return false }
        for r in matchExpressions ?? [] {
            let have = labels[r.key]
            switch r.operator {
            case "In": guard let have, (r.values ?? []).contains(have) else { return false }
            case "NotIn": if let have, (r.values ?? []).contains(have) { return false }
            case "Exists": if have == nil { return false }
            case "DoesNotExist": if have != nil { return false }
            default: return false
            }
        }
        return true
    }

    /// Checks operators and values, as the API server does for a selector in a spec.
    public func validate(field: String) -> [FieldError] {
        var errors: [FieldError] = []
        for (i, r) in (matchExpressions ?? []).enumerated() {
            let f = "\(field).matchExpressions[\(i)]"
            if r.key.isEmpty { errors.append(.required("\(f).key")) }
            switch r.operator {
            case "In", "NotIn":
                if (r.values ?? []).isEmpty {
                    errors.append(.required("\(f).values", "Required value: must be specified when `operator` is 'In' or 'NotIn'"))
                }
            case "Exists", "DoesNotExist":
                if !(r.values ?? []).isEmpty {
                    errors.append(.forbidden("\(f).values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
                }
            default:
                errors.append(.notSupported("\(f).operator", r.operator, Self.operators))
            }
        }
        return errors
    }

    /// The selector's schema, for embedding in a kind's schema.
    public static let schema = Schema.object([
        "matchLabels": Schema.stringMap,
        "matchExpressions": .array(.object([
            "key": .string(),
            "operator": .string(enum: LabelSelector.operators),
            "values": .array(.string()),
        ], required: ["key", "operator"])),
    ])

    /// Parses the string form. Throws a message naming the bad term.
    public static func parse(_ text: String) throws(APIError) -> LabelSelector {
        var labels: [String: String] = [:]
        var exprs: [Requirement] = []
        for term in splitTerms(text) {
            let t = term.trimmed
            if t.isEmpty { continue }
            if let r = t.range(of: " notin ") ?? t.range(of: " in ") {
                let key = String(t[..<r.lowerBound]).trimmed
                let op = t[r].contains("notin") ? "NotIn" : "In"
                var rest = String(t[r.upperBound...]).trimmed
                guard rest.hasPrefix("("), rest.hasSuffix(")"), !key.isEmpty else {
                    throw APIError.badRequest("unable to parse label selector term \"\(t)\": expected KEY \(op == "In" ? "in" : "notin") (V1,V2)")
                }
                rest.removeFirst(); rest.removeLast()
                exprs.append(Requirement(key: key, operator: op, values: rest.split(separator: ",").map { String($0).trimmed }))
            } else if let r = t.range(of: "!=") {
                exprs.append(Requirement(key: String(t[..<r.lowerBound]).trimmed, operator: "NotIn", values: [String(t[r.upperBound...]).trimmed]))
            } else if let r = t.range(of: "==") ?? t.range(of: "=") {
                let k = String(t[..<r.lowerBound]).trimmed
                guard !k.isEmpty else { throw APIError.badRequest("unable to parse label selector term \"\(t)\": empty key") }
                labels[k] = String(t[r.upperBound...]).trimmed
            } else if t.hasPrefix("!") {
                exprs.append(Requirement(key: String(t.dropFirst()).trimmed, operator: "DoesNotExist"))
            } else {
                guard t.allSatisfy({ $0.isLetter || $0.isNumber || "-_./".contains($0) }) else {
                    throw APIError.badRequest("unable to parse label selector term \"\(t)\"")
                }
                exprs.append(Requirement(key: t, operator: "Exists"))
            }
        }
        return LabelSelector(matchLabels: labels.isEmpty ? nil : labels, matchExpressions: exprs.isEmpty ? nil : exprs)
    }

    /// Splits on commas that are not inside parentheses.
    static func splitTerms(_ s: String) -> [String] {
        var out: [String] = []
        var cur = ""
        var depth = 0
        for c in s {
            if c == "(" { depth += 1 } else if c == ")" { depth -= 1 }
            if c == "," && depth == 0 { out.append(cur); cur = "" } else { cur.append(c) }
        }
        out.append(cur)
        return out
    }
}

extension String {
    var trimmed: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
