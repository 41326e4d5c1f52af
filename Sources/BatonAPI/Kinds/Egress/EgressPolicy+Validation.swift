/// The fields that EgressPolicy and EgressClusterPolicy share, so one set of rules checks both.
struct EgressPolicyView {
    var egressGatewayName: String
    var egressIP: EgressIP
    var podSelector: LabelSelector?
    var podSubnet: [String]
    var namespaceSelector: LabelSelector?
    var destSubnet: [String]
}

extension EgressPolicySpec {
    var view: EgressPolicyView {
        EgressPolicyView(egressGatewayName: egressGatewayName ?? "", egressIP: egressIP ?? EgressIP(),
                         podSelector: appliedTo.podSelector, podSubnet: appliedTo.podSubnet ?? [],
                         namespaceSelector: nil, destSubnet: destSubnet ?? [])
    }
}

extension EgressClusterPolicySpec {
    var view: EgressPolicyView {
        EgressPolicyView(egressGatewayName: egressGatewayName ?? "", egressIP: egressIP ?? EgressIP(),
                         podSelector: appliedTo.podSelector, podSubnet: appliedTo.podSubnet ?? [],
                         namespaceSelector: appliedTo.namespaceSelector, destSubnet: destSubnet ?? [])
    }
}

/// The rules of egressgateway's policy webhook (pkg/controller/webhook/validate.go), with its
/// wording, each reported against the field it concerns.
///
/// As in egressgateway: on update, `egressGatewayName` and every `egressIP` field are immutable
/// (`appliedTo`, `destSubnet` and `priority` may change); on create, a policy that does not use
/// the node's IP needs its gateway to exist and to have pools, and its explicit EIPs must lie
/// in those pools.
enum EgressPolicyValidation {
    static func validate(_ new: Resource, old: Resource?, context: ValidationContext, kind: String,
                         view: (Resource) throws -> EgressPolicyView) -> [FieldError] {
        let policy: EgressPolicyView
        do { policy = try view(new) } catch {
            return [.invalid("spec", "", "cannot be read as an \(kind) spec: \(error)")]
        }
        var errors: [FieldError] = []
        let gateways = context.list("EgressGateway")
        let eip = policy.egressIP

        // Gateway name, or the cluster's default gateway.
        var gatewayName = policy.egressGatewayName
        if gatewayName.isEmpty {
            if let name = EgressGatewaySpec.clusterDefaultName(in: gateways) {
                gatewayName = name
            } else {
                errors.append(.required("spec.egressGatewayName",
                                        "Required value: egressGatewayName cannot be empty when no EgressGateway has clusterDefault: true"))
            }
        }

        // Explicit EIPs.
        let ipErrors = EgressValidation.address(eip.ipv4, family: .v4, field: "spec.egressIP.ipv4")
            + EgressValidation.address(eip.ipv6, family: .v6, field: "spec.egressIP.ipv6")
        errors += ipErrors
        let explicit = [eip.ipv4, eip.ipv6].compactMap { $0 }.filter { !$0.isEmpty }
        if eip.usesNodeIP, !explicit.isEmpty {
            errors.append(.forbidden("spec.egressIP.useNodeIP",
                                     "useNodeIP cannot be used with egressIP.ipv4 or egressIP.ipv6 at the same time (egressIP: \(explicit.joined(separator: ", ")))"))
        }

        // Pods.
        let selectorSet = policy.podSelector.map { !$0.isEmpty } ?? false
        if selectorSet, !policy.podSubnet.isEmpty {
            errors.append(.forbidden("spec.appliedTo.podSubnet",
                                     "podSelector and podSubnet cannot be used together (podSubnet: \(policy.podSubnet.joined(separator: ", ")))"))
        }
        if !selectorSet, policy.podSubnet.isEmpty {
            errors.append(.required("spec.appliedTo",
                                    "Required value: invalid \(kind), spec.appliedTo field requires at least one of spec.appliedTo.podSubnet, .spec.appliedTo.podSelector.matchLabels or .spec.appliedTo.podSelector.matchExpressions to be specified"))
        }
        if let s = policy.podSelector { errors += EgressValidation.selector(s, field: "spec.appliedTo.podSelector") }
        if let s = policy.namespaceSelector { errors += EgressValidation.selector(s, field: "spec.appliedTo.namespaceSelector") }
        for (i, text) in policy.podSubnet.enumerated() where IPPrefix(text) == nil {
            errors.append(.invalid("spec.appliedTo.podSubnet[\(i)]", text, "invalid podSubnet: must be a CIDR such as 172.30.0.0/16"))
        }
        for (i, text) in policy.destSubnet.enumerated() where IPPrefix(text) == nil {
            errors.append(.invalid("spec.destSubnet[\(i)]", text, "invalid destSubnet: must be a CIDR such as 10.6.0.0/16"))
        }

        if let old {
            if let oldPolicy = try? view(old) { errors += immutable(policy, old: oldPolicy) }
        } else if !eip.usesNodeIP, !gatewayName.isEmpty, ipErrors.isEmpty {
            errors += checkGateway(policy, gatewayName: gatewayName, gateways: gateways, kind: kind, name: new.name)
        }
        return errors
    }

