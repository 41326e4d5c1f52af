import BatonAPI
@testable import BatonCore
import Testing

/// A seeded generator so that picks are reproducible.
struct EdgeRNG: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum EdgeFixtures {
    static let host = "bookinfo.tse.tetratelabs.io"

    static func cluster(_ name: String, region: String, ip: String, hostnames: [String]? = [host],
                        labels: [String: String] = [:]) -> EdgeClusterObject {
        EdgeClusterObject(name: name, labels: labels,
                          spec: ClusterSpec(locality: .init(region: region),
                                            ingresses: [.init(address: ip, port: 8080, hostnames: hostnames)]))
    }

    /// cluster-1 and cluster-3 in region-1, cluster-2 in region-2.
    static let clusters = [
        cluster("cluster-1", region: "region-1", ip: "127.0.0.11"),
        cluster("cluster-2", region: "region-2", ip: "127.0.0.12"),
        cluster("cluster-3", region: "region-1", ip: "127.0.0.13", hostnames: ["*.tse.tetratelabs.io"]),
        cluster("other", region: "region-1", ip: "127.0.0.14", hostnames: ["reviews.example.com"]),
    ]

    static func ep(_ ip: String) -> EdgeEndpoint { EdgeEndpoint(address: ip, port: 8080) }

    static func named(_ names: [String], weights: [Int64]? = nil, healthAware: Bool? = nil) -> GatewaySpec.ClusterDestinations {
        .init(clusters: names.enumerated().map { .init(name: $0.element, weight: weights?[$0.offset]) }, healthAware: healthAware)
    }

    /// Counts the clusters `n` picks land on.
    static func spread(_ route: EdgeRoute, region: String = "region-1", down: Set<EdgeEndpoint> = [], excluding: Set<String> = [],
                       n: Int = 1000) -> [String: Int] {
        var rng = EdgeRNG(7)
        var counts: [String: Int] = [:]
        for _ in 0..<n {
            switch EdgeBalancer.pick(route, region: region, excluding: Array(excluding), isHealthy: { !down.contains($0) }, using: &rng) {
            case .endpoint(let c, _): counts[c, default: 0] += 1
            case .noHealthyUpstream(let c): counts["503:\(c ?? "-")", default: 0] += 1
            }
        }
        return counts
    }
}

@Suite struct EdgeRouteResolverTests {
    typealias F = EdgeFixtures

    @Test func autoListIsEveryClusterPublishingTheHostnameExactOrWildcard() {
        let (route, conds) = EdgeRouteResolver.resolve(.init(), hostname: F.host, clusters: F.clusters)
        #expect(route.mode == .locality)
        #expect(route.clusters.map(\.name) == ["cluster-1", "cluster-2", "cluster-3"])
        #expect(route.clusters[1].region == "region-2")
        #expect(route.clusters[0].endpoints == [F.ep("127.0.0.11")])
        #expect(conds.isEmpty)

        // The hostname goes from cluster-1 (its Gateway deleted): the next resolve leaves it out.
        var changed = F.clusters
        changed[0] = F.cluster("cluster-1", region: "region-1", ip: "127.0.0.11", hostnames: ["else.example.com"])
        #expect(EdgeRouteResolver.resolve(.init(), hostname: F.host, clusters: changed).route.clusters.map(\.name) == ["cluster-2", "cluster-3"])
    }

