import BatonAPI
import BatonTesting
import Foundation
import Testing

/// Every manifest of the four seed documents applies unchanged and reads back with its spec.
@Suite("Seed manifests")
struct SeedTests {
    static let manifests: [SeedManifest] = (try? SeedManifests.all()) ?? []

    /// The one documented rewrite: the edge seed's second Gateway has `clusterDestination`
    /// beside an empty `route`.
    static let normalized: Set<String> = ["edge/bookinfo-edge-named"]

    @Test("the seeds are found and hold the expected manifests")
    func inventory() throws {
        #expect(FileManager.default.fileExists(atPath: SeedManifests.directory.path), "\(SeedManifests.directory.path)")
        let all = try SeedManifests.all()
        #expect(all.count == 16)
        #expect(try SeedManifests.egressGateway().count == 2)
        #expect(try SeedManifests.staticRoutes().count == 6)
        #expect(try SeedManifests.edgeGateways().count == 3)
        #expect(SeedManifests.edgeClusters().count == 2)
        #expect(SeedManifests.ipFailovers().count == 3)
        #expect(Set(all.map(\.label)).count == all.count)
    }

    @Test("each seed manifest applies verbatim and reads back with the same spec", arguments: manifests)
    func applies(_ seed: SeedManifest) throws {
        let docs = try Manifest.parseDocuments(seed.yaml)
        try #require(docs.count == 1)
        let parsed = docs[0]
        let admitted = try AdmissionProbe.admit(seed.yaml)
        #expect(admitted.object.kind == parsed["kind"]?.stringValue)
        #expect(admitted.object.apiVersion == parsed["apiVersion"]?.stringValue)
        #expect(admitted.object.name == parsed["metadata"]?["name"]?.stringValue)

        if Self.normalized.contains(seed.label) {
            #expect(admitted.warnings.count == 1)
            #expect(admitted.object.spec != parsed["spec"])
        } else {
            #expect(admitted.warnings.isEmpty)
            #expect(admitted.object.spec == parsed["spec"])
        }

        // Through the store's form and back.
        let reread = try Resource(json: JSONValue.parse(admitted.object.json.jsonData()))
        #expect(reread.spec == admitted.object.spec)
        #expect(reread.metadata == admitted.object.metadata)

        // Through the kind's typed spec and back, for the kinds that have one here.
        if let typed = try Self.typedRoundTrip(admitted.object) {
            #expect(typed == admitted.object.spec)
        }
    }

    static func typedRoundTrip(_ o: Resource) throws -> JSONValue? {
        switch o.kind {
        case "StaticRoute": try JSONValue(encoding: o.decodeSpec(StaticRouteSpec.self))
        case "Gateway": try JSONValue(encoding: o.decodeSpec(GatewaySpec.self))
        case "Cluster": try JSONValue(encoding: o.decodeSpec(ClusterSpec.self))
        case "IPFailover": try JSONValue(encoding: o.decodeSpec(IPFailoverSpec.self))
        default: nil
        }
    }

    // MARK: egressgateway

    @Test("egressgateway: the EgressGateway's status is ignored on apply; the EgressTunnel's spec is empty")
    func egress() throws {
        let seeds = try SeedManifests.egressGateway()
        #expect(seeds.map { try? Manifest.parseDocuments($0.yaml)[0]["kind"]?.stringValue } == ["EgressGateway", "EgressTunnel"])
        let egw = try AdmissionProbe.admit(seeds[0].yaml)
        #expect(egw.object.status == nil)
        #expect(egw.object.spec?["ippools"]?["ipv4DefaultEIP"] == "10.6.1.56")
        #expect(egw.object.spec?["nodeSelector"]?["selector"]?["matchLabels"]?["egress"] == "true")
        let egt = try AdmissionProbe.admit(seeds[1].yaml)
        #expect(egt.object.name == "workstation1")
        #expect(egt.object.spec == .object([:]))
    }

    // MARK: DigitalOcean static routes

