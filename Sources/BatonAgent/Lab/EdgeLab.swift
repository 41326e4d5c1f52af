import BatonAPI
import BatonDataplane
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `baton lab edge`: the seed's edge topology in network namespaces (root), all named
/// `PREFIX-*` (default `bedge`), on a LAN of their own (192.168.78.0/24, a bridge inside
/// `PREFIX-lan`; the machine's own namespace is never touched):
/// - `PREFIX-server`: `baton server` on 192.168.78.2:7000.
/// - `PREFIX-edge`: `baton edge --region region-1` on 192.168.78.3:80.
/// - `PREFIX-c1` (192.168.78.11, region-1) and `PREFIX-c2` (192.168.78.12, region-2): each
///   cluster's ingress, `baton lab ingress` answering with the cluster's name on port 80.
/// - `PREFIX-client`: 192.168.78.100, where `baton lab edge traffic` sends requests from.
///
/// The seed's three drills are `drill`: delete the cluster's Gateway (its ingress stops
/// publishing the hostname), stop its ingress, make its ingress answer 503. Each has `restore`.
public struct EdgeLab: Sendable {
    public var lab: Lab
    public static let lanPrefix = "192.168.78"
    public static let serverAddress = "192.168.78.2"
    public static let edgeAddress = "192.168.78.3"
    public static let clientAddress = "192.168.78.100"
    public static let hostname = "bookinfo.tse.tetratelabs.io"
    public static let clusters = [("cluster-1", "region-1"), ("cluster-2", "region-2")]

    public enum Mode: String, CaseIterable, Sendable { case auto, named, weights }
    public enum Drill: String, CaseIterable, Sendable {
        case deleteGateway = "delete-gateway", stopIngress = "stop-ingress", failIngress = "fail-ingress"
    }

    public init(prefix: String = "bedge", binary: String) {
        lab = Lab(prefix: prefix, nodes: 1, stateDir: "/tmp/baton-edgelab-\(prefix)", binary: binary)
    }

    var prefix: String { lab.prefix }
    var serverURL: String { "http://\(Self.serverAddress):7000" }
    func ns(_ name: String) -> String { "\(prefix)-\(name)" }
    static func clusterAddress(_ i: Int) -> String { "\(lanPrefix).\(10 + i)" }
    func failFlag(_ cluster: String) -> String { lab.stateDir + "/\(cluster).fail" }

    public func up(mode: Mode, log: (String) -> Void) async throws {
        try Lab.checkPrerequisites()
        if !lab.existingNamespaces().isEmpty { throw LabError("a lab named \(prefix) is already up; run baton lab edge down --prefix \(prefix) first") }
        try FileManager.default.createDirectory(atPath: lab.stateDir + "/logs", withIntermediateDirectories: true)
        do {
            let hosts = [("server", "srv", Self.serverAddress), ("edge", "edg", Self.edgeAddress), ("client", "cli", Self.clientAddress)]
                + Self.clusters.indices.map { ("c\($0 + 1)", "c\($0 + 1)", Self.clusterAddress($0 + 1)) }
            try lab.ip((["lan"] + hosts.map(\.0)).map { "netns add \(ns($0))" })
            var lanCmds = ["link add br0 type bridge", "link set br0 up", "link set lo up"]
            for (name, port, _) in hosts {
                lanCmds += ["link add \(port) type veth peer name eth0 netns \(ns(name))", "link set \(port) master br0 up"]
            }
            try lab.ip(lanCmds, netns: ns("lan"))
            for (name, _, address) in hosts {
                try lab.ip(["link set lo up", "link set eth0 up", "address add \(address)/24 dev eth0"], netns: ns(name))
            }
            log("network: LAN \(Self.lanPrefix).0/24 in \(ns("lan")); server, edge, client and \(Self.clusters.count) cluster ingresses")
            let data = lab.stateDir + "/server"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            try lab.spawn("server", netns: ns("server"), [lab.binary, "server", "--data-dir", data, "--listen", "\(Self.serverAddress):7000"])
            let deadline = Date().addingTimeInterval(10)
            while !FileManager.default.fileExists(atPath: data + "/admin.token") {
                guard Date() < deadline else { throw LabError("baton server did not start; see \(lab.stateDir)/logs/server.log") }
                usleep(50_000)
            }
            for i in Self.clusters.indices { try startIngress(i) }
            try await apply(manifest(mode: mode, withoutHostname: nil))
            try lab.spawn("edge", netns: ns("edge"), [lab.binary, "edge", "--server", serverURL, "--token", try lab.token(),
                                                    "--listen", "\(Self.edgeAddress):80", "--region", "region-1",
                                                    "--labels", "app=edgegw", "--namespace", "edge"])
            log("baton edge on \(Self.edgeAddress):80 (region-1), Gateway bookinfo-edge (\(mode.rawValue)) for \(Self.hostname)")
        } catch {
            log("up failed: \(error); tearing down")
            down(log: { _ in })
            throw error
        }
    }

