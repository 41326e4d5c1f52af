import Foundation

/// One manifest taken from (or built for) a seed document, as YAML text.
public struct SeedManifest: Sendable, Hashable, CustomStringConvertible {
    /// How the text relates to the seed.
    public enum Origin: Sendable, Hashable {
        /// Copied from the seed file as it stands.
        case verbatim
        /// Rebuilt from a seed whose copy lost its line breaks; every name and value is the seed's.
        case reconstructed
        /// The seed's `spec:` snippet, wrapped with apiVersion, kind and metadata.
        case wrapped
        /// The original project's own example file.
        case upstream
        /// Written for Baton from the seed's values, where the seed shows no manifest.
        case built
    }

    /// The seed file the manifest belongs to.
    public var seed: String
    /// A short label for test output (`egressgateway#1`, `staticroute/primary`).
    public var label: String
    public var origin: Origin
    public var yaml: String

    public init(seed: String, label: String, origin: Origin, yaml: String) {
        self.seed = seed
        self.label = label
        self.origin = origin
        self.yaml = yaml
    }

    public var description: String { label }
}

/// A seed document that could not be read or did not hold what the loader expects.
public struct SeedError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var message: String
    public var description: String { "\(file): \(message)" }
}

/// The manifests of the four seed documents under `../shared/seeds`: what users bring from
/// egressgateway, DigitalOcean's static route operator, Tetrate's edge gateway guide and
/// OpenShift's ipfailover, and what must apply to Baton unchanged.
public enum SeedManifests {
    public static let egressGatewayFile = "egressgateway-failover.md"
    public static let staticRouteFile = "staticroute-operator-failover.txt"
    public static let edgeGatewayFile = "edge-gateway-failover.txt"
    public static let ipFailoverFile = "openshift-ip-failover.txt"

    /// `BATON_SEEDS_DIR`, or `../shared/seeds` beside the package root (found from this file's
    /// path, with symlinks resolved so that a package that links these sources finds it too).
    public static var directory: URL {
        if let env = ProcessInfo.processInfo.environment["BATON_SEEDS_DIR"], !env.isEmpty {
            return URL(fileURLWithPath: env, isDirectory: true)
        }
        let source = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        let packageRoot = source.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/seeds", isDirectory: true)
    }

