/// Tetrate Service Bridge's `Gateway` (`gateway.tsb.tetrate.io/v2`) as an edge gateway uses it:
/// HTTP servers whose rules send traffic to whole clusters (`clusterDestination`). `baton edge`
/// serves it, choosing among the clusters' ingresses by locality and outlier detection.
///
/// Field names are TSB's. Routing to a service (`serviceDestination`), redirects, `tcp` and
/// `tls` passthrough servers are not served: a manifest that uses them is refused by the schema
/// with the field's path.
public struct GatewaySpec: Sendable, Hashable, Codable {
    /// Which gateway workloads (pods in TSB, `baton edge` processes here) take this config.
    public struct WorkloadSelector: Sendable, Hashable, Codable {
        public var namespace: String
        public var labels: [String: String]?
        public init(namespace: String, labels: [String: String]? = nil) { self.namespace = namespace; self.labels = labels }
    }

    /// One listener: a port and the hostname it answers for.
    public struct HTTPServer: Sendable, Hashable, Codable {
        public var name: String
        public var port: Int64
        public var hostname: String
        public var tls: TLSSettings?
        public var routing: HTTPRouting?
        public init(name: String, port: Int64, hostname: String, tls: TLSSettings? = nil, routing: HTTPRouting? = nil) {
            self.name = name
            self.port = port
            self.hostname = hostname
            self.tls = tls
            self.routing = routing
        }
    }

    /// TSB's server TLS settings: `mode` and the Kubernetes secret holding the certificate.
    public struct TLSSettings: Sendable, Hashable, Codable {
        /// `DISABLED`, `SIMPLE`, `MUTUAL` or `OPTIONAL_MUTUAL`.
        public var mode: String?
        public var secretName: String?
        public init(mode: String? = nil, secretName: String? = nil) { self.mode = mode; self.secretName = secretName }
    }

    public struct HTTPRouting: Sendable, Hashable, Codable {
        public var rules: [HTTPRule]?
        public init(rules: [HTTPRule]? = nil) { self.rules = rules }
    }

    /// A rule: the first whose `match` conditions hold (any one of them) routes the request.
    public struct HTTPRule: Sendable, Hashable, Codable {
        public var match: [HTTPMatchCondition]?
        public var route: HTTPRoute?
        public init(match: [HTTPMatchCondition]? = nil, route: HTTPRoute? = nil) { self.match = match; self.route = route }
    }

    /// TSB's `HttpMatchCondition`: every present part must match.
    public struct HTTPMatchCondition: Sendable, Hashable, Codable {
        public var uri: StringMatch?
        /// Header name to match (`x-healthcheck: {exact: "true"}`).
        public var headers: [String: StringMatch]?
        public var port: Int64?
        public init(uri: StringMatch? = nil, headers: [String: StringMatch]? = nil, port: Int64? = nil) {
            self.uri = uri
            self.headers = headers
            self.port = port
        }
    }

    /// Exactly one of `exact`, `prefix` or `regex`.
    public struct StringMatch: Sendable, Hashable, Codable {
        public var exact: String?
        public var prefix: String?
        public var regex: String?
        public init(exact: String? = nil, prefix: String? = nil, regex: String? = nil) {
            self.exact = exact
            self.prefix = prefix
            self.regex = regex
        }
    }

    public struct HTTPRoute: Sendable, Hashable, Codable {
        public var clusterDestination: ClusterDestinations?
        public init(clusterDestination: ClusterDestinations? = nil) { self.clusterDestination = clusterDestination }
    }

    /// `{}` (every cluster with a matching hostname, nearest region first) or a named list.
    /// With weights, traffic is split strictly by weight and there is no failover.
    public struct ClusterDestinations: Sendable, Hashable, Codable {
        public var clusters: [ClusterDestination]?
        /// Baton's extension, for weighted lists only (default false): the weights hold while every
        /// cluster has a healthy ingress, and a cluster without one has its share spread over the
        /// others in proportion to their weights, instead of getting 503 "no healthy upstream".
        public var healthAware: Bool?
        public init(clusters: [ClusterDestination]? = nil, healthAware: Bool? = nil) {
            self.clusters = clusters
            self.healthAware = healthAware
        }

