/// The desired state of an EgressGateway: which nodes may carry its egress IPs, and the pools
/// those IPs come from. Field names are egressgateway.spidernet.io/v1beta1's.
///
/// Defaults are not written into the spec, so a manifest reads back exactly as applied: an
/// unset `ipv4DefaultEIP` is resolved by `defaultEIP(family:)` when it is needed.
public struct EgressGatewaySpec: Sendable, Hashable, Codable {
    /// The EIP pools, one list per family. An entry is a single IP, a range `a-b`, or a CIDR.
    public struct Ippools: Sendable, Hashable, Codable {
        public var ipv4: [String]?
        public var ipv6: [String]?
        /// The EIP of policies that name no `egressIP` (with `allocatorPolicy: default`).
        public var ipv4DefaultEIP: String?
        public var ipv6DefaultEIP: String?

        public init(ipv4: [String]? = nil, ipv6: [String]? = nil, ipv4DefaultEIP: String? = nil, ipv6DefaultEIP: String? = nil) {
            self.ipv4 = ipv4
            self.ipv6 = ipv6
            self.ipv4DefaultEIP = ipv4DefaultEIP
            self.ipv6DefaultEIP = ipv6DefaultEIP
        }
    }

    /// The nodes that may carry the gateway's EIPs (its egress nodes).
    public struct NodeSelector: Sendable, Hashable, Codable {
        /// Accepted for compatibility; egressgateway defines it but does not act on it.
        public var policy: String?
        public var selector: LabelSelector?

        public init(policy: String? = nil, selector: LabelSelector? = nil) {
            self.policy = policy
            self.selector = selector
        }
    }

    /// At most one gateway in the cluster is the default for policies that name none.
    public var clusterDefault: Bool?
    public var ippools: Ippools?
    public var nodeSelector: NodeSelector?

    public init(clusterDefault: Bool? = nil, ippools: Ippools? = nil, nodeSelector: NodeSelector? = nil) {
        self.clusterDefault = clusterDefault
        self.ippools = ippools
        self.nodeSelector = nodeSelector
    }

    /// `clusterDefault`, false when unset.
    public var isClusterDefault: Bool { clusterDefault ?? false }
}

/// Where a gateway's EIPs live now: one entry per egress node, and how much of each pool is used.
/// The controller writes it.
public struct EgressGatewayStatus: Sendable, Hashable, Codable {
    /// One egress node and the EIPs it carries.
    public struct EgressIPStatus: Sendable, Hashable, Codable {
        public var name: String?
        public var eips: [Eips]?
        /// The node's EgressTunnel phase (`Ready`, `HeartbeatTimeout`, ...).
        public var status: String?

        public init(name: String? = nil, eips: [Eips]? = nil, status: String? = nil) {
            self.name = name
            self.eips = eips
            self.status = status
        }
    }

    /// One EIP pair (either half may be empty) and the policies that use it. An entry with
    /// neither address stands for policies that use the node's own IP.
    public struct Eips: Sendable, Hashable, Codable {
        public var ipv4: String?
        public var ipv6: String?
        public var policies: [Policy]?

        public init(ipv4: String? = nil, ipv6: String? = nil, policies: [Policy]? = nil) {
            self.ipv4 = ipv4
            self.ipv6 = ipv6
            self.policies = policies
        }
    }

    /// A policy that uses an EIP; `namespace` is empty for an EgressClusterPolicy.
    public struct Policy: Sendable, Hashable, Codable {
        public var name: String?
        public var namespace: String?

        public init(name: String? = nil, namespace: String? = nil) {
            self.name = name
            self.namespace = namespace
        }
    }

    /// Pool sizes and free addresses per family, as `baton get egw` prints them.
    public struct IPUsage: Sendable, Hashable, Codable {
        public var ipv4Total: Int?
        public var ipv4Free: Int?
        public var ipv6Total: Int?
        public var ipv6Free: Int?

        public init(ipv4Total: Int? = nil, ipv4Free: Int? = nil, ipv6Total: Int? = nil, ipv6Free: Int? = nil) {
            self.ipv4Total = ipv4Total
            self.ipv4Free = ipv4Free
            self.ipv6Total = ipv6Total
            self.ipv6Free = ipv6Free
        }
    }

