import BatonAPI

/// EIP placement: which egress node carries each EIP, as a pure value computed from the
/// gateways, policies, nodes (with the tunnel phases `HeartbeatMonitor` decided) and the current
/// assignment. No clock, no I/O; the same inputs always give the same result.
///
/// The rules (issue 3):
/// - The unit that moves is an EIP (an IPv4/IPv6 pair and every policy that uses it) or one
///   `useNodeIP` policy. Policies that share an address always share a node.
/// - An EIP stays where it is while its node is `Ready` and matches the gateway's nodeSelector.
///   There is no fail-back: a node that comes back gets nothing back.
/// - Otherwise it moves to a `Ready` node that matches the selector, one EIP at a time, each to
///   the least-loaded candidate (load = units carried, over all gateways), ties broken by node
///   name, so a failed node's EIPs spread out instead of piling onto one node.
/// - No candidate: the policies are unassigned, with a reason.
/// - Allocation: `default` takes the gateway's default EIP; `rr` keeps the pool IP it has, or takes
///   the lowest free one (the default EIP when none is free); an explicit `egressIP` is honoured
///   (and must be in the pool); `useNodeIP` uses the node's own addresses.
public struct EgressPlacement: Sendable {
    /// Every placed policy.
    public private(set) var assignments: [EgressPolicyRef: EgressAssignment] = [:]
    /// Every policy left without a node, and why.
    public private(set) var unassigned: [EgressPolicyRef: EgressUnassignedReason] = [:]
    /// The units that changed node, in the order they were placed.
    public private(set) var moves: [EgressMove] = []

    private var gatewayInfo: [String: GatewayInfo] = [:]
    /// Each gateway's placed policies, so a gateway's status reads only its own.
    private var assignedByGateway: [String: [EgressPolicyRef]] = [:]

    /// Units (EIPs, or `useNodeIP` policies) each gateway has on each node after this placement:
    /// gateway → node → count. A later placement of some gateways only takes the others' sum as
    /// its `baseLoad`.
    public private(set) var unitLoad: [String: [String: Int]] = [:]

