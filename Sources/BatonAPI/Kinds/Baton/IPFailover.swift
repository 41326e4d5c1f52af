extension KindInfo {
    // Placeholder: replaced by the kind's real definition.
    public static let ipFailover = KindInfo(
        group: "baton.io", version: "v1", kind: "IPFailover", plural: "ipfailovers", shortNames: ["ipf"], namespaced: false,
        schema: .object(["spec": .any(), "status": .any()]))
}
