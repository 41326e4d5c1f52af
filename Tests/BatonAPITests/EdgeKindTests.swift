import BatonAPI
import Testing

@Suite("TSB Gateway and Cluster")
struct EdgeKindTests {
    static func gateway(_ http: String, workloadSelector: String = "{namespace: edge, labels: {app: edgegw}}") -> String {
        """
        apiVersion: gateway.tsb.tetrate.io/v2
        kind: Gateway
        metadata:
          name: edge
          organization: tetrate
          tenant: tetrate
          workspace: edge-ws
          group: edge-gateways
        spec:
          workloadSelector: \(workloadSelector)
          http: \(http)
        """
    }

    static func server(port: String = "80", dest: String = "{}", extra: String = "") -> String {
        "[{name: bookinfo, port: \(port), hostname: bookinfo.tse.tetratelabs.io, routing: {rules: [{\(extra)route: {clusterDestination: \(dest)}}]}}]"
    }

    static let rules = "spec.http[0].routing.rules[0]"

    static let gatewayRefusals: [(http: String, field: String, fragment: String)] = [
        (server(dest: "{clusters: [{name: cluster-1, weight: 50}, {name: cluster-2, weight: -1}]}"),
         "\(rules).route.clusterDestination.clusters[1].weight", "\"-1\": must be greater than or equal to 0"),
        (server(port: "0"), "spec.http[0].port", "\"0\": must be between 1 and 65535, inclusive"),
        (server(port: "65536"), "spec.http[0].port", "\"65536\": must be between 1 and 65535"),
        (server(port: "\"80\""), "spec.http[0].port", "must be an integer"),
        ("[{name: bookinfo, port: 80, routing: {rules: [{route: {clusterDestination: {}}}]}}]", "spec.http[0].hostname", "Required value"),
        ("[{name: bookinfo, port: 80, hostname: \"\"}]", "spec.http[0].hostname", "Required value"),
        ("[{name: bookinfo, port: 80, hostname: \"bookinfo..io\"}]", "spec.http[0].hostname", "must be a DNS name"),
        ("[{name: bookinfo, port: 80, hostname: a.io}, {name: bookinfo, port: 8080, hostname: b.io}]",
         "spec.http[1].name", "Duplicate value: \"bookinfo\""),
        ("[{port: 80, hostname: a.io}]", "spec.http[0].name", "Required value"),
        (server(dest: "{clusters: [{weight: 50}]}"), "\(rules).route.clusterDestination.clusters[0].name", "a name or labels"),
        (server(dest: "{clusters: [{name: cluster-1, labels: {region: r1}}]}"),
         "\(rules).route.clusterDestination.clusters[0]", "only one of name or labels"),
        (server(dest: "{clusters: [{name: cluster-1}, {name: cluster-1}]}"),
         "\(rules).route.clusterDestination.clusters[1].name", "Duplicate value: \"cluster-1\""),
        (server(dest: "{clusters: [{name: cluster-1, weight: 0}, {name: cluster-2, weight: 0}]}"),
         "\(rules).route.clusterDestination.clusters", "add up to 0"),
        (server(dest: "{healthAware: true, clusters: [{name: cluster-1}, {name: cluster-2}]}"),
         "\(rules).route.clusterDestination.healthAware", "applies only to a weighted list"),
        (server(dest: "{healthAware: \"true\", clusters: [{name: cluster-1, weight: 1}]}"),
         "\(rules).route.clusterDestination.healthAware", "boolean"),
        ("[{name: bookinfo, port: 80, hostname: a.io, routing: {rules: [{match: [{headers: {x-healthcheck: {exact: \"true\"}}}]}]}}]",
         "\(rules).route", "a rule needs a route"),
        ("[{name: bookinfo, port: 80, hostname: a.io, routing: {rules: [{route: {}}]}}]",
         "\(rules).route.clusterDestination", "needs clusterDestination"),
        (server(extra: "match: [{headers: {x-healthcheck: {exact: \"true\", prefix: t}}}], "),
         "\(rules).match[0].headers.x-healthcheck", "exactly one of exact, prefix or regex"),
        (server(extra: "match: [{uri: {}}], "), "\(rules).match[0].uri", "exactly one of exact, prefix or regex"),
        (server(extra: "match: [{headers: {x-healthcheck: {equals: \"true\"}}}], "),
         "\(rules).match[0].headers.x-healthcheck.equals", "unknown field"),
        ("[{name: bookinfo, port: 443, hostname: a.io, tls: {mode: STRICT}}]", "spec.http[0].tls.mode", "Unsupported value: \"STRICT\""),
        // Strict decoding: TSB fields Baton does not serve are refused, not dropped.
        (server(dest: "{clusters: [{name: cluster-1, wieght: 50}]}"),
         "\(rules).route.clusterDestination.clusters[0].wieght", "unknown field"),
        ("[{name: bookinfo, port: 80, hostname: a.io, routing: {rules: [{route: {serviceDestination: {host: productpage}}}]}}]",
         "\(rules).route.serviceDestination", "unknown field"),
    ]

