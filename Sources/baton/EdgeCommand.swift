import ArgumentParser
import BatonAPI
import BatonClient
import BatonCore
import BatonEdge
import Foundation
import Logging
import Metrics
import NIOPosix
import Prometheus
import ServiceLifecycle

/// `baton edge`: the edge gateway. Serves the Gateways whose `workloadSelector` matches
/// `--namespace` and `--labels`, sending each hostname's traffic to the clusters' ingresses,
/// local region first.
struct EdgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edge",
        abstract: "Run an edge gateway: an HTTP/1.1 proxy that sends each Gateway hostname's traffic to workload clusters, local region first.",
        discussion: """
            Follows Gateways and Clusters through watches; if the server goes away it keeps serving the last state. \
            Passive outlier detection and active HTTP checks are both on. Every request gets an access log line on \
            standard output naming the cluster that served it; SIGTERM drains in-flight requests.
            """)

    @OptionGroup var client: ClientOptions
    @Option(help: "HOST:PORT to accept client connections on.") var listen: String = "0.0.0.0:8080"
    @Option(help: "This edge's region: clusters with this spec.locality.region take traffic first.") var region: String
    @Option(help: "This edge's workload labels, as k=v,k2=v2: a Gateway's workloadSelector.labels must all match.") var labels: String?
    @Option(name: .shortAndLong, help: "This edge's workload namespace: a Gateway's workloadSelector.namespace must match.")
    var namespace: String = "edge"
    @Option(name: .customLong("event-loops"), help: "Event loops (threads) serving connections.") var eventLoops: Int = 1
    @Option(name: .customLong("access-log"), help: "Where access log lines go: - (standard output), off, or a file to append to.")
    var accessLog: String = "-"
    @Option(name: .customLong("metrics"), help: "HOST:PORT serving Prometheus /metrics and /healthz (default: none).")
    var metricsListen: String?
    @Option(name: .customLong("request-head-timeout"), help: "Seconds a client has to send a whole request head (slow clients are cut off).")
    var requestHeadTimeout: Double = 10
    @Option(name: .customLong("response-timeout"), help: "Seconds an ingress has to send a response head after the request.")
    var responseTimeout: Double = 15
    @Option(name: .customLong("connect-timeout"), help: "Seconds to connect to an ingress.") var connectTimeout: Double = 0.5
    @Option(name: .customLong("idle-timeout"),
            help: "Seconds a streaming request body or response may go without a byte moving either way before it is cut.")
    var idleTimeout: Double = 60
    @Option(name: .customLong("max-header-bytes"), help: "Request heads over this size get 431.") var maxHeaderBytes: Int = 32 * 1024
    @Option(name: .customLong("health-check-interval"), help: "Seconds between active checks of each ingress (0: active checks off).")
    var healthCheckInterval: Double = 0.3
    @Option(name: .customLong("health-check-path"), help: "The path active checks GET.") var healthCheckPath: String = "/"
    @Option(name: .customLong("base-ejection-time"), help: "Seconds an ingress stays ejected the first time (multiplied on repeats).")
    var baseEjectionTime: Double = 5
    @Option(name: .customLong("max-ejection-percent"), help: "The largest share of ingresses outlier detection may eject at once.")
    var maxEjectionPercent: Int = 100
    @Option(name: .customLong("drain-timeout"), help: "Seconds SIGTERM waits for in-flight requests.") var drainTimeout: Double = 30
    @Option(name: .customLong("config"),
            help: "Serve the Gateways and Clusters in this YAML file instead of following a server (no watches, no events).")
    var configFile: String?
    @Option(name: .customLong("log-level")) var logLevel: String = "info"

    static func seconds(_ v: Double, _ flag: String, allowZero: Bool = false) throws -> Duration {
        guard v.isFinite, allowZero ? v >= 0 : v > 0 else {
            throw ValidationError("\(flag): \(v) must be a \(allowZero ? "non-negative" : "positive") number of seconds")
        }
        return .milliseconds(Int64((v * 1000).rounded()))
    }

    func run() async throws {
        bootstrapLogging(logLevel)
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let (host, port) = try hostAndPort(listen, flag: "--listen")
        guard !region.isEmpty else { throw ValidationError("--region must not be empty") }
        guard (1...64).contains(eventLoops) else { throw ValidationError("--event-loops: \(eventLoops) must be between 1 and 64") }
        var labelMap: [String: String] = [:]
        for term in (labels ?? "").split(separator: ",") {
            let kv = term.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, Admission.validateLabel(key: kv[0], value: kv[1], field: "--labels").isEmpty else {
                throw ValidationError("--labels: \"\(term)\" is not a valid k=v label")
            }
            labelMap[kv[0]] = kv[1]
        }
        var settings = EdgeSettings(host: host, port: port, region: region, namespace: namespace, labels: labelMap)
        settings.eventLoops = eventLoops
        settings.requestHeadTimeout = try Self.seconds(requestHeadTimeout, "--request-head-timeout")
        settings.responseTimeout = try Self.seconds(responseTimeout, "--response-timeout")
        settings.connectTimeout = try Self.seconds(connectTimeout, "--connect-timeout")
        settings.idleTimeout = try Self.seconds(idleTimeout, "--idle-timeout")
        settings.drainTimeout = try Self.seconds(drainTimeout, "--drain-timeout", allowZero: true)
        guard maxHeaderBytes >= 1024 else { throw ValidationError("--max-header-bytes: \(maxHeaderBytes) must be at least 1024") }
        settings.maxHeaderBytes = maxHeaderBytes
        let interval = try Self.seconds(healthCheckInterval, "--health-check-interval", allowZero: true)
        settings.activeChecks = interval > .zero
        if settings.activeChecks {
            settings.activeCheck.interval = interval
            settings.activeCheck.timeout = min(settings.activeCheck.timeout, interval * 0.8)
        }
        guard healthCheckPath.hasPrefix("/") else { throw ValidationError("--health-check-path: \"\(healthCheckPath)\" must start with /") }
        settings.activeCheck.path = healthCheckPath
        settings.outlier.baseEjectionTime = try Self.seconds(baseEjectionTime, "--base-ejection-time")
        settings.outlier.maxEjectionTime = max(settings.outlier.maxEjectionTime, settings.outlier.baseEjectionTime)
        settings.outlier.maxEjectionPercent = maxEjectionPercent
        do {
            try settings.outlier.validate()
            try settings.activeCheck.validate()
        } catch {
            throw ValidationError(error.message)
        }
        switch accessLog {
        case "off": settings.accessLog = nil
        case "-": settings.accessLog = AccessLog(fileDescriptor: 1)
        default:
            let fd = open(accessLog, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            guard fd >= 0 else { throw ValidationError("--access-log: cannot open \(accessLog) for appending") }
            settings.accessLog = AccessLog(fileDescriptor: fd)
        }

        let logger = Logger(label: "baton.edge")
        let api = client.cli.connection.client
        let events = EdgeEventWriter(client: api, namespace: namespace, component: "baton-edge", logger: logger)
        let state = EdgeState(settings: settings, logger: logger, notices: { events.post($0) })
        let proxy = EdgeProxyServer(state: state)
        let bound = try await proxy.bind()
        logger.notice("edge listening on \(host):\(bound), region \(region), serving Gateways for namespace \(namespace) labels \(labelMap)")
        if let metricsListen {
            let (mhost, mport) = try hostAndPort(metricsListen, flag: "--metrics")
            let channel = try await EdgeAdminServer.bind(host: mhost, port: mport, group: MultiThreadedEventLoopGroup.singleton) {
                String(decoding: registry.emitToBuffer(), as: UTF8.self)
            }
            logger.notice("metrics on \(channel.localAddress?.description ?? metricsListen)")
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: proxy)]
        if let configFile {
            let docs: [JSONValue]
            do {
                docs = try Manifest.parseDocuments(try String(contentsOfFile: configFile, encoding: .utf8))
            } catch {
                throw ValidationError("--config \(configFile): \(error)")
            }
            let objects = try docs.map { doc -> Resource in
                do { return try Resource(json: doc) } catch { throw ValidationError("--config \(configFile): \(error)") }
            }
            let (table, gateways, clusters) = EdgeConfigFollower.table(gateways: objects.filter { $0.kind == "Gateway" },
                                                                      clusters: objects.filter { $0.kind == "Cluster" },
                                                                      settings: settings)
            state.install(table)
            logger.notice("configuration from \(configFile): \(gateways) gateways, \(clusters) clusters")
        } else {
            services.append(.init(service: EdgeConfigFollower(client: api, state: state, logger: logger, notices: { events.post($0) },
                                                               status: { events.postStatus($0, $1) })))
            services.append(.init(service: events))
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