    /// The text of one seed file.
    public static func text(_ file: String) throws -> String {
        let url = directory.appendingPathComponent(file)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw SeedError(file: url.path, message: "cannot read the seed (set BATON_SEEDS_DIR to the seeds directory)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Every seed's manifests, in the order of the functions below.
    public static func all() throws -> [SeedManifest] {
        try egressGateway() + staticRoutes() + edgeGateways() + edgeClusters() + ipFailovers()
    }

    // MARK: egressgateway

    /// The fenced ```yaml blocks of the egressgateway seed: an EgressGateway (with a status
    /// that apply ignores) and an EgressTunnel.
    public static func egressGateway() throws -> [SeedManifest] {
        let blocks = fencedBlocks(try text(egressGatewayFile), language: "yaml")
        guard !blocks.isEmpty else { throw SeedError(file: egressGatewayFile, message: "no ```yaml blocks") }
        return blocks.enumerated().map { i, b in
            SeedManifest(seed: egressGatewayFile, label: "egressgateway#\(i + 1)", origin: .verbatim, yaml: b)
        }
    }

    /// The bodies of Markdown code fences tagged `language`, with the fence's indentation removed.
    public static func fencedBlocks(_ markdown: String, language: String) -> [String] {
        var out: [String] = []
        var current: [String]?
        var indent = 0
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            let stripped = line.drop { $0 == " " }
            if current == nil {
                if stripped.hasPrefix("```"), stripped.dropFirst(3).trimmingCharacters(in: .whitespaces) == language {
                    current = []
                    indent = line.count - stripped.count
                }
            } else if stripped.hasPrefix("```") {
                out.append(current!.joined(separator: "\n") + "\n")
                current = nil
            } else {
                let lead = line.prefix { $0 == " " }.count
                current!.append(String(line.dropFirst(min(lead, indent))))
            }
        }
        return out
    }

    // MARK: DigitalOcean static routes

    /// The static route operator's own examples (`examples/*.yaml` and
    /// `tests/manifests/static-route-test.yaml` in digitalocean/k8s-staticroute-operator), then
    /// the seed's StaticRoutes rebuilt with their line breaks.
    ///
    /// The upstream examples carry a placeholder gateway (`<YOUR_NAT_GW_DROPLET_PRIVATE_IP_HERE>`)
    /// that no API admits; it is filled with the seed's NAT gateway, 10.116.0.5. The unfilled
    /// text is `upstreamPlaceholderExample`.
    public static func staticRoutes() throws -> [SeedManifest] {
        var out = upstreamStaticRouteExamples.map { name, yaml in
            SeedManifest(seed: staticRouteFile, label: "staticroute/upstream/\(name)", origin: .upstream,
                         yaml: yaml.replacingOccurrences(of: placeholderGateway, with: seedNATGateway))
        }
        out += try reconstructedStaticRoutes()
        return out
    }

    static let placeholderGateway = "<YOUR_NAT_GW_DROPLET_PRIVATE_IP_HERE>"
    static let seedNATGateway = "10.116.0.5"

    /// `examples/static-route-ifconfig.me.yaml` exactly as the operator ships it.
    public static let upstreamPlaceholderExample = upstreamStaticRouteExamples[0].yaml

    static let upstreamStaticRouteExamples: [(name: String, yaml: String)] = [
        ("static-route-ifconfig.me", """
        apiVersion: networking.digitalocean.com/v1
        kind: StaticRoute
        metadata:
          name: static-route-ifconfig.me
        spec:
          destinations:
            - "34.160.111.145"
          gateway: "<YOUR_NAT_GW_DROPLET_PRIVATE_IP_HERE>"

        """),
        ("static-route-ipinfo.io", """
        apiVersion: networking.digitalocean.com/v1
        kind: StaticRoute
        metadata:
          name: static-route-ipinfo.io
        spec:
          destinations:
            - "34.117.59.81"
          gateway: "<YOUR_NAT_GW_DROPLET_PRIVATE_IP_HERE>"

        """),
        ("static-route-test", """
        apiVersion: networking.digitalocean.com/v1
        kind: StaticRoute
        metadata:
          name: static-route-test
        spec:
          destinations:
           - "10.42.10.0"
          gateway: "10.0.2.100"

        """),
    ]

    /// The seed's StaticRoutes (`primary`, `secondary`, `static-route-ifconfig.me`), whose copy
    /// reads `metadata:name: primary` and `- "34.160.111.145"gateway: "10.116.0.4"`: each is
    /// rebuilt from the names and values found in the seed text.
    public static func reconstructedStaticRoutes() throws -> [SeedManifest] {
        let text = try text(staticRouteFile)
        let marker = "apiVersion: networking.digitalocean.com/v1"
        var out: [SeedManifest] = []
        for chunk in text.components(separatedBy: marker).dropFirst() {
            // The manifest ends at the first blank line after its gateway.
            guard let gatewayRange = chunk.range(of: "gateway: \"") else { continue }
            let body = String(chunk[..<(chunk[gatewayRange.upperBound...].firstIndex(of: "\"") ?? chunk.endIndex)]) + "\""
            let kind = firstMatch(in: body, after: "kind: ", until: "\n")
            let name = firstMatch(in: body, after: "metadata:name: ", until: "\n")
            let gateway = firstMatch(in: String(chunk[gatewayRange.lowerBound...]), after: "gateway: \"", until: "\"")
            let destinationsText = String(body[..<gatewayRange.lowerBound])
            let destinations = quoted(in: destinationsText.components(separatedBy: "destinations:").dropFirst().joined())
            guard let kind, let name, let gateway, !destinations.isEmpty else {
                throw SeedError(file: staticRouteFile, message: "a StaticRoute whose name, destinations or gateway cannot be found")
            }
            let yaml = """
            apiVersion: networking.digitalocean.com/v1
            kind: \(kind)
            metadata:
              name: \(name)
            spec:
              destinations:
            \(destinations.map { "    - \"\($0)\"" }.joined(separator: "\n"))
              gateway: "\(gateway)"

            """
            out.append(SeedManifest(seed: staticRouteFile, label: "staticroute/\(name)", origin: .reconstructed, yaml: yaml))
        }
        if out.isEmpty { throw SeedError(file: staticRouteFile, message: "no StaticRoute manifests") }
        return out
    }

    static func firstMatch(in text: String, after start: String, until end: Character) -> String? {
        guard let r = text.range(of: start) else { return nil }
        let rest = text[r.upperBound...]
        let value = rest.prefix { $0 != end }.trimmingCharacters(in: .whitespaces)
        return value.isEmpty ? nil : value
    }

    /// The double-quoted strings in `text`, in order.
    static func quoted(in text: String) -> [String] {
        text.split(separator: "\"", omittingEmptySubsequences: false).enumerated()
            .filter { $0.offset % 2 == 1 }.map { String($0.element) }
    }

    // MARK: Tetrate edge gateway

    /// The TSB hierarchy the edge seed's manifests are placed in.
    public static let edgeHierarchy = (organization: "tetrate", tenant: "tetrate", workspace: "edge-ws", group: "edge-gateways")

    /// The edge seed's three Gateway `spec:` snippets (automatic, named and weighted cluster
    /// lists), each taken from the seed text and wrapped as a `gateway.tsb.tetrate.io/v2`
    /// Gateway. The second keeps the seed's indentation slip (`clusterDestination` beside
    /// `route`), which the Gateway kind's normalize hook repairs.
    public static func edgeGateways() throws -> [SeedManifest] {
        let snippets = specSnippets(try text(edgeGatewayFile))
        guard snippets.count == 3 else {
            throw SeedError(file: edgeGatewayFile, message: "expected 3 spec: snippets, found \(snippets.count)")
        }
        let names = ["bookinfo-edge-auto", "bookinfo-edge-named", "bookinfo-edge-weighted"]
        return zip(names, snippets).map { name, spec in
            let h = edgeHierarchy
            let yaml = """
            apiVersion: gateway.tsb.tetrate.io/v2
            kind: Gateway
            metadata:
              name: \(name)
              organization: \(h.organization)
              tenant: \(h.tenant)
              workspace: \(h.workspace)
              group: \(h.group)
            \(spec)
            """
            return SeedManifest(seed: edgeGatewayFile, label: "edge/\(name)", origin: .wrapped, yaml: yaml)
        }
    }

    /// Every top-level `spec:` block in `text`: the `spec:` line and the indented (or `#`
    /// comment) lines after it, up to the first line of prose.
    public static func specSnippets(_ text: String) -> [String] {
        var out: [String] = []
        var current: [String]?
        func flush() {
            guard var lines = current else { return }
            while let last = lines.last, last.trimmingCharacters(in: .whitespaces).isEmpty { lines.removeLast() }
            out.append(lines.joined(separator: "\n") + "\n")
            current = nil
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line == "spec:" {
                flush()
                current = [line]
            } else if current != nil {
                if line.isEmpty || line.hasPrefix(" ") || line.hasPrefix("#") {
                    current!.append(line)
                } else {
                    flush()
                }
            }
        }
        flush()
        return out
    }

    /// The seed's two workload clusters, `cluster-1` in `region-1` and `cluster-2` in
    /// `region-2`, as TSB Clusters with Baton's `ingresses` (the seed's ingress gateways
    /// `ingressgw-1` and `ingressgw-2` serving bookinfo.tse.tetratelabs.io; the addresses are
    /// Baton's lab addresses, as the seed shows none).
    public static func edgeClusters() -> [SeedManifest] {
        [("cluster-1", "region-1", "10.1.0.10"), ("cluster-2", "region-2", "10.2.0.10")].map { name, region, address in
            let yaml = """
            apiVersion: api.tsb.tetrate.io/v2
            kind: Cluster
            metadata:
              name: \(name)
              organization: \(edgeHierarchy.organization)
            spec:
              locality:
                region: \(region)
              ingresses:
                - address: \(address)
                  port: 80
                  hostnames:
                    - bookinfo.tse.tetratelabs.io

            """
            return SeedManifest(seed: edgeGatewayFile, label: "edge/\(name)", origin: .built, yaml: yaml)
        }
    }

    // MARK: OpenShift ipfailover

    /// The values the OpenShift seed gives as examples and defaults, each found verbatim in the
    /// seed text (a test checks this).
    public static let ipFailoverSeedValues = [
        "ipfailover-keepalived", "1.1.1.1", "1.2.3.4-6,1.2.3.9", "eth0", "/etc/keepalive/mycheckscript.sh",
        "preempt_delay 300", "nopreempt", "INPUT",
    ]

    /// IPFailovers built from the OpenShift seed's examples, since its deployment YAML did not
    /// survive the copy: the `ipfailover-keepalived` deployment with the RHOSP example VIP
    /// `1.1.1.1`, the check script and every default spelled out; the range example
    /// `1.2.3.4-6,1.2.3.9` with `nopreempt`; and the seed's grouping example (seven VIPs in
    /// three groups). Offsets differ so that the three can coexist.
    public static func ipFailovers() -> [SeedManifest] {
        let keepalived = """
        apiVersion: baton.io/v1
        kind: IPFailover
        metadata:
          name: ipfailover-keepalived
          labels:
            ipfailover: hello-openshift
        spec:
          virtualIPs: "1.1.1.1"
          interface: eth0
          monitorPort: 80
          vrrpIDOffset: 10
          replicas: 2
          iptablesChain: INPUT
          checkScript: /etc/keepalive/mycheckscript.sh
          checkInterval: 2
          preemption: preempt_delay 300
          nodeSelector:
            matchLabels:
              ipfailover: hello-openshift

        """
        let ranges = """
        apiVersion: baton.io/v1
        kind: IPFailover
        metadata:
          name: ipfailover-ranges
        spec:
          virtualIPs: "1.2.3.4-6,1.2.3.9"
          vrrpIDOffset: 20
          preemption: nopreempt

        """
        let groups = """
        apiVersion: baton.io/v1
        kind: IPFailover
        metadata:
          name: ipfailover-groups
        spec:
          virtualIPs: "1.2.3.20-26"
          vipGroups: 3
          vrrpIDOffset: 30
          monitorPort: 0

        """
        return [("ipfailover-keepalived", keepalived), ("ipfailover-ranges", ranges), ("ipfailover-groups", groups)].map {
            SeedManifest(seed: ipFailoverFile, label: "ipfailover/\($0.0)", origin: .built, yaml: $0.1)
        }
    }
}
