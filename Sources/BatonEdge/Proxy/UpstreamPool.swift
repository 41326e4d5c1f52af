import BatonCore
import Logging
import NIOCore
import NIOPosix

/// The client side of one kept-alive connection to an ingress. Lives on its event loop only.
/// It speaks bytes: the exchange writes the request already encoded, and `ResponseFramer`
/// finds the response in what comes back, so that neither direction is decoded and encoded
/// again on its way through.
final class UpstreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The exchange's handler while it holds this connection. A strong reference, set to nil by
    /// whoever ends the holding: the pool's `release`, the exchange when it gives the connection
    /// up (`failed`, the response timer, a response that closes), the client handler when the
    /// client is gone (`dropExchange`), and this handler when the ingress closes. A `weak` one
    /// would give the client handler a side table, and every retain and release of it (NIO
    /// makes several per read) would take the runtime's slow path.
    var delegate: EdgeProxyHandler?
    let endpoint: EdgeEndpoint
    private(set) var context: ChannelHandlerContext?
    var isOpen = true
    /// Served at least one full exchange: a failure before any byte of the next response may be
    /// the ingress closing an idle connection, not a failure of the ingress.
    var reused = false
    /// The pool of this connection's loop (it outlives its connections; strong for the same
    /// reason as `delegate`).
    var pool: UpstreamPool?
    /// Its endpoint's idle list in `pool`.
    var idleList: UpstreamPool.IdleList?
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
        pool = nil
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

    /// As the channel's last writability change said.
    private var writable = true

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        delegate?.upstreamWritabilityChanged(writable)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func write(_ bytes: ByteBuffer) {
        guard let context else { return }
        context.write(wrapOutboundOut(bytes), promise: nil)
    }

    /// Writes a whole request: flushed at once, or at the tick's end (`requestsFlushAtOnce`).
    func writeRequest(_ bytes: ByteBuffer) {
        guard let context else { return }
        if let pool, !pool.requestsFlushAtOnce {
            context.write(wrapOutboundOut(bytes), promise: nil)
            pool.flushAtTickEnd(context)
        } else {
            context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
        }
    }

    func flush() { context?.flush() }

    var isWritable: Bool { writable && context != nil }

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
    /// The idle connections of one endpoint. A connection keeps its endpoint's list, so that
    /// returning it to the pool costs no hashing.
    final class IdleList {
        var handlers: [UpstreamHandler] = []
        /// Its endpoint left the route table: a connection coming back to it closes instead.
        var retired = false
    }
    private var idle: [EdgeEndpoint: IdleList] = [:]

    func list(_ endpoint: EdgeEndpoint) -> IdleList {
        if let l = idle[endpoint] { return l }
        let l = IdleList()
        idle[endpoint] = l
        return l
    }
    /// This loop's random source for picks (xorshift; seeded once from the system).
    var random = FastRandom()
    /// This loop's compiled `regex` route patterns (no lock shared with the other loops).
    let regexes = EdgeRegexMatcher()
    /// Where a malformed response from an ingress is reported.
    let logger: Logger
    /// This loop's copy of the route table and of the endpoints out of rotation, as of
    /// `EdgeState.generation` = `generation`. `refresh` first.
    private(set) var generation: UInt64 = 0
    private(set) var table = EdgeRouteTable()
    private var tableGeneration: UInt64 = 0
    private(set) var down: Set<EdgeEndpoint> = []

    /// Brings `table` and `down` up to date when they changed (one atomic load when not).
    func refresh(_ state: EdgeState) {
        let g = state.generation.load(ordering: .acquiring)
        if g != generation {
            let tg = state.tableGeneration.load(ordering: .acquiring)
            if tg != tableGeneration {
                tableGeneration = tg
                table = state.routeTable
                pruneIdle()
            }
            down = state.down
            generation = g
            plans = Array(repeating: nil, count: table.ruleCount)
        }
    }

    /// Closes the idle connections to endpoints the route table no longer names, and retires
    /// their lists: an ingress removed from its Cluster (or a Cluster deleted) keeps no
    /// connection open from this edge. An endpoint that comes back gets a new list.
    private func pruneIdle() {
        guard !idle.isEmpty else { return }
        let named = table.endpoints
        for (endpoint, l) in idle where !named.contains(endpoint) {
            idle[endpoint] = nil
            l.retired = true
            let handlers = l.handlers
            l.handlers = []
            for h in handlers { h.close() }
        }
    }

    /// An endpoint of a cluster, as an attempt goes to it, with the endpoint's idle list: an
    /// exchange holds the three with one reference.
    final class Target {
        let cluster: String
        let endpoint: EdgeEndpoint
        let list: IdleList
        init(cluster: String, endpoint: EdgeEndpoint, list: IdleList) {
            self.cluster = cluster
            self.endpoint = endpoint
            self.list = list
        }
    }

    /// A rule's route made ready for first attempts on this loop, as of one `generation`: the
    /// balancer's choices for the current health view, and a target for each chosen endpoint.
    final class RoutePlan {
        let route: EdgeRoute
        let choices: EdgeBalancer.Choices
        /// `targets[i][j]` is `choices.choices[i].endpoints[j]`.
        let targets: [[Target]]
        init(route: EdgeRoute, choices: EdgeBalancer.Choices, targets: [[Target]]) {
            self.route = route
            self.choices = choices
            self.targets = targets
        }
    }

    /// By rule id, as of `generation` (made anew, empty, when it changes).
    private var plans: [RoutePlan?] = []

    /// The plan for `rule`, a rule of `table` (call `refresh` first).
    func plan(_ rule: EdgeRouteTable.Rule, region: String) -> RoutePlan {
        if let p = plans[rule.id] { return p }
        let down = self.down
        let choices = EdgeBalancer.choices(rule.route, region: region, isHealthy: { down.isEmpty || !down.contains($0) })
        let targets = choices.choices.map { c in c.endpoints.map { Target(cluster: c.cluster, endpoint: $0, list: list($0)) } }
        let p = RoutePlan(route: rule.route, choices: choices, targets: targets)
        plans[rule.id] = p
        return p
    }

    /// Whether `e` is out of rotation, as of this loop's copy.
    func isDown(_ e: EdgeEndpoint, _ state: EdgeState) -> Bool {
        refresh(state)
        return !down.isEmpty && down.contains(e)
    }

    /// Whether a request that is only its head is flushed to its ingress at once (true) or at
    /// the tick's end, with the responses (false). See `EdgeSettings.requestsFlushAtOnce`.
    let requestsFlushAtOnce: Bool

    init(eventLoop: any EventLoop, connectTimeout: TimeAmount, maxIdlePerEndpoint: Int, requestsFlushAtOnce: Bool,
         logger: Logger) {
        self.eventLoop = eventLoop
        self.requestsFlushAtOnce = requestsFlushAtOnce
        self.connectTimeout = connectTimeout
        self.maxIdlePerEndpoint = maxIdlePerEndpoint
        self.logger = logger
    }

    /// Opens a new connection to `endpoint` (take an idle one first with `takeIdle`); calls
    /// `done` on the event loop with it or with the connect error.
    func open(_ endpoint: EdgeEndpoint, list: IdleList, _ done: @escaping (Result<UpstreamHandler, any Error>) -> Void) {
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
                        h.idleList = list
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

    /// An idle connection from an endpoint's list (`list`), if one is open. (The lists are changed in place: taking
    /// one out of a copy would copy the whole list, and retain every connection on it.)
    func takeIdle(_ l: IdleList) -> UpstreamHandler? {
        eventLoop.assertInEventLoop()
        while let h = l.handlers.popLast() {
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
        guard let l = h.idleList, !l.retired, l.handlers.count < maxIdlePerEndpoint else {
            h.close()
            return
        }
        l.handlers.append(h)
    }

    func forget(_ h: UpstreamHandler) {
        guard let l = h.idleList, let i = l.handlers.lastIndex(where: { $0 === h }) else { return }
        l.handlers.remove(at: i)
    }

    // MARK: Flushes at the end of the tick

    /// Channels of this loop written to in this tick, whose flush waits for the tick's end.
    private var toFlush: [ChannelHandlerContext] = []

    /// Flushes `context` once every I/O event of this loop tick has been handled. NIO runs the
    /// tasks queued during a tick right after its events, so the requests and responses of one
    /// epoll wake-up go out back to back at its end: the ingress or client woken by the first
    /// finds the others ready, instead of being woken once for each. (HAProxy sends in the same
    /// way, after its polling pass.) At low load a tick holds one event, and nothing waits.
    func flushAtTickEnd(_ context: ChannelHandlerContext) {
        toFlush.append(context)
        if toFlush.count == 1 { eventLoop.assumeIsolated().execute(flushTask) }
    }

    /// `flushAll` as a task, made once (a closure made per tick would be an allocation per tick).
    private lazy var flushTask: () -> Void = { [unowned self] in flushAll() }

    private func flushAll() {
        // A flush can end in a close whose handlers write again: they join this pass.
        var i = 0
        while i < toFlush.count {
            let context = toFlush[i]
            context.flush()
            i += 1
        }
        toFlush.removeAll(keepingCapacity: true)
    }

    /// Closes every idle connection (drain).
    func closeAll() {
        let all = idle.values.flatMap { $0.handlers }
        for l in idle.values { l.handlers = [] }
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
