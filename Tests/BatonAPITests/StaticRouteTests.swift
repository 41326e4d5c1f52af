import BatonAPI
import Testing

/// Runs a document through the API's write path without a store: decode (schema, unknown
/// fields) and then validate (the kind's rules).
enum AdmissionProbe {
    static func admit(_ yaml: String, context: ValidationContext = .empty) throws -> Admission.Admitted {
        let docs = try Manifest.parseDocuments(yaml)
        guard docs.count == 1 else { throw APIError.badRequest("expected one document, got \(docs.count)") }
        let admitted = try Admission.decode(docs[0])
        try Admission.validate(admitted, old: nil, context: context)
        return admitted
    }

    /// The field causes of a refusal; empty when the document is admitted.
    static func causes(_ yaml: String, context: ValidationContext = .empty) -> [FieldError] {
        do {
            _ = try admit(yaml, context: context)
            return []
        } catch let e as APIError {
            return e.causes.isEmpty ? [FieldError(.invalid, field: "<request>", message: e.message)] : e.causes
        } catch {
            return [FieldError(.invalid, field: "<request>", message: "\(error)")]
        }
    }

    /// True when some cause names `field` and its message contains `fragment`.
    static func refuses(_ yaml: String, field: String, fragment: String, context: ValidationContext = .empty) -> Bool {
        causes(yaml, context: context).contains { $0.field == field && $0.message.contains(fragment) }
    }
}

@Suite("StaticRoute")
struct StaticRouteTests {
    static func manifest(_ spec: String) -> String {
        """
        apiVersion: networking.digitalocean.com/v1
        kind: StaticRoute
        metadata:
          name: route
        spec: \(spec)
        """
    }

    static let refusals: [(spec: String, field: String, fragment: String)] = [
        ("{destinations: [], gateway: \"10.116.0.4\"}", "spec.destinations", "at least one destination"),
        ("{gateway: \"10.116.0.4\"}", "spec.destinations", "Required value"),
        ("{destinations: [\"34.160.111.145\", \"34.160.111\"], gateway: \"10.116.0.4\"}",
         "spec.destinations[1]", "\"34.160.111\": must be an IP address or a CIDR subnet"),
        ("{destinations: [\"10.42.10.0/33\"], gateway: \"10.116.0.4\"}",
         "spec.destinations[0]", "\"10.42.10.0/33\": must be an IP address or a CIDR subnet"),
        ("{destinations: [\"10.42.10.1/24\"], gateway: \"10.116.0.4\"}",
         "spec.destinations[0]", "host bits must be zero"),
        ("{destinations: [\"0.0.0.0\"], gateway: \"10.116.0.4\"}", "spec.destinations[0]", "\"0.0.0.0\": is the unspecified address"),
        ("{destinations: [\"::\"], gateway: \"fd00::1\"}", "spec.destinations[0]", "the default route is ::/0"),
        ("{destinations: [\"34.160.111.145\"], gateway: \"224.0.0.1\"}", "spec.gateway", "must be a unicast address"),
        ("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4\", healthCheck: {type: udp}}",
         "spec.healthCheck.type", "Unsupported value: \"udp\""),
        ("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4\", healthCheck: {type: tcp}}",
         "spec.healthCheck.port", "Required value: a TCP port is required"),
        ("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4\", healthCheck: {type: icmp, port: 80}}",
         "spec.healthCheck.port", "\"80\": is only used with spec.healthCheck.type \"tcp\""),
        ("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4\", healthCheck: {type: tcp, port: 70000}}",
         "spec.healthCheck.port", "less than or equal to 65535"),
        ("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4\", healthCheck: {interval: fast}}",
         "spec.healthCheck.interval", "\"fast\": must be a duration"),
        ("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4\", healthCheck: {interval: 1ms}}",
         "spec.healthCheck.interval", "\"1ms\": must be between 10ms and 1h"),
        ("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4\", healthCheck: {interval: 100ms, timeout: 200ms}}",
         "spec.healthCheck.timeout", "\"200ms\": must not be longer than spec.healthCheck.interval (100ms)"),
        ("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4\", healthCheck: {holdDown: -5s}}",
         "spec.healthCheck.holdDown", "\"-5s\": must be a duration"),
        ("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4\", healthCheck: {failureThreshold: 0}}",
         "spec.healthCheck.failureThreshold", "greater than or equal to 1"),
        ("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4\", healthCheck: {failback: maybe}}",
         "spec.healthCheck.failback", "boolean"),
        ("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4\", healthCheck: {holdown: 1s}}",
         "spec.healthCheck.holdown", "unknown field"),
        ("{destinations: [\"34.160.111.145\", \"34.160.111.145/32\"], gateway: \"10.116.0.4\"}",
         "spec.destinations[1]", "Duplicate value"),
        ("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0\"}", "spec.gateway", "\"10.116.0\": must be a valid IP address"),
        ("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4/32\"}", "spec.gateway", "must be a valid IP address"),
        ("{destinations: [\"34.160.111.145\"]}", "spec.gateway", "Required value"),
        ("{destinations: [\"fd00:10::/64\"], gateway: \"10.116.0.4\"}", "spec.gateway",
         "is IPv4 but spec.destinations[0] \"fd00:10::/64\" is IPv6"),
        ("{destinations: [\"34.160.111.145\"], gateway: \"fd00::1\"}", "spec.gateway", "one address family"),
        ("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4\", gateways: [{address: \"10.116.0.12\"}]}",
         "spec.gateways", "may not be set together with spec.gateway"),
        ("{destinations: [\"34.160.111.145\"], gateways: [{address: \"10.116.0.4\"}, {address: \"10.116.0.x\"}]}",
         "spec.gateways[1].address", "\"10.116.0.x\": must be a valid IP address"),
        ("{destinations: [\"34.160.111.145\"], gateways: [{address: \"10.116.0.4\"}, {address: \"10.116.0.4\", priority: 2}]}",
         "spec.gateways[1].address", "Duplicate value"),
        ("{destinations: [\"34.160.111.145\"], gateways: [{address: \"fd00::4\"}]}", "spec.gateways[0].address", "one address family"),
        ("{destinations: [\"34.160.111.145\"], gateways: [{address: \"10.116.0.4\", priority: -1}]}",
         "spec.gateways[0].priority", "greater than or equal to 0"),
        ("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4\", nodeSelector: {matchExpressions: [{key: a, operator: In}]}}",
         "spec.nodeSelector.matchExpressions[0].values", "Required value"),
        // Strict decoding: a misspelled field is refused with its path, never dropped.
        ("{destinations: [\"34.160.111.145\"], gatway: \"10.116.0.4\"}", "spec.gatway", "unknown field"),
        ("{destinations: \"34.160.111.145\", gateway: \"10.116.0.4\"}", "spec.destinations", "must be a list"),
    ]

