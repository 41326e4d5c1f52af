import ArgumentParser
import AsyncHTTPClient
import BatonAPI
import BatonEtcd
import BatonAgent
import BatonDataplane
import BatonClient
import BatonServer
import BatonStore
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

@main
struct Baton: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton",
        abstract: "Keeps network identities alive when the machine serving them dies.",
        version: "0.1.0",
        subcommands: [
            Server.self, Agent.self, Apply.self, Get.self, Delete.self, Describe.self, Label.self, Events.self, EgressGatewayCommands.self,
            Token.self, OpenAPI.self, Bench.self, LabCommand.self, VRRPCommand.self, EdgeCommand.self,
        ])
}

/// `--server`, `--token` and `--data-dir`, shared by every client command.
struct ClientOptions: ParsableArguments {
    @Option(help: "The API server URL (default: $BATON_SERVER, else \(Connection.defaultServer)).")
    var server: String?
    @Option(help: "Bearer token (default: $BATON_TOKEN, else DATA_DIR/admin.token).")
    var token: String?
    @Option(name: .customLong("data-dir"), help: "Where to find admin.token (default: $BATON_DATA_DIR, else \(Connection.defaultDataDir)).")
    var dataDir: String?

    var cli: CLI { CLI(connection: Connection(server: server, token: token, dataDir: dataDir)) }
}

func finish(_ code: Int32) throws {
    if code != 0 { throw ExitCode(code) }
}

struct Server: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the API server on the embedded store, or on etcd with --store.",
        discussion: """
            Several servers may share one etcd cluster (--store etcd://h1:2379,h2:2379,h3:2379): every one serves \
            the API and accepts every token; one at a time, under an etcd lease, runs the controllers.
            """)

    @Option(name: .customLong("data-dir"), help: "Directory for the store (sqlite) and admin.token.")
    var dataDir: String = ProcessInfo.processInfo.environment["BATON_DATA_DIR"] ?? Connection.defaultDataDir
    @Option(help: ArgumentHelp("sqlite (the embedded store in --data-dir) or etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (etcd v3 members; keys under /PREFIX/, default /baton/).",
                               valueName: "store"))
    var store: String = "sqlite"
    @Option(help: "HOST:PORT to listen on.")
    var listen: String = "127.0.0.1:7070"
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"
    @Option(help: "Helm-style values.yaml with egressgateway's feature.* keys (tunnelMonitorPeriod, tunnelUpdatePeriod, eipEvictionTimeout...).")
    var config: String?

    func run() async throws {
        var settings = FeatureSettings()
        if let config {
            let text: String
            do { text = try String(contentsOfFile: config, encoding: .utf8) } catch {
                throw ValidationError("cannot read --config \(config): \(error.localizedDescription)")
            }
            do { settings = try FeatureSettings.parse(yaml: text) } catch {
                throw ValidationError("\(config): \(error.message)")
            }
        }
        bootstrapLogging(logLevel)
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let (host, port) = try hostAndPort(listen, flag: "--listen")
        let location: StoreLocation
        do { location = try StoreLocation.parse(store) } catch { throw ValidationError(error.message) }
        try await BatonServerMain.run(options: ServerOptions(dataDir: dataDir, host: host, port: port, settings: settings, store: location),
                                      metrics: registry, logger: Logger(label: "baton.server"))
    }
}

struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or update objects from YAML or JSON manifests.",
        discussion: "Every document is checked by the server first; if any is refused, nothing is applied.")
    @OptionGroup var client: ClientOptions
    @Option(name: .shortAndLong, help: "A file, a directory of .yaml/.yml/.json files, or - for stdin (repeatable).")
    var filename: [String] = []
    @Option(name: .shortAndLong, help: "Namespace for namespaced objects that name none.")
    var namespace: String?
    @Flag(name: .customLong("dry-run"), help: "Validate on the server and store nothing.")
    var dryRun = false

    func validate() throws {
        if filename.isEmpty { throw ValidationError("must give -f FILE|DIR|-") }
    }

    func run() async throws {
        try finish(await client.cli.apply(paths: filename, namespace: namespace, dryRun: dryRun))
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Display one or many objects.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "Kind, plural or short name (egw, egp, egcp, egt, sr, gw, ipf, no, ev...).")
    var kind: String
    @Argument(help: "Names (default: all).")
    var names: [String] = []
    @Option(name: .shortAndLong) var namespace: String?
    @Flag(name: [.customShort("A"), .customLong("all-namespaces")]) var allNamespaces = false
    @Option(name: .shortAndLong, help: "wide, yaml, json or name.") var output: String?
    @Option(name: [.customShort("l"), .customLong("selector")], help: "Label selector (k=v,k!=v,k in (a,b),k,!k).")
    var selector: String?
    @Flag(name: [.customShort("w"), .customLong("watch")], help: "After listing, print a row per change.")
    var watch = false

    func run() async throws {
        guard let format = CLI.OutputFormat(rawValue: output ?? "") else {
            throw ValidationError("--output must be one of wide, yaml, json, name, not \"\(output ?? "")\"")
        }
        try finish(await client.cli.get(kindName: kind, names: names, namespace: namespace, allNamespaces: allNamespaces,
                                      output: format, selector: selector, watch: watch))
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete objects by kind and name, or by manifest.")
    @OptionGroup var client: ClientOptions
    @Argument var kind: String?
    @Argument var names: [String] = []
    @Option(name: .shortAndLong) var filename: [String] = []
    @Option(name: .shortAndLong) var namespace: String?

    func run() async throws {
        try finish(await client.cli.delete(kindName: kind, names: names, files: filename, namespace: namespace))
    }
}

struct Describe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show an object's spec, status and recent events.")
    @OptionGroup var client: ClientOptions
    @Argument var kind: String
    @Argument var name: String
    @Option(name: .shortAndLong) var namespace: String?

    func run() async throws {
        try finish(await client.cli.describe(kindName: kind, name: name, namespace: namespace))
    }
}

struct Label: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set or remove labels: baton label node NAME k=v k2-")
    @OptionGroup var client: ClientOptions
    @Argument var kind: String
    @Argument var name: String
    @Argument(help: "KEY=VALUE to set, KEY- to remove.") var changes: [String] = []
    @Option(name: .shortAndLong) var namespace: String?
    @Flag(help: "Allow changing a label that already has a value.") var overwrite = false

    func run() async throws {
        try finish(await client.cli.label(kindName: kind, name: name, changes: changes, namespace: namespace, overwrite: overwrite))
    }
}

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List events, oldest first: a failover's timeline.")
    @OptionGroup var client: ClientOptions
    @Option(name: .shortAndLong, help: "Only this namespace (events of cluster-scoped objects are in \"default\").")
    var namespace: String?
    @Flag(name: [.customShort("A"), .customLong("all-namespaces")]) var allNamespaces = false
    @Option(name: .customLong("for"), help: "Only events about KIND/NAME.") var forObject: String?
    @Flag(name: [.customShort("w"), .customLong("watch")]) var watch = false

    func run() async throws {
        try finish(await client.cli.events(namespace: namespace, allNamespaces: allNamespaces || namespace == nil,
                                         forObject: forObject, watch: watch))
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage agent tokens.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a token for a node's agent: it may write only its own Node and EgressTunnel, its own entry of IPFailover statuses, and events, and read the rest.")
        @OptionGroup var client: ClientOptions
        @Argument var node: String

        func run() async throws {
            try finish(await client.cli.createNodeToken(node: node))
        }
    }
}

struct EgressGatewayCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "egw", abstract: "Act on EgressGateways, as egressgateway's egctl does.",
        subcommands: [Move.self], aliases: ["egressgateway"])

    struct Move: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move one EIP of an EgressGateway to another node by hand (as egctl vip move).",
            discussion: """
                Every policy using the EIP, and the other address of a dual-stack pair, moves with it. The node \
                must be Ready and match the gateway's nodeSelector. Baton never moves an EIP back by itself; \
                this is how an EIP returns to a node that has recovered.
                """)
        @OptionGroup var client: ClientOptions
        @Argument(help: "The EgressGateway.") var gateway: String
        @Option(help: ArgumentHelp("The EIP to move (IPv4 or IPv6), as the policies' status shows it.", valueName: "ip"))
        var eip: String
        @Option(help: ArgumentHelp("The node to move it to.", valueName: "node")) var to: String

        func run() async throws {
            try finish(await client.cli.moveEIP(gateway: gateway, eip: eip, to: to))
        }
    }
}

