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
                    "priority": .integer("Lower is preferred; 0 when absent. Healthy gateways sharing the lowest value share the traffic (ECMP).", minimum: 0),
                ], required: ["address"]), description: "Gateways in order of preference (Baton)."),
                "nodeSelector": LabelSelector.schema,
                "healthCheck": .object([
                    "type": .string("icmp (default), tcp or none.", enum: StaticRouteSpec.HealthCheck.types),
                    "port": .integer("TCP port (type tcp).", minimum: 1, maximum: 65535),
                    "interval": .string("Time between probes of one gateway (default 50ms)."),
                    "timeout": .string("How long a probe waits for its answer, at most interval (default 50ms)."),
                    "failureThreshold": .integer("Consecutive failed probes before a gateway is unhealthy (default 3).", minimum: 1, maximum: 1000),
                    "successThreshold": .integer("Consecutive answered probes before it is healthy again (default 3).", minimum: 1, maximum: 1000),
                    "holdDown": .string("How long a gateway that came back must stay healthy before traffic returns to it (default 5s)."),
                    "failback": .boolean("Whether traffic returns to a preferred gateway after its hold-down (default true)."),
                ], description: "How each node probes the gateways (Baton)."),
            ], required: ["destinations"]),
            "status": .object([
                "create_fn": .array(staticRouteResultSchema),
                "update_fn": .array(staticRouteResultSchema),
                "kopf": .any("The original operator's own progress records."),
                "nodes": .map(.object([
                    "gateway": .string(),
                    "gateways": .array(.string()),
                    "phase": .string(enum: staticRoutePhases),
                    "message": .string(),
                    "observedGeneration": .integer(),
                    "health": .array(.object([
                        "address": .string(),
                        "state": .string(enum: ["Healthy", "Unhealthy", "Unknown"]),
                        "since": .string(format: "date-time"),
                    ], required: ["address", "state"])),
                    "lastSwitchTime": .string(format: "date-time"),
                    "lastTransitionTime": .string(format: "date-time"),
                    "conflicts": .array(.object([
                        "destination": .string(), "staticRoute": .string(), "winner": .boolean(),
                    ], required: ["destination", "staticRoute", "winner"])),
                ], required: ["phase"]), description: "One entry per node, keyed by node name (Baton)."),
                "observedGeneration": .integer(),
            ]),
        ], required: ["spec"]),
        // The original CRD's additionalPrinterColumns (controller/config/crd.yaml), in order,
        // then Baton's: the gateways in use across nodes and how many nodes are Ready.
        columns: [
            PrinterColumn("AGE", type: "date", jsonPath: ".metadata.creationTimestamp", priority: 0),
            PrinterColumn("DESTINATIONS", jsonPath: ".spec.destinations", priority: 1,
                          description: "Destination host(s)/subnet(s)"),
            PrinterColumn("GATEWAY", jsonPath: ".spec.gateway", priority: 1, description: "Gateway to route through"),
            PrinterColumn("IN USE", jsonPath: ".status.nodes[*].gateways[*]", priority: 1,
                          description: "Gateways the nodes route through now", summary: .distinct),
            PrinterColumn("READY", jsonPath: ".status.nodes[*].phase", priority: 1,
                          description: "Nodes whose routes are Ready, of those reporting", summary: .count("Ready")),
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
            for (node, n) in (status.nodes ?? [:]).sorted(by: { $0.key < $1.key }) {
                if let g = n.gateway, IPAddress(g) == nil {
                    errors.append(.invalid("status.nodes.\(node).gateway", g, "must be a valid IP address"))
                }
                for (i, g) in (n.gateways ?? []).enumerated() where IPAddress(g) == nil {
                    errors.append(.invalid("status.nodes.\(node).gateways[\(i)]", g, "must be a valid IP address"))
                }
            }
            return errors
        })

    static let staticRouteResultSchema = Schema.object([
        "destination": .string(), "gateway": .string(), "status": .string(enum: ["Ready", "NotReady"]),
    ])
}
