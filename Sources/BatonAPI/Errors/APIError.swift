/// One problem with one field, in the shape Kubernetes uses for a `StatusCause`.
public struct FieldError: Error, Sendable, Hashable, Codable, CustomStringConvertible {
    /// Why the field was refused. Extensible, as Kubernetes' cause types are.
    public struct Reason: RawRepresentable, Sendable, Hashable, Codable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let required = Reason(rawValue: "FieldValueRequired")
        public static let invalid = Reason(rawValue: "FieldValueInvalid")
        public static let duplicate = Reason(rawValue: "FieldValueDuplicate")
        public static let forbidden = Reason(rawValue: "FieldValueForbidden")
        public static let notSupported = Reason(rawValue: "FieldValueNotSupported")
        public static let unknownField = Reason(rawValue: "FieldValueUnknown")
        public static let typeInvalid = Reason(rawValue: "FieldValueTypeInvalid")
        public static let immutable = Reason(rawValue: "FieldValueImmutable")
    }

    public var reason: Reason
    /// The field's path, as `spec.ippools.ipv4DefaultEIP` or `spec.http[0].port`.
    public var field: String
    /// What is wrong, naming the value and the rule.
    public var message: String

    public init(_ reason: Reason, field: String, message: String) {
        self.reason = reason
        self.field = field
        self.message = message
    }

    public static func required(_ field: String, _ message: String = "Required value") -> FieldError {
        FieldError(.required, field: field, message: message)
    }
    public static func invalid(_ field: String, _ value: String, _ detail: String) -> FieldError {
        FieldError(.invalid, field: field, message: "Invalid value: \"\(value)\": \(detail)")
    }
    public static func forbidden(_ field: String, _ detail: String) -> FieldError {
        FieldError(.forbidden, field: field, message: "Forbidden: \(detail)")
    }
    public static func duplicate(_ field: String, _ value: String, _ detail: String) -> FieldError {
        FieldError(.duplicate, field: field, message: "Duplicate value: \"\(value)\": \(detail)")
    }
    public static func unknown(_ field: String) -> FieldError {
        FieldError(.unknownField, field: field, message: "unknown field \"\(field)\"")
    }
    public static func immutable(_ field: String) -> FieldError {
        FieldError(.immutable, field: field, message: "Invalid value: field is immutable")
    }
    public static func notSupported(_ field: String, _ value: String, _ allowed: [String]) -> FieldError {
        FieldError(.notSupported, field: field,
                   message: "Unsupported value: \"\(value)\": supported values: \(allowed.map { "\"\($0)\"" }.joined(separator: ", "))")
    }

    public var description: String { "\(field): \(message)" }
}