    @Test func namedListKeepsOnlyNamedClustersAndReportsOneThatDoesNotPublish() {
        let (route, conds) = EdgeRouteResolver.resolve(F.named(["cluster-2", "other", "missing"]), hostname: F.host,
                                                       clusters: F.clusters, field: "cd")
        #expect(route.mode == .locality)
        #expect(route.clusters.map(\.name) == ["cluster-2"])
        #expect(conds == [
            EdgeRouteCondition(field: "cd.clusters[1].name", reason: .hostnameNotPublished,
                               message: "cluster \"other\" has no ingress that publishes the hostname bookinfo.tse.tetratelabs.io"),
            EdgeRouteCondition(field: "cd.clusters[2].name", reason: .clusterNotFound, message: "cluster \"missing\" does not exist"),
        ])
    }

    @Test func labelSelectedClusters() {
        let clusters = [F.cluster("a", region: "r1", ip: "127.0.0.1", labels: ["tier": "gold"]),
                        F.cluster("b", region: "r1", ip: "127.0.0.2", labels: ["tier": "silver"])]
        let dest = GatewaySpec.ClusterDestinations(clusters: [.init(labels: ["tier": "gold"])])
        #expect(EdgeRouteResolver.resolve(dest, hostname: F.host, clusters: clusters).route.clusters.map(\.name) == ["a"])
    }

    @Test func weightedListKeepsADeadClusterInPlaceWithItsWeight() {
        let (route, conds) = EdgeRouteResolver.resolve(F.named(["cluster-1", "other"], weights: [50, 50]), hostname: F.host,
                                                       clusters: F.clusters)
        #expect(route.mode == .weighted(healthAware: false))
        #expect(route.clusters.map(\.name) == ["cluster-1", "other"])
        #expect(route.clusters.map(\.weight) == [50, 50])
        #expect(route.clusters[1].endpoints.isEmpty)
        #expect(conds.map(\.reason) == [.hostnameNotPublished])
        #expect(!route.failsOver)
        let aware = EdgeRouteResolver.resolve(F.named(["cluster-1"], weights: [1], healthAware: true), hostname: F.host, clusters: F.clusters)
        #expect(aware.route.mode == .weighted(healthAware: true))
        #expect(aware.route.failsOver)
    }

    @Test func noClusterAtAllIsACondition() {
        let (route, conds) = EdgeRouteResolver.resolve(.init(), hostname: "nobody.example.com", clusters: F.clusters)
        #expect(route.clusters.isEmpty)
        #expect(conds.map(\.reason) == [.noClusters])
        #expect(conds[0].message.contains("no healthy upstream"))
    }
}

@Suite struct EdgeBalancerTests {
    typealias F = EdgeFixtures
    static let auto = EdgeRouteResolver.resolve(.init(), hostname: F.host, clusters: F.clusters).route

    @Test func localRegionOnlyWhileAnyLocalClusterIsHealthy() {
        let counts = F.spread(Self.auto)
        #expect(Set(counts.keys) == ["cluster-1", "cluster-3"])
        #expect(counts["cluster-1"]! > 400 && counts["cluster-3"]! > 400)
        #expect(EdgeBalancer.tier(Self.auto, region: "region-1", isHealthy: { _ in true }) == .local)
        // One local cluster down: the other local one takes everything; no remote traffic yet.
        #expect(F.spread(Self.auto, down: [F.ep("127.0.0.11")]) == ["cluster-3": 1000])
    }

    @Test func allLocalDownSharesAcrossRemoteThenReturnsHome() {
        let localDown: Set = [F.ep("127.0.0.11"), F.ep("127.0.0.13")]
        #expect(F.spread(Self.auto, down: localDown) == ["cluster-2": 1000])
        #expect(EdgeBalancer.tier(Self.auto, region: "region-1", isHealthy: { !localDown.contains($0) }) == .remote)
        // Recovery of one local cluster: home again.
        #expect(F.spread(Self.auto, down: [F.ep("127.0.0.13")]) == ["cluster-1": 1000])
        // From region-2's point of view the same list is local to cluster-2.
        #expect(F.spread(Self.auto, region: "region-2") == ["cluster-2": 1000])
    }

    @Test func everythingDownIsNoHealthyUpstreamNeverAPanicSendToTheDead() {
        let all: Set = [F.ep("127.0.0.11"), F.ep("127.0.0.12"), F.ep("127.0.0.13")]
        #expect(F.spread(Self.auto, down: all) == ["503:-": 1000])
        #expect(EdgeBalancer.tier(Self.auto, region: "region-1", isHealthy: { !all.contains($0) }) == .none)
    }

