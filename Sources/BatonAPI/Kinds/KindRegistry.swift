/// Every kind the API serves.
public enum KindRegistry {
    public static let all: [KindInfo] = [
        .egressGateway, .egressPolicy, .egressClusterPolicy, .egressTunnel,
        .staticRoute,
        .tsbGateway, .tsbCluster,
        .node, .ipFailover, .event,
    ]

    /// Finds a kind by what a user types: kind (`EgressGateway`), plural, singular or short
    /// name, case-insensitively, optionally qualified by group (`gateways.gateway.tsb.tetrate.io`).
    public static func lookup(_ name: String) -> KindInfo? {
        let n = name.lowercased()
        if let k = all.first(where: {
            $0.kind.lowercased() == n || $0.plural == n || $0.singular == n || $0.shortNames.contains(n)
                || $0.resource == n || "\($0.singular).\($0.group)" == n || "\($0.kind.lowercased()).\($0.group)" == n
        }) {
            return k
        }
        return nil
    }

    /// The kind of a manifest's `apiVersion` and `kind`.
    public static func find(apiVersion: String, kind: String) -> KindInfo? {
        all.first { $0.apiVersion == apiVersion && $0.kind == kind }
    }

    /// The kind behind a URL's group, version and plural.
    public static func find(group: String, version: String, plural: String) -> KindInfo? {
        all.first { $0.group == group && $0.version == version && $0.plural == plural }
    }

    public static func find(kind: String) -> KindInfo? {
        all.first { $0.kind == kind }
    }
}

extension KindInfo {
    /// The schema of `metadata`, shared by every kind.
    public static let metadataSchema = Schema.object([
        "name": .string("Unique within the namespace (or the cluster, for a cluster-scoped kind)."),
        "namespace": .string(),
        "uid": .string(),
        "resourceVersion": .string("The store revision of the object's last write."),
        "generation": .integer(),
        "creationTimestamp": .string(format: "date-time").orNull,
        "deletionTimestamp": .string(format: "date-time").orNull,
        "labels": Schema.stringMap,
        "annotations": Schema.stringMap,
        "finalizers": .array(.string()),
        "ownerReferences": .array(.any()),
        "organization": .string("TSB hierarchy: organization."),
        "tenant": .string("TSB hierarchy: tenant."),
        "workspace": .string("TSB hierarchy: workspace."),
        "group": .string("TSB hierarchy: group."),
        "generateName": .string(),
        "managedFields": .array(.any()),
    ])
}
