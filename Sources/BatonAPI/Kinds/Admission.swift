/// The pure half of the API's write path: it turns a submitted document into an object that may
/// be stored, or into an error that names every bad field. Nothing here touches the store.
public enum Admission {
    public enum Operation: Sendable { case create, update, apply }

    /// The result of admitting a document.
    public struct Admitted: Sendable {
        public var kind: KindInfo
        public var object: Resource
        public var warnings: [String]

        public init(kind: KindInfo, object: Resource, warnings: [String] = []) {
            self.kind = kind
            self.object = object
            self.warnings = warnings
        }
    }

    /// Identifies a document's kind and checks its shape: apiVersion and kind known, metadata
    /// and body matching the kind's schema. Status is dropped when the kind has a status
    /// subresource, as Kubernetes does. Returns the parsed object, without cross-object checks.
    public static func decode(_ document: JSONValue) throws(APIError) -> Admitted {
        guard case .object(let top) = document else {
            throw APIError.badRequest("an object must be a JSON or YAML mapping, not \(document.typeName)")
        }
        guard let apiVersion = top["apiVersion"]?.stringValue, !apiVersion.isEmpty else {
            throw APIError(code: 400, reason: .badRequest, message: "apiVersion: Required value: every object needs apiVersion",
                           causes: [.required("apiVersion")])
        }
        guard let kindName = top["kind"]?.stringValue, !kindName.isEmpty else {
            throw APIError(code: 400, reason: .badRequest, message: "kind: Required value: every object needs kind",
                           causes: [.required("kind")])
        }
        guard let kind = KindRegistry.find(apiVersion: apiVersion, kind: kindName) else {
            let known = KindRegistry.all.filter { $0.kind == kindName }.map(\.apiVersion)
            let hint = known.isEmpty ? "" : " (\(kindName) is served as \(known.joined(separator: ", ")))"
            throw APIError(code: 400, reason: .badRequest,
                           message: "no kind \"\(kindName)\" is registered for version \"\(apiVersion)\"\(hint)",
                           causes: [.invalid("kind", kindName, "unknown kind for apiVersion \(apiVersion)")])
        }
        var doc = document
        let warnings = kind.normalize(&doc)
        guard case .object(var body) = doc else { throw APIError.badRequest("an object must be a mapping") }
        body["apiVersion"] = nil
        body["kind"] = nil
        let metaJSON = body.removeValue(forKey: "metadata") ?? .null
        let displayName = metaJSON["name"]?.stringValue ?? ""
        if kind.hasStatus { body["status"] = nil }

        var errors = KindInfo.metadataSchema.check(metaJSON.isNull ? .object([:]) : metaJSON, path: "metadata")
        errors += kind.schema.check(.object(body), path: "")
        if !errors.isEmpty {
            throw APIError.invalid(kind: kind.kind, name: displayName, causes: errors)
        }
        var object = try Resource(json: .object(body.merging([
            "apiVersion": .string(apiVersion), "kind": .string(kindName), "metadata": metaJSON.isNull ? .object([:]) : metaJSON,
        ]) { a, _ in a }))
        if !kind.namespaced { object.metadata.namespace = nil }
        return Admitted(kind: kind, object: object, warnings: warnings)
    }

    /// Checks names and the kind's own rules. `old` is the stored object on update.
    public static func validate(_ admitted: Admitted, old: Resource?, context: ValidationContext) throws(APIError) {
        let kind = admitted.kind
        let object = admitted.object
        var errors: [FieldError] = []
        errors += validateName(object.metadata.name, field: "metadata.name")
        if kind.namespaced, let ns = object.metadata.namespace, !ns.isEmpty {
            errors += validateName(ns, field: "metadata.namespace", dns1123Label: true)
        }
        for (k, v) in object.metadata.labels ?? [:] {
            errors += validateLabel(key: k, value: v, field: "metadata.labels")
        }
        if errors.isEmpty {
            errors += kind.validate(object, old, context)
        }
        if !errors.isEmpty {
            throw APIError.invalid(kind: kind.kind, name: object.metadata.name, causes: errors)
        }
    }

    /// Checks a status write against the kind's schema and status rules.
    public static func validateStatus(_ object: Resource, kind: KindInfo) throws(APIError) {
        var errors = kind.schema.check(.object(object.body), path: "")
        if errors.isEmpty { errors += kind.validateStatus(object) }
        if !errors.isEmpty {
            throw APIError.invalid(kind: kind.kind, name: object.metadata.name, causes: errors)
        }
    }

    /// A DNS-1123 subdomain (or label) name, as Kubernetes requires of object names.
    public static func validateName(_ name: String, field: String, dns1123Label: Bool = false) -> [FieldError] {
        if name.isEmpty { return [.required(field, "Required value: name is required")] }
        let maxLen = dns1123Label ? 63 : 253
        if name.count > maxLen {
            return [.invalid(field, name, "must be no more than \(maxLen) characters")]
        }
        let allowed = dns1123Label ? "abcdefghijklmnopqrstuvwxyz0123456789-" : "abcdefghijklmnopqrstuvwxyz0123456789-."
        let ok = name.allSatisfy { allowed.contains($0) }
            && name.first.map { $0.isLetter || $0.isNumber } == true
            && name.last.map { $0.isLetter || $0.isNumber } == true
        if !ok {
            return [.invalid(field, name,
                             "a lowercase RFC 1123 \(dns1123Label ? "label" : "subdomain") must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")]
        }
        return []
    }

    /// A label key (optional DNS prefix, then a name of up to 63 characters) and value.
    public static func validateLabel(key: String, value: String, field: String) -> [FieldError] {
        var errors: [FieldError] = []
        let nameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
        func okName(_ s: Substring) -> Bool {
            !s.isEmpty && s.count <= 63 && s.allSatisfy { nameChars.contains($0) }
                && (s.first!.isLetter || s.first!.isNumber) && (s.last!.isLetter || s.last!.isNumber)
        }
        let parts = key.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let name = parts.count == 2 ? parts[1] : parts[0]
        let prefixOK = parts.count == 1 || (!parts[0].isEmpty && validateName(String(parts[0]), field: "").isEmpty)
        if !prefixOK || !okName(name) {
            errors.append(.invalid("\(field).\(key)", key, "a label key must be an optional DNS prefix and '/', then 63 or fewer alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"))
        }
        if !value.isEmpty && !okName(Substring(value)) {
            errors.append(.invalid("\(field).\(key)", value, "a label value must be empty or 63 or fewer alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"))
        }
        return errors
    }
}