    @Test func retryNeverGoesBackToATriedClusterAndMayCrossRegions() {
        #expect(F.spread(Self.auto, excluding: ["cluster-1"]) == ["cluster-3": 1000])
        #expect(F.spread(Self.auto, excluding: ["cluster-1", "cluster-3"]) == ["cluster-2": 1000])
        #expect(F.spread(Self.auto, excluding: ["cluster-1", "cluster-2", "cluster-3"]) == ["503:-": 1000])
    }

    @Test func strictWeightsSplitAndGiveTheDeadShare503() {
        let route = EdgeRouteResolver.resolve(F.named(["cluster-1", "cluster-2"], weights: [80, 20]), hostname: F.host,
                                              clusters: F.clusters).route
        let healthy = F.spread(route, n: 10000)
        #expect(abs(healthy["cluster-1"]! - 8000) < 300)
        #expect(abs(healthy["cluster-2"]! - 2000) < 300)
        // Weights ignore locality: region-2's cluster keeps its share from a region-1 edge.
        let dead = F.spread(route, down: [F.ep("127.0.0.12")], n: 10000)
        #expect(Set(dead.keys) == ["cluster-1", "503:cluster-2"])
        #expect(abs(dead["503:cluster-2"]! - 2000) < 300)
    }

    @Test func healthAwareWeightsHoldWhileHealthyAndSpreadADeadShare() {
        let route = EdgeRouteResolver.resolve(F.named(["cluster-1", "cluster-2", "cluster-3"], weights: [50, 25, 25], healthAware: true),
                                              hostname: F.host, clusters: F.clusters).route
        let healthy = F.spread(route, n: 10000)
        #expect(abs(healthy["cluster-1"]! - 5000) < 300)
        #expect(abs(healthy["cluster-2"]! - 2500) < 300)
        let dead = F.spread(route, down: [F.ep("127.0.0.11")], n: 10000)
        #expect(Set(dead.keys) == ["cluster-2", "cluster-3"])
        #expect(abs(dead["cluster-2"]! - 5000) < 300)
        #expect(F.spread(route, down: [F.ep("127.0.0.11"), F.ep("127.0.0.12"), F.ep("127.0.0.13")]) == ["503:-": 1000])
    }

    @Test func aClusterSpreadsOverItsHealthyIngresses() {
        let c = EdgeClusterObject(name: "c", spec: ClusterSpec(locality: .init(region: "r"), ingresses: [
            .init(address: "127.0.0.1"), .init(address: "127.0.0.2"), .init(address: "127.0.0.3", port: 81)]))
        let route = EdgeRouteResolver.resolve(.init(), hostname: F.host, clusters: [c]).route
        var rng = EdgeRNG(1)
        var seen: Set<EdgeEndpoint> = []
        for _ in 0..<200 {
            if case .endpoint(_, let e) = EdgeBalancer.pick(route, region: "r", isHealthy: { $0.address != "127.0.0.2" }, using: &rng) {
                seen.insert(e)
            }
        }
        #expect(seen == [EdgeEndpoint(address: "127.0.0.1", port: 80), EdgeEndpoint(address: "127.0.0.3", port: 81)])
    }
}

/// `EdgeBalancer.choices`: what a pick draws from, which the proxy keeps for first attempts
/// until the route table or the health view changes.
@Suite struct EdgeBalancerChoicesTests {
    typealias F = EdgeFixtures
    static let auto = EdgeRouteResolver.resolve(.init(), hostname: F.host, clusters: F.clusters).route

    static func summary(_ c: EdgeBalancer.Choices) -> [String] {
        c.choices.map { "\($0.cluster):\($0.endpoints.map(\.address).joined(separator: ","))" }
    }

