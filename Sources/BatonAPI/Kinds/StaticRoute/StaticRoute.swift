/// DigitalOcean's `StaticRoute` (`networking.digitalocean.com/v1`): route `destinations` through
/// `gateway` on every selected node, as the k8s-staticroute-operator does with `ip route`.
///
/// The original fields (`destinations`, `gateway`) work alone. `gateways` (a list with
/// priorities, for failover), `healthCheck` and `nodeSelector` are Baton's additions and are
/// optional; a route names either `gateway` or `gateways`, not both. Unlike the original CRD
/// (IPv4 only, no default route), IPv6 destinations and gateways and the default routes
/// `0.0.0.0/0` and `::/0` are accepted, but one route never mixes families.
public struct StaticRouteSpec: Sendable, Hashable, Codable {
    /// One candidate gateway; the lowest `priority` that is healthy serves, and several healthy
    /// gateways at that priority share the traffic (ECMP).
    public struct Gateway: Sendable, Hashable, Codable {
        public var address: String
        public var priority: Int64?
        public init(address: String, priority: Int64? = nil) { self.address = address; self.priority = priority }
    }

    /// How each node's agent probes the gateways. Every field is optional; `Resolved` holds the
    /// defaults.
    public struct HealthCheck: Sendable, Hashable, Codable {
        /// `icmp` (echo request, the default), `tcp` (a connect to `port`) or `none` (every
        /// gateway counts as healthy: the original operator's behaviour).
        public var type: String?
        /// The TCP port, required with `type: tcp`.
        public var port: Int64?
        /// Time between two probes of one gateway (Go duration text, `50ms`).
        public var interval: String?
        /// How long a probe waits for its answer; at most `interval`.
        public var timeout: String?
        /// Consecutive failed probes that make a healthy gateway unhealthy.
        public var failureThreshold: Int64?
        /// Consecutive answered probes that make an unhealthy gateway healthy again.
        public var successThreshold: Int64?
        /// How long a gateway that came back must stay healthy before traffic returns to it
        /// (anti-flap); a gateway that fails again meanwhile starts its hold-down anew.
        public var holdDown: String?
        /// Whether traffic returns to a preferred gateway once it is back and its hold-down has
        /// passed (`true`, the default), or stays on the gateway that took over until that one
        /// fails (`false`).
        public var failback: Bool?

        public init(type: String? = nil, port: Int64? = nil, interval: String? = nil, timeout: String? = nil,
                    failureThreshold: Int64? = nil, successThreshold: Int64? = nil, holdDown: String? = nil, failback: Bool? = nil) {
            self.type = type
            self.port = port
            self.interval = interval
            self.timeout = timeout
            self.failureThreshold = failureThreshold
            self.successThreshold = successThreshold
            self.holdDown = holdDown
            self.failback = failback
        }

        public static let types = ["icmp", "tcp", "none"]
        public static let defaultInterval = "50ms"
        public static let defaultTimeout = "50ms"
        public static let defaultFailureThreshold: Int64 = 3
        public static let defaultSuccessThreshold: Int64 = 3
        public static let defaultHoldDown = "5s"

        /// The health check with every default filled in, times in nanoseconds.
        public struct Resolved: Sendable, Hashable {
            public enum Kind: Sendable, Hashable { case icmp, tcp(port: Int), none }
            public var kind: Kind
            public var interval: Int64
            public var timeout: Int64
            public var failureThreshold: Int
            public var successThreshold: Int
            public var holdDown: Int64
            public var failback: Bool

            public init(kind: Kind = .icmp, interval: Int64 = 50_000_000, timeout: Int64 = 50_000_000,
                        failureThreshold: Int = 3, successThreshold: Int = 3, holdDown: Int64 = 5_000_000_000, failback: Bool = true) {
                self.kind = kind
                self.interval = interval
                self.timeout = timeout
                self.failureThreshold = failureThreshold
                self.successThreshold = successThreshold
                self.holdDown = holdDown
                self.failback = failback
            }
        }

        /// The defaults applied; nil when a field is invalid (validation names it).
        public var resolved: Resolved? {
            let kind: Resolved.Kind
            switch type ?? "icmp" {
            case "icmp": kind = .icmp
            case "none": kind = .none
            case "tcp":
                guard let port, (1...65535).contains(port) else { return nil }
                kind = .tcp(port: Int(port))
            default: return nil
            }
            guard let interval = GoDuration.parse(interval ?? Self.defaultInterval),
                  let timeout = GoDuration.parse(timeout ?? Self.defaultTimeout),
                  let holdDown = GoDuration.parse(holdDown ?? Self.defaultHoldDown) else { return nil }
            return Resolved(kind: kind, interval: interval, timeout: timeout,
                            failureThreshold: Int(failureThreshold ?? Self.defaultFailureThreshold),
                            successThreshold: Int(successThreshold ?? Self.defaultSuccessThreshold),
                            holdDown: holdDown, failback: failback ?? true)
        }
    }

