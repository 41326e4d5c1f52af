/// DigitalOcean's `StaticRoute` (`networking.digitalocean.com/v1`): route `destinations` through
/// `gateway` on every selected node, as the k8s-staticroute-operator does with `ip route`.
///
/// The original fields (`destinations`, `gateway`) work alone. `gateways` (a list with
/// priorities, for failover) and `nodeSelector` are Baton's additions and are optional; a route
/// names either `gateway` or `gateways`, not both. Unlike the original CRD (IPv4 only), IPv6
/// destinations and gateways are accepted, but one route never mixes families.
public struct StaticRouteSpec: Sendable, Hashable, Codable {
    /// One candidate gateway; the lowest `priority` that is reachable serves.
    public struct Gateway: Sendable, Hashable, Codable {
        public var address: String
        public var priority: Int64?
        public init(address: String, priority: Int64? = nil) { self.address = address; self.priority = priority }
    }

    /// Destination hosts or subnets (`34.160.111.145`, `10.42.10.0/24`).
    public var destinations: [String]
    /// The gateway to route through, as the original operator takes it.
    public var gateway: String?
    public var gateways: [Gateway]?
    /// Which nodes install the route; absent selects every node (the operator is a DaemonSet).
    public var nodeSelector: LabelSelector?

    public init(destinations: [String], gateway: String? = nil, gateways: [Gateway]? = nil, nodeSelector: LabelSelector? = nil) {
        self.destinations = destinations
        self.gateway = gateway
        self.gateways = gateways
        self.nodeSelector = nodeSelector
    }

    /// Every gateway address in order of preference: `gateway` alone, or `gateways` by priority
    /// (ties keep list order).
    public var gatewaysByPriority: [String] {
        if let gateway { return [gateway] }
        return (gateways ?? []).enumerated()
            .sorted { ($0.element.priority ?? 0, $0.offset) < ($1.element.priority ?? 0, $1.offset) }
            .map(\.element.address)
    }
}

/// What the operator and Baton's agents write back.
///
/// `create_fn` and `update_fn` are where the original operator (kopf) stores its handlers'
/// results: one entry per destination with `status` `Ready` or `NotReady`. `nodes` is Baton's:
/// one entry per node, naming the gateway that node currently routes through.
public struct StaticRouteStatus: Sendable, Hashable, Codable {
    /// One route as the original operator reports it.
    public struct RouteResult: Sendable, Hashable, Codable {
        public var destination: String
        public var gateway: String
        /// `Ready` or `NotReady`.
        public var status: String
        public init(destination: String, gateway: String, status: String) {
            self.destination = destination
            self.gateway = gateway
            self.status = status
        }
    }

    /// One node's view of the route.
    public struct NodeRoute: Sendable, Hashable, Codable {
        public var name: String
        /// The gateway this node's routes point at now (nil when none is reachable).
        public var gateway: String?
        /// `Ready`, `NotReady` or `Failed`.
        public var phase: String
        public var message: String?
        public var lastTransitionTime: String?
        public init(name: String, gateway: String? = nil, phase: String, message: String? = nil, lastTransitionTime: String? = nil) {
            self.name = name
            self.gateway = gateway
            self.phase = phase
            self.message = message
            self.lastTransitionTime = lastTransitionTime
        }
    }

    public var create_fn: [RouteResult]?
    public var update_fn: [RouteResult]?
    public var nodes: [NodeRoute]?
    public var observedGeneration: Int64?

    public init(nodes: [NodeRoute]? = nil) { self.nodes = nodes }
}

extension KindInfo {
    static let staticRoutePhases = ["Ready", "NotReady", "Failed"]

    public static let staticRoute = KindInfo(
        group: "networking.digitalocean.com", version: "v1", kind: "StaticRoute", plural: "staticroutes",
        shortNames: ["sr"], namespaced: false,
        schema: .object([
            "spec": .object([
                "destinations": .array(.string(), description: "Destination host(s)/subnet(s) to route through the gateway (required)"),
                "gateway": .string("Gateway to route through (required unless gateways is set)"),
                "gateways": .array(.object([
                    "address": .string("The gateway's IP address."),
                    "priority": .integer("Lower is preferred; 0 when absent.", minimum: 0),
                ], required: ["address"]), description: "Gateways in order of preference (Baton)."),
                "nodeSelector": LabelSelector.schema,
            ], required: ["destinations"]),
            "status": .object([
                "create_fn": .array(staticRouteResultSchema),
                "update_fn": .array(staticRouteResultSchema),
                "kopf": .any("The original operator's own progress records."),
                "nodes": .array(.object([
                    "name": .string(),
                    "gateway": .string(),
                    "phase": .string(enum: staticRoutePhases),
                    "message": .string(),
                    "lastTransitionTime": .string(format: "date-time"),
                ], required: ["name", "phase"])),
                "observedGeneration": .integer(),
            ]),
        ], required: ["spec"]),
        // The original CRD's additionalPrinterColumns (controller/config/crd.yaml), in order.
        columns: [
            PrinterColumn("AGE", type: "date", jsonPath: ".metadata.creationTimestamp", priority: 0),
            PrinterColumn("DESTINATIONS", jsonPath: ".spec.destinations", priority: 1,
                          description: "Destination host(s)/subnet(s)"),
            PrinterColumn("GATEWAY", jsonPath: ".spec.gateway", priority: 1, description: "Gateway to route through"),
        ],
        validate: { new, _, _ in
            guard let spec = try? new.decodeSpec(StaticRouteSpec.self) else {
                return [.invalid("spec", "", "cannot be read as a StaticRoute spec")]
            }
            return StaticRouteValidation.check(spec)
        },
        validateStatus: { object in
            guard let status = object.decodeStatus(StaticRouteStatus.self) else { return [] }
            var errors: [FieldError] = []
            for (i, n) in (status.nodes ?? []).enumerated() {
                if let g = n.gateway, IPAddress(g) == nil {
                    errors.append(.invalid("status.nodes[\(i)].gateway", g, "must be a valid IP address"))
                }
            }
            return errors
        })

