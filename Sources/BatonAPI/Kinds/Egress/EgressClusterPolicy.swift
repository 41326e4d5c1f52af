extension KindInfo {
    // Placeholder: replaced by the kind's real definition.
    public static let egressClusterPolicy = KindInfo(
        group: "egressgateway.spidernet.io", version: "v1beta1", kind: "EgressClusterPolicy", plural: "egressclusterpolicies", shortNames: ["egcp"], namespaced: false,
        schema: .object(["spec": .any(), "status": .any()]))
}
