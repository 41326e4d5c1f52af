import BatonAPI
import BatonCore
import BatonEtcd
import BatonStore
import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle

/// Options of `baton server`.
public struct ServerOptions: Sendable {
    public var dataDir: String
    public var host: String
    public var port: Int
    /// Egress failover timings and allocation ranges (`--config values.yaml`).
    public var settings: FeatureSettings
    /// Where the objects live (`--store`): the embedded SQLite store (default) or etcd.
    public var store: StoreLocation
    /// How often the leader compacts etcd's history (etcd store only).
    public var etcdCompactionInterval: Duration = .seconds(60)

    public init(dataDir: String, host: String, port: Int, settings: FeatureSettings = FeatureSettings(),
                store: StoreLocation = .sqlite) {
        self.dataDir = dataDir
        self.host = host
        self.port = port
        self.settings = settings
        self.store = store
    }
}

/// `--store`: `sqlite` (the embedded store in `--data-dir`, the default) or
/// `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]` (etcd v3 members; keys under `/PREFIX/`,
/// `/baton/` by default).
public enum StoreLocation: Sendable, Hashable, CustomStringConvertible {
    case sqlite
    case etcd(endpoints: [String], prefix: String)

    /// Parses `--store`; the error names the value and what was expected.
    public static func parse(_ text: String) throws(APIError) -> StoreLocation {
        let usage = "--store must be sqlite or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]"
        if text == "sqlite" { return .sqlite }
        guard text.hasPrefix("etcd://") else { throw APIError.badRequest("\(usage), not \"\(text)\"") }
        let rest = text.dropFirst("etcd://".count)
        let hosts = rest.prefix { $0 != "/" }
        var prefix = String(rest.dropFirst(hosts.count))
        while prefix.hasSuffix("/") { prefix.removeLast() }
        prefix = prefix.isEmpty ? "/baton/" : prefix + "/"
        var endpoints: [String] = []
        for host in hosts.split(separator: ",", omittingEmptySubsequences: false) {
            guard let colon = host.lastIndex(of: ":"), !host[..<colon].isEmpty,
                  let port = Int(host[host.index(after: colon)...]), (1...65535).contains(port) else {
                throw APIError.badRequest("\(usage): \"\(host)\" in \"\(text)\" is not HOST:PORT")
            }
            endpoints.append("http://\(host)")
        }
        return .etcd(endpoints: endpoints, prefix: prefix)
    }

    public var description: String {
        switch self {
        case .sqlite: "sqlite"
        case .etcd(let endpoints, let prefix):
            "etcd://" + endpoints.map { String($0.dropFirst("http://".count)) }.joined(separator: ",") + (prefix == "/baton/" ? "" : String(prefix.dropLast()))
        }
    }
}

/// Runs `baton server`: opens the store, ensures the admin token, serves the API until
/// SIGTERM/SIGINT, then closes the store.
public enum BatonServerMain {
    public static func run(options: ServerOptions, metrics: PrometheusCollectorRegistry, logger: Logger) async throws {
        try FileManager.default.createDirectory(atPath: options.dataDir, withIntermediateDirectories: true)
        let backend = try await Backend.open(options, logger: logger)
        do {
            try await serve(options: options, backend: backend, metrics: metrics, logger: logger)
        } catch {
            await backend.close()
            throw error
        }
        await backend.close()
    }

    /// The controller's probe of a silent node (`feature.unreachableNodeProbe`).
    static func probe(_ settings: FeatureSettings) -> (@Sendable (String) async -> Bool)? {
        guard settings.unreachableNodeProbe else { return nil }
        let prober = ReachabilityProber()
        return { address in await prober.reachable(address) }
    }

