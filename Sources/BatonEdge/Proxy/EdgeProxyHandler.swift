import BatonCore
import Foundation
import Metrics
import NIOCore
import NIOHTTP1

/// One downstream (client) connection. For each request: look the route up, let `EdgeBalancer`
/// pick a cluster and ingress, take a connection from this event loop's pool, stream the request
/// and the response through with backpressure, count the outcome for outlier detection, and
/// retry on another cluster when `EdgeRetryPolicy` says so. Everything here runs on the
/// connection's event loop.
///
/// It reads the client's bytes itself (`RequestFramer`): a request's head is parsed once, and
/// its body goes on as it came. Pipelined requests wait in their bytes until the response
/// before them has ended. The handler keeps reading while a request is served (NIO's
/// `HTTPServerPipelineHandler` instead stops reading, which costs two `epoll_ctl` calls per
/// request); it stops only for a reason in `Pause`.
final class EdgeProxyHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The request being served.
    final class Exchange {
        let head: RequestFramer.Head
        /// The rule's route, and what first attempts choose from.
        let plan: UpstreamPool.RoutePlan
        /// The head as every ingress tried gets it, already encoded.
        let upstreamHead: ByteBuffer
        /// False when the client asked to close, or the edge is draining.
        var keepAlive: Bool
        let start: NIODeadline
        /// Body parts received and not yet dropped; `sent` of them went to the current upstream.
        var parts: [ByteBuffer] = []
        var sent = 0
        var bodyBytes = 0
        var bodyEnded: Bool
        /// False once the body outgrew the replay buffer: it cannot be sent again.
        var replayable = true
        /// The clusters tried before the current attempt's (a retry goes elsewhere; with
        /// `cluster`, the access log's `tried=`). Empty, and not allocated, for most requests.
        var tried: [String] = []
        var attempts = 0
        var retries = 0
        var upstream: UpstreamHandler?
        /// Where the current attempt goes.
        var target: UpstreamPool.Target?
        /// The cluster a strict weighted split chose when it had no endpoint in rotation (its
        /// share gets 503).
        var deadCluster: String?
        var cluster: String? { target?.cluster ?? deadCluster }
        var endpoint: EdgeEndpoint? { target?.endpoint }
        /// The current upstream has the head; parts go to it as they come.
        var connected = false
        var requestSent = false
        var transparentReconnect = false
        var responseStarted = false
        var status = 0
        /// The request went out whole and no response head came yet (the response timer runs).
        var awaitingResponse = false
        var responseBytes = 0
        /// The ingress said it closes after this response: do not pool the connection.
        var upstreamClosesAfter = false

        init(head: RequestFramer.Head, plan: UpstreamPool.RoutePlan, upstreamHead: ByteBuffer) {
            self.head = head
            self.plan = plan
            self.upstreamHead = upstreamHead
            self.keepAlive = head.keepAlive
            self.bodyEnded = !head.hasBody
            self.start = .now()
        }

        var retryBody: EdgeRetryPolicy.Body {
            if !head.hasBody { return .none }
            return replayable ? .buffered(bytes: bodyBytes) : .streamed
        }
    }

    let state: EdgeState
    let pool: UpstreamPool
    let guardian: SlowClientGuard
    private var context: ChannelHandlerContext?
    private var channel: (any Channel)?
    private var exchange: Exchange?
    /// A local answer was sent while the request's body was still coming: drop the rest.
    private var discarding = false
    private var clientAddress: String?
    /// The forwarding fields the last plain request of this connection got.
    private var forwarding: UpstreamRequest.Forwarding?
    /// The buffer the last plain head for an ingress was written to (see `UpstreamRequest.head`).
    private var spareHead: ByteBuffer?
    /// Between a request's head and its end, for the request being served (not a queued one).
    private var requestOpen = false
    private var framer: RequestFramer
    /// Bytes of pipelined requests that came while the response before them was still going.
    private var queued: ByteBuffer?
    private var draining = false
    /// Why reading from the client stops (NIO's `autoRead` is off while any holds).
    struct Pause: OptionSet {
        let rawValue: UInt8
        /// More than `maxQueuedBytes` of pipelined requests wait.
        static let queue = Pause(rawValue: 1)
        /// The upstream connection cannot take more of the body (backpressure).
        static let upstream = Pause(rawValue: 2)
        /// The body outgrew the replay buffer before a connection was ready to take it.
        static let body = Pause(rawValue: 4)
    }
    private var pause: Pause = []
    private var readingPaused = false

    /// Stops reading while more than `maxQueuedBytes` of pipelined requests wait (`drainQueue`
    /// goes on again).
    private func pauseIfQueueFull() {
        if (queued?.readableBytes ?? 0) > Self.maxQueuedBytes { setPause(.queue, true) }
    }

    /// Sets or clears `reason`; NIO's `autoRead` changes only when the set goes from empty to
    /// not empty or back, so clearing a reason that is not set costs nothing.
    private func setPause(_ reason: Pause, _ on: Bool) {
        if on { pause.formUnion(reason) } else { pause.subtract(reason) }
        let paused = !pause.isEmpty
        guard paused != readingPaused, let channel else { return }
        readingPaused = paused
        // On the loop the option applies at once; turning reading on again reads what waits.
        channel.setOption(ChannelOptions.autoRead, value: !paused).whenComplete { _ in }
    }
    /// The edge is draining (SIGTERM): the current response is the connection's last.
    private var quiescing = false
    /// The request could not be read; the connection is being cut.
    private var broken = false
    /// The connection is closing: the edge answered with a close, or it closed. No request after
    /// that answer is read (RFC 9112 §9.6), even pipelined bytes already here: NIO reports the
    /// close at once but removes the handler a tick later.
    private var closing = false
    static let maxQueuedBytes = 64 * 1024

    init(state: EdgeState, pool: UpstreamPool, guardian: SlowClientGuard) {
        self.state = state
        self.pool = pool
        self.guardian = guardian
        self.framer = RequestFramer(maxHeadBytes: state.settings.maxHeaderBytes)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        allocator = context.channel.allocator
        channel = context.channel
        clientAddress = context.channel.remoteAddress?.ipAddress
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        guardian.stop()
        dropExchange()
        // A pending timer would keep this handler until it fired.
        responseTimer?.cancel()
        responseTimer = nil
        idleTimer?.cancel()
        idleTimer = nil
        self.context = nil
        channel = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        guardian.start(context)
        context.fireChannelActive()
    }

    // MARK: Downstream

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guardian.bytesArrived()
        if queued != nil {
            queued!.writeImmutableBuffer(bytes)
            pauseIfQueueFull()
            return
        }
        feed(&bytes)
    }

    /// The last handler: nothing after it waits for the end of a read burst (and responses are
    /// flushed as they complete), so the event goes no further.
    func channelReadComplete(context: ChannelHandlerContext) {}

    /// A request is in progress with all of it read: what comes now is the next one.
    private var busy: Bool { exchange != nil && !requestOpen }

    /// Reads requests from `bytes` until one is in progress with all of it read; keeps the rest.
    private func feed(_ bytes: inout ByteBuffer) {
        guard !broken && !closing else { return }
        if busy {
            queued = bytes
            pauseIfQueueFull()
            return
        }
        do {
            try framer.feed(&bytes) { part in
                handle(part)
                return !busy && !broken && !closing && context != nil
            }
        } catch let error as HTTPFramingError {
            broken = true
            // Nothing of an answer went out for this request: answer with raw bytes and cut.
            if exchange == nil || !requestOpen {
                switch error {
                case .headTooLarge: guardian.reject(status: "431 Request Header Fields Too Large", body: "request header fields too large")
                case .unsupported(let what): guardian.reject(status: "501 Not Implemented", body: "not implemented: \(what)")
                default: guardian.reject(status: "400 Bad Request", body: "malformed request: \(error)")
                }
            } else {
                context?.close(promise: nil)
            }
            return
        } catch {
            broken = true
            context?.close(promise: nil)
            return
        }
        if bytes.readableBytes > 0 {
            queued = bytes
            pauseIfQueueFull()
        }
    }

    private func handle(_ part: RequestFramer.Part) {
        switch part {
        case .head(let head):
            requestOpen = true
            guardian.headReceived()
            discarding = false
            begin(head)
        case .body(let buffer):
            guard !discarding, let x = exchange else { return }
            progressed()
            x.parts.append(buffer)
            x.bodyBytes += buffer.readableBytes
            if x.bodyBytes > state.settings.retry.maxBufferedBody { x.replayable = false }
            pump(x)
        case .end:
            requestOpen = false
            if discarding {
                discarding = false
                return
            }
            guard let x = exchange else { return }
            x.bodyEnded = true
            pump(x)
        }
    }

    /// Serves the requests that waited once the response before them has ended.
    private func drainQueue() {
        guard !draining, var bytes = queued else { return }
        draining = true
        defer { draining = false }
        queued = nil
        feed(&bytes)
        if pause.contains(.queue), (queued?.readableBytes ?? 0) <= Self.maxQueuedBytes { setPause(.queue, false) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        quiescing = true
        if let x = exchange {
            x.keepAlive = false
        } else {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        guardian.stop()
        queued = nil
        dropExchange()
        context.fireChannelInactive()
    }

    /// The client is gone: the exchange ends without an answer, and its ingress connection (which
    /// holds this handler) closes.
    private func dropExchange() {
        guard let x = exchange else { return }
        exchange = nil
        lastProgress = nil
        x.awaitingResponse = false
        closeUpstream(x)
        finishAccounting(x)
    }

    /// The client's channel is writable, as its last writability change said (kept here: asking
    /// the channel costs a pipeline walk per request).
    private var clientWritable = true

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        clientWritable = context.channel.isWritable
        progressed()
        exchange?.upstream?.setAutoRead(clientWritable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func begin(_ head: RequestFramer.Head) {
        guard head.minor == 0 || head.hostCount == 1, head.hostCount <= 1 else {
            respondLocal(head: head, status: .badRequest, body: "bad request: HTTP/1.1 needs exactly one Host header", close: true)
            return
        }
        if head.method == "CONNECT" {
            // A tunnel is not a request an ingress can answer: the edge routes HTTP only.
            respondLocal(head: head, status: .methodNotAllowed, body: "method CONNECT is not proxied", close: true)
            return
        }
        let host = head.host ?? ""
        guard let plan = route(head, host: host) else {
            respondLocal(head: head, status: .notFound, body: "no route for host \(host)")
            return
        }
        if let expect = head.expect, head.minor >= 1 {
            // The edge takes the body itself (it buffers and streams it), so it answers
            // `100-continue` at once, as Envoy does, instead of waiting for an ingress to; the
            // ingress gets no Expect. Any other expectation cannot be met (RFC 9110 §10.1.1).
            guard expect.lowercased() == "100-continue" else {
                respondLocal(head: head, status: .expectationFailed, body: "expectation not supported: \(expect)", close: true)
                return
            }
            context?.writeAndFlush(wrapOutboundOut(Self.continueHead), promise: nil)
        }
        let up = UpstreamRequest.head(head, client: clientAddress, host: host.isEmpty ? nil : host, allocator: allocator,
                                      cache: &forwarding, spare: &spareHead)
        let x = Exchange(head: head, plan: plan, upstreamHead: up)
        if quiescing { x.keepAlive = false }
        exchange = x
        state.inFlight.add(1, ordering: .relaxed)
        attempt(x)
    }

    /// The host and route plan of this connection's last request, when its rule takes every
    /// request to the host (as of route generation `generation`): a kept-alive client mostly
    /// asks the same host again.
    private var lastRoute: (generation: UInt64, host: String, plan: UpstreamPool.RoutePlan)?

    private func route(_ head: RequestFramer.Head, host: String) -> UpstreamPool.RoutePlan? {
        pool.refresh(state)
        if let last = lastRoute, last.generation == pool.generation, last.host == host { return last.plan }
        let port = state.settings.port
        if let rule = pool.table.unconditionalRule(port: port, host: host) {
            let plan = pool.plan(rule, region: state.settings.region)
            lastRoute = (pool.generation, host, plan)
            return plan
        }
        guard let rule = pool.table.lookup(port: port, host: host, path: head.uri, header: { head.header($0) }, regexes: pool.regexes)
            ?? pool.table.lookupAnyPort(host: host, path: head.uri, header: { head.header($0) }, regexes: pool.regexes) else { return nil }
        return pool.plan(rule, region: state.settings.region)
    }

    // MARK: Attempts

    private func attempt(_ x: Exchange) {
        if x.tried.isEmpty {
            // A first attempt: the plan's choices are as of this tick (`begin` looked the route up).
            let plan = x.plan
            guard let (i, e) = plan.choices.draw(using: &pool.random) else {
                respond(x, status: .serviceUnavailable, body: "no healthy upstream")
                return
            }
            guard let e else {
                x.deadCluster = plan.choices.choices[i].cluster
                respond(x, status: .serviceUnavailable, body: "no healthy upstream")
                return
            }
            x.attempts += 1
            connect(x, to: plan.targets[i][e])
            return
        }
        pool.refresh(state)
        let down = pool.down
        let pick = EdgeBalancer.pick(x.plan.route, region: state.settings.region, excluding: x.tried,
                                     isHealthy: { down.isEmpty || !down.contains($0) }, using: &pool.random)
        switch pick {
        case .noHealthyUpstream(let cluster):
            if let cluster {
                x.target = nil
                x.deadCluster = cluster
            }
            respond(x, status: .serviceUnavailable, body: "no healthy upstream")
        case .endpoint(let cluster, let endpoint):
            x.attempts += 1
            connect(x, to: UpstreamPool.Target(cluster: cluster, endpoint: endpoint, list: pool.list(endpoint)))
        }
    }

    private func connect(_ x: Exchange, to target: UpstreamPool.Target) {
        x.target = target
        x.connected = false
        x.requestSent = false
        if let u = pool.takeIdle(target.list) {
            send(x, on: u, startedNow: x.attempts == 1 && !x.transparentReconnect)
            return
        }
        // `self` is held strongly until the connect ends: a weak reference would give this
        // handler a side table (see `UpstreamHandler.delegate`).
        pool.open(target.endpoint, list: target.list) { [self] result in
            guard self.exchange === x else {
                if case .success(let u) = result { u.close() }
                return
            }
            switch result {
            case .failure:
                self.failed(x, .connectFailure, outcome: .connectFailure)
            case .success(let u):
                guard u.isOpen else {
                    self.failed(x, .reset, outcome: .reset)
                    return
                }
                self.send(x, on: u)
            }
        }
    }

    /// Hands the exchange to an upstream connection and sends what there is of the request.
    /// `startedNow`: this is the tick the exchange started in (its first attempt, on an idle
    /// connection), so `x.start` is the time now.
    private func send(_ x: Exchange, on u: UpstreamHandler, startedNow: Bool = false) {
        x.upstream = u
        u.delegate = self
        if !clientWritable { u.setAutoRead(false) }
        // This connection takes the body now: the pauses that came from the last one (or from
        // having none) end.
        setPause([.upstream, .body], false)
        if !u.isWritable { setPause(.upstream, true) }
        u.expectResponse(toHead: x.head.method == "HEAD", dechunk: x.head.minor == 0)
        x.connected = true
        x.sent = 0
        if x.bodyEnded && x.parts.isEmpty {
            // The whole request is its head (most GETs): one write (see `EdgeSettings.requestFlush`).
            u.writeRequest(x.upstreamHead)
            x.requestSent = true
            // A first attempt goes out in the tick its head came in: its start is the time now.
            armResponseTimer(x, now: startedNow ? x.start : .now())
            return
        }
        u.write(x.upstreamHead)
        streamStarted()
        pump(x)
    }

    /// Sends what the upstream has not had yet, ends the request when the body has ended, and
    /// applies backpressure to the client while the upstream cannot take more.
    private func pump(_ x: Exchange) {
        guard x.connected, let u = x.upstream, !x.requestSent else {
            if !x.connected, x.bodyBytes > state.settings.retry.maxBufferedBody { setPause(.body, true) }
            return
        }
        while x.sent < x.parts.count {
            u.write(x.parts[x.sent])  // as it came (a chunked body keeps its chunks)
            x.sent += 1
        }
        if !x.replayable {
            x.parts.removeAll(keepingCapacity: true)
            x.sent = 0
        }
        u.flush()
        if x.bodyEnded {
            x.requestSent = true
            armResponseTimer(x)
        }
    }

    /// The response timer is lazy, as the head timer is: one scheduled task per connection that
    /// re-arms itself for the current exchange's deadline when it fires early.
    private var responseDeadline: NIODeadline?
    private var responseTimer: Scheduled<Void>?

    private func armResponseTimer(_ x: Exchange, now: NIODeadline = .now()) {
        guard let context else { return }
        let when = now + TimeAmount(state.settings.responseTimeout)
        responseDeadline = when
        x.awaitingResponse = true
        if responseTimer == nil { scheduleResponseTimer(context, at: min(when, now + TimeAmount(Self.downCheckInterval))) }
    }

    /// How often a request waiting for its response head looks whether its ingress left
    /// rotation (see `EdgeExchangeTimers.responseWait`).
    static let downCheckInterval = Duration.milliseconds(250)

    private func scheduleResponseTimer(_ context: ChannelHandlerContext, at when: NIODeadline) {
        responseTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: when) { [self] in
            self.responseTimer = nil
            guard let x = self.exchange, x.awaitingResponse, let deadline = self.responseDeadline, let context = self.context else { return }
            let now = NIODeadline.now()
            let decision = EdgeExchangeTimers.responseWait(
                now: now.instant, deadline: deadline.instant, checkEvery: Self.downCheckInterval,
                idempotent: EdgeRetryPolicy.idempotentMethods.contains(x.head.method),
                ingressDown: { x.endpoint.map { self.pool.isDown($0, self.state) } ?? false })
            switch decision {
            case .wait(let until):
                self.scheduleResponseTimer(context, at: NIODeadline(until))
            case .retryElsewhere:
                x.awaitingResponse = false
                self.state.logger.info("retrying \(x.head.method) \(x.head.uri) elsewhere: ingress \(x.endpoint?.key ?? "?") of \(x.cluster ?? "?") left rotation while it waited")
                self.failed(x, .abandoned, outcome: nil)
            case .timedOut:
                x.awaitingResponse = false
                self.closeUpstream(x)
                if x.responseStarted {
                    self.record(x, .timeout)
                    self.abort(x)
                } else {
                    self.failed(x, .timeout, outcome: .timeout)
                }
            }
        }
    }

    // MARK: Idle timeout

    /// While a request body or a response streams: when a byte last moved either way, or either
    /// side could take more again. nil while nothing streams (a whole GET and its whole response
    /// never read the clock for it; the response timer covers the wait for a response head).
    private var lastProgress: NIODeadline?
    private var idleTimer: Scheduled<Void>?

    /// The exchange's request body or response starts to stream: the idle timeout runs.
    private func streamStarted() {
        guard let context else { return }
        let now = NIODeadline.now()
        lastProgress = now
        if idleTimer == nil { scheduleIdleTimer(context, at: now + TimeAmount(state.settings.idleTimeout)) }
    }

    private func progressed() {
        if lastProgress != nil { lastProgress = .now() }
    }

    /// Lazy, as the other timers: one scheduled task per connection, which re-arms itself for the
    /// last progress when it fires early (`EdgeExchangeTimers.idle` decides).
    private func scheduleIdleTimer(_ context: ChannelHandlerContext, at when: NIODeadline) {
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: when) { [self] in
            self.idleTimer = nil
            guard let last = self.lastProgress, let x = self.exchange, let context = self.context else { return }
            let stream = EdgeExchangeTimers.Stream(awaitingResponse: x.awaitingResponse, responseStarted: x.responseStarted,
                                                   requestEnded: x.bodyEnded, clientWritable: self.clientWritable,
                                                   ingressWritable: !self.pause.contains(.upstream))
            let decision = EdgeExchangeTimers.idle(now: NIODeadline.now().instant, lastProgress: last.instant,
                                                   timeout: self.state.settings.idleTimeout, stream)
            if case .wait(let until) = decision {
                self.scheduleIdleTimer(context, at: NIODeadline(until))
                return
            }
            self.lastProgress = nil
            self.stalled(x, decision)
        }
    }

    /// Nothing moved for the idle timeout; `stall` says whose stall it was.
    private func stalled(_ x: Exchange, _ stall: EdgeExchangeTimers.Idle) {
        let cluster = x.cluster ?? "none"
        let idle = state.settings.idleTimeout
        switch stall {
        case .wait:
            return
        case .ingressStoppedSending, .clientStoppedReading:
            if stall == .ingressStoppedSending {
                record(x, .timeout)
                state.metrics.error(cluster: cluster, kind: "timeout")
            }
            state.logger.info("\(x.head.method) \(x.head.uri): the response stalled for \(idle) (\(stall == .ingressStoppedSending ? "ingress \(x.endpoint?.key ?? "?") stopped sending" : "the client stopped reading")); cut")
            closeUpstream(x)
            abort(x)
        case .clientStoppedSending:
            state.logger.info("\(x.head.method) \(x.head.uri): the client sent no body for \(idle); 408")
            closeUpstream(x)
            x.connected = false
            respond(x, status: .requestTimeout, body: "request body not received in time")
        case .ingressStoppedReading:
            state.logger.info("\(x.head.method) \(x.head.uri): ingress \(x.endpoint?.key ?? "?") took no body for \(idle)")
            failed(x, .timeout, outcome: .timeout)
        }
    }

    /// The exchange gives its ingress connection up and closes it (it holds part of an exchange
    /// that will not end cleanly).
    private func closeUpstream(_ x: Exchange) {
        guard let u = x.upstream else { return }
        x.upstream = nil
        u.delegate = nil
        u.close()
    }

    /// An attempt failed before any response byte went to the client.
    /// `outcome` nil: the attempt was abandoned because its ingress is already out of rotation;
    /// nothing more is counted against it.
    private func failed(_ x: Exchange, _ failure: EdgeRetryPolicy.Failure, outcome: EdgeAttemptOutcome?) {
        closeUpstream(x)
        x.connected = false
        x.awaitingResponse = false
        if let outcome {
            record(x, outcome)
            state.metrics.error(cluster: x.cluster ?? "none", kind: Self.kind(outcome))
        } else {
            state.metrics.error(cluster: x.cluster ?? "none", kind: "abandoned")
        }
        if case .retry = retryDecision(x, failure) {
            x.retries += 1
            if let c = x.cluster { x.tried.append(c) }
            state.retriesInFlight.add(1, ordering: .relaxed)
            state.metrics.retry(cluster: x.cluster ?? "none")
            x.sent = 0
            attempt(x)
            return
        }
        switch failure {
        case .connectFailure, .reset, .abandoned:
            respond(x, status: .serviceUnavailable, body: "no healthy upstream")
        case .timeout:
            respond(x, status: .gatewayTimeout, body: "upstream timeout")
        case .status(let code):
            respond(x, status: HTTPResponseStatus(statusCode: code), body: "upstream answered \(code)")
        }
    }

    private func retryDecision(_ x: Exchange, _ failure: EdgeRetryPolicy.Failure) -> EdgeRetryPolicy.Decision {
        state.settings.retry.decide(failure, method: x.head.method, body: x.retryBody, route: x.plan.route,
                                    retriesSoFar: x.retries, inFlight: state.inFlight.load(ordering: .relaxed),
                                    retriesInFlight: state.retriesInFlight.load(ordering: .relaxed))
    }

    private func record(_ x: Exchange, _ outcome: EdgeAttemptOutcome) {
        guard let t = x.target else { return }
        state.record(outcome, endpoint: t.endpoint, cluster: t.cluster)
    }

    static func kind(_ o: EdgeAttemptOutcome) -> String {
        switch o {
        case .success: "none"
        case .status(let s): String(s)
        case .connectFailure: "connect_failure"
        case .reset: "reset"
        case .timeout: "timeout"
        }
    }

    // MARK: Upstream (called by the `UpstreamHandler` this handler's exchange holds)

    func upstreamRead(_ part: ResponseFramer.Part) {
        guard let x = exchange, let context else { return }
        progressed()
        switch part {
        case .head(let head):
            x.awaitingResponse = false
            let code = head.status
            if code == 503, !x.responseStarted, case .retry = retryDecision(x, .status(503)) {
                failed(x, .status(503), outcome: .status(503))
                return
            }
            record(x, code >= 500 ? .status(code) : .success)
            if code >= 500 { state.metrics.error(cluster: x.cluster ?? "none", kind: String(code)) }
            x.responseStarted = true
            x.status = code
            if !head.keepAlive { x.upstreamClosesAfter = true }
            // A body that ends with the ingress's close, or a chunked one for an HTTP/1.0 client
            // (sent de-chunked), has no length the client could read: the client's connection
            // closes after it.
            let clientMinor = x.head.minor
            if head.framing == .untilClose || (clientMinor == 0 && head.framing == .chunked) { x.keepAlive = false }
            let passThrough = ResponseFramer.passesThrough(head, clientMinor: clientMinor, keepAlive: x.keepAlive)
            if let whole = head.whole, passThrough {
                // As it came, the whole response: one write, flushed at the tick's end (`complete`
                // follows).
                x.responseBytes += whole.readableBytes - head.bytes.readableBytes
                unflushed = false
                context.write(wrapOutboundOut(whole), promise: nil)
                pool.flushAtTickEnd(context)
                return
            }
            unflushed = true
            if head.whole == nil { streamStarted() }
            context.write(wrapOutboundOut(passThrough ? head.bytes
                                          : ResponseFramer.clientHead(head, clientMinor: clientMinor, keepAlive: x.keepAlive, allocator: allocator)),
                          promise: nil)
            if let whole = head.whole {
                let body = whole.getSlice(at: whole.readerIndex + head.bytes.readableBytes, length: whole.readableBytes - head.bytes.readableBytes)!
                x.responseBytes += body.readableBytes
                context.write(wrapOutboundOut(body), promise: nil)
            }
        case .body(let buffer):
            x.responseBytes += buffer.readableBytes
            unflushed = true
            context.write(wrapOutboundOut(buffer), promise: nil)
        case .end:
            let u = x.upstream
            x.upstream = nil
            if let u {
                if x.requestSent && !x.upstreamClosesAfter { pool.release(u) } else { u.delegate = nil; u.close() }
            }
            complete(x)
        }
    }

    /// Response bytes were written since the last flush.
    private var unflushed = false

    /// The end of one read burst from the ingress: flush what was written downstream.
    func upstreamReadComplete() {
        guard unflushed else { return }
        unflushed = false
        context?.flush()
    }

    /// The upstream connection closed (or failed) while this handler's exchange held it.
    func upstreamClosed() {
        guard let x = exchange else { return }
        let wasReused = x.upstream?.reused ?? false
        x.upstream = nil
        if x.responseStarted {
            record(x, .reset)
            abort(x)
            return
        }
        if wasReused, !x.transparentReconnect, !x.head.hasBody || x.replayable, let target = x.target {
            // A kept-alive connection the ingress had closed: try once more on a fresh one,
            // without counting it against the ingress. Only while the whole request can be sent
            // again: a body streamed past the replay buffer has lost its first parts.
            x.transparentReconnect = true
            x.awaitingResponse = false
            connect(x, to: target)
            return
        }
        failed(x, .reset, outcome: .reset)
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        progressed()
        setPause(.upstream, !writable)
    }

    // MARK: Answers

    /// Ends the exchange with the proxy's own answer (no response byte went out yet).
    private func respond(_ x: Exchange, status: HTTPResponseStatus, body: String) {
        x.status = Int(status.code)
        let close = !x.keepAlive || !x.bodyEnded
        if !x.bodyEnded { discarding = true }
        if close {
            // The exchange ends (counted, logged) before its answer goes out: writing the answer
            // closes the connection, and that close can come at once; `channelInactive` would
            // then take the exchange first, and `complete` find none to count and log.
            complete(x, closed: true)
            writeLocal(minor: x.head.minor, status: status, body: body, close: true)
        } else {
            writeLocal(minor: x.head.minor, status: status, body: body, close: false)
            complete(x)
        }
    }

    private func respondLocal(head: RequestFramer.Head, status: HTTPResponseStatus, body: String, close: Bool = false) {
        let closeNow = close || !head.keepAlive || head.hasBody || quiescing
        writeLocal(minor: head.minor, status: status, body: body, close: closeNow)
        if head.hasBody { discarding = true }
        countRequest(cluster: "none", status: Int(status.code))
        if let accessLog = state.settings.accessLog {
            log(accessLog, head: head, status: Int(status.code), cluster: nil, endpoint: nil, start: .now(), attempts: 0, bytes: 0)
        }
        if !closeNow { guardian.awaitHead() }
    }

    private func writeLocal(minor: Int, status: HTTPResponseStatus, body: String, close: Bool) {
        guard let context else { return }
        var b = allocator.buffer(capacity: 128 + body.utf8.count)
        b.writeStaticString(minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        b.writeString(String(status.code))
        b.writeStaticString(" ")
        b.writeString(status.reasonPhrase)
        b.writeStaticString("\r\ncontent-type: text/plain\r\ncontent-length: ")
        b.writeString(String(body.utf8.count))
        if close { b.writeStaticString("\r\nconnection: close") }
        else if minor == 0 { b.writeStaticString("\r\nconnection: keep-alive") }
        b.writeStaticString("\r\n\r\n")
        b.writeString(body)
        if close { closing = true }
        let done = context.writeAndFlush(wrapOutboundOut(b))
        if close { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }

    static let continueHead = ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")

    private var allocator = ByteBufferAllocator()

    /// The response went out whole (or the proxy answered): log, count, get ready for the next.
    private func complete(_ x: Exchange, closed: Bool = false) {
        guard let context, exchange === x else { return }
        exchange = nil
        lastProgress = nil
        setPause([.upstream, .body], false)
        x.awaitingResponse = false
        if x.responseStarted {
            if x.keepAlive {
                // The one flush of a response (the read burst's end then has none to do).
                if unflushed {
                    unflushed = false
                    context.flush()
                }
            } else {
                unflushed = false
                closing = true
                // Closes once everything written before has gone out.
                context.writeAndFlush(wrapOutboundOut(allocator.buffer(capacity: 0))).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
            }
        }
        account(x, note: x.attempts > 1 ? " tried=\(Self.triedOrder(x).joined(separator: ","))" : "")
        if x.keepAlive && !closed {
            guardian.awaitHead()
            drainQueue()
        }
    }

    /// The clusters an exchange tried, in order.
    static func triedOrder(_ x: Exchange) -> [String] {
        var order = x.tried
        if let c = x.cluster, !order.contains(c) { order.append(c) }
        return order
    }

    /// The response broke after it started: the client gets a cut connection.
    private func abort(_ x: Exchange) {
        exchange = nil
        lastProgress = nil
        x.awaitingResponse = false
        account(x, note: " aborted")
        context?.close(promise: nil)
    }

    /// The request counters this connection used, newest last: a kept-alive connection counts
    /// the same few clusters and codes again and again, and then takes no lock and builds no
    /// key. (The cluster names come from the route table, so comparing them mostly compares
    /// the same storage.)
    private var counters: [(cluster: String, status: Int, counter: Counter)] = []
    static let maxCachedCounters = 8

    private func countRequest(cluster: String, status: Int) {
        for entry in counters where entry.status == status && entry.cluster == cluster {
            entry.counter.increment()
            return
        }
        let c = state.metrics.requestCounter(cluster: cluster, status: status)
        if counters.count == Self.maxCachedCounters { counters.removeFirst() }
        counters.append((cluster, status, c))
        c.increment()
    }

    private func finishAccounting(_ x: Exchange) {
        state.inFlight.subtract(1, ordering: .relaxed)
        if x.retries > 0 { state.retriesInFlight.subtract(x.retries, ordering: .relaxed) }
    }

    /// An exchange that ended with an answer (whole or cut): the in-flight counts, the request
    /// counter, the access log line (nothing of which is built when the log is off).
    private func account(_ x: Exchange, note: @autoclosure () -> String) {
        finishAccounting(x)
        countRequest(cluster: x.cluster ?? "none", status: x.status)
        guard let accessLog = state.settings.accessLog else { return }
        log(accessLog, head: x.head, status: x.status, cluster: x.cluster, endpoint: x.endpoint, start: x.start,
            attempts: x.attempts, bytes: x.responseBytes, note: note())
    }

    private func log(_ accessLog: AccessLog, head: RequestFramer.Head, status: Int, cluster: String?, endpoint: EdgeEndpoint?,
                     start: NIODeadline, attempts: Int, bytes: Int, note: String = "") {
        let ms = Double((NIODeadline.now() - start).nanoseconds) / 1e6
        let host = head.host ?? "-"
        let line = "\(AccessLog.timestamp()) \(status) \(cluster ?? "-") \(head.method) \(host)\(head.uri) \(endpoint?.key ?? "-") "
            + String(format: "%.1fms", ms) + " try=\(attempts) bytes=\(bytes) from=\(clientAddress ?? "-")\(note)"
        accessLog.write(line)
    }
}
