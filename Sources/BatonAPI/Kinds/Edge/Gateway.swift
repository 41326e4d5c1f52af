extension KindInfo {
    // Placeholder: replaced by the kind's real definition.
    public static let tsbGateway = KindInfo(
        group: "gateway.tsb.tetrate.io", version: "v2", kind: "Gateway", plural: "gateways", shortNames: ["gw"], namespaced: false,
        schema: .object(["spec": .any(), "status": .any()]))
}