/// An API failure, carried as a Kubernetes `Status`: an HTTP code, a reason and a message,
/// with the field causes when the object itself was refused.
public struct APIError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Reason: RawRepresentable, Sendable, Hashable, Codable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let badRequest = Reason(rawValue: "BadRequest")
        public static let unauthorized = Reason(rawValue: "Unauthorized")
        public static let forbidden = Reason(rawValue: "Forbidden")
        public static let notFound = Reason(rawValue: "NotFound")
        public static let alreadyExists = Reason(rawValue: "AlreadyExists")
        public static let conflict = Reason(rawValue: "Conflict")
        public static let invalid = Reason(rawValue: "Invalid")
        public static let gone = Reason(rawValue: "Gone")
        public static let methodNotAllowed = Reason(rawValue: "MethodNotAllowed")
        public static let unsupportedMediaType = Reason(rawValue: "UnsupportedMediaType")
        public static let tooLarge = Reason(rawValue: "RequestEntityTooLarge")
        public static let internalError = Reason(rawValue: "InternalError")
        public static let unavailable = Reason(rawValue: "ServiceUnavailable")
        /// 503: the store has provably lost quorum, so no replica can change anything (Baton's own).
        public static let storeWithoutQuorum = Reason(rawValue: "StoreWithoutQuorum")
    }

    public var code: Int
    public var reason: Reason
    public var message: String
    public var kind: String?
    public var name: String?
    public var causes: [FieldError]

    public init(code: Int, reason: Reason, message: String, kind: String? = nil, name: String? = nil, causes: [FieldError] = []) {
        self.code = code
        self.reason = reason
        self.message = message
        self.kind = kind
        self.name = name
        self.causes = causes
    }

    public var description: String { message }

    public static func badRequest(_ m: String) -> APIError { APIError(code: 400, reason: .badRequest, message: m) }
    public static func unauthorized(_ m: String = "Unauthorized: a valid bearer token is required") -> APIError {
        APIError(code: 401, reason: .unauthorized, message: m)
    }
    public static func forbidden(_ m: String) -> APIError { APIError(code: 403, reason: .forbidden, message: m) }
    public static func notFound(kind: String, name: String) -> APIError {
        APIError(code: 404, reason: .notFound, message: "\(kind) \"\(name)\" not found", kind: kind, name: name)
    }
    public static func notFound(_ m: String) -> APIError { APIError(code: 404, reason: .notFound, message: m) }
    public static func alreadyExists(kind: String, name: String) -> APIError {
        APIError(code: 409, reason: .alreadyExists, message: "\(kind) \"\(name)\" already exists", kind: kind, name: name)
    }
    public static func conflict(kind: String, name: String, _ detail: String) -> APIError {
        APIError(code: 409, reason: .conflict,
                 message: "Operation cannot be fulfilled on \(kind) \"\(name)\": \(detail)", kind: kind, name: name)
    }
    public static func gone(_ m: String) -> APIError { APIError(code: 410, reason: .gone, message: m) }
    public static func invalid(kind: String, name: String, causes: [FieldError]) -> APIError {
        let list = causes.map(\.description).joined(separator: ", ")
        let what = causes.count > 1 ? "[\(list)]" : list
        return APIError(code: 422, reason: .invalid, message: "\(kind) \"\(name)\" is invalid: \(what)",
                        kind: kind, name: name, causes: causes)
    }
    public static func internalError(_ m: String) -> APIError { APIError(code: 500, reason: .internalError, message: m) }
    public static func unavailable(_ m: String) -> APIError { APIError(code: 503, reason: .unavailable, message: m) }
}

extension APIError {
    /// The error as a Kubernetes `Status` object.
    public var status: JSONValue {
        var o: [String: JSONValue] = [
            "kind": "Status", "apiVersion": "v1", "metadata": .object([:]),
            "status": "Failure", "message": .string(message), "reason": .string(reason.rawValue), "code": .int(Int64(code)),
        ]
        var details: [String: JSONValue] = [:]
        if let kind { details["kind"] = .string(kind) }
        if let name { details["name"] = .string(name) }
        if !causes.isEmpty {
            details["causes"] = .array(causes.map {
                .object(["reason": .string($0.reason.rawValue), "field": .string($0.field), "message": .string($0.message)])
            })
        }
        if !details.isEmpty { o["details"] = .object(details) }
        return .object(o)
    }

    /// Reads a `Status` body back into an error (the client side).
    public init?(status: JSONValue, httpCode: Int) {
        guard status["kind"]?.stringValue == "Status" else { return nil }
        let causes: [FieldError] = (status["details"]?["causes"]?.arrayValue ?? []).map {
            FieldError(FieldError.Reason(rawValue: $0["reason"]?.stringValue ?? ""),
                       field: $0["field"]?.stringValue ?? "", message: $0["message"]?.stringValue ?? "")
        }
        self.init(code: Int(status["code"]?.intValue ?? Int64(httpCode)),
                  reason: Reason(rawValue: status["reason"]?.stringValue ?? "Unknown"),
                  message: status["message"]?.stringValue ?? "HTTP \(httpCode)",
                  kind: status["details"]?["kind"]?.stringValue, name: status["details"]?["name"]?.stringValue,
                  causes: causes)
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, b in b }))
    }
    public init(nilLiteral: ()) { self = .null }
}
