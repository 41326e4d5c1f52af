/// A machine that runs a Baton agent. The agent registers it; `baton label node NAME k=v` sets
/// the labels that gateways and other selectors match.
public struct NodeStatus: Sendable, Hashable, Codable {
    public struct Address: Sendable, Hashable, Codable {
        /// `InternalIP`, `ExternalIP` or `Hostname`, as Kubernetes names them.
        public var type: String
        public var address: String
        public init(type: String, address: String) { self.type = type; self.address = address }
    }
    public var addresses: [Address]?
    public var observedGeneration: Int64?
    public init(addresses: [Address]? = nil) { self.addresses = addresses }
}

extension KindInfo {
    static let nodeAddressTypes = ["InternalIP", "ExternalIP", "Hostname", "InternalDNS", "ExternalDNS"]

    public static let node = KindInfo(
        group: "baton.io", version: "v1", kind: "Node", plural: "nodes", shortNames: ["no"], namespaced: false,
        schema: .object([
            "spec": .object([:], description: "Nodes carry no spec: labels select them."),
            "status": .object([
                "addresses": .array(.object([
                    "type": .string(enum: nodeAddressTypes),
                    "address": .string(),
                ], required: ["type", "address"])),
                "observedGeneration": .integer(),
            ]),
        ]),
        columns: [
            PrinterColumn("ADDRESSES", jsonPath: ".status.addresses[*].address"),
            .age,
            PrinterColumn("LABELS", jsonPath: ".metadata.labels", priority: 1),
        ],
        validateStatus: { object in
            var errors: [FieldError] = []
            for (i, a) in (object.decodeStatus(NodeStatus.self)?.addresses ?? []).enumerated()
            where a.type.hasSuffix("IP") && IPAddress(a.address) == nil {
                errors.append(.invalid("status.addresses[\(i)].address", a.address, "must be a valid IP address"))
            }
            return errors
        })
}
