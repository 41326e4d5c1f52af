import AsyncHTTPClient
import BatonAPI
import BatonClient
import BatonEtcd
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A tiny ingress on loopback that answers every request with its cluster's name, the way the
/// seed's demo ingresses do. It can be stopped (its listener and every open connection closed,
/// as when an ingress is scaled to 0), started again on the same port, or told to answer 503
/// (the upstream service behind the ingress failed).
final class TinyIngress: @unchecked Sendable {
    let name: String
    let port: Int
    private let lock = NSLock()
    private var listener: (any Channel)?
    private var children: [ObjectIdentifier: any Channel] = [:]
    private let failing = Atomic<Bool>(false)
    /// Set by `cutLink`: requests are read and never answered.
    let frozen = Atomic<Bool>(false)
    /// Nonzero: the next request body to pass this many bytes has its connection closed under
    /// it (once), as an ingress closing a kept-alive connection at the wrong moment would.
    let closeInBodyAfter = Atomic<Int>(0)
    /// Request heads received for `POST /count`.
    let countHeads = Atomic<Int>(0)
    private var blackHoleFD: Int32 = -1

    init(name: String, port: Int? = nil) async throws {
        self.name = name
        self.port = port ?? LoopbackPort.free()
        try await start()
    }

    var isFailing: Bool {
        get { failing.load(ordering: .relaxed) }
        set { failing.store(newValue, ordering: .relaxed) }
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let ingress: TinyIngress
        init(_ i: TinyIngress) { ingress = i }
        var head: HTTPRequestHead?
        var bodyBytes = 0

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                head = h
                bodyBytes = 0
                if h.method == .POST && h.uri == "/count" { ingress.countHeads.add(1, ordering: .relaxed) }
                // An ingress that takes a request head and then stops reading its body.
                if h.uri == "/noread" { context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in } }
            case .body(let b):
                bodyBytes += b.readableBytes
                let after = ingress.closeInBodyAfter.load(ordering: .relaxed)
                if after > 0 && bodyBytes >= after {
                    ingress.closeInBodyAfter.store(0, ordering: .relaxed)
                    head = nil
                    context.close(promise: nil)
                }
            case .end:
                guard let h = head else { return }
                let check = h.headers.first(name: "user-agent") == "baton-edge-healthcheck"
                if ingress.frozen.load(ordering: .relaxed) { return }
                if h.uri == "/stall" && !check {
                    // A head and part of the body, then nothing (an ingress stuck mid-response).
                    let head = HTTPResponseHead(version: h.version, status: .ok, headers: HTTPHeaders([("content-length", "1000")]))
                    context.write(wrapOutboundOut(.head(head)), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "\(ingress.name)\n")))), promise: nil)
                    return
                }
                if h.uri == "/slow" && !check {
                    context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) { self.respond(context, h) }
                } else {
                    respond(context, h)
                }
            }
        }

        /// The cluster's name; `/echo-headers` adds the request's headers, `/count` the request
        /// body's size, `/big` answers 8 MiB. (`/slow` answers after a second; `/stall` sends a
        /// head and part of its body, and never the rest; `/noread` stops reading after the head.)
        func respond(_ context: ChannelHandlerContext, _ h: HTTPRequestHead) {
            let failing = ingress.isFailing
            var body = failing ? "upstream connect error\n" : "\(ingress.name)\n"
            if h.uri == "/echo-headers" {
                body += h.headers.map { "\($0.name.lowercased()): \($0.value)\n" }.joined()
            }
            if h.uri == "/count" { body += "\(bodyBytes)\n" }
            var payload = context.channel.allocator.buffer(string: body)
            if h.uri == "/big" { payload.writeRepeatingByte(UInt8(ascii: "x"), count: 8 << 20) }
            // `/chunked` goes out without a length, so NIO's encoder sends it chunked.
            var headers = h.uri == "/chunked" ? HTTPHeaders([("x-cluster", ingress.name)])
                : HTTPHeaders([("content-length", String(payload.readableBytes)), ("x-cluster", ingress.name)])
            if !h.isKeepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: failing ? .serviceUnavailable : .ok,
                                                                 headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(payload))), promise: nil)
            if h.uri == "/chunked" { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "and more\n")))), promise: nil) }
            let keep = h.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if !keep { context.close(promise: nil) }
            }
        }
    }

    func start() async throws {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [weak self] channel in
                guard let self else { return channel.eventLoop.makeSucceededVoidFuture() }
                self.track(channel)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(self))
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .get()
        lock.withLock { listener = channel }
    }

    private func track(_ c: any Channel) {
        let id = ObjectIdentifier(c)
        lock.withLock { children[id] = c }
        c.closeFuture.whenComplete { [weak self] _ in self?.lock.withLock { _ = self?.children.removeValue(forKey: id) } }
    }

    /// As if the link to the ingress were cut: open connections get no answer (and no reset),
    /// and new connects hang. The listener is replaced by a socket that never accepts, with a
    /// backlog of 0, so the kernel drops further SYNs.
    func cutLink() async throws {
        frozen.store(true, ordering: .relaxed)
        let l = lock.withLock { () -> (any Channel)? in
            let l = listener
            listener = nil
            return l
        }
        try? await l?.close()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 0) == 0 else {
            close(fd)
            throw APIError.internalError("cannot hold port \(port) as a black hole: errno \(errno)")
        }
        lock.withLock { blackHoleFD = fd }
    }

    /// Closes the listener and every connection: connects are refused from now on.
    func stop() async {
        let hole = lock.withLock { () -> Int32 in
            let fd = blackHoleFD
            blackHoleFD = -1
            return fd
        }
        if hole >= 0 { close(hole) }
        let (l, cs) = lock.withLock { () -> ((any Channel)?, [any Channel]) in
            let r = (listener, Array(children.values))
            listener = nil
            return r
        }
        try? await l?.close()
        for c in cs { try? await c.close() }
    }
}

