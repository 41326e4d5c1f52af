/// Tetrate Service Bridge's `Cluster` (`api.tsb.tetrate.io/v2`): a workload cluster that an edge
/// gateway may send traffic to, with the region it sits in (`spec.locality.region`).
///
/// TSB learns a cluster's ingress gateways from its control plane. Baton has none, so the
/// ingress endpoints are Baton's own field, `spec.ingresses`: the addresses `baton edge` sends
/// traffic to, each optionally limited to the hostnames it serves. TSB's other fields
/// (`tokenTtl`, `network`, `tier1Cluster`, `trustDomain`) are accepted so that TSB manifests
/// apply; Baton does not act on them.
public struct ClusterSpec: Sendable, Hashable, Codable {
    public struct Locality: Sendable, Hashable, Codable {
        public var region: String
        public init(region: String) { self.region = region }
    }

    /// One ingress gateway endpoint of the cluster.
    public struct Ingress: Sendable, Hashable, Codable {
        /// An IP address or a DNS name.
        public var address: String
        /// Defaults to 80 (see `effectivePort`).
        public var port: Int64?
        /// The hostnames this ingress serves; absent means every hostname.
        public var hostnames: [String]?
        public init(address: String, port: Int64? = nil, hostnames: [String]? = nil) {
            self.address = address
            self.port = port
            self.hostnames = hostnames
        }

        public static let defaultPort: Int64 = 80
        public var effectivePort: Int64 { port ?? Self.defaultPort }

        /// Whether this ingress serves `hostname` (exact, or a `*.` wildcard in `hostnames`).
        public func serves(_ hostname: String) -> Bool {
            guard let hostnames else { return true }
            let h = hostname.lowercased()
            return hostnames.contains { pattern in
                let p = pattern.lowercased()
                if p.hasPrefix("*.") { return h.hasSuffix(p.dropFirst(1)) && h.count > p.count - 1 }
                return p == h
            }
        }
    }

    public var displayName: String?
    public var description: String?
    public var tokenTtl: String?
    public var network: String?
    public var tier1Cluster: Bool?
    public var trustDomain: String?
    public var locality: Locality?
    public var ingresses: [Ingress]?

    public init(locality: Locality? = nil, ingresses: [Ingress]? = nil) {
        self.locality = locality
        self.ingresses = ingresses
    }
}

/// What `baton edge` reports about a cluster's ingresses.
public struct ClusterStatus: Sendable, Hashable, Codable {
    public struct IngressState: Sendable, Hashable, Codable {
        public var address: String
        public var port: Int64?
        /// `Healthy`, `Ejected` or `Unknown`.
        public var phase: String
        public var lastTransitionTime: String?
        public init(address: String, port: Int64? = nil, phase: String, lastTransitionTime: String? = nil) {
            self.address = address
            self.port = port
            self.phase = phase
            self.lastTransitionTime = lastTransitionTime
        }
    }
    public var ingresses: [IngressState]?
    public var observedGeneration: Int64?
    public init(ingresses: [IngressState]? = nil) { self.ingresses = ingresses }
}

extension KindInfo {
    public static let tsbCluster = KindInfo(
        group: "api.tsb.tetrate.io", version: "v2", kind: "Cluster", plural: "clusters", shortNames: [],
        namespaced: false,
        schema: .object([
            "spec": .object([
                "displayName": .string(),
                "description": .string(),
                "tokenTtl": .string("TSB: lifetime of the cluster's join tokens (not used by Baton)."),
                "network": .string("TSB: the network (VPC) the cluster is in."),
                "tier1Cluster": .boolean("TSB: deprecated."),
                "trustDomain": .string(),
                "locality": .object([
                    "region": .string("The region the cluster is in; the edge prefers clusters in its own region."),
                ], required: ["region"]),
                "ingresses": .array(.object([
                    "address": .string("An IP address or a DNS name of an ingress gateway."),
                    "port": .integer("Defaults to 80."),
                    "hostnames": .array(.string(), description: "The hostnames this ingress serves; absent means every hostname."),
                ], required: ["address"]), description: "Baton: the cluster's ingress gateway endpoints."),
            ]),
            "status": .object([
                "ingresses": .array(.object([
                    "address": .string(),
                    "port": .integer(),
                    "phase": .string(enum: ["Healthy", "Ejected", "Unknown"]),
                    "lastTransitionTime": .string(format: "date-time"),
                ], required: ["address", "phase"])),
                "observedGeneration": .integer(),
            ]),
        ]),
        columns: [
            PrinterColumn("REGION", jsonPath: ".spec.locality.region"),
            PrinterColumn("INGRESSES", jsonPath: ".spec.ingresses[*].address"),
            .age,
            PrinterColumn("NETWORK", jsonPath: ".spec.network", priority: 1),
        ],
        validate: { new, _, _ in
            guard let spec = try? new.decodeSpec(ClusterSpec.self) else {
                return [.invalid("spec", "", "cannot be read as a Cluster spec")]
            }
            return ClusterValidation.check(spec)
        })
}

/// The rules a Cluster must pass besides its schema.
enum ClusterValidation {
    static func check(_ spec: ClusterSpec) -> [FieldError] {
        var errors: [FieldError] = []
        if let locality = spec.locality, locality.region.isEmpty {
            errors.append(.required("spec.locality.region", "Required value: a locality needs a region"))
        }
        var seen: [String: Int] = [:]
        for (i, ingress) in (spec.ingresses ?? []).enumerated() {
            let f = "spec.ingresses[\(i)]"
            if !isAddress(ingress.address) {
                errors.append(.invalid("\(f).address", ingress.address, "must be an IP address or a DNS name"))
            }
            if let p = ingress.port, !(1...65535).contains(p) {
                errors.append(.invalid("\(f).port", String(p), "must be between 1 and 65535, inclusive"))
            }
            let key = "\(IPAddress(ingress.address)?.description ?? ingress.address.lowercased()):\(ingress.effectivePort)"
            if let first = seen[key] {
                errors.append(.duplicate("\(f).address", ingress.address, "spec.ingresses[\(first)] has the same address and port"))
            } else {
                seen[key] = i
            }
            for (j, h) in (ingress.hostnames ?? []).enumerated() where !GatewayValidation.isHostname(h) {
                errors.append(.invalid("\(f).hostnames[\(j)]", h, "must be a DNS name, optionally starting with \"*.\""))
            }
        }
        return errors
    }

    /// An IP address, or a DNS name whose last label is not all digits (so that `10.1.0` or
    /// `300.1.1.1` is refused rather than read as a name).
    static func isAddress(_ a: String) -> Bool {
        if IPAddress(a) != nil { return true }
        if a.hasPrefix("*") || !GatewayValidation.isHostname(a) { return false }
        let last = a.split(separator: ".").last ?? ""
        return !last.allSatisfy(\.isNumber)
    }
}
