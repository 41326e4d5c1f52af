extension KindInfo {
    // Placeholder: replaced by the kind's real definition.
    public static let egressPolicy = KindInfo(
        group: "egressgateway.spidernet.io", version: "v1beta1", kind: "EgressPolicy", plural: "egresspolicies", shortNames: ["egp"], namespaced: true,
        schema: .object(["spec": .any(), "status": .any()]))
}
