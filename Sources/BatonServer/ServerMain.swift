import BatonAPI
import BatonCore
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
    public init(dataDir: String, host: String, port: Int, settings: FeatureSettings = FeatureSettings()) {
        self.dataDir = dataDir
        self.host = host
        self.port = port
        self.settings = settings
    }
}

/// Runs `baton server`: opens the store, ensures the admin token, serves the API until
/// SIGTERM/SIGINT, then closes the store.
public enum BatonServerMain {
    public static func run(options: ServerOptions, metrics: PrometheusCollectorRegistry, logger: Logger) async throws {
        try FileManager.default.createDirectory(atPath: options.dataDir, withIntermediateDirectories: true)
        let store = try SQLiteStore(directory: options.dataDir, logger: logger)
        let heartbeats = try SQLiteHeartbeatLog(directory: options.dataDir)
        let adminToken = try TokenAuthority.loadOrCreateAdminToken(dataDir: options.dataDir)
        let api = APIServer(store: store, tokens: TokenAuthority(adminToken: adminToken, store: store),
                            metrics: metrics, logger: logger, heartbeats: heartbeats,
                            ready: { (try? await store.currentRevision()) != nil })
        let tokenPath = (options.dataDir as NSString).appendingPathComponent("admin.token")
        let app = api.application(host: options.host, port: options.port) { channel in
            logger.notice("baton server listening", metadata: [
                "address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "dataDir": "\(options.dataDir)",
                "adminToken": "\(tokenPath)",
                "eipEvictionTimeout": "\(options.settings.eipEvictionTimeout)s",
            ])
        }
        // Exactly one replica sharing this store runs the controllers, under a lease in the store.
        let controllerLogger = Logger(label: "baton.controller")
        let events = EventRecorder(store: store, component: "egress-controller", logger: controllerLogger)
        let settings = options.settings
        let election = LeaderElection(
            lock: StoreLeaseLock(store: store, name: "baton-controller"),
            logger: logger,
            whileLeader: {
                // A store hiccup restarts the controller (it lists again); it must not end the server.
                while !Task.isCancelled {
                    do {
                        try await EgressController(store: store, heartbeats: heartbeats, settings: settings, clock: MonotonicClock(),
                                                   logger: controllerLogger, events: events, probe: Self.probe(settings)).run()
                        return
                    } catch is CancellationError {
                        return
                    } catch {
                        controllerLogger.error("egress controller failed; restarting", metadata: ["error": "\(error)"])
                        try? await Task.sleep(for: .milliseconds(200))
                    }
                }
            })
        // Services stop in reverse order: the lease is released first (a standby takes over at
        // once), then the store closes, which ends every open watch, so the HTTP server can drain
        // instead of waiting on streams that never end.
        let group = ServiceGroup(configuration: .init(services: [app, StoreCloser(store: store), election],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            heartbeats.close()
            await store.close()
            throw error
        }
        heartbeats.close()
        await store.close()
    }

    /// The controller's probe of a silent node (`feature.unreachableNodeProbe`).
    static func probe(_ settings: FeatureSettings) -> (@Sendable (String) async -> Bool)? {
        guard settings.unreachableNodeProbe else { return nil }
        let prober = ReachabilityProber()
        return { address in await prober.reachable(address) }
    }
}

/// Closes the store when graceful shutdown begins.
struct StoreCloser: Service {
    let store: SQLiteStore
    func run() async throws {
        try? await gracefulShutdown()
        await store.close()
    }
}
