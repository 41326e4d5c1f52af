/// One API object of any kind: its type, its metadata, and the rest of its body (`spec` and
/// `status` for most kinds, the record's own fields for an Event).
public struct Resource: Sendable, Hashable {
    public var apiVersion: String
    public var kind: String
    public var metadata: ObjectMeta
    /// Every top-level member other than apiVersion, kind and metadata.
    public var body: [String: JSONValue]

    public init(apiVersion: String, kind: String, metadata: ObjectMeta, body: [String: JSONValue] = [:]) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.metadata = metadata
        self.body = body
    }

    public var spec: JSONValue? {
        get { body["spec"] }
        set { body["spec"] = newValue }
    }

    public var status: JSONValue? {
        get { body["status"] }
        set { body["status"] = newValue }
    }

    public var name: String { metadata.name }
    public var namespace: String? { metadata.namespace }
    public var labels: [String: String] { metadata.labels ?? [:] }

    /// `namespace/name`, or `name` for a cluster-scoped object.
    public var qualifiedName: String {
        if let ns = metadata.namespace, !ns.isEmpty { return "\(ns)/\(metadata.name)" }
        return metadata.name
    }

    /// The whole object as JSON.
    public var json: JSONValue {
        var o = body
        o["apiVersion"] = .string(apiVersion)
        o["kind"] = .string(kind)
        o["metadata"] = metadata.jsonValue
        return .object(o)
    }

    /// Reads an object whose shape has already been checked (or that came from the store).
    /// Throws a 400 when the top level is not an object with apiVersion, kind and metadata.
    public init(json: JSONValue) throws(APIError) {
        guard case .object(var o) = json else {
            throw APIError.badRequest("an object must be a JSON or YAML mapping, not \(json.typeName)")
        }
        guard let apiVersion = o.removeValue(forKey: "apiVersion")?.stringValue, !apiVersion.isEmpty else {
            throw APIError(code: 400, reason: .badRequest, message: "apiVersion: Required value: every object needs apiVersion",
                           causes: [.required("apiVersion")])
        }
        guard let kind = o.removeValue(forKey: "kind")?.stringValue, !kind.isEmpty else {
            throw APIError(code: 400, reason: .badRequest, message: "kind: Required value: every object needs kind",
                           causes: [.required("kind")])
        }
        let metaJSON = o.removeValue(forKey: "metadata") ?? .object([:])
        let meta: ObjectMeta
        do {
            meta = try ObjectMeta(json: metaJSON)
        } catch {
            throw APIError(code: 422, reason: .invalid, message: "\(kind): \(error.description)", kind: kind, causes: [error])
        }
        self.init(apiVersion: apiVersion, kind: kind, metadata: meta, body: o)
    }

    static func describe(_ error: any Error) -> String {
        if let d = error as? DecodingError {
            switch d {
            case .keyNotFound(let k, let c): return "\(Self.path(c.codingPath + [k])): Required value"
            case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
                return "\(Self.path(c.codingPath)): \(c.debugDescription)"
            @unknown default: return "\(d)"
            }
        }
        return "\(error)"
    }

    static func path(_ keys: [any CodingKey]) -> String {
        var s = ""
        for k in keys {
            if let i = k.intValue { s += "[\(i)]" } else { s += s.isEmpty ? k.stringValue : ".\(k.stringValue)" }
        }
        return s
    }

    /// Decodes `spec` as the kind's typed spec. Call only after admission checked the schema.
    public func decodeSpec<T: Decodable>(_ type: T.Type) throws -> T {
        try (spec ?? .object([:])).decode(T.self)
    }

    /// Decodes `status` as the kind's typed status, or nil when there is none.
    public func decodeStatus<T: Decodable>(_ type: T.Type) -> T? {
        guard let status, !status.isNull else { return nil }
        return try? status.decode(T.self)
    }
}
