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
            // The default route (0.0.0.0/0, ::/0) is allowed; the unspecified address as a host is not a destination.
            if prefix.length > 0 && prefix.address.value == 0 && prefix.length == prefix.address.bitWidth {
                errors.append(.invalid(field, d, "is the unspecified address, not a destination (the default route is \(prefix.address.family == .v4 ? "0.0.0.0/0" : "::/0"))"))
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
            if let a = IPAddress(g), usable(a) {
                gatewayFamilies.append(("spec.gateway", g, a.family))
            } else {
                errors.append(.invalid("spec.gateway", g, IPAddress(g) == nil ? "must be a valid IP address" : "must be a unicast address a route can point at"))
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
                guard usable(a) else {
                    errors.append(.invalid(field, g.address, "must be a unicast address a route can point at"))
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
        if let hc = spec.healthCheck { errors += healthCheck(hc) }
        return errors
    }

    /// The health check's rules: durations readable and in range, timeout within interval, a
    /// port exactly when the type is tcp.
    static func healthCheck(_ hc: StaticRouteSpec.HealthCheck) -> [FieldError] {
        typealias H = StaticRouteSpec.HealthCheck
        var errors: [FieldError] = []
        let type = hc.type ?? "icmp"
        if type == "tcp" && hc.port == nil {
            errors.append(.required("spec.healthCheck.port", "Required value: a TCP port is required when spec.healthCheck.type is \"tcp\""))
        }
        if type != "tcp", let port = hc.port {
            errors.append(.invalid("spec.healthCheck.port", String(port), "is only used with spec.healthCheck.type \"tcp\", not \"\(type)\""))
        }
        func duration(_ field: String, _ text: String?, _ fallback: String, min: Int64, max: Int64) -> Int64? {
            let t = text ?? fallback
            guard let ns = GoDuration.parse(t) else {
                errors.append(.invalid("spec.healthCheck.\(field)", t, "must be a duration such as \"50ms\", \"1s\" or \"1m30s\""))
                return nil
            }
            if ns < min || ns > max {
                errors.append(.invalid("spec.healthCheck.\(field)", t, "must be between \(GoDuration.format(min)) and \(GoDuration.format(max))"))
                return nil
            }
            return ns
        }
        let interval = duration("interval", hc.interval, H.defaultInterval, min: 10_000_000, max: 3_600_000_000_000)
        let timeout = duration("timeout", hc.timeout, H.defaultTimeout, min: 1_000_000, max: 3_600_000_000_000)
        _ = duration("holdDown", hc.holdDown, H.defaultHoldDown, min: 0, max: 86_400_000_000_000)
        if let interval, let timeout, timeout > interval {
            errors.append(.invalid("spec.healthCheck.timeout", hc.timeout ?? H.defaultTimeout,
                                   "must not be longer than spec.healthCheck.interval (\(hc.interval ?? H.defaultInterval)): a probe is judged before the next one is sent"))
        }
        return errors
    }

    /// A unicast address: not unspecified, multicast, broadcast or loopback.
    static func usable(_ a: IPAddress) -> Bool {
        switch a.family {
        case .v4:
            let v = UInt32(truncatingIfNeeded: a.value)
            return v != 0 && v != 0xFFFF_FFFF && v >> 28 != 0xE && v >> 24 != 127
        case .v6:
            return a.value != 0 && a.value != 1 && a.value >> 120 != 0xFF
        }
    }

    /// An IP or a CIDR with host bits zero, as Python's `ipaddress.ip_network` (which the
    /// original operator uses) requires.
    static func destination(_ text: String) -> IPPrefix? {
        if text.contains("/") { return IPPrefix(text, strict: true) }
        return IPSyntax.destination(text)
    }

    static func name(_ f: IPAddress.Family) -> String { f == .v4 ? "IPv4" : "IPv6" }
}