struct OpenAPI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "openapi", abstract: "Print the API's OpenAPI document (the server serves it at /openapi.json).")

    func run() throws {
        print(OpenAPIDocument.document.jsonString(pretty: true))
    }
}

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmarks that print Baton's figures beside a real peer's.",
                                                    subcommands: [API.self, Egress.self, Store.self])

    struct API: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "api",
            abstract: "Apply, get and list throughput and p99, and change-to-watchers latency: Baton's API on SQLite beside etcd.")
        @Option(help: "How many objects.") var objects = 10_000
        @Option(help: "How many concurrent watchers.") var watchers = 100
        @Option(help: "How many changes to time through the watchers.") var changes = 100
        @Option(help: "Concurrent client requests.") var concurrency = 16
        @Option(help: "The etcd binary (default: etcd on PATH; none to skip).") var etcd: String?

        func run() async throws {
            var bench = APIBenchmark(batonBinary: CommandLine.executablePath, etcdBinary: etcd == "none" ? nil : (etcd ?? findOnPath("etcd")))
            bench.objects = objects
            bench.watchers = watchers
            bench.changes = changes
            bench.concurrency = concurrency
            try await bench.run { print($0) }
        }
    }

    struct Egress: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "egress",
            abstract: "Simulated agents (--dataplane none, in this process) against one server: heartbeat rate and CPU beside etcd, re-placement and end-to-end failover times.")
        @Option(help: "How many simulated agents.") var agents = 1000
        @Option(help: "How many EgressGateways (each selects agents/gateways nodes).") var gateways = 50
        @Option(help: "How many EIPs (one policy each), spread evenly over the gateways.") var eips = 10_000
        @Option(help: "How many agents to stop, one after another.") var failovers = 3
        @Option(help: "Seconds of steady state to measure heartbeats and CPU over.") var seconds = 10.0
        @Option(help: "A values.yaml with feature.* periods (default: Baton's defaults).") var config: String?
        @Option(help: "The etcd binary (default: etcd on PATH; none to skip).") var etcd: String?

        func run() async throws {
            var bench = EgressBenchmark(batonBinary: CommandLine.executablePath, etcdBinary: etcd == "none" ? nil : (etcd ?? findOnPath("etcd")))
            bench.agents = agents
            bench.gateways = gateways
            bench.eips = eips
            bench.failovers = failovers
            bench.steadySeconds = seconds
            if let config {
                let text = try String(contentsOfFile: config, encoding: .utf8)
                do { bench.settings = try FeatureSettings.parse(yaml: text) } catch { throw ValidationError("\(config): \(error.message)") }
            }
            try await bench.run { print($0) }
        }
    }
}

extension Bench {
    struct Store: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "store",
            abstract: "The stores themselves, in this process: create throughput and p99, heartbeat throughput and p99, SQLite beside etcd.")
        @Option(help: "How many objects to create.") var objects = 2_000
        @Option(help: "Concurrent writers of objects.") var concurrency = 16
        @Option(help: "How many nodes heartbeat.") var nodes = 1_000
        @Option(help: "Heartbeats in flight at once.") var inFlight = 256
        @Option(help: "Seconds of heartbeats to measure.") var seconds = 5.0
        @Option(help: "The etcd binary (default: etcd on PATH; none to skip).") var etcd: String?

        func run() async throws {
            var bench = StoreBenchmark()
            bench.objects = objects
            bench.concurrency = concurrency
            bench.nodes = nodes
            bench.heartbeatConcurrency = inFlight
            bench.heartbeatSeconds = seconds
            let out: @Sendable (String) -> Void = { print($0) }
            var results: [StoreBenchmark.Result] = []

            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("baton-bench-store-\(UUID().uuidString.prefix(8))").path
            BenchProcess.removeOnInterrupt(dir)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let sqlite = try SQLiteStore(directory: dir)
            let sqliteHeartbeats = try SQLiteHeartbeatLog(directory: dir)
            do {
                results.append(try await bench.measure(name: "SQLite", store: sqlite, heartbeats: sqliteHeartbeats, print: out))
            } catch {
                sqliteHeartbeats.close()
                await sqlite.close()
                throw error
            }
            sqliteHeartbeats.close()
            await sqlite.close()

            if let binary = etcd == "none" ? nil : (etcd ?? findOnPath("etcd")) {
                let http = HTTPClient(eventLoopGroupProvider: .singleton)
                let instance = try await EtcdInstance(binary: binary, http: http)
                let version = await instance.version(http)
                try? await http.shutdown()
                let client = try EtcdClient(endpoints: [instance.base])
                do {
                    let store = try EtcdStore(client: client)
                    results.append(try await bench.measure(name: "etcd \(version)", store: store,
                                                           heartbeats: EtcdHeartbeatLog(client: client), print: out))
                    await store.close()
                } catch {
                    await client.shutdown()
                    instance.stop()
                    throw error
                }
                await client.shutdown()
                instance.stop()
            } else {
                print("etcd not run (--etcd none, or no etcd on PATH: apt-get install etcd-server)")
            }
            print("")
            print(StoreBenchmark.table(results))
        }
    }
}

