import BatonCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The edge's listener: accepts client connections on `settings.eventLoops` event loops, each
/// with its own upstream pools. As a `Service`, it runs until graceful shutdown, then stops
/// accepting, lets in-flight requests finish (kept-alive connections close after their current
/// response, idle ones at once) for up to `drainTimeout`, and closes what is left.
public final class EdgeProxyServer: Service, Sendable {
    public let state: EdgeState
    let group: MultiThreadedEventLoopGroup
    private let pools: [ObjectIdentifier: UpstreamPoolBox]
    private let connections = Mutex<[ObjectIdentifier: any Channel]>([:])
    private let serverChannel = Mutex<(any Channel)?>(nil)

    /// An `UpstreamPool` is used only on its own event loop; the box lets the map be shared.
    final class UpstreamPoolBox: @unchecked Sendable {
        let pool: UpstreamPool
        init(_ pool: UpstreamPool) { self.pool = pool }
    }

    public init(state: EdgeState) {
        self.state = state
        let s = state.settings
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, s.eventLoops))
        var pools: [ObjectIdentifier: UpstreamPoolBox] = [:]
        for loop in group.makeIterator() {
            pools[ObjectIdentifier(loop)] = UpstreamPoolBox(UpstreamPool(
                eventLoop: loop, connectTimeout: TimeAmount(s.connectTimeout),
                maxIdlePerEndpoint: s.maxIdlePerEndpoint, requestsFlushAtOnce: s.requestsFlushAtOnce, logger: state.logger))
        }
        self.pools = pools
    }

    /// Binds the listening socket; returns the bound port (useful with port 0).
    @discardableResult
    public func bind() async throws -> Int {
        let s = state.settings
        let pools = self.pools
        let st = state
        let headTimeout = TimeAmount(s.requestHeadTimeout)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [weak self] channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let box = pools[ObjectIdentifier(channel.eventLoop)] else {
                        throw ChannelError.ioOnClosedChannel
                    }
                    let guardian = SlowClientGuard(timeout: headTimeout)
                    try channel.pipeline.syncOperations.addHandler(EdgeProxyHandler(state: st, pool: box.pool, guardian: guardian))
                    self?.track(channel)
                }
            }
            .bind(host: s.host, port: s.port)
            .get()
        serverChannel.withLock { $0 = channel }
        return channel.localAddress?.port ?? s.port
    }

    private func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        connections.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.connections.withLock { $0.removeValue(forKey: id) }
        }
    }

    public var openConnections: Int { connections.withLock { $0.count } }

    /// Runs the health ticker until graceful shutdown, then drains. `bind()` first.
    public func run() async throws {
        if serverChannel.withLock({ $0 }) == nil { try await bind() }
        let checker = ActiveChecker(state: state)
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    for (endpoint, host) in state.tick() {
                        group.addTask { await checker.check(endpoint, hostname: host) }
                    }
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
        } onGracefulShutdown: {
            // Wakes the loop above; draining happens after it.
        }
        await drain()
    }

    /// Stops accepting and waits for open connections to finish their current request.
    public func drain() async {
        let listener = serverChannel.withLock { c -> (any Channel)? in
            let l = c
            c = nil
            return l
        }
        try? await listener?.close()
        let open = connections.withLock { Array($0.values) }
        state.logger.notice("draining: \(open.count) client connections finish their current request")
        for c in open { c.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
        let deadline = ContinuousClock.now + state.settings.drainTimeout
        while openConnections > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for c in connections.withLock({ Array($0.values) }) { try? await c.close() }
        for loop in group.makeIterator() {
            if let box = pools[ObjectIdentifier(loop)] {
                try? await loop.submit { box.pool.closeAll() }.get()
            }
        }
        try? await group.shutdownGracefully()
    }
}
