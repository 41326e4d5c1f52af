import Yams

extension JSONValue {
    /// Top-level keys that print first, in this order, as kubectl prints them.
    static let leadingKeys = ["apiVersion", "kind", "metadata", "spec", "status"]

    /// The value as a YAML node: known keys first, the rest sorted.
    public func yamlNode() -> Node {
        switch self {
        case .null: return Node("null", Tag(.null))
        case .bool(let b): return Node(b ? "true" : "false", Tag(.bool))
        case .int(let i): return Node(String(i), Tag(.int))
        case .double(let d): return Node(String(d), Tag(.float))
        case .string(let s):
            // A string that would read back as another type (`"true"`, `"5"`, `"null"`) is quoted.
            let plain = Node(s, Tag(.implicit), .plain)
            let resolved = Resolver.default.resolveTag(of: plain)
            return Node(s, Tag(.str), resolved == .str && !s.isEmpty ? .any : .doubleQuoted)
        case .array(let a): return Node(a.map { $0.yamlNode() })
        case .object(let o):
            let lead = Self.leadingKeys.filter { o[$0] != nil }
            let rest = o.keys.filter { !Self.leadingKeys.contains($0) }.sorted()
            let pairs = (lead + rest).map { (Node($0, Tag(.str)), o[$0]!.yamlNode()) }
            return Node(pairs)
        }
    }

    /// Block-style YAML, as `baton get -o yaml` prints it.
    public func yamlString() -> String {
        (try? Yams.serialize(node: yamlNode(), indent: 2, width: -1, allowUnicode: true, sortKeys: false)) ?? jsonString(pretty: true)
    }
}