    static let staticRouteResultSchema = Schema.object([
        "destination": .string(), "gateway": .string(), "status": .string(enum: ["Ready", "NotReady"]),
    ])
}

/// The rules a StaticRoute must pass besides its schema.
enum StaticRouteValidation {
    static func check(_ spec: StaticRouteSpec) -> [FieldError] {
        var errors: [FieldError] = []
        var families: [(field: String, value: String, family: IPAddress.Family)] = []

        if spec.destinations.isEmpty {
            errors.append(.required("spec.destinations", "Required value: at least one destination host or subnet is required"))
        }
        var seen: [IPPrefix: Int] = [:]
        for (i, d) in spec.destinations.enumerated() {
            let field = "spec.destinations[\(i)]"
            guard let prefix = destination(d) else {
                let detail = d.contains("/") && IPPrefix(d) != nil
                    ? "host bits must be zero in a destination subnet (did you mean \(IPPrefix(d)!)?)"
                    : "must be an IP address or a CIDR subnet"
                errors.append(.invalid(field, d, detail))
                continue
            }
            if prefix.length == 0 || prefix.address.value == 0 && prefix.length == prefix.address.bitWidth {
                errors.append(.forbidden(field, "\"\(d)\" is the default route or the unspecified address; a StaticRoute must not replace the default gateway"))
                continue
            }
            if let first = seen[prefix] {
                errors.append(.duplicate(field, d, "the same destination as spec.destinations[\(first)]"))
                continue
            }
            seen[prefix] = i
            families.append((field, d, prefix.address.family))
        }

        var gatewayFamilies: [(field: String, value: String, family: IPAddress.Family)] = []
        switch (spec.gateway, spec.gateways) {
        case (nil, nil):
            errors.append(.required("spec.gateway", "Required value: a gateway to route through is required"))
        case (.some, .some):
            errors.append(.forbidden("spec.gateways", "may not be set together with spec.gateway; list every gateway in spec.gateways"))
        case (.some(let g), nil):
            if let a = IPAddress(g) {
                gatewayFamilies.append(("spec.gateway", g, a.family))
            } else {
                errors.append(.invalid("spec.gateway", g, "must be a valid IP address"))
            }
        case (nil, .some(let list)):
            if list.isEmpty {
                errors.append(.required("spec.gateways", "Required value: at least one gateway is required"))
            }
            var seenGateways: [IPAddress: Int] = [:]
            for (i, g) in list.enumerated() {
                let field = "spec.gateways[\(i)].address"
                guard let a = IPAddress(g.address) else {
                    errors.append(.invalid(field, g.address, "must be a valid IP address"))
                    continue
                }
                if let first = seenGateways[a] {
                    errors.append(.duplicate(field, g.address, "the same gateway as spec.gateways[\(first)]"))
                    continue
                }
                seenGateways[a] = i
                gatewayFamilies.append((field, g.address, a.family))
            }
        }

        // A route's destination and its gateway are of one family: `ip route` refuses
        // `34.160.111.145 via fd00::1`.
        for g in gatewayFamilies {
            if let d = families.first(where: { $0.family != g.family }) {
                errors.append(.invalid(g.field, g.value,
                                       "is \(name(g.family)) but \(d.field) \"\(d.value)\" is \(name(d.family)); a route's destinations and gateways must be one address family"))
            }
        }
        if let selector = spec.nodeSelector {
            errors += selector.validate(field: "spec.nodeSelector")
        }
        return errors
    }

    /// An IP or a CIDR with host bits zero, as Python's `ipaddress.ip_network` (which the
    /// original operator uses) requires.
    static func destination(_ text: String) -> IPPrefix? {
        if text.contains("/") { return IPPrefix(text, strict: true) }
        return IPSyntax.destination(text)
    }

    static func name(_ f: IPAddress.Family) -> String { f == .v4 ? "IPv4" : "IPv6" }
}