        /// True when the clusters carry weights: a strict split, without failover.
        public var isWeighted: Bool { (clusters ?? []).contains { $0.weight != nil } }
    }

    /// One destination cluster, by `name` or by `labels` on its Cluster object.
    public struct ClusterDestination: Sendable, Hashable, Codable {
        public var name: String?
        public var labels: [String: String]?
        /// Deprecated in TSB; kept so that older manifests apply.
        public var network: String?
        public var weight: Int64?
        public init(name: String? = nil, labels: [String: String]? = nil, network: String? = nil, weight: Int64? = nil) {
            self.name = name
            self.labels = labels
            self.network = network
            self.weight = weight
        }
    }

    public var workloadSelector: WorkloadSelector
    public var http: [HTTPServer]?
    /// TSB's free-text fields, carried by most of its specs.
    public var displayName: String?
    public var description: String?

    public init(workloadSelector: WorkloadSelector, http: [HTTPServer]? = nil) {
        self.workloadSelector = workloadSelector
        self.http = http
    }
}

/// What `baton edge` reports: the state of each destination cluster it routes to.
public struct GatewayStatus: Sendable, Hashable, Codable {
    public struct ClusterState: Sendable, Hashable, Codable {
        public var name: String
        public var region: String?
        /// `Healthy` (in rotation), `Ejected` (outlier detection took it out) or `Unknown`.
        public var phase: String
        public var lastTransitionTime: String?
        public init(name: String, region: String? = nil, phase: String, lastTransitionTime: String? = nil) {
            self.name = name
            self.region = region
            self.phase = phase
            self.lastTransitionTime = lastTransitionTime
        }
    }
    /// A Kubernetes-style condition. `baton edge` writes `ResolvedRefs`: `False`, with the reason
    /// (`HostnameNotPublished`, `ClusterNotFound`, `NoClusters`, `Conflict`) and every problem in
    /// the message, when a destination cluster cannot take the route's traffic; else `True`.
    public struct Condition: Sendable, Hashable, Codable {
        public var type: String
        public var status: String
        public var reason: String?
        public var message: String?
        public var lastTransitionTime: String?
        public init(type: String, status: String, reason: String? = nil, message: String? = nil, lastTransitionTime: String? = nil) {
            self.type = type
            self.status = status
            self.reason = reason
            self.message = message
            self.lastTransitionTime = lastTransitionTime
        }
    }
    public var clusters: [ClusterState]?
    public var conditions: [Condition]?
    public var observedGeneration: Int64?
    public init(clusters: [ClusterState]? = nil, conditions: [Condition]? = nil) {
        self.clusters = clusters
        self.conditions = conditions
    }
}

extension KindInfo {
    static let stringMatchSchema = Schema.object([
        "exact": .string(), "prefix": .string(), "regex": .string(),
    ], description: "Exactly one of exact, prefix or regex.")

