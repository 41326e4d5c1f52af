/// The desired state of a cluster-scoped EgressClusterPolicy: an EgressPolicy whose pods may
/// live in any namespace that `namespaceSelector` matches.
public struct EgressClusterPolicySpec: Sendable, Hashable, Codable {
    /// The pods a policy applies to: by label (within the selected namespaces), or by subnet.
    public struct ClusterAppliedTo: Sendable, Hashable, Codable {
        public var podSelector: LabelSelector?
        /// CIDRs of pod addresses.
        public var podSubnet: [String]?
        /// The namespaces whose pods `podSelector` looks at; unset means every namespace.
        public var namespaceSelector: LabelSelector?

        public init(podSelector: LabelSelector? = nil, podSubnet: [String]? = nil, namespaceSelector: LabelSelector? = nil) {
            self.podSelector = podSelector
            self.podSubnet = podSubnet
            self.namespaceSelector = namespaceSelector
        }
    }

    /// The gateway; empty means the gateway with `clusterDefault: true`.
    public var egressGatewayName: String?
    public var egressIP: EgressIP?
    public var appliedTo: ClusterAppliedTo
    /// Destination CIDRs; empty means every destination outside the cluster.
    public var destSubnet: [String]?
    /// Accepted for compatibility; egressgateway defines it but does not act on it.
    public var priority: Int64?

    public init(egressGatewayName: String? = nil, egressIP: EgressIP? = nil, appliedTo: ClusterAppliedTo,
                destSubnet: [String]? = nil, priority: Int64? = nil) {
        self.egressGatewayName = egressGatewayName
        self.egressIP = egressIP
        self.appliedTo = appliedTo
        self.destSubnet = destSubnet
        self.priority = priority
    }
}

extension KindInfo {
    /// egressgateway's EgressClusterPolicy (`egcp`): EgressPolicy for pods of any namespace.
    /// Columns are the CRD's `additionalPrinterColumns` (charts/crds/egressgateway.spidernet.io_egressclusterpolicies.yaml).
    public static let egressClusterPolicy = KindInfo(
        group: "egressgateway.spidernet.io", version: "v1beta1", kind: "EgressClusterPolicy", plural: "egressclusterpolicies",
        shortNames: ["egcp"], namespaced: false,
        schema: .object([
            "spec": .object([
                "egressGatewayName": .string("The gateway; empty means the cluster's default gateway."),
                "egressIP": egressIPSchema,
                "appliedTo": .object([
                    "podSelector": LabelSelector.schema,
                    "podSubnet": .array(.string(), description: "Pod CIDRs; not together with podSelector."),
                    "namespaceSelector": LabelSelector.schema,
                ]),
                "destSubnet": .array(.string(), description: "Destination CIDRs."),
                "priority": .integer("Accepted for compatibility with egressgateway; not used.", minimum: 0),
            ], required: ["appliedTo"]),
            "status": egressPolicyStatusSchema,
        ], required: ["spec"]),
        columns: [
            PrinterColumn("GATEWAY", jsonPath: ".spec.egressGatewayName", description: "egressGatewayName"),
            PrinterColumn("IPV4", jsonPath: ".status.eip.ipv4", description: "ipv4"),
            PrinterColumn("IPV6", jsonPath: ".status.eip.ipv6", description: "ipv6"),
            PrinterColumn("EGRESSTUNNEL", jsonPath: ".status.node", description: "egressTunnel"),
        ],
        relatedKinds: ["EgressGateway"],
        validate: { new, old, context in
            EgressPolicyValidation.validate(new, old: old, context: context, kind: "EgressClusterPolicy") {
                try $0.decodeSpec(EgressClusterPolicySpec.self).view
            }
        },
        validateStatus: { EgressPolicyValidation.validateStatus($0) })
}