    @Test("refuses a bad spec with the field's path", arguments: refusals)
    func refusal(_ rule: (spec: String, field: String, fragment: String)) {
        let causes = AdmissionProbe.causes(Self.manifest(rule.spec))
        #expect(causes.contains { $0.field == rule.field && $0.message.contains(rule.fragment) },
                "causes: \(causes)")
    }

    @Test("the original fields work alone; IPv6 routes are admitted")
    func originalFields() throws {
        let a = try AdmissionProbe.admit(Self.manifest("{destinations: [\"34.160.111.145\", \"10.42.10.0/24\"], gateway: \"10.116.0.4\"}"))
        let spec = try a.object.decodeSpec(StaticRouteSpec.self)
        #expect(spec == StaticRouteSpec(destinations: ["34.160.111.145", "10.42.10.0/24"], gateway: "10.116.0.4"))
        #expect(spec.gatewaysByPriority == ["10.116.0.4"])
        _ = try AdmissionProbe.admit(Self.manifest("{destinations: [\"2001:db8::/32\"], gateway: \"fd00::1\"}"))
        #expect(spec.resolvedHealthCheck == StaticRouteSpec.HealthCheck.Resolved())
    }

    /// The original's issues #6 and #32: a default route through the gateway.
    @Test("default routes are admitted, IPv4 and IPv6")
    func defaultRoutes() throws {
        _ = try AdmissionProbe.admit(Self.manifest("{destinations: [\"0.0.0.0/0\"], gateway: \"10.116.0.4\"}"))
        _ = try AdmissionProbe.admit(Self.manifest("{destinations: [\"::/0\"], gateways: [{address: \"fd00::1\"}, {address: \"fd00::2\", priority: 1}]}"))
    }

    @Test("a health check's fields and defaults")
    func healthCheck() throws {
        let a = try AdmissionProbe.admit(Self.manifest("""
            {destinations: ["34.160.111.145"], gateways: [{address: "10.116.0.4"}, {address: "10.116.0.12", priority: 1}], \
            healthCheck: {type: tcp, port: 443, interval: 200ms, timeout: 150ms, failureThreshold: 2, successThreshold: 5, holdDown: 1m30s, failback: false}}
            """))
        let resolved = try #require(try a.object.decodeSpec(StaticRouteSpec.self).resolvedHealthCheck)
        #expect(resolved == .init(kind: .tcp(port: 443), interval: 200_000_000, timeout: 150_000_000, failureThreshold: 2,
                                  successThreshold: 5, holdDown: 90_000_000_000, failback: false))
        let none = try AdmissionProbe.admit(Self.manifest("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4\", healthCheck: {type: none}}"))
        #expect(try none.object.decodeSpec(StaticRouteSpec.self).resolvedHealthCheck?.kind == StaticRouteSpec.HealthCheck.Resolved.Kind.none)
    }

    @Test("gateways are tried in priority order, ties in list order")
    func gatewaysByPriority() throws {
        let a = try AdmissionProbe.admit(Self.manifest("""
            {destinations: ["34.160.111.145"], gateways: [{address: "10.116.0.12", priority: 20}, {address: "10.116.0.4", priority: 10}, {address: "10.116.0.5"}]}
            """))
        #expect(try a.object.decodeSpec(StaticRouteSpec.self).gatewaysByPriority == ["10.116.0.5", "10.116.0.4", "10.116.0.12"])
    }

    @Test("status in an applied manifest is dropped; status writes are checked")
    func status() throws {
        let a = try AdmissionProbe.admit(Self.manifest("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.4\"}")
                                         + "\nstatus:\n  create_fn:\n    - {destination: 34.160.111.145, gateway: 10.116.0.4, status: Ready}\n")
        #expect(a.object.status == nil)

        var object = a.object
        object.status = try JSONValue(encoding: StaticRouteStatus(nodes: ["node1": .init(gateway: "10.116.0.x", phase: "Ready")]))
        #expect(throws: APIError.self) { try Admission.validateStatus(object, kind: .staticRoute) }
        object.status = try JSONValue(encoding: StaticRouteStatus(nodes: ["node1": .init(gateway: "10.116.0.4", gateways: ["10.116.0.4"], phase: "Ready",
                                                                                         health: [.init(address: "10.116.0.4", state: "Healthy")])]))
        try Admission.validateStatus(object, kind: .staticRoute)
    }

    /// `controller/config/crd.yaml` of digitalocean/k8s-staticroute-operator.
    @Test("printer columns are the original CRD's")
    func columns() throws {
        let cols = KindInfo.staticRoute.columns
        #expect(cols.prefix(3).map(\.name) == ["AGE", "DESTINATIONS", "GATEWAY"])
        #expect(cols.prefix(3).map(\.jsonPath) == [".metadata.creationTimestamp", ".spec.destinations", ".spec.gateway"])
        #expect(cols.prefix(3).map(\.type) == ["date", "string", "string"])
        #expect(cols.map(\.priority) == [0, 1, 1, 1, 1])
        #expect(cols.prefix(3).map(\.description) == [nil, "Destination host(s)/subnet(s)", "Gateway to route through"])
        // Baton's, -o wide only: the gateways in use across nodes, and how many nodes are Ready.
        #expect(cols.dropFirst(3).map(\.name) == ["IN USE", "READY"])

        // kubectl prints the list as JSON: `["XX.XX.XX.XX"]` in the seed's `get -o wide`.
        let a = try AdmissionProbe.admit(Self.manifest("{destinations: [\"34.160.111.145\"], gateway: \"10.116.0.5\"}"))
        #expect(JSONPath.text(cols[1].jsonPath, in: a.object.json) == "[\"34.160.111.145\"]")
        #expect(JSONPath.text(cols[2].jsonPath, in: a.object.json) == "10.116.0.5")
        #expect(cols[3].text(in: a.object.json) == "<none>")
        #expect(cols[4].text(in: a.object.json) == "0/0")

        var object = a.object
        object.status = try JSONValue(encoding: StaticRouteStatus(nodes: [
            "node1": .init(gateway: "10.116.0.5", gateways: ["10.116.0.5"], phase: "Ready"),
            "node2": .init(gateway: "10.116.0.5", gateways: ["10.116.0.5", "10.116.0.6"], phase: "Ready"),
            "node3": .init(phase: "NotReady"),
        ]))
        #expect(cols[3].text(in: object.json) == "10.116.0.5,10.116.0.6")
        #expect(cols[4].text(in: object.json) == "2/3")
    }

    @Test("names, group and scope are the original CRD's")
    func identity() {
        let k = KindInfo.staticRoute
        #expect(k.resource == "staticroutes.networking.digitalocean.com")
        #expect(k.shortNames == ["sr"])
        #expect(k.singular == "staticroute")
        #expect(!k.namespaced)
        #expect(KindRegistry.lookup("sr")?.kind == "StaticRoute")
    }
}