    public static let tsbGateway = KindInfo(
        group: "gateway.tsb.tetrate.io", version: "v2", kind: "Gateway", plural: "gateways", shortNames: ["gw"],
        namespaced: false,
        schema: .object([
            "spec": .object([
                "displayName": .string(),
                "description": .string(),
                "workloadSelector": .object([
                    "namespace": .string("The namespace of the gateway workloads."),
                    "labels": Schema.stringMap,
                ], required: ["namespace"]),
                "http": .array(.object([
                    "name": .string("Unique within the gateway."),
                    "port": .integer("The listening port, 1-65535."),
                    "hostname": .string("The hostname the server answers for."),
                    "tls": .object([
                        "mode": .string(enum: ["DISABLED", "SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL"]),
                        "secretName": .string(),
                    ]),
                    "routing": .object([
                        "rules": .array(.object([
                            "match": .array(.object([
                                "uri": stringMatchSchema,
                                "headers": .map(stringMatchSchema),
                                "port": .integer(),
                            ])),
                            "route": .object([
                                "clusterDestination": .object([
                                    "clusters": .array(.object([
                                        "name": .string(),
                                        "labels": Schema.stringMap,
                                        "network": .string("Deprecated in TSB."),
                                        "weight": .integer("The share of traffic; weighted lists do not fail over."),
                                    ])),
                                    "healthAware": .boolean("Baton: a weighted list spreads the share of a cluster without a healthy ingress over the others, instead of answering 503."),
                                ]),
                            ]),
                        ])),
                    ]),
                ], required: ["name", "port", "hostname"])),
            ], required: ["workloadSelector"]),
            "status": .object([
                "clusters": .array(.object([
                    "name": .string(),
                    "region": .string(),
                    "phase": .string(enum: ["Healthy", "Ejected", "Unknown"]),
                    "lastTransitionTime": .string(format: "date-time"),
                ], required: ["name", "phase"])),
                "conditions": .array(.object([
                    "type": .string("ResolvedRefs: whether every destination cluster can take the route's traffic."),
                    "status": .string(enum: ["True", "False", "Unknown"]),
                    "reason": .string(),
                    "message": .string(),
                    "lastTransitionTime": .string(format: "date-time"),
                ], required: ["type", "status"])),
                "observedGeneration": .integer(),
            ]),
        ], required: ["spec"]),
        columns: [
            PrinterColumn("HOSTNAMES", jsonPath: ".spec.http[*].hostname"),
            PrinterColumn("PORTS", jsonPath: ".spec.http[*].port"),
            .age,
            PrinterColumn("WORKLOAD", jsonPath: ".spec.workloadSelector.namespace", priority: 1),
            PrinterColumn("CLUSTERS", jsonPath: ".spec.http[*].routing.rules[*].route.clusterDestination.clusters[*].name", priority: 1),
        ],
        validate: { new, _, _ in
            guard let spec = try? new.decodeSpec(GatewaySpec.self) else {
                return [.invalid("spec", "", "cannot be read as a Gateway spec")]
            }
            return GatewayValidation.check(spec, raw: new.spec ?? .null)
        },
        normalize: { object in GatewayValidation.liftClusterDestination(&object) })
}

/// The rules a Gateway must pass besides its schema, and its one input rewrite.
enum GatewayValidation {
    /// `raw` is the spec as submitted: it tells an empty `clusterDestination:` (every cluster)
    /// from a missing one.
    static func check(_ spec: GatewaySpec, raw: JSONValue) -> [FieldError] {
        var errors: [FieldError] = []
        if spec.workloadSelector.namespace.isEmpty {
            errors.append(.required("spec.workloadSelector.namespace", "Required value: the gateway workloads' namespace is required"))
        }
        var names: [String: Int] = [:]
        for (i, server) in (spec.http ?? []).enumerated() {
            let f = "spec.http[\(i)]"
            if server.name.isEmpty {
                errors.append(.required("\(f).name", "Required value: every http server needs a name"))
            } else if let first = names[server.name] {
                errors.append(.duplicate("\(f).name", server.name, "spec.http[\(first)] has the same name; names must be unique within a gateway"))
            } else {
                names[server.name] = i
            }
            if !(1...65535).contains(server.port) {
                errors.append(.invalid("\(f).port", String(server.port), "must be between 1 and 65535, inclusive"))
            }
            if server.hostname.isEmpty {
                errors.append(.required("\(f).hostname", "Required value: every http server needs the hostname it answers for"))
            } else if !isHostname(server.hostname) {
                errors.append(.invalid("\(f).hostname", server.hostname, "must be a DNS name, optionally starting with \"*.\""))
            }
            for (j, rule) in (server.routing?.rules ?? []).enumerated() {
                let rf = "\(f).routing.rules[\(j)]"
                for (k, m) in (rule.match ?? []).enumerated() {
                    let mf = "\(rf).match[\(k)]"
                    if let uri = m.uri { errors += checkStringMatch(uri, field: "\(mf).uri") }
                    for key in (m.headers ?? [:]).keys.sorted() {
                        if key.isEmpty {
                            errors.append(.invalid("\(mf).headers", key, "a header name must not be empty"))
                        }
                        errors += checkStringMatch(m.headers![key]!, field: "\(mf).headers.\(key)")
                    }
                    if let p = m.port, !(1...65535).contains(p) {
                        errors.append(.invalid("\(mf).port", String(p), "must be between 1 and 65535, inclusive"))
                    }
                }
                guard let route = rule.route else {
                    errors.append(.required("\(rf).route", "Required value: a rule needs a route"))
                    continue
                }
                let rawRoute = raw["http"]?.arrayValue?[safe: i]?["routing"]?["rules"]?.arrayValue?[safe: j]?["route"]
                guard let dest = route.clusterDestination ?? (rawRoute?["clusterDestination"] != nil ? .init() : nil) else {
                    errors.append(.required("\(rf).route.clusterDestination",
                                            "Required value: an edge route needs clusterDestination ({} for every cluster)"))
                    continue
                }
                var clusterNames: [String: Int] = [:]
                for (k, c) in (dest.clusters ?? []).enumerated() {
                    let cf = "\(rf).route.clusterDestination.clusters[\(k)]"
                    let hasName = !(c.name ?? "").isEmpty
                    let hasLabels = !(c.labels ?? [:]).isEmpty
                    if hasName && hasLabels {
                        errors.append(.forbidden(cf, "only one of name or labels may be specified"))
                    } else if !hasName && !hasLabels && (c.network ?? "").isEmpty {
                        errors.append(.required("\(cf).name", "Required value: a destination cluster needs a name or labels"))
                    }
                    if let n = c.name, hasName {
                        if let first = clusterNames[n] {
                            errors.append(.duplicate("\(cf).name", n, "clusters[\(first)] names the same cluster"))
                        } else {
                            clusterNames[n] = k
                        }
                    }
                    if let w = c.weight, w < 0 {
                        errors.append(.invalid("\(cf).weight", String(w), "must be greater than or equal to 0"))
                    }
                }
                if dest.healthAware == true, !dest.isWeighted {
                    errors.append(.invalid("\(rf).route.clusterDestination.healthAware", "true",
                                           "applies only to a weighted list: give the clusters weights, or leave healthAware out (auto and named lists always fail over)"))
                }
                if dest.isWeighted, (dest.clusters ?? []).allSatisfy({ ($0.weight ?? 0) == 0 }) {
                    errors.append(.invalid("\(rf).route.clusterDestination.clusters", "0",
                                           "the weights add up to 0: at least one cluster needs a positive weight"))
                }
            }
        }
        return errors
    }

