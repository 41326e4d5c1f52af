extension KindInfo {
    // Placeholder: replaced by the kind's real definition.
    public static let egressTunnel = KindInfo(
        group: "egressgateway.spidernet.io", version: "v1beta1", kind: "EgressTunnel", plural: "egresstunnels", shortNames: ["egt"], namespaced: false,
        schema: .object(["spec": .any(), "status": .any()]))
}
