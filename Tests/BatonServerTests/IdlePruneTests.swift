import BatonAPI
import BatonCore
@testable import BatonEdge
import Logging
import NIOCore
import NIOEmbedded
import Testing

/// `UpstreamPool` keeps idle connections only to endpoints the route table names: when an
/// ingress leaves its Cluster, its idle connections close, and one still serving when it left
/// closes when its exchange ends instead of going back to the pool.
@Suite struct IdlePruneTests {
    static let e1 = EdgeEndpoint(address: "127.0.0.11", port: 80)
    static let e2 = EdgeEndpoint(address: "127.0.0.12", port: 80)

    static func table(_ clusters: [(String, String)]) -> EdgeRouteTable {
        let objects = clusters.map { name, address in
            EdgeClusterObject(name: name, spec: ClusterSpec(locality: .init(region: "region-1"), ingresses: [.init(address: address)]))
        }
        let gateway = GatewaySpec(workloadSelector: .init(namespace: "edge"),
                                  http: [.init(name: "bookinfo", port: 80, hostname: "bookinfo.example.com",
                                               routing: .init(rules: [.init(route: .init(clusterDestination: .init()))]))])
        return EdgeRouteTable(gateways: [("g", gateway)], clusters: objects)
    }

    /// An idle connection to `endpoint` on the loop, as `open` makes them.
    static func connection(_ pool: UpstreamPool, _ loop: EmbeddedEventLoop, _ endpoint: EdgeEndpoint) throws -> (EmbeddedChannel, UpstreamHandler) {
        let h = UpstreamHandler(endpoint: endpoint)
        let channel = EmbeddedChannel(handler: h, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: endpoint.address, port: endpoint.port)).wait()
        h.pool = pool
        h.idleList = pool.list(endpoint)
        return (channel, h)
    }

    @Test func idleConnectionsToAnEndpointTheTableDroppedAreClosed() throws {
        let loop = EmbeddedEventLoop()
        let state = EdgeState(settings: EdgeSettings(host: "127.0.0.1", port: 80, region: "region-1"), logger: Logger(label: "test"))
        state.install(Self.table([("cluster-1", "127.0.0.11"), ("cluster-2", "127.0.0.12")]))
        let pool = UpstreamPool(eventLoop: loop, connectTimeout: .seconds(1), maxIdlePerEndpoint: 4, requestsFlushAtOnce: true, logger: Logger(label: "test"))
        pool.refresh(state)
        #expect(state.routeTable.endpoints == [Self.e1, Self.e2])

        let (idle1, h1) = try Self.connection(pool, loop, Self.e1)
        let (busy1, b1) = try Self.connection(pool, loop, Self.e1)
        let (idle2, h2) = try Self.connection(pool, loop, Self.e2)
        pool.release(h1)
        pool.release(h2)
        #expect(pool.list(Self.e1).handlers.count == 1 && pool.list(Self.e2).handlers.count == 1)
        let oldList = pool.list(Self.e1)

        // cluster-1 goes: its idle connection closes at the next refresh; cluster-2's stays.
        state.install(Self.table([("cluster-2", "127.0.0.12")]))
        pool.refresh(state)
        loop.run()
        #expect(!idle1.isActive)
        #expect(idle2.isActive)
        #expect(oldList.retired && oldList.handlers.isEmpty)
        #expect(pool.list(Self.e2).handlers.count == 1)

        // The connection that was serving when cluster-1 went closes when its exchange ends.
        #expect(busy1.isActive)
        pool.release(b1)
        loop.run()
        #expect(!busy1.isActive)
        #expect(oldList.handlers.isEmpty)

        // cluster-1 back: a new list, and its connections are pooled again.
        state.install(Self.table([("cluster-1", "127.0.0.11"), ("cluster-2", "127.0.0.12")]))
        pool.refresh(state)
        let (again, a1) = try Self.connection(pool, loop, Self.e1)
        #expect(a1.idleList !== oldList)
        pool.release(a1)
        #expect(pool.list(Self.e1).handlers.count == 1 && again.isActive)
        _ = try? idle2.finish()
        _ = try? again.finish()
    }
}