    public var nodeList: [EgressIPStatus]?
    public var ipUsage: IPUsage?
    /// Baton's extension: the spec generation this status was computed from.
    public var observedGeneration: Int64?

    public init(nodeList: [EgressIPStatus]? = nil, ipUsage: IPUsage? = nil, observedGeneration: Int64? = nil) {
        self.nodeList = nodeList
        self.ipUsage = ipUsage
        self.observedGeneration = observedGeneration
    }

    /// Every EIP that a node carries, with the node's name.
    public var allocatedEIPs: [(node: String, eip: IPAddress)] {
        var out: [(node: String, eip: IPAddress)] = []
        for node in nodeList ?? [] {
            for e in node.eips ?? [] {
                for text in [e.ipv4, e.ipv6].compactMap({ $0 }) where !text.isEmpty {
                    if let a = IPAddress(text) { out.append((node.name ?? "", a)) }
                }
            }
        }
        return out
    }
}

extension KindInfo {
    static let egressGatewaySchema = Schema.object([
        "spec": .object([
            "clusterDefault": .boolean("The default gateway for policies that name none; at most one per cluster."),
            "ippools": .object([
                "ipv4": .array(.string(), description: "IPv4 EIPs: single IPs, ranges a-b, or CIDRs."),
                "ipv6": .array(.string(), description: "IPv6 EIPs: single IPs, ranges a-b, or CIDRs."),
                "ipv4DefaultEIP": .string("The IPv4 EIP of policies that name none; must be in ipv4."),
                "ipv6DefaultEIP": .string("The IPv6 EIP of policies that name none; must be in ipv6."),
            ]),
            "nodeSelector": .object([
                "policy": .string("Accepted for compatibility with egressgateway; not used."),
                "selector": LabelSelector.schema,
            ]),
        ]),
        "status": .object([
            "nodeList": .array(.object([
                "name": .string(),
                "status": .string("The node's EgressTunnel phase."),
                "eips": .array(.object([
                    "ipv4": .string(),
                    "ipv6": .string(),
                    "policies": .array(.object([
                        "name": .string(),
                        "namespace": .string(),
                    ])),
                ])),
            ])),
            "ipUsage": .object([
                "ipv4Total": .integer(minimum: 0),
                "ipv4Free": .integer(),
                "ipv6Total": .integer(minimum: 0),
                "ipv6Free": .integer(),
            ]),
            "observedGeneration": .integer("The spec generation this status reflects (Baton's extension)."),
        ]),
    ])

    /// egressgateway's EgressGateway (`egw`): a set of egress nodes and the EIP pools they serve.
    /// Columns are the CRD's `additionalPrinterColumns` (charts/crds/egressgateway.spidernet.io_egressgateways.yaml).
    public static let egressGateway = KindInfo(
        group: "egressgateway.spidernet.io", version: "v1beta1", kind: "EgressGateway", plural: "egressgateways",
        shortNames: ["egw"], namespaced: false,
        schema: egressGatewaySchema,
        columns: [
            PrinterColumn("IPV4DEFAULTEIP", jsonPath: ".spec.ippools.ipv4DefaultEIP", description: "ipv4DefaultEIP"),
            PrinterColumn("IPV6DEFAULTEIP", jsonPath: ".spec.ippools.ipv6DefaultEIP", description: "ipv6DefaultEIP"),
            PrinterColumn("CLUSTERDEFAULT", type: "boolean", jsonPath: ".spec.clusterDefault", description: "clusterDefault"),
            PrinterColumn("IPV4TOTAL", type: "integer", jsonPath: ".status.ipUsage.ipv4Total", description: "ipv4Total"),
            PrinterColumn("IPV4FREE", type: "integer", jsonPath: ".status.ipUsage.ipv4Free", description: "ipv4Free"),
            PrinterColumn("IPV6TOTAL", type: "integer", jsonPath: ".status.ipUsage.ipv6Total", description: "ipv6Total"),
            PrinterColumn("IPV6FREE", type: "integer", jsonPath: ".status.ipUsage.ipv6Free", description: "ipv6Free"),
        ],
        relatedKinds: ["EgressGateway", "EgressPolicy", "EgressClusterPolicy"],
        validate: { new, old, context in EgressGatewayValidation.validate(new, old: old, context: context) },
        validateStatus: { EgressGatewayValidation.validateStatus($0) })
}
