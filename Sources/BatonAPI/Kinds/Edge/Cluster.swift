extension KindInfo {
    // Placeholder: replaced by the kind's real definition.
    public static let tsbCluster = KindInfo(
        group: "api.tsb.tetrate.io", version: "v2", kind: "Cluster", plural: "clusters", shortNames: [], namespaced: false,
        schema: .object(["spec": .any(), "status": .any()]))
}
