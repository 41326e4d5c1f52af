/// Which EIP a policy's traffic leaves with. Shared by EgressPolicy and EgressClusterPolicy.
///
/// egressgateway's CRD defaults this to `{allocatorPolicy: default, useNodeIP: false}`; Baton
/// leaves the spec as applied and resolves the defaults through `resolvedAllocatorPolicy` and
/// `usesNodeIP`.
public struct EgressIP: Sendable, Hashable, Codable {
    /// An explicit IPv4 EIP from the gateway's pool.
    public var ipv4: String?
    /// An explicit IPv6 EIP from the gateway's pool.
    public var ipv6: String?
    /// Leave with the egress node's own IP instead of an EIP.
    public var useNodeIP: Bool?
    /// `default` (the gateway's default EIP) or `rr` (prefer an unassigned EIP).
    public var allocatorPolicy: String?

    public init(ipv4: String? = nil, ipv6: String? = nil, useNodeIP: Bool? = nil, allocatorPolicy: String? = nil) {
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.useNodeIP = useNodeIP
        self.allocatorPolicy = allocatorPolicy
    }

    public static let allocatorDefault = "default"
    public static let allocatorRR = "rr"
    public static let allocatorPolicies = [allocatorDefault, allocatorRR]

    /// `allocatorPolicy`, `default` when unset or empty.
    public var resolvedAllocatorPolicy: String {
        guard let allocatorPolicy, !allocatorPolicy.isEmpty else { return Self.allocatorDefault }
        return allocatorPolicy
    }

    /// `useNodeIP`, false when unset.
    public var usesNodeIP: Bool { useNodeIP ?? false }

    /// The explicit EIPs, parsed; nil where unset or malformed.
    public var explicitIPv4: IPAddress? { ipv4.flatMap { $0.isEmpty ? nil : IPAddress($0) } }
    public var explicitIPv6: IPAddress? { ipv6.flatMap { $0.isEmpty ? nil : IPAddress($0) } }
}

/// The desired state of a namespaced EgressPolicy: which pods' traffic, to which destinations,
/// leaves through which gateway with which EIP.
public struct EgressPolicySpec: Sendable, Hashable, Codable {
    /// The pods a policy applies to: by label, or by subnet (one or the other).
    public struct AppliedTo: Sendable, Hashable, Codable {
        public var podSelector: LabelSelector?
        /// CIDRs of pod addresses.
        public var podSubnet: [String]?

        public init(podSelector: LabelSelector? = nil, podSubnet: [String]? = nil) {
            self.podSelector = podSelector
            self.podSubnet = podSubnet
        }
    }

    /// The gateway; empty means the gateway with `clusterDefault: true`.
    public var egressGatewayName: String?
    public var egressIP: EgressIP?
    public var appliedTo: AppliedTo
    /// Destination CIDRs; empty means every destination outside the cluster.
    public var destSubnet: [String]?
    /// Accepted for compatibility; egressgateway defines it but does not act on it.
    public var priority: Int64?

    public init(egressGatewayName: String? = nil, egressIP: EgressIP? = nil, appliedTo: AppliedTo,
                destSubnet: [String]? = nil, priority: Int64? = nil) {
        self.egressGatewayName = egressGatewayName
        self.egressIP = egressIP
        self.appliedTo = appliedTo
        self.destSubnet = destSubnet
        self.priority = priority
    }
}

/// Where a policy's traffic leaves now: the EIP and the egress node. Shared by EgressPolicy
/// and EgressClusterPolicy; the controller writes it.
public struct EgressPolicyStatus: Sendable, Hashable, Codable {
    public struct Eip: Sendable, Hashable, Codable {
        public var ipv4: String?
        public var ipv6: String?
        public init(ipv4: String? = nil, ipv6: String? = nil) { self.ipv4 = ipv4; self.ipv6 = ipv6 }
    }

    public var eip: Eip?
    /// The egress node (the name of its EgressTunnel).
    public var node: String?
    /// Baton's extension: the spec generation this status was computed from.
    public var observedGeneration: Int64?

    public init(eip: Eip? = nil, node: String? = nil, observedGeneration: Int64? = nil) {
        self.eip = eip
        self.node = node
        self.observedGeneration = observedGeneration
    }
}

extension EgressGatewaySpec {
    /// The name of the gateway with `clusterDefault: true` among `gateways`, if any.
    public static func clusterDefaultName(in gateways: [Resource]) -> String? {
        gateways.sorted { $0.name < $1.name }
            .first { (try? $0.decodeSpec(EgressGatewaySpec.self))?.isClusterDefault == true }?.name
    }
}

extension KindInfo {
    static let egressIPSchema = Schema.object([
        "ipv4": .string("An explicit IPv4 EIP from the gateway's pool."),
        "ipv6": .string("An explicit IPv6 EIP from the gateway's pool."),
        "useNodeIP": .boolean("Leave with the egress node's own IP (default false)."),
        "allocatorPolicy": .string("default: the gateway's default EIP; rr: prefer an unassigned EIP.",
                                   enum: EgressIP.allocatorPolicies),
    ])

    static let egressPolicyStatusSchema = Schema.object([
        "eip": .object(["ipv4": .string(), "ipv6": .string()]),
        "node": .string("The egress node."),
        "observedGeneration": .integer("The spec generation this status reflects (Baton's extension)."),
    ])

    /// egressgateway's EgressPolicy (`egp`): pods of one namespace leave through a gateway's EIP.
    /// Columns are the CRD's `additionalPrinterColumns` (charts/crds/egressgateway.spidernet.io_egresspolicies.yaml).
    public static let egressPolicy = KindInfo(
        group: "egressgateway.spidernet.io", version: "v1beta1", kind: "EgressPolicy", plural: "egresspolicies",
        shortNames: ["egp"], namespaced: true,
        schema: .object([
            "spec": .object([
                "egressGatewayName": .string("The gateway; empty means the cluster's default gateway."),
                "egressIP": egressIPSchema,
                "appliedTo": .object([
                    "podSelector": LabelSelector.schema,
                    "podSubnet": .array(.string(), description: "Pod CIDRs; not together with podSelector."),
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
            PrinterColumn("EGRESSNODE", jsonPath: ".status.node", description: "egressNode"),
        ],
        relatedKinds: ["EgressGateway"],
        validate: { new, old, context in
            EgressPolicyValidation.validate(new, old: old, context: context, kind: "EgressPolicy") { try $0.decodeSpec(EgressPolicySpec.self).view }
        },
        validateStatus: { EgressPolicyValidation.validateStatus($0) })
}
