/// Direct conversion between `ObjectMeta` and `JSONValue`, used on every object the store
/// reads or the API writes (the Codable path costs a full encode and parse each time).
extension ObjectMeta {
    public var jsonValue: JSONValue {
        var o: [String: JSONValue] = ["name": .string(name)]
        func put(_ k: String, _ v: String?) { if let v { o[k] = .string(v) } }
        put("namespace", namespace)
        put("uid", uid)
        put("resourceVersion", resourceVersion)
        if let generation { o["generation"] = .int(generation) }
        put("creationTimestamp", creationTimestamp)
        put("deletionTimestamp", deletionTimestamp)
        if let labels { o["labels"] = .object(labels.mapValues(JSONValue.string)) }
        if let annotations { o["annotations"] = .object(annotations.mapValues(JSONValue.string)) }
        if let finalizers { o["finalizers"] = .array(finalizers.map(JSONValue.string)) }
        if let ownerReferences { o["ownerReferences"] = .array(ownerReferences) }
        put("organization", organization)
        put("tenant", tenant)
        put("workspace", workspace)
        put("group", group)
        return .object(o)
    }

    /// Reads metadata; throws a message naming the field whose type is wrong. Unknown members
    /// are ignored here: admission refuses them against the schema before this runs.
    public init(json: JSONValue) throws(FieldError) {
        guard case .object(let o) = json else {
            throw FieldError(.typeInvalid, field: "metadata", message: "must be an object, not \(json.typeName)")
        }
        func string(_ k: String) throws(FieldError) -> String? {
            guard let v = o[k], !v.isNull else { return nil }
            guard let s = v.stringValue else {
                throw FieldError(.typeInvalid, field: "metadata.\(k)", message: "must be a string, not \(v.typeName)")
            }
            return s
        }
        func map(_ k: String) throws(FieldError) -> [String: String]? {
            guard let v = o[k], !v.isNull else { return nil }
            guard case .object(let m) = v else {
                throw FieldError(.typeInvalid, field: "metadata.\(k)", message: "must be a map of strings, not \(v.typeName)")
            }
            var out: [String: String] = [:]
            for (mk, mv) in m {
                guard let s = mv.stringValue else {
                    throw FieldError(.typeInvalid, field: "metadata.\(k).\(mk)", message: "must be a string, not \(mv.typeName)")
                }
                out[mk] = s
            }
            return out
        }
        self.init(name: try string("name") ?? "")
        namespace = try string("namespace")
        uid = try string("uid")
        resourceVersion = try string("resourceVersion")
        if let g = o["generation"], !g.isNull {
            guard let n = g.intValue else {
                throw FieldError(.typeInvalid, field: "metadata.generation", message: "must be an integer, not \(g.typeName)")
            }
            generation = n
        }
        creationTimestamp = try string("creationTimestamp")
        deletionTimestamp = try string("deletionTimestamp")
        labels = try map("labels")
        annotations = try map("annotations")
        if let f = o["finalizers"], !f.isNull {
            guard let a = f.arrayValue, a.allSatisfy({ $0.stringValue != nil }) else {
                throw FieldError(.typeInvalid, field: "metadata.finalizers", message: "must be a list of strings")
            }
            finalizers = a.compactMap(\.stringValue)
        }
        if let r = o["ownerReferences"], !r.isNull {
            guard let a = r.arrayValue else {
                throw FieldError(.typeInvalid, field: "metadata.ownerReferences", message: "must be a list")
            }
            ownerReferences = a
        }
        organization = try string("organization")
        tenant = try string("tenant")
        workspace = try string("workspace")
        group = try string("group")
    }
}