    static func serve(options: ServerOptions, backend: Backend, metrics: PrometheusCollectorRegistry, logger: Logger) async throws {
        let store = backend.store
        let heartbeats = backend.heartbeats
        let adminToken = backend.adminToken
        var api = APIServer(store: store, tokens: TokenAuthority(adminToken: adminToken, store: store),
                            metrics: metrics, logger: logger, heartbeats: heartbeats,
                            ready: { (try? await store.currentRevision()) != nil })
        api.holdEIPsWithoutQuorum = options.settings.holdEIPsWithoutQuorum
        let tokenPath = (options.dataDir as NSString).appendingPathComponent("admin.token")
        let app = api.application(host: options.host, port: options.port) { channel in
            logger.notice("baton server listening", metadata: [
                "address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "dataDir": "\(options.dataDir)",
                "store": "\(options.store)", "adminToken": "\(tokenPath)",
                "eipEvictionTimeout": "\(options.settings.eipEvictionTimeout)s",
            ])
        }
        // Exactly one replica sharing this store runs the controllers, under a lease in the store.
        let controllerLogger = Logger(label: "baton.controller")
        let events = EventRecorder(store: store, component: "egress-controller", logger: controllerLogger)
        let settings = options.settings
        let leaderWork = backend.leaderWork
        let election = LeaderElection(
            lock: backend.lock,
            logger: logger,
            whileLeader: {
                await withTaskGroup(of: Void.self) { group in
                    // Store upkeep the leader does (etcd: compaction), beside the controllers.
                    if let leaderWork { group.addTask { await leaderWork() } }
                    group.addTask {
                        // A store hiccup restarts the controller (it lists again); it must not end the server.
                        while !Task.isCancelled {
                            do {
                                try await EgressController(store: store, heartbeats: heartbeats, settings: settings, clock: MonotonicClock(),
                                                           logger: controllerLogger, events: events, probe: probe(settings)).run()
                                return
                            } catch is CancellationError {
                                return
                            } catch {
                                controllerLogger.error("egress controller failed; restarting", metadata: ["error": "\(error)"])
                                try? await Task.sleep(for: .milliseconds(200))
                            }
                        }
                    }
                    // The controller returns only when cancelled; then the upkeep stops too.
                    _ = await group.next()
                    group.cancelAll()
                }
            })
        // Services stop in reverse order: the lease is released first (a standby takes over at
        // once), then the store closes, which ends every open watch, so the HTTP server can drain
        // instead of waiting on streams that never end.
        var services: [any Service] = [app, StoreCloser(close: backend.closeStore), election]
        if let upkeep = backend.upkeep { services.append(Upkeep(body: upkeep)) }
        let group = ServiceGroup(configuration: .init(services: services,
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// What `baton server` runs on: the store, the heartbeat log, the leader lease and the admin
/// token, from SQLite files in the data dir or from etcd.
struct Backend: Sendable {
    var store: any ResourceStore
    var heartbeats: any HeartbeatLog
    var lock: any LeaseLock
    var adminToken: String
    /// Ends the store's watches (graceful shutdown begins).
    var closeStore: @Sendable () async -> Void
    /// Closes everything (after the services stopped).
    var close: @Sendable () async -> Void
    /// Runs while this replica leads, beside the controllers, until cancelled.
    var leaderWork: (@Sendable () async -> Void)?
    /// Runs on every replica until the server stops (etcd: keeping the member count current).
    var upkeep: (@Sendable () async -> Void)? = nil

    static func open(_ options: ServerOptions, logger: Logger) async throws -> Backend {
        switch options.store {
        case .sqlite:
            let store = try SQLiteStore(directory: options.dataDir, logger: logger)
            let heartbeats: SQLiteHeartbeatLog
            let adminToken: String
            do {
                heartbeats = try SQLiteHeartbeatLog(directory: options.dataDir)
                adminToken = try TokenAuthority.loadOrCreateAdminToken(dataDir: options.dataDir)
            } catch {
                await store.close()
                throw error
            }
            return Backend(store: store, heartbeats: heartbeats, lock: StoreLeaseLock(store: store, name: "baton-controller"),
                           adminToken: adminToken, closeStore: { await store.close() },
                           close: { heartbeats.close(); await store.close() }, leaderWork: nil)

        case .etcd(let endpoints, let prefix):
            let client = try EtcdClient(endpoints: endpoints, logger: logger)
            var config = EtcdStore.Configuration()
            config.prefix = prefix
            let store: EtcdStore
            let adminToken: String
            do {
                store = try EtcdStore(client: client, configuration: config, logger: logger)
                // The member count makes a lost quorum provable (EtcdError.Code.noQuorum).
                do { try await client.refreshMembership() } catch {
                    logger.warning("cannot read etcd's member list; a lost quorum will look like any outage until it can",
                                   metadata: ["error": "\(error)"])
                }
                // Every replica serves the cluster's admin token; the first to start creates it.
                adminToken = try await TokenAuthority.loadOrCreateClusterAdminToken(store: store, dataDir: options.dataDir, logger: logger)
            } catch {
                await client.shutdown()
                throw error
            }
            let heartbeats = EtcdHeartbeatLog(client: client, prefix: prefix)
            let compactor = EtcdCompactor(client: client, interval: options.etcdCompactionInterval, logger: logger)
            return Backend(store: store, heartbeats: heartbeats,
                           lock: EtcdLeaseLock(client: client, prefix: prefix, name: "baton-controller"),
                           adminToken: adminToken, closeStore: { await store.close() },
                           close: {
                               heartbeats.close()
                               await store.close()
                               await client.shutdown()
                           },
                           leaderWork: { await compactor.run() },
                           upkeep: { await client.maintainMembership(every: .seconds(30)) })
        }
    }
}

/// Runs `body` until graceful shutdown begins.
struct Upkeep: Service {
    let body: @Sendable () async -> Void
    func run() async throws {
        await cancelWhenGracefulShutdown { await body() }
    }
}

/// Closes the store when graceful shutdown begins.
struct StoreCloser: Service {
    let close: @Sendable () async -> Void
    func run() async throws {
        try? await gracefulShutdown()
        await close()
    }
}