    public func down(log: (String) -> Void) { lab.down(log: log) }

    func startIngress(_ i: Int) throws {
        let (name, _) = Self.clusters[i]
        try lab.spawn("ingress-\(name)", netns: ns("c\(i + 1)"), [lab.binary, "lab", "ingress", "--name", name,
                                                                 "--listen", "\(Self.clusterAddress(i + 1)):80", "--fail-flag", failFlag(name)])
    }

    func manifest(mode: Mode, withoutHostname: String?) -> String {
        var docs: [String] = []
        for (i, (name, region)) in Self.clusters.enumerated() {
            let hostnames = name == withoutHostname ? "[reviews.example.com]" : "[\(Self.hostname)]"
            docs.append("""
                apiVersion: api.tsb.tetrate.io/v2
                kind: Cluster
                metadata: {name: \(name)}
                spec:
                  locality: {region: \(region)}
                  ingresses: [{address: \(Self.clusterAddress(i + 1)), port: 80, hostnames: \(hostnames)}]
                """)
        }
        let destination = switch mode {
        case .auto: "{}"
        case .named: "{clusters: [{name: cluster-1}, {name: cluster-2}]}"
        case .weights: "{clusters: [{name: cluster-1, weight: 50}, {name: cluster-2, weight: 50}]}"
        }
        docs.append("""
            apiVersion: gateway.tsb.tetrate.io/v2
            kind: Gateway
            metadata: {name: bookinfo-edge}
            spec:
              workloadSelector: {namespace: edge, labels: {app: edgegw}}
              http:
              - name: bookinfo
                port: 80
                hostname: \(Self.hostname)
                routing:
                  rules:
                  - route:
                      clusterDestination: \(destination)
            """)
        return docs.joined(separator: "\n---\n")
    }

    func apply(_ yaml: String) async throws {
        let path = lab.stateDir + "/edge-lab.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let token = try lab.token()
        let deadline = Date().addingTimeInterval(10)
        while true {
            do {
                _ = try Command.run("ip", ["netns", "exec", ns("server"), lab.binary, "apply", "-f", path, "--server", serverURL, "--token", token])
                return
            } catch {
                if Date() >= deadline { throw error }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// The Gateway's mode now, read back from the state directory.
    var mode: Mode {
        let text = (try? String(contentsOfFile: lab.stateDir + "/edge-lab.yaml", encoding: .utf8)) ?? ""
        if text.contains("weight: 50") { return .weights }
        return text.contains("{name: cluster-1}") ? .named : .auto
    }

    /// Runs a drill on `cluster`, or undoes it.
    public func drill(_ drill: Drill, cluster: String, restore: Bool) async throws -> String {
        guard let i = Self.clusters.firstIndex(where: { $0.0 == cluster }) else {
            throw LabError("--cluster: \"\(cluster)\" is not one of \(Self.clusters.map(\.0).joined(separator: ", "))")
        }
        switch drill {
        case .deleteGateway:
            try await apply(manifest(mode: mode, withoutHostname: restore ? nil : cluster))
            return restore ? "\(cluster)'s ingress publishes \(Self.hostname) again" : "\(cluster)'s ingress no longer publishes \(Self.hostname) (its Gateway is gone)"
        case .stopIngress:
            if restore {
                try startIngress(i)
                return "\(cluster)'s ingress started again"
            }
            guard let pid = lab.recordedPIDs()["ingress-\(cluster)"] else { throw LabError("no ingress process recorded for \(cluster)") }
            kill(pid, SIGKILL)
            _ = lab.waitGone(pid)
            return "\(cluster)'s ingress stopped (scaled to 0)"
        case .failIngress:
            if restore {
                try? FileManager.default.removeItem(atPath: failFlag(cluster))
                return "\(cluster)'s upstream service is back"
            }
            FileManager.default.createFile(atPath: failFlag(cluster), contents: Data())
            return "\(cluster)'s ingress answers 503 (its upstream service failed)"
        }
    }

    /// Sends `count` requests from the client namespace through the edge; returns how many each
    /// answer got (the cluster's name for a 200, else the status and body).
    public func traffic(count: Int) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for _ in 0..<count {
            let out = (try? Command.run("ip", ["netns", "exec", ns("client"), lab.binary, "lab", "ingress", "--get",
                                              "http://\(Self.edgeAddress)/productpage", "--host", Self.hostname])) ?? "error"
            counts[out.trimmingCharacters(in: .whitespacesAndNewlines), default: 0] += 1
        }
        return counts
    }
}
