/// Standard object metadata, as Kubernetes has it, plus the TSB hierarchy fields that Tetrate's
/// manifests carry in `metadata` (`organization`, `tenant`, `workspace`, `group`).
public struct ObjectMeta: Sendable, Hashable, Codable {
    public var name: String
    public var namespace: String?
    public var uid: String?
    /// The store revision of the last write to this object, as a decimal string.
    public var resourceVersion: String?
    /// Bumped by the store whenever anything but `metadata` and `status` changes.
    public var generation: Int64?
    public var creationTimestamp: String?
    public var deletionTimestamp: String?
    public var labels: [String: String]?
    public var annotations: [String: String]?
    public var finalizers: [String]?
    public var ownerReferences: [JSONValue]?
    public var organization: String?
    public var tenant: String?
    public var workspace: String?
    public var group: String?

    public init(name: String, namespace: String? = nil, labels: [String: String]? = nil) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
    }

    /// The resource version as a number (0 when absent or malformed).
    public var revision: Int64 { resourceVersion.flatMap(Int64.init) ?? 0 }
}