    @Test func localityChoosesTheServingTierWithEqualChances() {
        let all = EdgeBalancer.choices(Self.auto, region: "region-1", isHealthy: { _ in true })
        #expect(Self.summary(all) == ["cluster-1:127.0.0.11", "cluster-3:127.0.0.13"])
        #expect(all.upTo == [1, 2])
        let oneLocalDown = EdgeBalancer.choices(Self.auto, region: "region-1", isHealthy: { $0 != F.ep("127.0.0.11") })
        #expect(Self.summary(oneLocalDown) == ["cluster-3:127.0.0.13"])
        let localDown: Set = [F.ep("127.0.0.11"), F.ep("127.0.0.13")]
        let remote = EdgeBalancer.choices(Self.auto, region: "region-1", isHealthy: { !localDown.contains($0) })
        #expect(Self.summary(remote) == ["cluster-2:127.0.0.12"])
        let retry = EdgeBalancer.choices(Self.auto, region: "region-1", excluding: ["cluster-1", "cluster-3"], isHealthy: { _ in true })
        #expect(Self.summary(retry) == ["cluster-2:127.0.0.12"])
        let none = EdgeBalancer.choices(Self.auto, region: "region-1", isHealthy: { _ in false })
        #expect(none.choices.isEmpty)
        var rng = EdgeRNG(3)
        #expect(none.draw(using: &rng) == nil)
        #expect(none.pick(using: &rng) == .noHealthyUpstream(cluster: nil))
    }

    @Test func strictWeightsKeepADeadClusterWithNoEndpointsAndHealthAwareDropsIt() {
        let strict = EdgeRouteResolver.resolve(F.named(["cluster-1", "cluster-2"], weights: [80, 20]), hostname: F.host,
                                               clusters: F.clusters).route
        let dead: (EdgeEndpoint) -> Bool = { $0 != F.ep("127.0.0.12") }
        let s = EdgeBalancer.choices(strict, region: "region-1", isHealthy: dead)
        #expect(Self.summary(s) == ["cluster-1:127.0.0.11", "cluster-2:"])
        #expect(s.upTo == [80, 100])
        var rng = EdgeRNG(5)
        var answers: [String: Int] = [:]
        for _ in 0..<1000 {
            guard let (i, e) = s.draw(using: &rng) else { Issue.record("no choice"); return }
            answers["\(s.choices[i].cluster):\(e.map(String.init) ?? "503")", default: 0] += 1
        }
        #expect(Set(answers.keys) == ["cluster-1:0", "cluster-2:503"])
        #expect(abs(answers["cluster-2:503"]! - 200) < 60)

        let aware = EdgeRouteResolver.resolve(F.named(["cluster-1", "cluster-2"], weights: [80, 20], healthAware: true),
                                              hostname: F.host, clusters: F.clusters).route
        let a = EdgeBalancer.choices(aware, region: "region-1", isHealthy: dead)
        #expect(Self.summary(a) == ["cluster-1:127.0.0.11"])
        #expect(a.upTo == [80])
        // A weight of 0 takes no share at all.
        let zero = EdgeRouteResolver.resolve(F.named(["cluster-1", "cluster-2"], weights: [1, 0]), hostname: F.host,
                                             clusters: F.clusters).route
        #expect(Self.summary(EdgeBalancer.choices(zero, region: "region-1", isHealthy: { _ in true })) == ["cluster-1:127.0.0.11"])
    }
}

@Suite struct EdgeRouteTableTests {
    typealias F = EdgeFixtures

    static func gateway(_ rules: [GatewaySpec.HTTPRule], port: Int64 = 80, host: String = F.host,
                        selector: GatewaySpec.WorkloadSelector = .init(namespace: "edge", labels: ["app": "edgegw"])) -> GatewaySpec {
        GatewaySpec(workloadSelector: selector,
                    http: [.init(name: "bookinfo", port: port, hostname: host, routing: .init(rules: rules))])
    }

