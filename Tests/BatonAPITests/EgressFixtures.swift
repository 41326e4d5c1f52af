import BatonAPI
import Testing

/// Manifests and admission helpers for the egress kinds' tests.
enum EgressFixtures {
    static let apiVersion = "egressgateway.spidernet.io/v1beta1"

    /// The seed's EgressGateway (../shared/seeds/egressgateway-failover.md), verbatim.
    static let seedGateway = """
        apiVersion: egressgateway.spidernet.io/v1beta1
        kind: EgressGateway
        metadata:
          name: egw1
        spec:
          clusterDefault: true
          ippools:
            ipv4:
              - 10.6.1.55
              - 10.6.1.56
            ipv4DefaultEIP: 10.6.1.56
            ipv6:
              - fd00::55
              - fd00::56
            ipv6DefaultEIP: fd00::55
          nodeSelector:
            selector:
              matchLabels:
                egress: "true"
        status:
          nodeList:
            - name: node1
              status: Ready
              eips:
                - ipv4: 10.6.1.56
                  ipv6: fd00::55
                  policies:
                    - name: policy1
                      namespace: default
            - name: node2
              status: Ready
        """

    /// The seed's EgressTunnel, verbatim.
    static let seedTunnel = """
        apiVersion: egressgateway.spidernet.io/v1beta1
        kind: EgressTunnel
        metadata:
          name: workstation1
        spec: {}
        status:
          lastHeartbeatTime: "2023-11-27T12:04:56Z"
          mark: "0x26d9b723"
          phase: Ready
        """

    /// An EgressGateway manifest; `spec` and `status` are YAML flow mappings.
    static func gateway(_ name: String, _ spec: String, status: String? = nil) -> String {
        "apiVersion: \(apiVersion)\nkind: EgressGateway\nmetadata: {name: \(name)}\nspec: \(spec)\n"
            + (status.map { "status: \($0)\n" } ?? "")
    }

    /// An EgressPolicy (in `default`) or EgressClusterPolicy manifest.
    static func policy(_ kind: String, _ name: String, _ spec: String, status: String? = nil) -> String {
        let ns = kind == "EgressPolicy" ? ", namespace: default" : ""
        return "apiVersion: \(apiVersion)\nkind: \(kind)\nmetadata: {name: \(name)\(ns)}\nspec: \(spec)\n"
            + (status.map { "status: \($0)\n" } ?? "")
    }

    static let selector = #"nodeSelector: {selector: {matchLabels: {egress: "true"}}}"#

    static func document(_ yaml: String) throws(APIError) -> JSONValue {
        let docs = try Manifest.parseDocuments(yaml)
        guard let first = docs.first else { throw APIError.badRequest("no document") }
        return first
    }

    /// An object as the store holds it: status included.
    static func stored(_ yaml: String) throws(APIError) -> Resource {
        try Resource(json: document(yaml))
    }

    static func context(_ objects: [String]) throws(APIError) -> ValidationContext {
        var byKind: [String: [Resource]] = [:]
        for yaml in objects {
            let r = try stored(yaml)
            byKind[r.kind, default: []].append(r)
        }
        return ValidationContext(objects: byKind)
    }

    /// Admits a manifest as the API does on a write: decode, then validate.
    static func admit(_ yaml: String, old: Resource? = nil, context: ValidationContext = .empty) throws(APIError) -> Resource {
        let admitted = try Admission.decode(document(yaml))
        try Admission.validate(admitted, old: old, context: context)
        return admitted.object
    }

    /// The field errors of admitting a manifest; empty when it is admitted.
    static func causes(_ yaml: String, old: Resource? = nil, context: ValidationContext = .empty) -> [FieldError] {
        do throws(APIError) {
            _ = try admit(yaml, old: old, context: context)
            return []
        } catch {
            return error.causes.isEmpty ? [FieldError(.invalid, field: "", message: error.message)] : error.causes
        }
    }

    /// The field errors of a status write.
    static func statusCauses(_ yaml: String) -> [FieldError] {
        do throws(APIError) {
            let object = try stored(yaml)
            guard let kind = KindRegistry.find(kind: object.kind) else { return [.invalid("kind", object.kind, "unknown")] }
            try Admission.validateStatus(object, kind: kind)
            return []
        } catch {
            return error.causes
        }
    }
}

/// One validation rule: a manifest that breaks it, and the field and message words it must be refused with.
struct EgressRuleCase: Sendable, CustomTestStringConvertible {
    var name: String
    var yaml: String
    var field: String
    var fragment: String
    var context: [String] = []
    var old: String?

    var testDescription: String { name }

    /// Admits `yaml` against the stored `context` (and `old` on update) and returns the causes.
    func run() throws -> [FieldError] {
        let old = try self.old.map { yaml throws(APIError) in try EgressFixtures.stored(yaml) }
        return EgressFixtures.causes(yaml, old: old, context: try EgressFixtures.context(context))
    }

    /// Expects a cause at `field` whose message contains `fragment`.
    func expectRefused(_ causes: [FieldError], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(causes.contains { $0.field == field && $0.message.contains(fragment) },
                "expected \(field): …\(fragment)…, got \(causes.map(\.description))", sourceLocation: sourceLocation)
    }
}