    /// Places `policies` over `nodes`.
    ///
    /// Placement may be scoped to some gateways: pass only those gateways and their policies, and
    /// as `baseLoad` the units the other gateways carry on each node (the sum of their `unitLoad`
    /// from the placement that last decided them). As long as the other gateways have nothing to
    /// place (their inputs did not change since), the result for the scoped gateways is exactly
    /// what a placement of everything would decide: gateways are only coupled through node load.
    public init(gateways: [String: EgressGatewaySpec], policies: [EgressPlacementPolicy], nodes: [EgressNode],
                current: [EgressPolicyRef: EgressAssignment], baseLoad: [String: Int] = [:]) {
        var nodesByName: [String: EgressNode] = [:]
        for node in nodes { nodesByName[node.name] = node }
        let sortedNodes = nodes.sorted { $0.name < $1.name }
        for (name, spec) in gateways { gatewayInfo[name] = GatewayInfo(spec: spec, nodes: sortedNodes) }

        // 1. Each policy's addresses (`useNodeIP` policies get theirs from the node later).
        var resolved: [EgressPolicyRef: Resolved] = [:]
        var rrPending: [(EgressPlacementPolicy, IPAddress.Family)] = []
        var used: [String: Set<IPAddress>] = [:]
        for policy in policies.sorted(by: { $0.ref < $1.ref }) {
            guard let info = gatewayInfo[policy.gateway] else {
                unassigned[policy.ref] = .gatewayNotFound(gateway: policy.gateway)
                continue
            }
            if policy.egressIP.usesNodeIP {
                resolved[policy.ref] = Resolved(policy: policy, usesNodeIP: true)
                continue
            }
            guard !info.families.isEmpty else {
                unassigned[policy.ref] = .noPool(gateway: policy.gateway)
                continue
            }
            var r = Resolved(policy: policy, usesNodeIP: false)
            var refused: EgressUnassignedReason?
            for (family, explicit) in [(IPAddress.Family.v4, policy.explicitIPv4), (.v6, policy.explicitIPv6)] {
                if let explicit {
                    guard case .address(let ip) = explicit, info.contains(ip) else {
                        let written = family == .v4 ? policy.egressIP.ipv4 : policy.egressIP.ipv6
                        refused = .eipNotInPool(gateway: policy.gateway, eip: written ?? "")
                        break
                    }
                    r[family] = ip
                } else if info.families.contains(family) {
                    if policy.egressIP.resolvedAllocatorPolicy == EgressIP.allocatorRR {
                        let held = current[policy.ref].flatMap { $0.gateway == policy.gateway && !$0.usesNodeIP ? $0.address(family) : nil }
                        if let held, info.contains(held) { r[family] = held } else { rrPending.append((policy, family)) }
                    } else {
                        r[family] = info.defaultEIP[family]
                    }
                }
            }
            if let refused {
                unassigned[policy.ref] = refused
                continue
            }
            for ip in [r.ipv4, r.ipv6].compactMap({ $0 }) { used[policy.gateway, default: []].insert(ip) }
            resolved[policy.ref] = r
        }
        // `rr` policies without an address take the lowest free pool IP, in policy order.
        for (policy, family) in rrPending where resolved[policy.ref] != nil {
            let info = gatewayInfo[policy.gateway]!
            let ip = info.nextFree(family, used: used[policy.gateway, default: []]) ?? info.defaultEIP[family]
            if let ip { used[policy.gateway, default: []].insert(ip) }
            resolved[policy.ref]![family] = ip
        }

        // 2. Units: policies that share an address (within a gateway) move together.
        var links = UnionFind()
        for r in resolved.values where !r.usesNodeIP {
            let keys = [r.ipv4, r.ipv6].compactMap { $0 }.map { AddressKey(gateway: r.policy.gateway, ip: $0) }
            for key in keys { links.add(key) }
            if keys.count == 2 { links.union(keys[0], keys[1]) }
        }
        var units: [UnitKey: Unit] = [:]
        for r in resolved.values {
            let key: UnitKey
            if r.usesNodeIP {
                key = UnitKey(gateway: r.policy.gateway, root: nil, policy: r.policy.ref)
            } else {
                let first = AddressKey(gateway: r.policy.gateway, ip: (r.ipv4 ?? r.ipv6)!)
                key = UnitKey(gateway: r.policy.gateway, root: links.representative(first), policy: nil)
            }
            units[key, default: Unit(key: key)].members.append(r)
        }

        // 3. Keep units whose node is still a candidate; count load.
        var load = baseLoad
        var toPlace: [(UnitKey, from: String?, reason: EgressMove.Reason)] = []
        var placedOn: [UnitKey: String] = [:]
        for key in units.keys.sorted() {
            let unit = units[key]!
            let info = gatewayInfo[key.gateway]!
            if let from = unit.currentNode(current: current) {
                if info.candidateSet.contains(from) {
                    placedOn[key] = from
                    load[from, default: 0] += 1
                    continue
                }
                let reason: EgressMove.Reason
                if let node = nodesByName[from], let phase = node.phase {
                    reason = phase != .ready ? .nodeNotReady(phase: phase) : .nodeNotSelected
                } else {
                    reason = .nodeGone
                }
                toPlace.append((key, from, reason))
            } else {
                let hadAny = unit.members.contains { current[$0.policy.ref] != nil }
                toPlace.append((key, nil, hadAny ? .eipChanged : .newAssignment))
            }
        }

        // 4. Place the rest one at a time, each on the least-loaded candidate.
        for (key, from, reason) in toPlace {
            let unit = units[key]!
            let info = gatewayInfo[key.gateway]!
            var best: String?
            var bestLoad = Int.max
            for name in info.candidates {
                let l = load[name, default: 0]
                if l < bestLoad { best = name; bestLoad = l }
            }
            if let best {
                placedOn[key] = best
                load[best, default: 0] += 1
                moves.append(unit.move(from: from, to: best, reason: reason, nodes: nodesByName))
            } else {
                let why = EgressUnassignedReason.noReadyCandidate(gateway: key.gateway)
                for m in unit.members { unassigned[m.policy.ref] = why }
                if from != nil || unit.members.contains(where: { current[$0.policy.ref] != nil }) {
                    moves.append(unit.move(from: from, to: nil, reason: .unassigned(why), nodes: nodesByName))
                }
            }
        }
        for (key, node) in placedOn {
            unitLoad[key.gateway, default: [:]][node, default: 0] += 1
            for m in units[key]!.members {
                assignments[m.policy.ref] = m.usesNodeIP
                    ? EgressAssignment(gateway: key.gateway, node: node, ipv4: nodesByName[node]?.ipv4,
                                       ipv6: nodesByName[node]?.ipv6, usesNodeIP: true)
                    : EgressAssignment(gateway: key.gateway, node: node, ipv4: m.ipv4, ipv6: m.ipv6)
            }
        }
        for (ref, a) in assignments { assignedByGateway[a.gateway, default: []].append(ref) }
        // Policies that lost their gateway or EIP keep no node either.
        for (ref, why) in unassigned.sorted(by: { $0.key < $1.key }) where resolved[ref] == nil {
            if let was = current[ref] {
                moves.append(EgressMove(gateway: was.gateway, ipv4: was.ipv4, ipv6: was.ipv6, policies: [ref],
                                        from: was.node, to: nil, reason: .unassigned(why)))
            }
        }
    }