    /// Destination hosts or subnets (`34.160.111.145`, `10.42.10.0/24`, `0.0.0.0/0`).
    public var destinations: [String]
    /// The gateway to route through, as the original operator takes it.
    public var gateway: String?
    public var gateways: [Gateway]?
    /// Which nodes install the route; absent selects every node (the operator is a DaemonSet).
    public var nodeSelector: LabelSelector?
    /// Absent: ICMP with the defaults.
    public var healthCheck: HealthCheck?

    public init(destinations: [String], gateway: String? = nil, gateways: [Gateway]? = nil, nodeSelector: LabelSelector? = nil,
                healthCheck: HealthCheck? = nil) {
        self.destinations = destinations
        self.gateway = gateway
        self.gateways = gateways
        self.nodeSelector = nodeSelector
        self.healthCheck = healthCheck
    }

    /// Every gateway address in order of preference: `gateway` alone, or `gateways` by priority
    /// (ties keep list order).
    public var gatewaysByPriority: [String] { candidates.map(\.address) }

    /// Every gateway with its priority (0 when absent), by priority then list order.
    public var candidates: [Gateway] {
        if let gateway { return [Gateway(address: gateway, priority: 0)] }
        return (gateways ?? []).enumerated()
            .sorted { ($0.element.priority ?? 0, $0.offset) < ($1.element.priority ?? 0, $1.offset) }
            .map { Gateway(address: $0.element.address, priority: $0.element.priority ?? 0) }
    }

    /// The route's rank against another StaticRoute for the same destination on one node: its
    /// best (lowest) gateway priority.
    public var priority: Int64 { candidates.first?.priority ?? 0 }

    public var resolvedHealthCheck: HealthCheck.Resolved? { (healthCheck ?? HealthCheck()).resolved }
}

/// What the operator and Baton's agents write back.
///
/// `create_fn` and `update_fn` are where the original operator (kopf) stores its handlers'
/// results: one entry per destination with `status` `Ready` or `NotReady`. `nodes` is Baton's:
/// one entry per node, keyed by node name (each node's agent writes its own entry), naming the
/// gateway that node routes through now and how healthy each gateway looks from there.
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

    /// One gateway's health as one node's probes see it.
    public struct GatewayHealth: Sendable, Hashable, Codable {
        public var address: String
        /// `Healthy`, `Unhealthy` or `Unknown` (not probed yet, or `healthCheck.type: none`).
        public var state: String
        /// Since when (RFC 3339) it has been in this state, as far as this agent knows.
        public var since: String?
        public init(address: String, state: String, since: String? = nil) {
            self.address = address
            self.state = state
            self.since = since
        }
    }

    /// A destination that another StaticRoute also routes on this node.
    public struct Conflict: Sendable, Hashable, Codable {
        public var destination: String
        /// The other StaticRoute.
        public var staticRoute: String
        /// Whether this StaticRoute is the one whose route is installed for the destination.
        public var winner: Bool
        public init(destination: String, staticRoute: String, winner: Bool) {
            self.destination = destination
            self.staticRoute = staticRoute
            self.winner = winner
        }
    }

    /// One node's view of the route.
    public struct NodeRoute: Sendable, Hashable, Codable {
        /// The gateway this node's routes point at now (the first one under ECMP; nil when none
        /// is installed).
        public var gateway: String?
        /// Every gateway in use (several under ECMP).
        public var gateways: [String]?
        /// `Ready`, `NotReady` or `Failed`.
        public var phase: String
        public var message: String?
        /// The spec generation the entry reflects.
        public var observedGeneration: Int64?
        /// Health of each gateway, in order of preference.
        public var health: [GatewayHealth]?
        /// When the routes last moved from one gateway to another.
        public var lastSwitchTime: String?
        public var lastTransitionTime: String?
        public var conflicts: [Conflict]?

        public init(gateway: String? = nil, gateways: [String]? = nil, phase: String, message: String? = nil,
                    observedGeneration: Int64? = nil, health: [GatewayHealth]? = nil, lastSwitchTime: String? = nil,
                    lastTransitionTime: String? = nil, conflicts: [Conflict]? = nil) {
            self.gateway = gateway
            self.gateways = gateways
            self.phase = phase
            self.message = message
            self.observedGeneration = observedGeneration
            self.health = health
            self.lastSwitchTime = lastSwitchTime
            self.lastTransitionTime = lastTransitionTime
            self.conflicts = conflicts
        }
    }

    public var create_fn: [RouteResult]?
    public var update_fn: [RouteResult]?
    public var nodes: [String: NodeRoute]?
    public var observedGeneration: Int64?

    public init(nodes: [String: NodeRoute]? = nil) { self.nodes = nodes }
}
