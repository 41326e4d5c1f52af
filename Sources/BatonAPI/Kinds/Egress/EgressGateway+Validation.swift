/// The rules of egressgateway's EgressGateway webhook (pkg/egressgateway/egress_gateway_webhook.go),
/// with its wording, each reported against the field it concerns.
enum EgressGatewayValidation {
    static func validate(_ new: Resource, old: Resource?, context: ValidationContext) -> [FieldError] {
        let spec: EgressGatewaySpec
        do { spec = try new.decodeSpec(EgressGatewaySpec.self) } catch {
            return [.invalid("spec", "", "cannot be read as an EgressGateway spec: \(error)")]
        }
        var errors: [FieldError] = []

        let others = context.list("EgressGateway")
            .filter { $0.name != new.name }
            .sorted { $0.name < $1.name }
            .compactMap { o in (try? o.decodeSpec(EgressGatewaySpec.self)).map { (name: o.name, spec: $0) } }

        // One default gateway per cluster.
        if spec.isClusterDefault, let other = others.first(where: { $0.spec.isClusterDefault }) {
            errors.append(.invalid("spec.clusterDefault", "true",
                                   "A cluster can only have one default gateway, default gateway: \(other.name)."))
        }

        // Node selector.
        if let selector = spec.nodeSelector?.selector, !selector.isEmpty {
            errors += EgressValidation.selector(selector, field: "spec.nodeSelector.selector")
        } else {
            errors.append(.required("spec.nodeSelector.selector",
                                    "Required value: The field spec.nodeSelector.selector is not set: a gateway needs matchLabels or matchExpressions to choose its egress nodes"))
        }

        // Pool entries, per family.
        var poolsValid = true
        for family in [IPAddress.Family.v4, .v6] {
            for (i, text) in spec.poolEntries(family: family).enumerated() {
                if let error = entryError(text, family: family, field: "\(poolField(family))[\(i)]") {
                    errors.append(error)
                    poolsValid = false
                }
            }
        }

        // Default EIPs.
        for family in [IPAddress.Family.v4, .v6] {
            let field = "spec.ippools.\(family == .v4 ? "ipv4DefaultEIP" : "ipv6DefaultEIP")"
            guard let text = family == .v4 ? spec.ippools?.ipv4DefaultEIP : spec.ippools?.ipv6DefaultEIP, !text.isEmpty else { continue }
            guard let ip = IPAddress(text), ip.family == family else {
                errors.append(.invalid(field, text, "must be an \(familyName(family)) address"))
                continue
            }
            if poolsValid, !spec.contains(ip) {
                let pool = spec.poolEntries(family: family)
                errors.append(.invalid(field, text,
                                       "is not covered by IPPools (\(poolField(family)): [\(pool.joined(separator: ", "))])"))
            }
        }
        guard poolsValid else { return errors + immutableFamilies(spec, old) }

        // Dual stack: every IPv4 EIP pairs with one IPv6 EIP.
        if spec.isDualStack {
            let v4 = spec.poolSize(family: .v4), v6 = spec.poolSize(family: .v6)
            if v4 != v6 {
                errors.append(FieldError(.invalid, field: "spec.ippools",
                                         message: "Invalid value: The number of ipv4 and ipv6 is not equal: ipv4 holds \(v4) addresses, ipv6 holds \(v6); a dual-stack gateway pairs each IPv4 EIP with one IPv6 EIP"))
            }
        }

        // No two gateways share an address.
        for family in [IPAddress.Family.v4, .v6] {
            for (i, text) in spec.poolEntries(family: family).enumerated() {
                guard let mine = EgressPool.entry(text) else { continue }
                for other in others {
                    if let dup = EgressPool.firstOverlap([mine], other.spec.poolRanges(family: family)) {
                        errors.append(.invalid("\(poolField(family))[\(i)]", text,
                                               "find duplicate \(family == .v4 ? "IPv4" : "IPv6") \(dup) in EgressGateway \(other.name)"))
                        break
                    }
                }
            }
        }

        errors += immutableFamilies(spec, old)
        if let old {
            errors += removedInUse(spec, name: new.name, old: old, context: context)
        }
        return errors
    }

    /// egressgateway refuses to add a family to a gateway that was created without it.
    static func immutableFamilies(_ spec: EgressGatewaySpec, _ old: Resource?) -> [FieldError] {
        guard let old, let oldSpec = try? old.decodeSpec(EgressGatewaySpec.self) else { return [] }
        var errors: [FieldError] = []
        for family in [IPAddress.Family.v4, .v6]
        where oldSpec.poolEntries(family: family).isEmpty && !spec.poolEntries(family: family).isEmpty {
            errors.append(.forbidden(poolField(family),
                                     "the '\(poolField(family))' field cannot be modified when it is empty: a gateway created without \(familyName(family)) pools cannot gain them; create another gateway"))
        }
        return errors
    }

