import BatonAPI
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
        let adminToken = try TokenAuthority.loadOrCreateAdminToken(dataDir: options.dataDir)
        let api = APIServer(store: store, tokens: TokenAuthority(adminToken: adminToken, store: store),
                            metrics: metrics, logger: logger,
                            ready: { (try? await store.currentRevision()) != nil })
        let tokenPath = (options.dataDir as NSString).appendingPathComponent("admin.token")
        let app = api.application(host: options.host, port: options.port) { channel in
            logger.notice("baton server listening", metadata: [
                "address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "dataDir": "\(options.dataDir)",
                "adminToken": "\(tokenPath)",
                "eipEvictionTimeout": "\(options.settings.eipEvictionTimeout)s",
            ])
        }
        // Services stop in reverse order: the store closes first, which ends every open watch,
        // so the HTTP server can drain instead of waiting on streams that never end.
        let group = ServiceGroup(configuration: .init(services: [app, StoreCloser(store: store)],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            await store.close()
            throw error
        }
        await store.close()
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