    static func checkStringMatch(_ m: GatewaySpec.StringMatch, field: String) -> [FieldError] {
        let set = [m.exact, m.prefix, m.regex].compactMap(\.self).count
        if set != 1 {
            return [.invalid(field, set == 0 ? "{}" : "several", "exactly one of exact, prefix or regex must be set")]
        }
        return []
    }

    /// A DNS name as a server's hostname: labels of letters, digits and '-', a leading `*.`
    /// wildcard allowed.
    static func isHostname(_ h: String) -> Bool {
        var name = Substring(h)
        if name.hasPrefix("*.") { name = name.dropFirst(2) }
        if name == "*" { return true }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        return !labels.isEmpty && name.count <= 253 && labels.allSatisfy { l in
            !l.isEmpty && l.count <= 63 && l.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
                && l.first != "-" && l.last != "-"
        }
    }

    /// The edge seed writes `- route:` with `clusterDestination:` at the same indentation, which
    /// YAML reads as a rule `{route: null, clusterDestination: {...}}`. TSB's tooling accepted
    /// the guide as written, so the stray `clusterDestination` moves under `route` when `route`
    /// is empty, with a warning naming the rule.
    static func liftClusterDestination(_ object: inout JSONValue) -> [String] {
        guard var spec = object["spec"], var servers = spec["http"]?.arrayValue else { return [] }
        var warnings: [String] = []
        for i in servers.indices {
            guard var routing = servers[i]["routing"], var rules = routing["rules"]?.arrayValue else { continue }
            var changed = false
            for j in rules.indices {
                guard case .object(var rule) = rules[j], let dest = rule["clusterDestination"],
                      rule["route"] == nil || rule["route"]?.isNull == true else { continue }
                rule["clusterDestination"] = nil
                rule["route"] = .object(["clusterDestination": dest])
                rules[j] = .object(rule)
                changed = true
                warnings.append("spec.http[\(i)].routing.rules[\(j)]: clusterDestination was written beside an empty route (an indentation slip); it was moved to spec.http[\(i)].routing.rules[\(j)].route.clusterDestination")
            }
            if changed {
                routing["rules"] = .array(rules)
                servers[i]["routing"] = routing
            }
        }
        if !warnings.isEmpty {
            spec["http"] = .array(servers)
            object["spec"] = spec
        }
        return warnings
    }
}

fileprivate extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
