import Foundation
import Yams

/// Reads manifests as `kubectl apply -f` does: multi-document YAML (which includes JSON), or one
/// JSON document, possibly a `List` of items.
public enum Manifest {
    /// Splits `text` into documents and parses each into a JSONValue. Empty documents are skipped.
    /// A `kind: List` document contributes its `items`.
    public static func parseDocuments(_ text: String) throws(APIError) -> [JSONValue] {
        var out: [JSONValue] = []
        let nodes: [Node]
        do {
            nodes = Array(try Yams.compose_all(yaml: text))
        } catch {
            throw APIError.badRequest("the manifest is not valid YAML or JSON: \(Self.describe(error))")
        }
        for node in nodes {
            let v = try JSONValue(yaml: node, path: "")
            if case .null = v { continue }
            if v["kind"]?.stringValue == "List", let items = v["items"]?.arrayValue {
                out.append(contentsOf: items)
            } else {
                out.append(v)
            }
        }
        return out
    }

    static func describe(_ error: any Error) -> String {
        if let y = error as? YamlError { return "\(y)".replacingOccurrences(of: "\n", with: " ") }
        return "\(error)"
    }
}

extension JSONValue {
    /// Converts a composed YAML node, honouring its resolved tags: `"true"` stays a string,
    /// `true` is a boolean, `0x1F` stays as written (a string) unless it resolves to an int.
    init(yaml node: Node, path: String) throws(APIError) {
        switch node {
        case .scalar(let s):
            self = JSONValue.fromScalar(s)
        case .sequence(let seq):
            var a: [JSONValue] = []
            a.reserveCapacity(seq.count)
            for (i, n) in seq.enumerated() { a.append(try JSONValue(yaml: n, path: "\(path)[\(i)]")) }
            self = .array(a)
        case .mapping(let m):
            var o: [String: JSONValue] = [:]
            for (k, v) in m {
                guard case .scalar(let ks) = k else {
                    throw APIError.badRequest("\(path.isEmpty ? "document" : path): a mapping key must be a scalar")
                }
                let key = ks.string
                let childPath = path.isEmpty ? key : "\(path).\(key)"
                if o[key] != nil {
                    throw APIError.badRequest("\(childPath): the key appears twice in one mapping")
                }
                o[key] = try JSONValue(yaml: v, path: childPath)
            }
            self = .object(o)
        case .alias:
            throw APIError.badRequest("\(path.isEmpty ? "document" : path): YAML aliases are not supported")
        }
    }

    static func fromScalar(_ s: Node.Scalar) -> JSONValue {
        // Quoted scalars are always strings.
        if s.style == .singleQuoted || s.style == .doubleQuoted || s.style == .literal || s.style == .folded {
            return .string(s.string)
        }
        // A plain scalar's own tag is implicit (""); `Node.tag` resolves it (true, 5, 0x1F, null).
        switch Tag.Name(rawValue: Node.scalar(s).tag.rawValue) {
        case .str: return .string(s.string)
        case .null: return .null
        case .bool: return Bool.construct(from: s).map(JSONValue.bool) ?? .string(s.string)
        case .int:
            if let i = Int64(s.string) { return .int(i) }
            if let i = Int.construct(from: s) { return .int(Int64(i)) }
            return .string(s.string)
        case .float:
            if let d = Double.construct(from: s), d.isFinite { return .double(d) }
            return .string(s.string)
        default:
            return .string(s.string)
        }
    }
}