    /// The policy's new status: node and EIP, or empty (cleared) when it is unassigned.
    public func policyStatus(_ ref: EgressPolicyRef) -> EgressPolicyStatus {
        assignments[ref]?.policyStatus ?? EgressPolicyStatus()
    }

    /// The gateway's `status.nodeList` and `ipUsage`: every node that matches its selector (with its
    /// tunnel phase), plus any node carrying its EIPs, sorted by name; EIPs sorted by address;
    /// `useNodeIP` policies in one entry with no address.
    public func gatewayStatus(_ gateway: String) -> EgressGatewayStatus? {
        guard let info = gatewayInfo[gateway] else { return nil }
        var byNode: [String: [EIPPair: [EgressPolicyRef]]] = [:]
        for node in info.selected { byNode[node.name] = [:] }
        var allocated: [IPAddress] = []
        for ref in assignedByGateway[gateway] ?? [] {
            let a = assignments[ref]!
            let pair = a.usesNodeIP ? EIPPair(ipv4: nil, ipv6: nil) : EIPPair(ipv4: a.ipv4, ipv6: a.ipv6)
            byNode[a.node, default: [:]][pair, default: []].append(ref)
            if !a.usesNodeIP { allocated += [a.ipv4, a.ipv6].compactMap { $0 } }
        }
        let phases = Dictionary(info.selected.map { ($0.name, $0.phase) }, uniquingKeysWith: { a, _ in a })
        let nodeList = byNode.keys.sorted().map { name in
            let eips = byNode[name]!.sorted { $0.key < $1.key }.map { pair, refs in
                EgressGatewayStatus.Eips(ipv4: pair.ipv4?.description ?? "", ipv6: pair.ipv6?.description ?? "",
                                         policies: refs.sorted().map { .init(name: $0.name, namespace: $0.namespace) })
            }
            return EgressGatewayStatus.EgressIPStatus(name: name, eips: eips.isEmpty ? nil : eips,
                                                      status: phases[name]??.rawValue ?? assignedPhase(name))
        }
        return EgressGatewayStatus(nodeList: nodeList, ipUsage: info.spec.ipUsage(allocated: allocated))
    }

    private func assignedPhase(_ node: String) -> String? {
        gatewayInfo.values.lazy.compactMap { $0.allPhases[node] }.first??.rawValue
    }
}

// MARK: - Working types

extension EgressPlacement {
    struct EIPPair: Hashable, Comparable {
        var ipv4: IPAddress?
        var ipv6: IPAddress?
        static func < (a: EIPPair, b: EIPPair) -> Bool {
            func k(_ ip: IPAddress?) -> UInt128 { ip.map { $0.value &+ 1 } ?? 0 }
            return (k(a.ipv4), k(a.ipv6)) < (k(b.ipv4), k(b.ipv6))
        }
    }

    /// One gateway's pools and nodes, computed once per placement.
    struct GatewayInfo {
        let spec: EgressGatewaySpec
        let ranges: [IPAddress.Family: [IPRange]]
        let families: Set<IPAddress.Family>
        let defaultEIP: [IPAddress.Family: IPAddress]
        /// Ready nodes matching the selector, sorted by name.
        let candidates: [String]
        let candidateSet: Set<String>
        /// Nodes matching the selector, whatever their phase.
        let selected: [EgressNode]
        let allPhases: [String: EgressTunnelStatus.Phase?]

        init(spec: EgressGatewaySpec, nodes: [EgressNode]) {
            self.spec = spec
            var ranges: [IPAddress.Family: [IPRange]] = [:]
            var defaults: [IPAddress.Family: IPAddress] = [:]
            for family in [IPAddress.Family.v4, .v6] {
                let r = spec.poolRanges(family: family)
                if !r.isEmpty { ranges[family] = r }
                if !r.isEmpty, let d = spec.defaultEIP(family: family) { defaults[family] = d }
            }
            self.ranges = ranges
            self.families = Set(ranges.keys)
            self.defaultEIP = defaults
            let selector = spec.nodeSelector?.selector
            selected = selector.map { s in nodes.filter { s.matches($0.labels) } } ?? []
            candidates = selected.filter(\.isReady).map(\.name)
            candidateSet = Set(candidates)
            allPhases = Dictionary(nodes.map { ($0.name, $0.phase) }, uniquingKeysWith: { a, _ in a })
        }

