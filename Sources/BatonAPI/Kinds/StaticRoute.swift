extension KindInfo {
    // Placeholder: replaced by the kind's real definition.
    public static let staticRoute = KindInfo(
        group: "networking.digitalocean.com", version: "v1", kind: "StaticRoute", plural: "staticroutes", shortNames: ["sr"], namespaced: false,
        schema: .object(["spec": .any(), "status": .any()]))
}
