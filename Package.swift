// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Baton",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "baton", targets: ["baton"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.25.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.10.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
    ],
    targets: [
        // Resource types, schemas, validation, printer columns. Pure: no I/O, no clocks.
        .target(name: "BatonAPI", dependencies: [
            .product(name: "Yams", package: "Yams"),
        ]),
        // Decisions as values, driven by an injected clock.
        .target(name: "BatonCore", dependencies: ["BatonAPI"]),
        // A client for etcd v3's JSON gateway (`/v3/...`) that fails over between endpoints.
        .target(name: "BatonEtcd", dependencies: [
            "BatonAPI",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
        ]),
        // ResourceStore protocol, SQLiteStore (GRDB), EtcdStore, LeaseLock.
        .target(name: "BatonStore", dependencies: [
            "BatonAPI", "BatonCore", "BatonEtcd",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // HTTP API, auth, controllers' run loop.
        .target(name: "BatonServer", dependencies: [
            "BatonAPI", "BatonCore", "BatonStore", "BatonDataplane",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // HTTP client for the API, used by the CLI and (later) the agent.
        .target(name: "BatonClient", dependencies: [
            "BatonAPI", "BatonEtcd",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
        ]),
        // Linux side effects: nftables, netlink changes through batched iproute2, gratuitous ARP.
        .target(name: "BatonDataplane", dependencies: ["BatonAPI", "BatonCore"]),
        // VRRP on the wire (RFC 3768, RFC 9568): the packet codec (pure), the raw-socket transport
        // and the speaker that carries out `VRRPInstance`'s decisions.
        .target(name: "BatonVRRP", dependencies: [
            "BatonAPI", "BatonCore", "BatonDataplane",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // The per-node agent: registration, heartbeats, fencing, the data plane's orders, and
        // the IPFailovers selecting its node (managed VRRP).
        .target(name: "BatonAgent", dependencies: [
            "BatonAPI", "BatonCore", "BatonClient", "BatonDataplane", "BatonVRRP", "BatonEtcd",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // The edge gateway: a SwiftNIO HTTP/1.1 proxy that carries out BatonCore's edge decisions
        // (locality, outlier detection, retries) for the Gateways selecting it.
        .target(name: "BatonEdge", dependencies: [
            "BatonAPI", "BatonCore", "BatonClient",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Shared test helpers: in-memory store, manual clock, a local etcd on loopback.
        .target(name: "BatonTesting", dependencies: ["BatonAPI", "BatonCore", "BatonStore", "BatonEtcd"]),
        .executableTarget(name: "baton", dependencies: [
            "BatonAPI", "BatonCore", "BatonStore", "BatonServer", "BatonClient", "BatonAgent", "BatonDataplane", "BatonVRRP", "BatonEtcd", "BatonEdge",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .testTarget(name: "BatonAPITests", dependencies: ["BatonAPI", "BatonTesting"]),
        .testTarget(name: "BatonCoreTests", dependencies: ["BatonCore", "BatonAPI", "BatonTesting"]),
        .testTarget(name: "BatonDataplaneTests", dependencies: ["BatonDataplane", "BatonCore", "BatonAPI"]),
        .testTarget(name: "BatonVRRPTests", dependencies: ["BatonVRRP", "BatonAPI", "BatonCore", "BatonDataplane", "BatonTesting"]),
        .testTarget(name: "BatonStoreTests", dependencies: ["BatonStore", "BatonTesting", "BatonEtcd"]),
        .testTarget(name: "BatonServerTests", dependencies: [
            "BatonServer", "BatonClient", "BatonTesting", "BatonAgent", "BatonVRRP", "BatonEtcd", "BatonEdge", "BatonDataplane",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