        func contains(_ ip: IPAddress) -> Bool { (ranges[ip.family] ?? []).contains { $0.contains(ip) } }

        /// The lowest pool address of `family` not in `used`.
        func nextFree(_ family: IPAddress.Family, used: Set<IPAddress>) -> IPAddress? {
            for range in ranges[family] ?? [] {
                var ip = range.first
                while true {
                    if !used.contains(ip) { return ip }
                    guard ip < range.last, let next = ip.advanced(by: 1) else { break }
                    ip = next
                }
            }
            return nil
        }
    }

    /// A policy with its addresses decided.
    struct Resolved {
        var policy: EgressPlacementPolicy
        var usesNodeIP: Bool
        var ipv4: IPAddress?
        var ipv6: IPAddress?

        init(policy: EgressPlacementPolicy, usesNodeIP: Bool) {
            self.policy = policy
            self.usesNodeIP = usesNodeIP
        }

        subscript(family: IPAddress.Family) -> IPAddress? {
            get { family == .v4 ? ipv4 : ipv6 }
            set { if family == .v4 { ipv4 = newValue } else { ipv6 = newValue } }
        }
    }

    struct AddressKey: Hashable {
        var gateway: String
        var ip: IPAddress
    }

    /// What moves as one: an EIP group (`root`, its lowest address) or one `useNodeIP` policy.
    struct UnitKey: Hashable, Comparable {
        var gateway: String
        var root: IPAddress?
        var policy: EgressPolicyRef?

        static func < (a: UnitKey, b: UnitKey) -> Bool {
            if a.gateway != b.gateway { return a.gateway < b.gateway }
            switch (a.root, b.root) {
            case let (x?, y?): return x < y
            case (.some, nil): return true
            case (nil, .some): return false
            case (nil, nil): return (a.policy ?? EgressPolicyRef(name: "")) < (b.policy ?? EgressPolicyRef(name: ""))
            }
        }
    }

    struct Unit {
        var key: UnitKey
        var members: [Resolved] = []

        /// The node the unit is on now: the node most of its members' current assignments name,
        /// counting only assignments that still match (same gateway, same address or node-IP use).
        func currentNode(current: [EgressPolicyRef: EgressAssignment]) -> String? {
            var votes: [String: Int] = [:]
            for m in members {
                guard let a = current[m.policy.ref], a.gateway == key.gateway, a.usesNodeIP == m.usesNodeIP else { continue }
                if m.usesNodeIP || (a.ipv4 == m.ipv4 && a.ipv6 == m.ipv6) { votes[a.node, default: 0] += 1 }
            }
            return votes.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key
        }

        func move(from: String?, to: String?, reason: EgressMove.Reason, nodes: [String: EgressNode]) -> EgressMove {
            let refs = members.map(\.policy.ref).sorted()
            if key.root == nil {
                let node = to.flatMap { nodes[$0] }
                return EgressMove(gateway: key.gateway, ipv4: node?.ipv4, ipv6: node?.ipv6, policies: refs, from: from, to: to, reason: reason)
            }
            return EgressMove(gateway: key.gateway, ipv4: members.compactMap(\.ipv4).min(), ipv6: members.compactMap(\.ipv6).min(),
                              policies: refs, from: from, to: to, reason: reason)
        }
    }

    /// Groups addresses that must live on one node; the representative is the group's lowest address.
    struct UnionFind {
        private var parent: [AddressKey: AddressKey] = [:]

        mutating func add(_ k: AddressKey) { if parent[k] == nil { parent[k] = k } }

        mutating func find(_ k: AddressKey) -> AddressKey {
            var root = k
            while let p = parent[root], p != root { root = p }
            var x = k
            while let p = parent[x], p != root { parent[x] = root; x = p }
            return root
        }

        mutating func union(_ a: AddressKey, _ b: AddressKey) {
            let ra = find(a), rb = find(b)
            guard ra != rb else { return }
            // The lower address becomes the root, so the representative does not depend on order.
            if ra.ip < rb.ip { parent[rb] = ra } else { parent[ra] = rb }
        }

        mutating func representative(_ k: AddressKey) -> IPAddress { find(k).ip }
    }
}