    @Test("Gateway: refuses a bad spec with the field's path", arguments: gatewayRefusals)
    func gatewayRefusal(_ rule: (http: String, field: String, fragment: String)) {
        let causes = AdmissionProbe.causes(Self.gateway(rule.http))
        #expect(causes.contains { $0.field == rule.field && $0.message.contains(rule.fragment) }, "causes: \(causes)")
    }

    @Test("Gateway: workloadSelector and its namespace are required")
    func workloadSelector() {
        let noSelector = Self.gateway(Self.server()).replacingOccurrences(of: "  workloadSelector: {namespace: edge, labels: {app: edgegw}}\n", with: "")
        #expect(AdmissionProbe.refuses(noSelector, field: "spec.workloadSelector", fragment: "Required value"))
        #expect(AdmissionProbe.refuses(Self.gateway(Self.server(), workloadSelector: "{labels: {app: edgegw}}"),
                                       field: "spec.workloadSelector.namespace", fragment: "Required value"))
    }

    @Test("Gateway: a header match rule, as the health-check guide writes it, is admitted and read back")
    func headerMatch() throws {
        let yaml = Self.gateway(Self.server(dest: "{clusters: [{name: cluster-1}]}",
                                            extra: "match: [{headers: {x-healthcheck: {exact: \"true\"}}, uri: {prefix: /}, port: 80}], "))
        let a = try AdmissionProbe.admit(yaml)
        let spec = try a.object.decodeSpec(GatewaySpec.self)
        let rule = try #require(spec.http?.first?.routing?.rules?.first)
        #expect(rule.match?.first?.headers?["x-healthcheck"] == GatewaySpec.StringMatch(exact: "true"))
        #expect(rule.match?.first?.uri == GatewaySpec.StringMatch(prefix: "/"))
        #expect(try JSONValue(encoding: spec) == a.object.spec)
        #expect(a.object.metadata.organization == "tetrate" && a.object.metadata.group == "edge-gateways")
    }

    @Test("Gateway: clusterDestination {} and an empty clusterDestination: both mean every cluster")
    func emptyDestination() throws {
        _ = try AdmissionProbe.admit(Self.gateway(Self.server(dest: "{}")))
        _ = try AdmissionProbe.admit(Self.gateway(Self.server(dest: "null")))
        let weighted = try AdmissionProbe.admit(Self.gateway(Self.server(dest: "{clusters: [{name: cluster-1, weight: 50}, {name: cluster-2, weight: 50}]}")))
        let dest = try weighted.object.decodeSpec(GatewaySpec.self).http?[0].routing?.rules?[0].route?.clusterDestination
        #expect(dest?.isWeighted == true)
    }

    // MARK: normalize

    /// The edge seed's second snippet, as YAML reads it: `route` empty, `clusterDestination` beside it.
    static let slipped = """
        apiVersion: gateway.tsb.tetrate.io/v2
        kind: Gateway
        metadata:
          name: edge
        spec:
          workloadSelector:
            namespace: edge
          http:
            - name: bookinfo
              port: 80
              hostname: bookinfo.tse.tetratelabs.io
              routing:
                rules:
                  - route:
                    clusterDestination:
                        clusters:
                        - name: cluster-1
                        - name: cluster-2
        """

    @Test("normalize moves a rule-level clusterDestination under an empty route, with a warning")
    func normalizeSlip() throws {
        let parsed = try Manifest.parseDocuments(Self.slipped)[0]
        let rule = parsed["spec"]?["http"]?.arrayValue?[0]["routing"]?["rules"]?.arrayValue?[0]
        #expect(rule?["route"] == .null)
        #expect(rule?["clusterDestination"] != nil)

        let a = try AdmissionProbe.admit(Self.slipped)
        #expect(a.warnings.count == 1)
        #expect(a.warnings.first?.contains("spec.http[0].routing.rules[0]") == true)
        #expect(a.warnings.first?.contains("moved to spec.http[0].routing.rules[0].route.clusterDestination") == true)
        let fixed = a.object.spec?["http"]?.arrayValue?[0]["routing"]?["rules"]?.arrayValue?[0]
        #expect(fixed == ["route": ["clusterDestination": ["clusters": [["name": "cluster-1"], ["name": "cluster-2"]]]]])
    }

    @Test("normalize leaves well-formed rules alone, and a clusterDestination beside a real route is refused")
    func normalizeOnlyTheSlip() throws {
        var good = try Manifest.parseDocuments(Self.gateway(Self.server(dest: "{clusters: [{name: cluster-1}]}")))[0]
        let before = good
        #expect(KindInfo.tsbGateway.normalize(&good).isEmpty)
        #expect(good == before)

        let both = Self.gateway("[{name: bookinfo, port: 80, hostname: a.io, routing: {rules: [{route: {clusterDestination: {}}, clusterDestination: {}}]}}]")
        #expect(AdmissionProbe.refuses(both, field: "\(Self.rules).clusterDestination", fragment: "unknown field"))
    }

    // MARK: Cluster

    static func cluster(_ spec: String) -> String {
        """
        apiVersion: api.tsb.tetrate.io/v2
        kind: Cluster
        metadata:
          name: cluster-1
          organization: tetrate
        spec: \(spec)
        """
    }

    static let clusterRefusals: [(spec: String, field: String, fragment: String)] = [
        ("{locality: {region: region-1}, ingresses: [{address: 10.1.0}]}", "spec.ingresses[0].address",
         "\"10.1.0\": must be an IP address or a DNS name"),
        ("{ingresses: [{address: 10.1.0.10}, {address: 300.1.0.10}]}", "spec.ingresses[1].address", "\"300.1.0.10\""),
        ("{ingresses: [{address: \"ingress gw\"}]}", "spec.ingresses[0].address", "must be an IP address or a DNS name"),
        ("{ingresses: [{address: \"fd00::10::1\"}]}", "spec.ingresses[0].address", "must be an IP address or a DNS name"),
        ("{ingresses: [{address: 10.1.0.10, port: 0}]}", "spec.ingresses[0].port", "must be between 1 and 65535"),
        ("{ingresses: [{address: 10.1.0.10, port: 70000}]}", "spec.ingresses[0].port", "must be between 1 and 65535"),
        ("{ingresses: [{address: 10.1.0.10}, {address: 10.1.0.10, port: 80}]}", "spec.ingresses[1].address", "Duplicate value"),
        ("{ingresses: [{address: 10.1.0.10, hostnames: [\"bad host\"]}]}", "spec.ingresses[0].hostnames[0]", "must be a DNS name"),
        ("{ingresses: [{port: 80}]}", "spec.ingresses[0].address", "Required value"),
        ("{locality: {}}", "spec.locality.region", "Required value"),
        ("{locality: {region: \"\"}}", "spec.locality.region", "a locality needs a region"),
        ("{locality: {region: region-1, zone: z1}}", "spec.locality.zone", "unknown field"),
    ]

    @Test("Cluster: refuses a bad spec with the field's path", arguments: clusterRefusals)
    func clusterRefusal(_ rule: (spec: String, field: String, fragment: String)) {
        let causes = AdmissionProbe.causes(Self.cluster(rule.spec))
        #expect(causes.contains { $0.field == rule.field && $0.message.contains(rule.fragment) }, "causes: \(causes)")
    }

    @Test("Cluster: TSB's own fields apply; ingresses default to port 80 and match hostnames")
    func clusterFields() throws {
        let a = try AdmissionProbe.admit(Self.cluster("""
            {tokenTtl: "1h", network: vpc-01, tier1Cluster: false, locality: {region: region-1},
             ingresses: [{address: ingress.cluster-1.example.com, hostnames: ["*.tetratelabs.io"]}, {address: "fd00:1::10", port: 8080}]}
            """))
        let spec = try a.object.decodeSpec(ClusterSpec.self)
        #expect(spec.locality?.region == "region-1")
        let ingresses = try #require(spec.ingresses)
        #expect(ingresses[0].effectivePort == 80)
        #expect(ingresses[0].serves("bookinfo.tse.tetratelabs.io"))
        #expect(!ingresses[0].serves("tetratelabs.io"))
        #expect(ingresses[1].serves("anything.example"))
        #expect(try JSONValue(encoding: spec) == a.object.spec)
    }

    @Test("printer columns")
    func columns() throws {
        #expect(KindInfo.tsbGateway.columns.filter { $0.priority == 0 }.map(\.name) == ["HOSTNAMES", "PORTS", "AGE"])
        #expect(KindInfo.tsbCluster.columns.filter { $0.priority == 0 }.map(\.name) == ["REGION", "INGRESSES", "AGE"])
        let g = try AdmissionProbe.admit(Self.gateway("[{name: a, port: 80, hostname: a.io}, {name: b, port: 443, hostname: b.io}]"))
        #expect(JSONPath.text(".spec.http[*].hostname", in: g.object.json) == "a.io,b.io")
        #expect(JSONPath.text(".spec.http[*].port", in: g.object.json) == "80,443")
        let c = try AdmissionProbe.admit(Self.cluster("{locality: {region: region-2}, ingresses: [{address: 10.2.0.10}]}"))
        #expect(KindInfo.tsbCluster.columns.prefix(2).map { JSONPath.text($0.jsonPath, in: c.object.json) } == ["region-2", "10.2.0.10"])
    }
}