/// A `baton edge` child process, stopped by PID. Its access log (stdout) and its log (stderr)
/// go to files in `dir`.
final class EdgeProcess: @unchecked Sendable {
    let process = Process()
    let port: Int
    let accessLogPath: String
    let logPath: String

    /// `defaults` false speeds detection up for tests that are not about it (1 s ejections,
    /// checks every 0.2 s); true runs with the edge's own defaults.
    init(server: ServerProcess, dir: String, region: String, labels: String = "app=edgegw", namespace: String = "edge",
         defaults: Bool = false, extra: [String] = []) throws {
        port = LoopbackPort.free()
        accessLogPath = dir + "/edge-\(port).access"
        logPath = dir + "/edge-\(port).log"
        FileManager.default.createFile(atPath: accessLogPath, contents: nil)
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: BatonBinary.path!)
        process.arguments = ["edge", "--server", server.url, "--token", server.adminToken, "--listen", "127.0.0.1:\(port)",
                             "--region", region, "--labels", labels, "--namespace", namespace]
            + (defaults ? [] : ["--base-ejection-time", "1", "--health-check-interval", "0.2"]) + extra
        process.standardOutput = FileHandle(forWritingAtPath: accessLogPath)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
    }

    var accessLog: [String] {
        ((try? String(contentsOfFile: accessLogPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func kill(signal: Int32 = SIGKILL) {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, signal)
        process.waitUntilExit()
    }

    deinit { kill() }
}

/// A client for the edge that sets the `Host` header the way a browser resolving the
/// Gateway's hostname to the edge would.
struct EdgeClient: Sendable {
    let port: Int
    let host: String
    let http: HTTPClient

    struct Answer: Sendable, Equatable {
        var status: Int
        var body: String
    }

    func get(_ path: String = "/productpage", headers: [(String, String)] = []) async -> Answer {
        var r = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        r.headers.replaceOrAdd(name: "Host", value: host)
        for (k, v) in headers { r.headers.add(name: k, value: v) }
        do {
            let response = try await http.execute(r, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            return Answer(status: Int(response.status.code), body: String(buffer: body).trimmingCharacters(in: .whitespacesAndNewlines))
        } catch {
            return Answer(status: -1, body: "\(error)")
        }
    }

    /// Answers of `n` requests in a row.
    func spread(_ n: Int) async -> [String: Int] {
        var counts: [String: Int] = [:]
        for _ in 0..<n {
            let a = await get()
            counts[a.status == 200 ? a.body : "\(a.status) \(a.body)", default: 0] += 1
        }
        return counts
    }
}

/// Raw bytes over one TCP connection, for requests an HTTP client will not send.
enum RawHTTP {
    /// Connects `fd` to 127.0.0.1:`port`; 0 on success, as connect(2).
    static func connectLoopback(_ fd: Int32, port: Int) -> Int32 {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// Sends `head`, waits up to `wait` seconds for an interim `100 Continue`, then sends `body`
    /// and reads to the close. Returns what was read before the body went, and all of it.
    static func expectContinue(port: Int, head: String, body: String, wait: Double = 3) -> (beforeBody: String, response: String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        let ok = connectLoopback(fd, port: port)
        guard ok == 0 else { return ("connect failed", "connect failed") }
        var tv = timeval(tv_sec: Int(wait), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = head.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while !String(decoding: out, as: UTF8.self).contains("\r\n\r\n") {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        let before = String(decoding: out, as: UTF8.self)
        _ = body.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return (before, String(decoding: out, as: UTF8.self))
    }

    /// Connects, sends `bytes` (in `chunks` with `pause` between them when given), and reads until
    /// the peer closes or `timeout` passes. Returns what was read and whether the peer closed.
    static func exchange(port: Int, _ bytes: String, timeout: Double = 5) -> (response: String, closed: Bool) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        let ok = connectLoopback(fd, port: port)
        guard ok == 0 else { return ("connect failed", true) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = bytes.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n == 0 { return (String(decoding: out, as: UTF8.self), true) }
            if n < 0 { return (String(decoding: out, as: UTF8.self), false) }
            out += buf[0..<n]
        }
    }
}