    @Test func workloadSelectorMatchesNamespaceAndEveryLabel() {
        let sel = GatewaySpec.WorkloadSelector(namespace: "edge", labels: ["app": "edgegw"])
        #expect(EdgeRouteTable.selects(sel, namespace: "edge", labels: ["app": "edgegw", "zone": "a"]))
        #expect(!EdgeRouteTable.selects(sel, namespace: "other", labels: ["app": "edgegw"]))
        #expect(!EdgeRouteTable.selects(sel, namespace: "edge", labels: ["app": "other"]))
        #expect(EdgeRouteTable.selects(.init(namespace: "edge"), namespace: "edge", labels: [:]))
    }

    @Test func healthcheckHeaderRuleComesFirstThenTheDefault() {
        let hc = GatewaySpec.HTTPRule(match: [.init(headers: ["x-healthcheck": .init(exact: "true")])],
                                      route: .init(clusterDestination: F.named(["cluster-1"])))
        let all = GatewaySpec.HTTPRule(route: .init(clusterDestination: .init()))
        let table = EdgeRouteTable(gateways: [("bookinfo-edge", Self.gateway([hc, all]))], clusters: F.clusters)
        #expect(table.ports == [80])
        let withHeader = table.lookup(port: 80, host: "BookInfo.tse.tetratelabs.io:80", path: "/productpage",
                                      header: { $0 == "x-healthcheck" ? "true" : nil })
        #expect(withHeader?.route.clusters.map(\.name) == ["cluster-1"])
        let plain = table.lookup(port: 80, host: F.host, path: "/", header: { _ in nil })
        #expect(plain?.route.clusters.map(\.name) == ["cluster-1", "cluster-2", "cluster-3"])
        #expect(plain?.server == "bookinfo-edge/bookinfo")
        #expect(table.lookup(port: 80, host: "unknown.example.com", path: "/", header: { _ in nil }) == nil)
        #expect(table.lookup(port: 81, host: F.host, path: "/", header: { _ in nil }) == nil)
        // Host is compared without its port and its case.
        #expect(table.lookup(port: 80, host: F.host.uppercased(), path: "/", header: { _ in nil })?.server == "bookinfo-edge/bookinfo")
        #expect(EdgeRouteTable.hostKey("[2001:DB8::1]:8080") == "2001:db8::1")
        #expect(EdgeRouteTable.hostKey("Example.COM:80") == "example.com")
        #expect(EdgeRouteTable.hostKey("example.com") == "example.com")
    }

    @Test func uriMatchesAndWildcardHostnames() {
        let api = GatewaySpec.HTTPRule(match: [.init(uri: .init(prefix: "/api/"))], route: .init(clusterDestination: F.named(["cluster-2"])))
        let re = GatewaySpec.HTTPRule(match: [.init(uri: .init(regex: "/v[0-9]+/.*"))], route: .init(clusterDestination: F.named(["cluster-3"])))
        let table = EdgeRouteTable(gateways: [("g", Self.gateway([api, re], host: "*.tse.tetratelabs.io"))], clusters: F.clusters)
        #expect(table.lookup(port: 80, host: F.host, path: "/api/x?y=1", header: { _ in nil })?.route.clusters.map(\.name) == ["cluster-2"])
        #expect(table.lookup(port: 80, host: F.host, path: "/v2/x", header: { _ in nil })?.route.clusters.map(\.name) == ["cluster-3"])
        #expect(table.lookup(port: 80, host: F.host, path: "/other", header: { _ in nil }) == nil)
        // An event loop's own matcher decides the same, and compiles each pattern once.
        let mine = EdgeRegexMatcher()
        #expect(table.lookup(port: 80, host: F.host, path: "/v2/x", header: { _ in nil }, regexes: mine)?.route.clusters.map(\.name) == ["cluster-3"])
        #expect(table.lookup(port: 80, host: F.host, path: "/v2", header: { _ in nil }, regexes: mine) == nil)
        #expect(table.lookup(port: 80, host: F.host, path: "/other", header: { _ in nil }, regexes: mine) == nil)
        #expect(mine.count == 1)
    }