    /// egressgateway's update rules: the gateway and the EIP choice are fixed at creation.
    /// `allocatorPolicy` compares as resolved, so an unset value equals `default`.
    static func immutable(_ new: EgressPolicyView, old: EgressPolicyView) -> [FieldError] {
        var errors: [FieldError] = []
        func check(_ field: String, _ n: String, _ o: String) {
            if n != o {
                errors.append(FieldError(.immutable, field: field,
                                         message: "Invalid value: \"\(n)\": field is immutable (was \"\(o)\")"))
            }
        }
        check("spec.egressGatewayName", new.egressGatewayName, old.egressGatewayName)
        check("spec.egressIP.useNodeIP", String(new.egressIP.usesNodeIP), String(old.egressIP.usesNodeIP))
        check("spec.egressIP.ipv4", new.egressIP.ipv4 ?? "", old.egressIP.ipv4 ?? "")
        check("spec.egressIP.ipv6", new.egressIP.ipv6 ?? "", old.egressIP.ipv6 ?? "")
        check("spec.egressIP.allocatorPolicy", new.egressIP.resolvedAllocatorPolicy, old.egressIP.resolvedAllocatorPolicy)
        return errors
    }

    /// egressgateway's create rules for a policy that takes an EIP from its gateway.
    static func checkGateway(_ policy: EgressPolicyView, gatewayName: String, gateways: [Resource],
                             kind: String, name: String) -> [FieldError] {
        let field = "spec.egressGatewayName"
        guard let stored = gateways.first(where: { $0.name == gatewayName }),
              let gateway = try? stored.decodeSpec(EgressGatewaySpec.self) else {
            return [FieldError(.invalid, field: field,
                               message: "Invalid value: \"\(gatewayName)\": when \(kind) \(name) UseNodeIP is false, failed to obtain the EgressGateway: EgressGateway \"\(gatewayName)\" not found; create the gateway first, or set egressIP.useNodeIP: true")]
        }
        if gateway.poolEntries(family: .v4).isEmpty && gateway.poolEntries(family: .v6).isEmpty {
            return [.invalid(field, gatewayName,
                             "when \(kind) \(name) UseNodeIP is false, referenced EgressGateway \(gatewayName) spec.ippools cannot be empty")]
        }
        var errors: [FieldError] = []
        let eip = policy.egressIP
        let v4 = eip.explicitIPv4, v6 = eip.explicitIPv6
        for (ip, field) in [(v4, "spec.egressIP.ipv4"), (v6, "spec.egressIP.ipv6")] {
            if let ip, !gateway.contains(ip) {
                errors.append(.invalid(field, ip.description,
                                       "is not within the ip ranges defined in the ippools of the EgressGateway \(gatewayName)"))
            }
        }
        guard errors.isEmpty, v4 != nil || v6 != nil else { return errors }

        // The gateway's default EIPs are a pair.
        if let d4 = gateway.ippools?.ipv4DefaultEIP.flatMap(IPAddress.init), let d6 = gateway.ippools?.ipv6DefaultEIP.flatMap(IPAddress.init),
           (v4 == d4 || v6 == d6), (v4 != d4 || v6 != d6) {
            errors.append(FieldError(.invalid, field: "spec.egressIP",
                                     message: "Invalid value: \(gatewayName) egw Ipv4DefaultEIP=\(d4) Ipv6DefaultEIP=\(d6), they can only be used together"))
            return errors
        }
        // An EIP pair that a node already carries is used as a pair.
        let status = gateways.first(where: { $0.name == gatewayName })?.decodeStatus(EgressGatewayStatus.self)
        let pairs = (status?.nodeList ?? []).flatMap { $0.eips ?? [] }
            .map { (IPAddress($0.ipv4 ?? ""), IPAddress($0.ipv6 ?? "")) }
        if let v4, let pair = pairs.last(where: { $0.0 == v4 }), let paired = pair.1, paired != v6 {
            errors.append(.invalid("spec.egressIP.ipv6", eip.ipv6 ?? "",
                                   "\(eip.ipv6 ?? "") cannot be used, when ipv4 \(v4) is used, \(paired) must be used"))
        } else if let v6, let pair = pairs.last(where: { $0.1 == v6 }), let paired = pair.0, paired != v4 {
            errors.append(.invalid("spec.egressIP.ipv4", eip.ipv4 ?? "",
                                   "\(eip.ipv4 ?? "") cannot be used, when ipv6 \(v6) is used, \(paired) must be used"))
        }
        return errors
    }

    static func validateStatus(_ object: Resource) -> [FieldError] {
        guard let status = object.decodeStatus(EgressPolicyStatus.self) else { return [] }
        return EgressValidation.address(status.eip?.ipv4, family: .v4, field: "status.eip.ipv4")
            + EgressValidation.address(status.eip?.ipv6, family: .v6, field: "status.eip.ipv6")
    }
}
