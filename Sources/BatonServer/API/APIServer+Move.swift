import BatonAPI
import BatonCore
import BatonStore
import Hummingbird

extension APIServer {
    /// `POST /apis/egressgateway.spidernet.io/v1beta1/egressgateways/NAME/move` with
    /// `{"eip": "10.6.1.55", "node": "node2"}`: moves one EIP of the gateway (with every policy
    /// that shares it) to another node by hand, as `egctl vip move` does. Admin only.
    ///
    /// It decides with `EgressManualMove` on the stored state and writes `status.node` of each
    /// policy of the unit with optimistic concurrency (EIP and observedGeneration unchanged). A
    /// write that meets a newer object starts over from a fresh read, so a status the controller
    /// wrote meanwhile is never overwritten blindly. The controller then sees the new statuses,
    /// keeps the EIP on the target (a Ready node matching the selector) and rewrites the gateway's
    /// `status.nodeList`. Moving an EIP to the node it is on is a no-op that succeeds.
    ///
    /// Refusals are 422 naming the field (`eip` or `node`) and its value; an unknown gateway is 404.
    func moveEIP(gateway: String, request: inout Request, identity: Identity) async throws -> Response {
        guard identity == .admin else {
            throw APIError.forbidden("egressgateways \"\(gateway)\" is forbidden: \(identity) cannot move its EIPs: only the admin may")
        }
        let (eip, node) = try Self.moveRequest(try await readDocument(&request), gateway: gateway)
        let result = try await admissionLock.withLock {
            // Where an attempt that wrote some statuses before meeting a conflict moved them from.
            var movedFrom: String?
            for _ in 0..<10 {
                if var result = try await attemptMove(gateway: gateway, eip: eip, to: node, movedFrom: &movedFrom) {
                    if result.move.isAlreadyOnTarget, let movedFrom { result.move.from = movedFrom }
                    return result
                }
            }
            throw APIError.conflict(kind: "EgressGateway", name: gateway, "the policies' status kept changing; try again")
        }
        let move = result.move
        if !move.isAlreadyOnTarget {
            logger.notice("EIP moved by hand", metadata: [
                "gateway": "\(gateway)", "eip": "\(move.addresses)", "from": "\(move.from)", "to": "\(move.to)",
                "policies": "\(move.policies.map(\.description).joined(separator: ","))",
            ])
            await EventRecorder(store: store, component: "baton-server", logger: logger)
                .record(result.gateway, reason: "EIPMoved", message: "EIP \(move.addresses) moved from \(move.from) to \(move.to) by hand")
        }
        var body: [String: JSONValue] = [
            "kind": "EIPMove", "gateway": .string(gateway), "eip": .string(move.eip.description),
            "from": .string(move.from), "to": .string(move.to), "moved": .bool(!move.isAlreadyOnTarget),
            "policies": .array(move.policies.map { p in
                p.namespace.isEmpty ? ["name": .string(p.name)] : ["name": .string(p.name), "namespace": .string(p.namespace)]
            }),
        ]
        if let v4 = move.ipv4 { body["ipv4"] = .string(v4.description) }
        if let v6 = move.ipv6 { body["ipv6"] = .string(v6.description) }
        return json(.ok, .object(body))
    }

    struct MoveResult: Sendable {
        var gateway: Resource
        var move: EgressManualMove
    }

    /// Reads the store, decides, writes. nil: a policy changed under us (409); read again.
    /// `movedFrom` is set when a status is written (and kept from an earlier attempt).
    func attemptMove(gateway name: String, eip: String, to node: String, movedFrom: inout String?) async throws -> MoveResult? {
        let gateway = try await store.get(kind: "EgressGateway", namespace: nil, name: name)
        guard let spec = try? gateway.decodeSpec(EgressGatewaySpec.self) else {
            throw APIError(code: 422, reason: .invalid, message: "the spec of EgressGateway \"\(name)\" cannot be read",
                           kind: "EgressGateway", name: name)
        }
        let gateways = try await store.list(kind: "EgressGateway", namespace: nil, selector: nil).items
        let defaultGateway = EgressGatewaySpec.clusterDefaultName(in: gateways) ?? ""
        var phases: [String: EgressTunnelStatus.Phase] = [:]
        for t in try await store.list(kind: "EgressTunnel", namespace: nil, selector: nil).items {
            // A tunnel the controller has not handled yet has no phase: it is not Ready.
            phases[t.name] = t.status?["phase"]?.stringValue.flatMap(EgressTunnelStatus.Phase.init(rawValue:)) ?? .pending
        }
        let nodes = try await store.list(kind: "Node", namespace: nil, selector: nil).items.map { n in
            EgressNode(name: n.name, labels: n.labels, status: n.decodeStatus(NodeStatus.self), phase: phases[n.name])
        }
        var policies: [EgressPolicyRef: Resource] = [:]
        var current: [EgressPolicyRef: EgressAssignment] = [:]
        for kind in ["EgressPolicy", "EgressClusterPolicy"] {
            for p in try await store.list(kind: kind, namespace: nil, selector: nil).items {
                let ref = EgressPolicyRef(policy: p)
                let named = p.spec?["egressGatewayName"]?.stringValue ?? ""
                let usesNodeIP = p.spec?["egressIP"]?["useNodeIP"]?.boolValue ?? false
                policies[ref] = p
                current[ref] = EgressAssignment(gateway: named.isEmpty ? defaultGateway : named,
                                                status: p.decodeStatus(EgressPolicyStatus.self), usesNodeIP: usesNodeIP)
            }
        }

        let move: EgressManualMove
        do throws(EgressManualMoveError) {
            move = try EgressManualMove(gateway: name, spec: spec, nodes: nodes, current: current, eip: eip, to: node)
        } catch {
            throw APIError(code: 422, reason: .invalid, message: error.message, kind: "EgressGateway", name: name,
                           causes: [FieldError(.invalid, field: error.field, message: error.message)])
        }
        for ref in move.policies {
            guard var p = policies[ref], p.status?["node"]?.stringValue != node else { continue }
            p.status?["node"] = .string(node)
            do {
                _ = try await store.updateStatus(p)
                movedFrom = movedFrom ?? move.from
            } catch let e as APIError where e.code == 409 || e.code == 404 {
                return nil
            }
        }
        return MoveResult(gateway: gateway, move: move)
    }

    /// `{"eip": STRING, "node": STRING}` and nothing else.
    static func moveRequest(_ body: JSONValue, gateway: String) throws(APIError) -> (eip: String, node: String) {
        guard case .object(let o) = body else {
            throw APIError.badRequest("a move request is an object: {\"eip\": \"10.6.1.55\", \"node\": \"node2\"}")
        }
        var causes = o.keys.sorted().filter { $0 != "eip" && $0 != "node" }.map(FieldError.unknown)
        var values: [String: String] = [:]
        for key in ["eip", "node"] {
            switch o[key] {
            case nil, .null?: causes.append(.required(key))
            case .string(let s)?: values[key] = s
            case let v?: causes.append(FieldError(.typeInvalid, field: key, message: "Invalid value: \(v.typeName): expected string"))
            }
        }
        guard causes.isEmpty else {
            throw APIError(code: 422, reason: .invalid,
                           message: "the move request is invalid: \(causes.map(\.description).joined(separator: ", "))",
                           kind: "EgressGateway", name: gateway, causes: causes)
        }
        return (values["eip"]!, values["node"]!)
    }
}