    /// Whole matches only; an invalid pattern matches nothing; past the bound, patterns still
    /// match but are not kept.
    @Test func aRegexMatcherMatchesWholeValuesAndKeepsABoundedSet() {
        let m = EdgeRegexMatcher()
        #expect(m.wholeMatch("/v[0-9]+/.*", "/v2/x"))
        #expect(!m.wholeMatch("/v[0-9]+/.*", "/api/v2/x"))
        #expect(!m.wholeMatch("(", "("))
        #expect(m.count == 1)
        for i in 0..<EdgeRegexMatcher.maxPatterns { _ = m.wholeMatch("p\(i)", "p\(i)") }
        #expect(m.count == EdgeRegexMatcher.maxPatterns)
        #expect(m.wholeMatch("past-the-bound", "past-the-bound"))
        #expect(m.count == EdgeRegexMatcher.maxPatterns)
    }

    @Test func aHostIsUnconditionalOnlyWhenItsFirstRuleTakesEveryRequest() {
        let hc = GatewaySpec.HTTPRule(match: [.init(headers: ["x-healthcheck": .init(exact: "true")])],
                                      route: .init(clusterDestination: F.named(["cluster-1"])))
        let all = GatewaySpec.HTTPRule(route: .init(clusterDestination: .init()))
        // A conditional rule first: the proxy must look every request up (a request without the
        // header gets the second rule, one with it the first).
        let conditional = EdgeRouteTable(gateways: [("g", Self.gateway([hc, all]))], clusters: F.clusters)
        #expect(conditional.unconditionalRule(port: 80, host: F.host) == nil)
        #expect(conditional.lookup(port: 80, host: F.host, path: "/", header: { _ in nil })?.route.clusters.count == 3)
        // The catch-all first: it is the answer for every request to the host, as `lookup` says.
        let plain = EdgeRouteTable(gateways: [("g", Self.gateway([all, hc]))], clusters: F.clusters)
        let rule = plain.unconditionalRule(port: 80, host: F.host.uppercased() + ":80")
        #expect(rule != nil)
        #expect(rule == plain.lookup(port: 80, host: F.host, path: "/x", header: { $0 == "x-healthcheck" ? "true" : nil }))
        // An edge listening on another port than the only one its Gateways name (behind a load
        // balancer) gets what `lookupAnyPort` gives.
        #expect(plain.unconditionalRule(port: 8080, host: F.host) != nil)
        #expect(plain.unconditionalRule(port: 8080, host: F.host) == plain.lookupAnyPort(host: F.host, path: "/", header: { _ in nil }))
        let twoPorts = EdgeRouteTable(gateways: [("g", Self.gateway([all])), ("h", Self.gateway([all], port: 81))], clusters: F.clusters)
        #expect(twoPorts.ports == [80, 81])
        #expect(twoPorts.unconditionalRule(port: 81, host: F.host) != nil)
        #expect(twoPorts.unconditionalRule(port: 8080, host: F.host) == nil, "two ports: lookupAnyPort decides per request")
        #expect(plain.unconditionalRule(port: 80, host: "unknown.example.com") == nil)
        // Wildcard hostnames too.
        let wild = EdgeRouteTable(gateways: [("g", Self.gateway([all], host: "*.tse.tetratelabs.io"))], clusters: F.clusters)
        #expect(wild.unconditionalRule(port: 80, host: F.host) == wild.lookup(port: 80, host: F.host, path: "/", header: { _ in nil }))
        #expect(wild.unconditionalRule(port: 80, host: F.host) != nil)
    }

    @Test func aSecondGatewayClaimingTheSameHostIsReported() {
        let all = GatewaySpec.HTTPRule(route: .init(clusterDestination: .init()))
        let table = EdgeRouteTable(gateways: [("b", Self.gateway([all])), ("a", Self.gateway([all]))], clusters: F.clusters)
        #expect(table.conditions["a"] == [])
        #expect(table.conditions["b"]?.map(\.reason.rawValue) == ["Conflict"])
    }
}