    /// An EIP that a node carries, or that a policy's status shows, may not leave the pools.
    static func removedInUse(_ spec: EgressGatewaySpec, name: String, old: Resource, context: ValidationContext) -> [FieldError] {
        var users: [(ip: IPAddress, user: String)] = []
        for (node, ip) in old.decodeStatus(EgressGatewayStatus.self)?.allocatedEIPs ?? [] {
            users.append((ip, "node \(node)"))
        }
        let oldSpec = try? old.decodeSpec(EgressGatewaySpec.self)
        let defaultName = oldSpec?.isClusterDefault == true ? name : nil
        for kind in ["EgressPolicy", "EgressClusterPolicy"] {
            for policy in context.list(kind) {
                let gateway = policy.spec?["egressGatewayName"]?.stringValue ?? ""
                guard gateway == name || (gateway.isEmpty && defaultName != nil) else { continue }
                let status = policy.decodeStatus(EgressPolicyStatus.self)
                for text in [status?.eip?.ipv4, status?.eip?.ipv6].compactMap({ $0 }) {
                    if let ip = IPAddress(text) { users.append((ip, "\(kind) \(policy.qualifiedName)")) }
                }
            }
        }
        var errors: [FieldError] = []
        var reported: Set<IPAddress> = []
        for (ip, user) in users where !spec.contains(ip) && !reported.contains(ip) {
            reported.insert(ip)
            errors.append(.invalid(poolField(ip.family), ip.description,
                                   "\(ip) has been allocated and cannot be deleted (in use by \(user))"))
        }
        return errors
    }

    static func validateStatus(_ object: Resource) -> [FieldError] {
        guard let status = object.decodeStatus(EgressGatewayStatus.self) else { return [] }
        var errors: [FieldError] = []
        for (n, node) in (status.nodeList ?? []).enumerated() {
            for (e, eip) in (node.eips ?? []).enumerated() {
                let base = "status.nodeList[\(n)].eips[\(e)]"
                errors += EgressValidation.address(eip.ipv4, family: .v4, field: "\(base).ipv4")
                errors += EgressValidation.address(eip.ipv6, family: .v6, field: "\(base).ipv6")
            }
        }
        return errors
    }

    static func entryError(_ text: String, family: IPAddress.Family, field: String) -> FieldError? {
        guard let range = EgressPool.entry(text) else {
            return .invalid(field, text, "must be an \(familyName(family)) address, a range a-b with a <= b, or a CIDR")
        }
        if range.family != family {
            return .invalid(field, text, "is not \(familyName(family)): \(poolField(family)) takes only \(familyName(family)) entries")
        }
        return nil
    }

    static func poolField(_ family: IPAddress.Family) -> String {
        family == .v4 ? "spec.ippools.ipv4" : "spec.ippools.ipv6"
    }

    static func familyName(_ family: IPAddress.Family) -> String { family == .v4 ? "IPv4" : "IPv6" }
}

/// Checks shared by the egress kinds.
enum EgressValidation {
    /// A label selector in a spec: operators, values, and label syntax.
    static func selector(_ selector: LabelSelector, field: String) -> [FieldError] {
        var errors = selector.validate(field: field)
        for (k, v) in (selector.matchLabels ?? [:]).sorted(by: { $0.key < $1.key }) {
            errors += Admission.validateLabel(key: k, value: v, field: "\(field).matchLabels")
        }
        for (i, r) in (selector.matchExpressions ?? []).enumerated() where !r.key.isEmpty {
            let f = "\(field).matchExpressions[\(i)]"
            errors += Admission.validateLabel(key: r.key, value: "", field: f)
                .map { FieldError($0.reason, field: "\(f).key", message: $0.message) }
            for (j, v) in (r.values ?? []).enumerated() {
                errors += Admission.validateLabel(key: "key", value: v, field: f)
                    .map { FieldError($0.reason, field: "\(f).values[\(j)]", message: $0.message) }
            }
        }
        return errors
    }

    /// An optional address of one family; empty means unset.
    static func address(_ text: String?, family: IPAddress.Family, field: String) -> [FieldError] {
        guard let text, !text.isEmpty else { return [] }
        guard let ip = IPAddress(text), ip.family == family else {
            return [.invalid(field, text, "invalid \(family == .v4 ? "ipv4" : "ipv6") format: must be an \(family == .v4 ? "IPv4" : "IPv6") address")]
        }
        return []
    }
}
