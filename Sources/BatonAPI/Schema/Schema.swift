/// A structural schema, as a CRD's `openAPIV3Schema` is: it says which fields a kind has and
/// their types. Admission checks every submitted object against it, so an unknown or
/// misspelled field is refused with its path instead of being dropped; the OpenAPI document
/// is generated from the same values.
public struct Schema: Sendable {
    public indirect enum Shape: Sendable {
        /// Named properties; `additional` admits other keys (a map), nil refuses them.
        case object(properties: [String: Schema], additional: Schema?)
        case array(Schema)
        case string
        case integer
        case number
        case boolean
        /// Kubernetes' int-or-string.
        case intOrString
        /// Anything (x-kubernetes-preserve-unknown-fields).
        case any
    }

    public var shape: Shape
    public var required: [String]
    public var enumValues: [String]?
    public var format: String?
    public var description: String?
    public var nullable: Bool
    public var minimum: Int64?
    public var maximum: Int64?

    public init(_ shape: Shape, required: [String] = [], enumValues: [String]? = nil, format: String? = nil,
                description: String? = nil, nullable: Bool = false, minimum: Int64? = nil, maximum: Int64? = nil) {
        self.shape = shape
        self.required = required
        self.enumValues = enumValues
        self.format = format
        self.description = description
        self.nullable = nullable
        self.minimum = minimum
        self.maximum = maximum
    }

    // MARK: Builders

    public static func object(_ properties: [String: Schema], required: [String] = [], description: String? = nil) -> Schema {
        Schema(.object(properties: properties, additional: nil), required: required, description: description)
    }
    public static func map(_ values: Schema, description: String? = nil) -> Schema {
        Schema(.object(properties: [:], additional: values), description: description)
    }
    public static func array(_ items: Schema, description: String? = nil) -> Schema {
        Schema(.array(items), description: description)
    }
    public static func string(_ description: String? = nil, format: String? = nil, enum values: [String]? = nil) -> Schema {
        Schema(.string, enumValues: values, format: format, description: description)
    }
    public static func integer(_ description: String? = nil, minimum: Int64? = nil, maximum: Int64? = nil) -> Schema {
        Schema(.integer, description: description, minimum: minimum, maximum: maximum)
    }
    public static func number(_ description: String? = nil) -> Schema { Schema(.number, description: description) }
    public static func boolean(_ description: String? = nil) -> Schema { Schema(.boolean, description: description) }
    public static func intOrString(_ description: String? = nil) -> Schema { Schema(.intOrString, description: description) }
    public static func any(_ description: String? = nil) -> Schema { Schema(.any, description: description) }
    public static let stringMap = Schema.map(.string())

    /// This schema, also accepting `null`.
    public var orNull: Schema { var s = self; s.nullable = true; return s }

    // MARK: Checking

    /// Every way `value` departs from the schema, each with its field path.
    /// Checks types, unknown fields, required fields, enums and integer bounds.
    public func check(_ value: JSONValue, path: String) -> [FieldError] {
        var errors: [FieldError] = []
        check(value, path: path, into: &errors)
        return errors
    }

    func check(_ value: JSONValue, path: String, into errors: inout [FieldError]) {
        if case .null = value {
            if nullable { return }
            if case .any = shape { return }
            // An empty value where an object or list is expected reads as an empty one (`clusterDestination:`).
            switch shape {
            case .object, .array: return
            default: break
            }
            errors.append(FieldError(.typeInvalid, field: path, message: "Invalid value: null: must be \(typeName)"))
            return
        }
        switch shape {
        case .any:
            return
        case .object(let properties, let additional):
            guard case .object(let o) = value else {
                errors.append(typeError(path, value)); return
            }
            for key in required where o[key] == nil || o[key]?.isNull == true {
                errors.append(.required(join(path, key)))
            }
            for key in o.keys.sorted() {
                let child = o[key]!
                if let p = properties[key] {
                    p.check(child, path: join(path, key), into: &errors)
                } else if let additional {
                    additional.check(child, path: join(path, key), into: &errors)
                } else {
                    errors.append(.unknown(join(path, key)))
                }
            }
        case .array(let items):
            guard case .array(let a) = value else {
                errors.append(typeError(path, value)); return
            }
            for (i, v) in a.enumerated() { items.check(v, path: "\(path)[\(i)]", into: &errors) }
        case .string:
            guard case .string(let s) = value else {
                errors.append(typeError(path, value)); return
            }
            if let enumValues, !enumValues.contains(s) {
                errors.append(.notSupported(path, s, enumValues))
            }
        case .integer:
            guard let i = value.intValue else {
                errors.append(typeError(path, value)); return
            }
            if let minimum, i < minimum {
                errors.append(.invalid(path, String(i), "must be greater than or equal to \(minimum)"))
            }
            if let maximum, i > maximum {
                errors.append(.invalid(path, String(i), "must be less than or equal to \(maximum)"))
            }
        case .number:
            if value.doubleValue == nil { errors.append(typeError(path, value)) }
        case .boolean:
            if value.boolValue == nil { errors.append(typeError(path, value)) }
        case .intOrString:
            switch value {
            case .string: break
            default: if value.intValue == nil { errors.append(typeError(path, value)) }
            }
        }
    }

    var typeName: String {
        switch shape {
        case .object: "an object"
        case .array: "a list"
        case .string: "a string"
        case .integer: "an integer"
        case .number: "a number"
        case .boolean: "a boolean"
        case .intOrString: "an integer or a string"
        case .any: "any value"
        }
    }

    func typeError(_ path: String, _ value: JSONValue) -> FieldError {
        let shown: String
        switch value {
        case .string(let s): shown = "\"\(s)\""
        case .object: shown = "an object"
        case .array: shown = "a list"
        default: shown = value.jsonString()
        }
        return FieldError(.typeInvalid, field: path, message: "Invalid value: \(shown): must be \(typeName), not \(value.typeName)")
    }

    func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
}

extension Schema {
    /// The schema as an OpenAPI 3 schema object.
    public var openAPI: JSONValue {
        var o: [String: JSONValue] = [:]
        switch shape {
        case .object(let properties, let additional):
            o["type"] = "object"
            if !properties.isEmpty {
                o["properties"] = .object(properties.mapValues(\.openAPI))
            }
            if let additional { o["additionalProperties"] = additional.openAPI } else if !properties.isEmpty {
                o["additionalProperties"] = false
            }
            if !required.isEmpty { o["required"] = .array(required.map(JSONValue.string)) }
        case .array(let items):
            o["type"] = "array"
            o["items"] = items.openAPI
        case .string: o["type"] = "string"
        case .integer: o["type"] = "integer"; o["format"] = "int64"
        case .number: o["type"] = "number"
        case .boolean: o["type"] = "boolean"
        case .intOrString: o["x-kubernetes-int-or-string"] = true
        case .any: o["x-kubernetes-preserve-unknown-fields"] = true
        }
        if let enumValues { o["enum"] = .array(enumValues.map(JSONValue.string)) }
        if let format { o["format"] = .string(format) }
        if let description { o["description"] = .string(description) }
        if nullable { o["nullable"] = true }
        if let minimum { o["minimum"] = .int(minimum) }
        if let maximum { o["maximum"] = .int(maximum) }
        return .object(o)
    }
}