func findOnPath(_ name: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
        let p = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}

extension CommandLine {
    /// This executable's path, to start it again as a server.
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? arguments[0]
    }
}

struct Agent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a node's agent: register the node, heartbeat, announce the EIPs placed on it, and run the IPFailovers and StaticRoutes that select it.",
        discussion: "Every IPFailover whose nodeSelector matches this node's Node (its labels, followed as they change) runs here as OpenShift's ipfailover pod would run it, with VRRP (root). With --dataplane none the agent decides and logs what it would run (and appends it to --dataplane-log) without touching the network.")
    @OptionGroup var client: ClientOptions
    @Option(help: "This node's name (its Node and EgressTunnel are named after it).") var node: String
    @Option(help: "Labels to set on the Node, as k=v,k2=v2.") var labels: String?
    @Option(name: .customLong("address"), help: "This node's IP address (repeatable): its Node's InternalIP, used by useNodeIP.")
    var addresses: [String] = []
    @Option(help: "linux (addresses, ARP/NDP, VXLAN, nftables; root) or none (touches no network).")
    var dataplane: String = "linux"
    @Option(help: "The same values.yaml as the server's --config (tunnelUpdatePeriod, eipEvictionTimeout).")
    var config: String?
    @Option(name: .customLong("clock-skew"),
            help: "Seconds added to the wall-clock time this agent reports (simulates a machine whose clock is off; write negative values as --clock-skew=-600).")
    var clockSkew: Double = 0
    @Option(name: .customLong("dataplane-log"),
            help: "With --dataplane none: append each announce and withdraw, each IPFailover it would start or stop, and each static route it would replace or delete, to this file, stamped with CLOCK_MONOTONIC in ns.")
    var dataplaneLog: String?
    @Option(help: "The interface towards the LAN: EIPs are bound on it and the VXLAN tunnel rides on it (--dataplane linux).")
    var interface: String = "eth0"
    @Option(name: .customLong("cluster-cidr"),
            help: "A cluster network (pod or service CIDR), repeatable: traffic to it is never egress traffic (--dataplane linux).")
    var clusterCIDRs: [String] = []
    @Option(name: .customLong("vxlan-name"), help: "The VXLAN device (egressgateway's default).") var vxlanName = "egress.vxlan"
    @Option(name: .customLong("vxlan-id"), help: "The VXLAN VNI (egressgateway's default).") var vxlanID = 100
    @Option(name: .customLong("vxlan-port"), help: "The VXLAN UDP port (egressgateway's default).") var vxlanPort = 7789
    @Flag(help: "On exit, remove everything the data plane added (nftables table, rules, routes, tunnel, EIPs, static routes). Without it the data plane stays as it is.")
    var cleanup = false
    @Option(name: .customLong("log-level")) var logLevel: String = "info"

    func run() async throws {
        bootstrapLogging(logLevel)
        for c in clusterCIDRs where IPSyntax.poolEntry(c) == nil {
            throw ValidationError("--cluster-cidr: \"\(c)\" is not a CIDR")
        }
        guard (1...16_777_215).contains(vxlanID) else { throw ValidationError("--vxlan-id: \(vxlanID) is not a VNI (1-16777215)") }
        guard (1...65535).contains(vxlanPort) else { throw ValidationError("--vxlan-port: \(vxlanPort) is not a UDP port") }
        guard !interface.isEmpty, interface.count <= 15 else { throw ValidationError("--interface: \"\(interface)\" is not an interface name") }
        var settings = FeatureSettings()
        if let config {
            let text = try String(contentsOfFile: config, encoding: .utf8)
            do { settings = try FeatureSettings.parse(yaml: text) } catch { throw ValidationError("\(config): \(error.message)") }
        }
        var labelMap: [String: String] = [:]
        for term in (labels ?? "").split(separator: ",") {
            let kv = term.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, Admission.validateLabel(key: kv[0], value: kv[1], field: "--labels").isEmpty else {
                throw ValidationError("--labels: \"\(term)\" is not a valid k=v label")
            }
            labelMap[kv[0]] = kv[1]
        }
        for a in addresses where IPAddress(a) == nil { throw ValidationError("--address: \"\(a)\" is not an IP address") }
        if let e = Admission.validateName(node, field: "--node").first { throw ValidationError(e.description) }
        let logger = Logger(label: "baton.agent")
        let plane: any EgressDataplane
        let nodeAddresses = addresses.compactMap(IPAddress.init)
        let vrrp: any IPFailoverSpeakerFactory
        var staticRoutePlane: (any StaticRouteDataplane)?
        switch dataplane {
        case "none":
            let recording = try RecordingDataplane(logger: logger, journal: dataplaneLog)
            plane = recording
            vrrp = RecordingIPFailoverSpeakers(addresses: nodeAddresses, journal: { recording.record($0, $1) })
            staticRoutePlane = RecordingStaticRoutes(logger: Logger(label: "baton.agent.staticroute"), journal: { recording.record($0, $1) })
        case "linux":
            vrrp = LinuxIPFailoverSpeakers(addresses: nodeAddresses)
            var config = EgressDatapathConfig(parent: interface)
            config.vxlanName = vxlanName
            config.vxlanID = vxlanID
            config.vxlanPort = vxlanPort
            plane = LinuxDataplaneDriver(node: node, config: config, clusterCIDRs: clusterCIDRs, logger: logger)
        default: throw ValidationError("--dataplane must be linux or none, not \"\(dataplane)\"")
        }
        guard clockSkew.isFinite else { throw ValidationError("--clock-skew: \(clockSkew) is not a number of seconds") }
        if dataplaneLog != nil && dataplane != "none" { throw ValidationError("--dataplane-log needs --dataplane none") }
        var options = EgressAgent.Options(node: node, labels: labelMap, addresses: addresses, settings: settings)
        options.clockSkew = .milliseconds(Int64((clockSkew * 1000).rounded()))
        options.interface = interface
        options.cleanup = cleanup
        let agent = try EgressAgent(client: client.cli.connection.client, options: options, dataplane: plane, logger: logger)
        let ipFailovers = IPFailoverAgent(client: client.cli.connection.client, node: node, speakers: vrrp,
                                          logger: Logger(label: "baton.agent.vrrp"))
        // Static routes: the server's address and the cluster's networks keep their paths when a
        // default route goes in.
        var srOptions = StaticRouteAgent.Options(node: node)
        srOptions.cleanup = cleanup
        let connection = client.cli.connection
        if let host = URLComponents(string: connection.server)?.host,
           let server = IPAddress(host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))) {
            srOptions.pinned.append(IPPrefix(address: server, length: server.bitWidth))
        }
        srOptions.pinned += clusterCIDRs.compactMap { IPPrefix($0) }
        let staticRoutes = StaticRouteAgent(client: connection.client, options: srOptions, dataplane: staticRoutePlane,
                                            logger: Logger(label: "baton.agent.staticroute"))
        let services: [any Service] = [agent, ipFailovers, staticRoutes]
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// A `HOST:PORT` flag's value (`[v6]:PORT` too), or a ValidationError naming the flag.
func hostAndPort(_ text: String, flag: String) throws -> (host: String, port: Int) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
        throw ValidationError("\(flag) must be HOST:PORT, not \"\(text)\"")
    }
    var host = String(text[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return (host, port)
}

/// Logs to standard error at `--log-level` (info when the name is not a level): the one
/// logging set-up of every long-running command.
func bootstrapLogging(_ logLevel: String) {
    let level = Logger.Level(rawValue: logLevel) ?? .info
    LoggingSystem.bootstrap { label in
        var h = StreamLogHandler.standardError(label: label)
        h.logLevel = level
        return h
    }
}