    @Test("staticroute: the seed's routes are rebuilt with every name and value the seed gives")
    func reconstructed() throws {
        let routes = try SeedManifests.reconstructedStaticRoutes().map { try AdmissionProbe.admit($0.yaml).object }
        let seen = try routes.map { ($0.name, try $0.decodeSpec(StaticRouteSpec.self)) }
        #expect(seen.map(\.0) == ["primary", "secondary", "static-route-ifconfig.me"])
        #expect(seen.map(\.1) == [
            StaticRouteSpec(destinations: ["34.160.111.145"], gateway: "10.116.0.4"),
            StaticRouteSpec(destinations: ["34.160.111.145"], gateway: "10.116.0.12"),
            StaticRouteSpec(destinations: ["34.160.111.145"], gateway: "10.116.0.5"),
        ])
        // The values come from the seed text, which has them run together.
        let text = try SeedManifests.text(SeedManifests.staticRouteFile)
        for (name, spec) in seen {
            #expect(text.contains("metadata:name: \(name)"))
            #expect(text.contains("- \"\(spec.destinations[0])\"gateway: \"\(spec.gateway!)\""))
        }
    }

    @Test("staticroute: the operator's examples apply, their placeholder gateway filled with the seed's NAT gateway")
    func upstreamExamples() throws {
        let upstream = try SeedManifests.staticRoutes().filter { $0.origin == .upstream }
        #expect(upstream.map(\.label) == ["staticroute/upstream/static-route-ifconfig.me", "staticroute/upstream/static-route-ipinfo.io",
                                          "staticroute/upstream/static-route-test"])
        let ipinfo = try AdmissionProbe.admit(upstream[1].yaml).object.decodeSpec(StaticRouteSpec.self)
        #expect(ipinfo == StaticRouteSpec(destinations: ["34.117.59.81"], gateway: "10.116.0.5"))
        // As shipped, the example names no gateway, and says so.
        #expect(AdmissionProbe.refuses(SeedManifests.upstreamPlaceholderExample, field: "spec.gateway",
                                       fragment: "\"<YOUR_NAT_GW_DROPLET_PRIVATE_IP_HERE>\": must be a valid IP address"))
    }

    // MARK: Tetrate edge gateway

    @Test("edge: the three Gateway specs are the seed's text, wrapped")
    func edgeSnippets() throws {
        let text = try SeedManifests.text(SeedManifests.edgeGatewayFile)
        let snippets = SeedManifests.specSnippets(text)
        #expect(snippets.count == 3)
        for (snippet, seed) in zip(snippets, try SeedManifests.edgeGateways()) {
            #expect(text.contains(snippet.dropLast()))
            #expect(seed.yaml.hasSuffix(snippet))
            let meta = try AdmissionProbe.admit(seed.yaml).object.metadata
            #expect([meta.organization, meta.tenant, meta.workspace, meta.group] == ["tetrate", "tetrate", "edge-ws", "edge-gateways"])
        }
    }

    @Test("edge: automatic, named (after the rewrite) and weighted cluster lists")
    func edgeDestinations() throws {
        let gateways = try SeedManifests.edgeGateways().map { try AdmissionProbe.admit($0.yaml) }
        let dests = try gateways.map { try $0.object.decodeSpec(GatewaySpec.self).http?[0].routing?.rules?[0].route?.clusterDestination }
        #expect(dests[0] == GatewaySpec.ClusterDestinations())
        #expect(dests[1] == GatewaySpec.ClusterDestinations(clusters: [.init(name: "cluster-1"), .init(name: "cluster-2")]))
        #expect(dests[2] == GatewaySpec.ClusterDestinations(clusters: [.init(name: "cluster-1", weight: 50), .init(name: "cluster-2", weight: 50)]))
        #expect(gateways[1].warnings == [
            "spec.http[0].routing.rules[0]: clusterDestination was written beside an empty route (an indentation slip); it was moved to spec.http[0].routing.rules[0].route.clusterDestination",
        ])
        // Apart from the moved member, the rewritten spec is the seed's.
        var parsed = try Manifest.parseDocuments(try SeedManifests.edgeGateways()[1].yaml)[0]
        _ = KindInfo.tsbGateway.normalize(&parsed)
        #expect(parsed["spec"] == gateways[1].object.spec)
    }

    @Test("edge: cluster-1 and cluster-2 sit in region-1 and region-2")
    func edgeClusters() throws {
        let specs = try SeedManifests.edgeClusters().map { try AdmissionProbe.admit($0.yaml).object.decodeSpec(ClusterSpec.self) }
        #expect(specs.map { $0.locality?.region } == ["region-1", "region-2"])
        #expect(specs.allSatisfy { $0.ingresses?.first?.serves("bookinfo.tse.tetratelabs.io") == true })
    }

    // MARK: OpenShift ipfailover

    @Test("ipfailover: every value used is one the seed gives")
    func ipFailoverValues() throws {
        let text = try SeedManifests.text(SeedManifests.ipFailoverFile)
        for value in SeedManifests.ipFailoverSeedValues {
            #expect(text.contains(value), "\(value)")
        }
    }

    @Test("ipfailover: the seed's IPFailovers coexist (no shared VIPs or VRIDs)")
    func ipFailoversTogether() throws {
        let objects = try SeedManifests.ipFailovers().map { try AdmissionProbe.admit($0.yaml).object }
        let context = ValidationContext(objects: ["IPFailover": objects])
        for seed in SeedManifests.ipFailovers() {
            #expect(AdmissionProbe.causes(seed.yaml, context: context).isEmpty, "\(seed.label)")
        }
        let groups = try objects[2].decodeSpec(IPFailoverSpec.self)
        #expect(groups.groups.map(\.count) == [3, 2, 2])
    }
}
