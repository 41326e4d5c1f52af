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
/// Pipelined requests wait in a queue until the response before them has ended. The handler
/// keeps reading while a request is served (NIO's `HTTPServerPipelineHandler` instead stops
/// reading, which costs two `epoll_ctl` calls per request); it stops only when the queue holds
/// more than `maxQueuedBytes`.
final class EdgeProxyHandler: ChannelDuplexHandler, UpstreamDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The request being served.
    final class Exchange {
        let head: HTTPRequestHead
        let rule: EdgeRouteTable.Rule
        /// The head as every ingress tried gets it, already encoded.
        let upstreamHead: ByteBuffer
        /// The body comes chunked: each part goes out as a chunk.
        let chunked: Bool
        let hasBody: Bool
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
        /// The clusters tried, in order (a retry goes elsewhere; the access log's `tried=`).
        var tried: [String] = []
        var attempts = 0
        var retries = 0
        var upstream: UpstreamHandler?
        var endpoint: EdgeEndpoint?
        var cluster: String?
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

        init(head: HTTPRequestHead, rule: EdgeRouteTable.Rule, upstreamHead: ByteBuffer, chunked: Bool, hasBody: Bool) {
            self.head = head
            self.rule = rule
            self.upstreamHead = upstreamHead
            self.chunked = chunked
            self.hasBody = hasBody
            self.keepAlive = head.isKeepAlive
            self.bodyEnded = !hasBody
            self.start = .now()
        }

        var retryBody: EdgeRetryPolicy.Body {
            if !hasBody { return .none }
            return replayable ? .buffered(bytes: bodyBytes) : .streamed
        }
    }

    let state: EdgeState
    let pool: UpstreamPool
    let guardian: SlowClientGuard
    private var context: ChannelHandlerContext?
    private var exchange: Exchange?
    /// A local answer was sent while the request's body was still coming: drop the rest.
    private var discarding = false
    private var clientAddress: String?
    /// Between a request's head and its end, for the request being served (not a queued one).
    private var requestOpen = false
    /// Pipelined request parts that arrived while the response before them was still going.
    private var queue = CircularBuffer<HTTPServerRequestPart>()
    private var queuedBytes = 0
    private var draining = false
    /// A `read` held back while the queue was over `maxQueuedBytes`.
    private var readHeld = false
    /// The edge is draining (SIGTERM): the current response is the connection's last.
    private var quiescing = false
    static let maxQueuedBytes = 64 * 1024

    init(state: EdgeState, pool: UpstreamPool, guardian: SlowClientGuard) {
        self.state = state
        self.pool = pool
        self.guardian = guardian
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        clientAddress = context.channel.remoteAddress?.ipAddress
    }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    // MARK: Downstream

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if !queue.isEmpty || (exchange != nil && !requestOpen) {
            // The next request, pipelined behind one whose response has not ended yet.
            enqueue(part)
            return
        }
        handle(part)
    }

    private func handle(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            requestOpen = true
            guardian.headReceived()
            discarding = false
            begin(head)
        case .body(let buffer):
            guard !discarding, let x = exchange else { return }
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

    private func enqueue(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let h): queuedBytes += HTTPHeaders.headSize(h)
        case .body(let b): queuedBytes += b.readableBytes
        case .end: queuedBytes += 1
        }
        queue.append(part)
    }

    /// Serves queued requests once the response before them has ended, in order, until one is
    /// in progress again with its request read whole.
    private func drainQueue() {
        guard !draining else { return }
        draining = true
        defer { draining = false }
        while let first = queue.first, context != nil {
            if exchange != nil && !requestOpen { break }
            queue.removeFirst()
            switch first {
            case .head(let h): queuedBytes -= HTTPHeaders.headSize(h)
            case .body(let b): queuedBytes -= b.readableBytes
            case .end: queuedBytes -= 1
            }
            handle(first)
        }
        if readHeld, queuedBytes <= Self.maxQueuedBytes, let context {
            readHeld = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if queuedBytes > Self.maxQueuedBytes {
            readHeld = true
        } else {
            context.read()
        }
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
        queue.removeAll()
        queuedBytes = 0
        if let x = exchange {
            exchange = nil
            x.awaitingResponse = false
            if let u = x.upstream {
                u.delegate = nil
                u.close()
            }
            finishAccounting(x)
        }
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        exchange?.upstream?.setAutoRead(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parse = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        if exchange == nil {
            // The codec cannot go on; answer with raw bytes and cut the connection.
            if parse == .headerOverflow {
                guardian.reject(status: "431 Request Header Fields Too Large", body: "request header fields too large")
            } else {
                guardian.reject(status: "400 Bad Request", body: "malformed request: \(parse)")
            }
        } else {
            context.close(promise: nil)
        }
    }

    private func begin(_ head: HTTPRequestHead) {
        let settings = state.settings
        if HTTPHeaders.headSize(head) > settings.maxHeaderBytes {
            respondLocal(head: head, status: .requestHeaderFieldsTooLarge, body: "request header fields too large", close: true)
            return
        }
        var hostCount = 0
        var hostValue: String?
        for (name, value) in head.headers where name.utf8.count == 4 && name.lowercased() == "host" {
            hostCount += 1
            hostValue = value
        }
        guard head.version.major == 1, (head.version.minor == 0 || hostCount == 1), hostCount <= 1 else {
            respondLocal(head: head, status: .badRequest, body: "bad request: HTTP/1.1 needs exactly one Host header", close: true)
            return
        }
        let host = hostValue ?? ""
        let table = pool.snapshot(state).table
        let path = head.uri
        let headers = head.headers
        guard let rule = table.lookup(port: settings.port, host: host, path: path, header: { headers.first(name: $0) })
                ?? table.lookupAnyPort(host: host, path: path, header: { headers.first(name: $0) }) else {
            respondLocal(head: head, status: .notFound, body: "no route for host \(host)")
            return
        }
        if let expect = head.headers.first(name: "expect"), head.version.minor >= 1 {
            // The edge takes the body itself (it buffers and streams it), so it answers
            // `100-continue` at once, as Envoy does, instead of waiting for an ingress to; the
            // ingress gets no Expect. Any other expectation cannot be met (RFC 9110 §10.1.1).
            guard expect.trimmedOWS().lowercased() == "100-continue" else {
                respondLocal(head: head, status: .expectationFailed, body: "expectation not supported: \(expect)", close: true)
                return
            }
            context?.writeAndFlush(wrapOutboundOut(Self.continueHead), promise: nil)
        }
        let chunked = head.headers.contains(name: "transfer-encoding")
            && head.headers["transfer-encoding"].contains { $0.lowercased().contains("chunked") }
        let length = head.headers.first(name: "content-length").flatMap { Int($0) } ?? 0
        let up = UpstreamRequest.head(head, client: clientAddress, host: host.isEmpty ? nil : host, chunked: chunked,
                                      allocator: allocator)
        let x = Exchange(head: head, rule: rule, upstreamHead: up, chunked: chunked, hasBody: chunked || length > 0)
        if quiescing { x.keepAlive = false }
        exchange = x
        state.inFlight.add(1, ordering: .relaxed)
        attempt(x)
    }

    // MARK: Attempts

    private func attempt(_ x: Exchange) {
        let down = pool.snapshot(state).down
        let pick = EdgeBalancer.pick(x.rule.route, region: state.settings.region, excluding: x.tried,
                                     isHealthy: { down.isEmpty || !down.contains($0) }, using: &pool.random)
        switch pick {
        case .noHealthyUpstream(let cluster):
            if let cluster { x.cluster = cluster }
            respond(x, status: .serviceUnavailable, body: "no healthy upstream")
        case .endpoint(let cluster, let endpoint):
            x.tried.append(cluster)
            x.attempts += 1
            connect(x, cluster: cluster, endpoint: endpoint)
        }
    }

    private func connect(_ x: Exchange, cluster: String, endpoint: EdgeEndpoint) {
        x.cluster = cluster
        x.endpoint = endpoint
        x.connected = false
        x.requestSent = false
        if let u = pool.takeIdle(endpoint) {
            send(x, on: u)
            return
        }
        pool.acquire(endpoint) { [weak self] result in
            guard let self, self.exchange === x else {
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
    private func send(_ x: Exchange, on u: UpstreamHandler) {
        x.upstream = u
        u.delegate = self
        if !(context?.channel.isWritable ?? true) { u.setAutoRead(false) }
        u.expectResponse(toHead: x.head.method == .HEAD, dechunk: x.head.version.minor == 0)
        u.write(x.upstreamHead)
        x.connected = true
        x.sent = 0
        pump(x)
    }

    /// Sends what the upstream has not had yet, ends the request when the body has ended, and
    /// applies backpressure to the client while the upstream cannot take more.
    private func pump(_ x: Exchange) {
        guard x.connected, let u = x.upstream, !x.requestSent else {
            if !x.connected, x.bodyBytes > state.settings.retry.maxBufferedBody {
                context?.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
            }
            return
        }
        while x.sent < x.parts.count {
            let part = x.parts[x.sent]
            u.write(x.chunked ? UpstreamRequest.chunk(part, allocator: allocator) : part)
            x.sent += 1
        }
        if !x.replayable {
            x.parts.removeAll(keepingCapacity: true)
            x.sent = 0
        }
        if x.bodyEnded {
            if x.chunked { u.write(UpstreamRequest.lastChunk) }
            u.flush()
            x.requestSent = true
            armResponseTimer(x)
        } else {
            u.flush()
        }
    }

    /// The response timer is lazy, as the head timer is: one scheduled task per connection that
    /// re-arms itself for the current exchange's deadline when it fires early.
    private var responseDeadline: NIODeadline?
    private var responseTimer: Scheduled<Void>?

    private func armResponseTimer(_ x: Exchange) {
        guard let context else { return }
        let when = NIODeadline.now() + .nanoseconds(state.settings.responseTimeout.nanoseconds)
        responseDeadline = when
        x.awaitingResponse = true
        if responseTimer == nil { scheduleResponseTimer(context, at: min(when, .now() + Self.downCheckInterval)) }
    }

    /// How often a request waiting for its response head looks whether its ingress left
    /// rotation (a cut link: the connection neither answers nor resets). An idempotent request
    /// whose ingress went down is then retried on another cluster instead of waiting for the
    /// response timeout.
    static let downCheckInterval = TimeAmount.milliseconds(250)

    private func scheduleResponseTimer(_ context: ChannelHandlerContext, at when: NIODeadline) {
        responseTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: when) { [weak self] in
            guard let self else { return }
            self.responseTimer = nil
            guard let x = self.exchange, x.awaitingResponse, let deadline = self.responseDeadline, let context = self.context else { return }
            let now = NIODeadline.now()
            if now < deadline {
                if let e = x.endpoint, EdgeRetryPolicy.idempotentMethods.contains(x.head.method.rawValue), self.pool.isDown(e, self.state) {
                    x.awaitingResponse = false
                    self.state.logger.info("retrying \(x.head.method.rawValue) \(x.head.uri) elsewhere: ingress \(e) of \(x.cluster ?? "?") left rotation while it waited")
                    self.failed(x, .reset, outcome: nil)
                    return
                }
                self.scheduleResponseTimer(context, at: min(deadline, now + Self.downCheckInterval))
                return
            }
            x.awaitingResponse = false
            if let u = x.upstream {
                u.delegate = nil
                u.close()
                x.upstream = nil
            }
            if x.responseStarted {
                self.record(x, .timeout)
                self.abort(x)
            } else {
                self.failed(x, .timeout, outcome: .timeout)
            }
        }
    }

    /// An attempt failed before any response byte went to the client.
    /// `outcome` nil: the attempt was abandoned because its ingress is already out of rotation;
    /// nothing more is counted against it.
    private func failed(_ x: Exchange, _ failure: EdgeRetryPolicy.Failure, outcome: EdgeAttemptOutcome?) {
        if let u = x.upstream {
            u.delegate = nil
            u.close()
            x.upstream = nil
        }
        x.connected = false
        x.awaitingResponse = false
        if let outcome {
            record(x, outcome)
            state.metrics.error(cluster: x.cluster ?? "none", kind: Self.kind(outcome))
        } else {
            state.metrics.error(cluster: x.cluster ?? "none", kind: "abandoned")
        }
        let decision = state.settings.retry.decide(failure, method: x.head.method.rawValue, body: x.retryBody,
                                                   route: x.rule.route, retriesSoFar: x.retries,
                                                   inFlight: state.inFlight.load(ordering: .relaxed),
                                                   retriesInFlight: state.retriesInFlight.load(ordering: .relaxed))
        if case .retry = decision {
            x.retries += 1
            state.retriesInFlight.add(1, ordering: .relaxed)
            state.metrics.retry(cluster: x.cluster ?? "none")
            x.sent = 0
            attempt(x)
            return
        }
        switch failure {
        case .connectFailure, .reset:
            respond(x, status: .serviceUnavailable, body: "no healthy upstream")
        case .timeout:
            respond(x, status: .gatewayTimeout, body: "upstream timeout")
        case .status(let code):
            respond(x, status: HTTPResponseStatus(statusCode: code), body: "upstream answered \(code)")
        }
    }

    private func record(_ x: Exchange, _ outcome: EdgeAttemptOutcome) {
        guard let e = x.endpoint, let c = x.cluster else { return }
        state.record(outcome, endpoint: e, cluster: c)
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

    // MARK: Upstream

    func upstreamRead(_ part: ResponseFramer.Part) {
        guard let x = exchange, let context else { return }
        switch part {
        case .head(let head):
            x.awaitingResponse = false
            let code = head.status
            if code == 503, !x.responseStarted {
                let decision = state.settings.retry.decide(.status(503), method: x.head.method.rawValue, body: x.retryBody,
                                                           route: x.rule.route, retriesSoFar: x.retries,
                                                           inFlight: state.inFlight.load(ordering: .relaxed),
                                                           retriesInFlight: state.retriesInFlight.load(ordering: .relaxed))
                if case .retry = decision {
                    failed(x, .status(503), outcome: .status(503))
                    return
                }
            }
            record(x, code >= 500 ? .status(code) : .success)
            if code >= 500 { state.metrics.error(cluster: x.cluster ?? "none", kind: String(code)) }
            x.responseStarted = true
            x.status = code
            if !head.keepAlive { x.upstreamClosesAfter = true }
            // A body that ends with the ingress's close, or a chunked one for an HTTP/1.0 client
            // (sent de-chunked), has no length the client could read: the client's connection
            // closes after it.
            let clientMinor = Int(x.head.version.minor)
            if head.framing == .untilClose || (clientMinor == 0 && head.framing == .chunked) { x.keepAlive = false }
            let clientHead = ResponseFramer.clientHead(head, clientMinor: clientMinor, keepAlive: x.keepAlive, allocator: allocator)
            unflushed = true
            if let whole = head.whole {
                x.responseBytes += whole.readableBytes - head.bytes.readableBytes
                if clientHead == head.bytes {
                    context.write(wrapOutboundOut(whole), promise: nil)  // as it came: one write
                } else {
                    context.write(wrapOutboundOut(clientHead), promise: nil)
                    context.write(wrapOutboundOut(whole.getSlice(at: whole.readerIndex + head.bytes.readableBytes,
                                                                 length: whole.readableBytes - head.bytes.readableBytes)!), promise: nil)
                }
            } else {
                context.write(wrapOutboundOut(clientHead), promise: nil)
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

    func upstreamReadComplete() {
        guard unflushed else { return }
        unflushed = false
        context?.flush()
    }

    func upstreamClosed() {
        guard let x = exchange else { return }
        let wasReused = x.upstream?.reused ?? false
        x.upstream = nil
        if x.responseStarted {
            record(x, .reset)
            abort(x)
            return
        }
        if wasReused, !x.transparentReconnect, let e = x.endpoint, let c = x.cluster {
            // A kept-alive connection the ingress had closed: try once more on a fresh one,
            // without counting it against the ingress.
            x.transparentReconnect = true
            x.awaitingResponse = false
            connect(x, cluster: c, endpoint: e)
            return
        }
        failed(x, .reset, outcome: .reset)
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        context?.channel.setOption(ChannelOptions.autoRead, value: writable).whenComplete { _ in }
    }

    // MARK: Answers

    /// Ends the exchange with the proxy's own answer (no response byte went out yet).
    private func respond(_ x: Exchange, status: HTTPResponseStatus, body: String) {
        x.status = Int(status.code)
        let close = !x.keepAlive || !x.bodyEnded
        if !x.bodyEnded { discarding = true }
        writeLocal(version: x.head.version, status: status, body: body, close: close)
        complete(x, closed: close)
    }

    private func respondLocal(head: HTTPRequestHead, status: HTTPResponseStatus, body: String, close: Bool = false) {
        let hasBody = head.headers.first(name: "content-length").flatMap(Int.init).map { $0 > 0 } ?? false
            || head.headers["transfer-encoding"].contains { $0.lowercased().contains("chunked") }
        let closeNow = close || !head.isKeepAlive || hasBody || quiescing
        writeLocal(version: head.version, status: status, body: body, close: closeNow)
        if hasBody { discarding = true }
        state.metrics.request(cluster: "none", status: Int(status.code))
        log(head: head, status: Int(status.code), cluster: nil, endpoint: nil, start: .now(), attempts: 0, bytes: 0)
        if !closeNow { guardian.awaitHead() }
    }

    private func writeLocal(version: HTTPVersion, status: HTTPResponseStatus, body: String, close: Bool) {
        guard let context else { return }
        var b = allocator.buffer(capacity: 128 + body.utf8.count)
        b.writeStaticString(version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        b.writeString(String(status.code))
        b.writeStaticString(" ")
        b.writeString(status.reasonPhrase)
        b.writeStaticString("\r\ncontent-type: text/plain\r\ncontent-length: ")
        b.writeString(String(body.utf8.count))
        if close { b.writeStaticString("\r\nconnection: close") }
        else if version.minor == 0 { b.writeStaticString("\r\nconnection: keep-alive") }
        b.writeStaticString("\r\n\r\n")
        b.writeString(body)
        let done = context.writeAndFlush(wrapOutboundOut(b))
        if close { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }

    static let continueHead = ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")

    private var allocator: ByteBufferAllocator { context?.channel.allocator ?? ByteBufferAllocator() }

    /// The response went out whole (or the proxy answered): log, count, get ready for the next.
    private func complete(_ x: Exchange, closed: Bool = false) {
        guard let context, exchange === x else { return }
        exchange = nil
        x.awaitingResponse = false
        if x.responseStarted {
            if x.keepAlive {
                // The one flush of a small response (the read burst's end then has none to do).
                unflushed = false
                context.flush()
            } else {
                unflushed = false
                // Closes once everything written before has gone out.
                context.writeAndFlush(wrapOutboundOut(allocator.buffer(capacity: 0))).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
            }
        }
        finishAccounting(x)
        countRequest(cluster: x.cluster ?? "none", status: x.status)
        log(head: x.head, status: x.status, cluster: x.cluster, endpoint: x.endpoint, start: x.start, attempts: x.attempts,
            bytes: x.responseBytes, note: x.attempts > 1 ? " tried=\(x.tried.joined(separator: ","))" : "")
        if x.keepAlive && !closed {
            guardian.awaitHead()
            drainQueue()
        }
    }

    /// The response broke after it started: the client gets a cut connection.
    private func abort(_ x: Exchange) {
        exchange = nil
        x.awaitingResponse = false
        finishAccounting(x)
        state.metrics.request(cluster: x.cluster ?? "none", status: x.status)
        log(head: x.head, status: x.status, cluster: x.cluster, endpoint: x.endpoint, start: x.start, attempts: x.attempts,
            bytes: x.responseBytes, note: " aborted")
        context?.close(promise: nil)
    }

    /// Counts a finished request on this event loop's cached counter.
    private var lastCounter: (key: UpstreamPool.RequestKey, counter: Counter)?

    private func countRequest(cluster: String, status: Int) {
        let key = UpstreamPool.RequestKey(cluster: cluster, status: status)
        if let last = lastCounter, last.key.status == status, last.key.cluster == cluster {
            last.counter.increment()
            return
        }
        if let c = pool.requestCounters[key] {
            lastCounter = (key, c)
            c.increment()
        } else {
            let c = Counter(label: "baton_edge_requests_total", dimensions: [("cluster", cluster), ("code", String(status))])
            pool.requestCounters[key] = c
            c.increment()
        }
    }

    private func finishAccounting(_ x: Exchange) {
        state.inFlight.subtract(1, ordering: .relaxed)
        if x.retries > 0 { state.retriesInFlight.subtract(x.retries, ordering: .relaxed) }
    }

    private func log(head: HTTPRequestHead, status: Int, cluster: String?, endpoint: EdgeEndpoint?, start: NIODeadline,
                     attempts: Int, bytes: Int, note: String = "") {
        guard let accessLog = state.settings.accessLog else { return }
        let ms = Double((NIODeadline.now() - start).nanoseconds) / 1e6
        let host = head.headers.first(name: "host") ?? "-"
        let line = "\(AccessLog.timestamp()) \(status) \(cluster ?? "-") \(head.method.rawValue) \(host)\(head.uri) \(endpoint?.key ?? "-") "
            + String(format: "%.1fms", ms) + " try=\(attempts) bytes=\(bytes) from=\(clientAddress ?? "-")\(note)"
        accessLog.write(line)
    }
}
