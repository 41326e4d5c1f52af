/// Everything the API knows about one kind: where it lives, its names, its schema, its printer
/// columns and its validation. Each kind's file defines one as a static member; `KindRegistry`
/// lists them all.
public struct KindInfo: Sendable {
    public var group: String
    public var version: String
    public var kind: String
    /// Lower-case plural, as in the URL path (`egressgateways`).
    public var plural: String
    public var singular: String
    public var shortNames: [String]
    public var namespaced: Bool
    /// Whether `status` is a subresource: ignored on create/update/apply, written through `/status`.
    public var hasStatus: Bool
    /// The schema of the body: every top-level member but apiVersion, kind and metadata.
    public var schema: Schema
    /// Columns for `baton get`; priority 1 columns show only with `-o wide`.
    public var columns: [PrinterColumn]
    /// Kinds whose objects `validate` needs to see (for cross-object rules such as pool overlap).
    public var relatedKinds: [String]
    /// Checks an object whose schema already passed. `old` is the stored object on update.
    public var validate: @Sendable (_ new: Resource, _ old: Resource?, _ context: ValidationContext) -> [FieldError]
    /// Checks a status write (agents and controllers).
    public var validateStatus: @Sendable (_ new: Resource) -> [FieldError]
    /// Rewrites a submitted object into its canonical form before schema checking, returning
    /// warnings for the user. Used for input forms that the original tool accepted.
    public var normalize: @Sendable (_ object: inout JSONValue) -> [String]

    public init(group: String, version: String, kind: String, plural: String, singular: String? = nil,
                shortNames: [String] = [], namespaced: Bool, hasStatus: Bool = true, schema: Schema,
                columns: [PrinterColumn] = [], relatedKinds: [String] = [],
                validate: @escaping @Sendable (Resource, Resource?, ValidationContext) -> [FieldError] = { _, _, _ in [] },
                validateStatus: @escaping @Sendable (Resource) -> [FieldError] = { _ in [] },
                normalize: @escaping @Sendable (inout JSONValue) -> [String] = { _ in [] }) {
        self.group = group
        self.version = version
        self.kind = kind
        self.plural = plural
        self.singular = singular ?? kind.lowercased()
        self.shortNames = shortNames
        self.namespaced = namespaced
        self.hasStatus = hasStatus
        self.schema = schema
        self.columns = columns
        self.relatedKinds = relatedKinds
        self.validate = validate
        self.validateStatus = validateStatus
        self.normalize = normalize
    }

    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
    /// `plural.group`: the kind's identity in the store.
    public var resource: String { group.isEmpty ? plural : "\(plural).\(group)" }

    /// The URL path of the collection, `/apis/GROUP/VERSION/[namespaces/NS/]PLURAL`.
    public func collectionPath(namespace: String?) -> String {
        let base = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
        if namespaced, let namespace, !namespace.isEmpty { return "\(base)/namespaces/\(namespace)/\(plural)" }
        return "\(base)/\(plural)"
    }

    /// The URL path of one object.
    public func objectPath(name: String, namespace: String?) -> String {
        "\(collectionPath(namespace: namespace))/\(name)"
    }
}

/// A column of `baton get`, in the shape of a CRD's `additionalPrinterColumns`.
public struct PrinterColumn: Sendable {
    public var name: String
    /// `string`, `integer`, `boolean` or `date` (a date prints as an age).
    public var type: String
    /// A simple JSONPath: `.spec.gateway`, `.status.eip.ipv4`, `.spec.http[*].hostname`.
    public var jsonPath: String
    /// 0 always shows; 1 shows with `-o wide`.
    public var priority: Int
    public var description: String?
    /// How several selected values print: nil joins them all with commas, as kubectl does.
    public var summary: Summary?

    /// A column that sums up the values it selects (Baton's; a CRD column cannot).
    public enum Summary: Sendable, Hashable {
        /// Each distinct value once, in order of first appearance.
        case distinct
        /// `N/M`: how many of the M selected values equal the given one.
        case count(String)
    }

    public init(_ name: String, type: String = "string", jsonPath: String, priority: Int = 0, description: String? = nil,
                summary: Summary? = nil) {
        self.name = name
        self.type = type
        self.jsonPath = jsonPath
        self.priority = priority
        self.description = description
        self.summary = summary
    }

    /// The cell of this column for `root` (a date column's age is the caller's: it needs a clock).
    public func text(in root: JSONValue) -> String {
        switch summary {
        case nil: return JSONPath.text(jsonPath, in: root)
        case .distinct?:
            var seen: [String] = []
            for v in JSONPath.select(jsonPath, in: root) where !v.isNull {
                let t = JSONPath.scalarText(v)
                if !seen.contains(t) { seen.append(t) }
            }
            return seen.isEmpty ? "<none>" : seen.joined(separator: ",")
        case .count(let wanted)?:
            let values = JSONPath.select(jsonPath, in: root).filter { !$0.isNull }
            return "\(values.filter { $0.stringValue == wanted }.count)/\(values.count)"
        }
    }

    /// `AGE` from `.metadata.creationTimestamp`, as every CRD has it.
    public static let age = PrinterColumn("AGE", type: "date", jsonPath: ".metadata.creationTimestamp")
}

/// What a validator may look at besides the object: the stored objects of its related kinds.
/// The server fills it; tests build it by hand.
public struct ValidationContext: Sendable {
    public var objects: [String: [Resource]]

    public init(objects: [String: [Resource]] = [:]) { self.objects = objects }

    /// The stored objects of `kind` (the kind name, as `EgressGateway`).
    public func list(_ kind: String) -> [Resource] { objects[kind] ?? [] }

    public static let empty = ValidationContext()
}
