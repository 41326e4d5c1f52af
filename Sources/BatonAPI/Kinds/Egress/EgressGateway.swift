extension KindInfo {
    // Placeholder: replaced by the kind's real definition.
    public static let egressGateway = KindInfo(
        group: "egressgateway.spidernet.io", version: "v1beta1", kind: "EgressGateway", plural: "egressgateways", shortNames: ["egw"], namespaced: false,
        schema: .object(["spec": .any(), "status": .any()]))
}
