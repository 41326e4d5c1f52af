import BatonCore
import Logging
import NIOCore
import NIOPosix

/// What an upstream connection reports to the exchange that holds it. Called on the event loop.
protocol UpstreamDelegate: AnyObject {
    func upstreamRead(_ part: ResponseFramer.Part)
    /// The end of one read burst: flush what was written downstream.
    func upstreamReadComplete()
    /// The connection closed (or failed) while this delegate held it.
    func upstreamClosed()
    func upstreamWritabilityChanged(_ writable: Bool)
}

/// The client side of one kept-alive connection to an ingress. Lives on its event loop only.
/// It speaks bytes: the exchange writes the request already encoded, and `ResponseFramer`
/// finds the response in what comes back, so that neither direction is decoded and encoded
/// again on its way through.
final class UpstreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    weak var delegate: (any UpstreamDelegate)?
    let endpoint: EdgeEndpoint
    private(set) var context: ChannelHandlerContext?
    var isOpen = true
    /// Served at least one full exchange: a failure before any byte of the next response may be
    /// the ingress closing an idle connection, not a failure of the ingress.
    var reused = false
    weak var pool: UpstreamPool?
    var framer = ResponseFramer()

    init(endpoint: EdgeEndpoint) { self.endpoint = endpoint }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Inside `framer.feed`: the exchange it reports to may end, and this connection be taken
    /// for the next request, before `feed` returns; the framer is not touched until then.
    private var feeding = false
    private var nextExpectation: (toHead: Bool, dechunk: Bool)?

    /// Starts an exchange: how to frame the response to come.
    func expectResponse(toHead: Bool, dechunk: Bool) {
        if feeding {
            nextExpectation = (toHead, dechunk)
        } else {
            framer.requestWasHead = toHead
            framer.dechunk = dechunk
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let d = delegate else {
            // Bytes on an idle connection: nothing can be trusted on it any more.
            close()
            return
        }
        feeding = true
        do {
            try framer.feed(unwrapInboundIn(data)) { part in
                d.upstreamRead(part)
                return self.isOpen && self.delegate === d
            }
        } catch {
            feeding = false
            pool?.logger.warning("ingress \(endpoint): \(error); connection closed")
            close()
            return
        }
        feeding = false
        if let e = nextExpectation {
            nextExpectation = nil
            framer.requestWasHead = e.toHead
            framer.dechunk = e.dechunk
        }
        if framer.sawExtraBytes { close() }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isOpen = false
        pool?.forget(self)
        guard let d = delegate else { return }
        // A body that runs until the close ends here (not while the framer is busy: then this
        // close came from the exchange itself).
        if !feeding {
            try? framer.eof { part in
                d.upstreamRead(part)
                return true
            }
        }
        if let d = delegate {
            delegate = nil
            d.upstreamClosed()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(context.channel.isWritable)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func write(_ bytes: ByteBuffer, flush: Bool = false) {
        guard let context else { return }
        if flush {
            context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
        } else {
            context.write(wrapOutboundOut(bytes), promise: nil)
        }
    }

    func flush() { context?.flush() }

    /// False while the client cannot take more of the response (backpressure).
    private(set) var autoRead = true

    func setAutoRead(_ on: Bool) {
        guard let context, on != autoRead else { return }
        autoRead = on
        _ = context.channel.setOption(ChannelOptions.autoRead, value: on)
    }

    func close() {
        isOpen = false
        pool?.forget(self)
        context?.close(promise: nil)
    }
}

/// One event loop's idle connections to the ingresses, by endpoint. Used only on `eventLoop`:
/// every connection it hands out runs on the same loop as the downstream connection, so an
/// exchange never crosses threads.
final class UpstreamPool {
    let eventLoop: any EventLoop
    let connectTimeout: TimeAmount
    let maxIdlePerEndpoint: Int
    private var idle: [EdgeEndpoint: [UpstreamHandler]] = [:]
    /// This loop's random source for picks (xorshift; seeded once from the system).
    var random = FastRandom()
    /// Where a malformed response from an ingress is reported.
    let logger: Logger
    /// This loop's copy of the route table and of the endpoints out of rotation, as of
    /// `EdgeState.generation` = `seen`.
    private var seen: UInt64 = 0
    private var table = EdgeRouteTable()
    private var down: Set<EdgeEndpoint> = []

    /// The route table and the endpoints out of rotation, refreshed only when they changed.
    func snapshot(_ state: EdgeState) -> (table: EdgeRouteTable, down: Set<EdgeEndpoint>) {
        let g = state.generation.load(ordering: .acquiring)
        if g != seen {
            table = state.routeTable
            down = state.down
            seen = g
        }
        return (table, down)
    }

    /// Whether `e` is out of rotation, as of this loop's copy.
    func isDown(_ e: EdgeEndpoint, _ state: EdgeState) -> Bool {
        let d = snapshot(state).down
        return !d.isEmpty && d.contains(e)
    }

    init(eventLoop: any EventLoop, connectTimeout: TimeAmount, maxIdlePerEndpoint: Int, logger: Logger) {
        self.eventLoop = eventLoop
        self.connectTimeout = connectTimeout
        self.maxIdlePerEndpoint = maxIdlePerEndpoint
        self.logger = logger
    }

    /// Opens a new connection to `endpoint` (take an idle one first with `takeIdle`); calls
    /// `done` on the event loop with it or with the connect error.
    func open(_ endpoint: EdgeEndpoint, _ done: @escaping (Result<UpstreamHandler, any Error>) -> Void) {
        let ep = endpoint
        ClientBootstrap(group: eventLoop)
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler(endpoint: ep))
                }
            }
            .connect(host: endpoint.address, port: endpoint.port)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    do {
                        let h = try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                        h.pool = self
                        done(.success(h))
                    } catch {
                        channel.close(promise: nil)
                        done(.failure(error))
                    }
                case .failure(let error):
                    done(.failure(error))
                }
            }
    }

    /// An idle connection to `endpoint`, if one is open. (The lists are changed in place: taking
    /// one out of a copy would copy the whole list, and retain every connection on it.)
    func takeIdle(_ endpoint: EdgeEndpoint) -> UpstreamHandler? {
        eventLoop.assertInEventLoop()
        while let h = idle[endpoint]?.popLast() {
            if h.isOpen && h.context != nil { return h }
        }
        return nil
    }

    /// Returns a connection whose exchange ended cleanly (response read to its end, request sent
    /// to its end, both sides keep-alive).
    func release(_ h: UpstreamHandler) {
        eventLoop.assertInEventLoop()
        h.delegate = nil
        guard h.isOpen, h.context != nil else { return }
        h.setAutoRead(true)
        h.reused = true
        if (idle[h.endpoint]?.count ?? 0) >= maxIdlePerEndpoint {
            h.close()
            return
        }
        idle[h.endpoint, default: []].append(h)
    }

    func forget(_ h: UpstreamHandler) {
        guard let i = idle[h.endpoint]?.lastIndex(where: { $0 === h }) else { return }
        idle[h.endpoint]!.remove(at: i)
    }

    /// Closes every idle connection (drain).
    func closeAll() {
        let all = idle.values.flatMap { $0 }
        idle = [:]
        for h in all { h.close() }
    }
}

/// A small, fast generator (xorshift64*) for load-balancing picks: one system call to seed it,
/// none per request. Not for anything secret.
struct FastRandom: RandomNumberGenerator {
    private var state: UInt64

    init() {
        var seed: UInt64 = 0
        while seed == 0 { seed = UInt64.random(in: 1...UInt64.max) }
        state = seed
    }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
}
