import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// A cluster's ingress as the lab and the edge benches run it: an HTTP/1.1 service, keep-alive,
/// answering every request with the cluster's name.
///
/// - `baton lab ingress` serves one until the process stops. While the file `failFlag` exists
///   it answers 503 "upstream connect error", as an ingress whose upstream service failed does.
/// - The benches start theirs in process (`start`), on loopback; the failover bench's
///   `Freezer` can make one stop answering.
public struct LabIngress: Sendable {
    let channel: any Channel
    let port: Int
    /// Its open connections, so that the failover bench can close them all, as a killed
    /// ingress process's kernel would.
    let children: ChannelSet

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let answer: (body: ByteBuffer, headers: HTTPHeaders)
        static let failing = Handler.answer("upstream connect error")
        let failFlag: String?
        let freezer: Freezer?
        var keepAlive = true
        var failed = false
        var swallowed = false

        static func answer(_ text: String) -> (body: ByteBuffer, headers: HTTPHeaders) {
            (ByteBuffer(string: text + "\n"), HTTPHeaders([("content-length", String(text.utf8.count + 1)), ("content-type", "text/plain")]))
        }

        init(name: String, failFlag: String?, freezer: Freezer?) {
            answer = Self.answer(name)
            self.failFlag = failFlag
            self.freezer = freezer
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                swallowed = freezer?.swallow(h) ?? false
                if swallowed { return }
                keepAlive = h.isKeepAlive
                failed = failFlag.map { access($0, F_OK) == 0 } ?? false
                var hs = failed ? Self.failing.headers : answer.headers
                if !keepAlive { hs.add(name: "connection", value: "close") }
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: failed ? .serviceUnavailable : .ok,
                                                                     headers: hs))), promise: nil)
            case .body:
                break
            case .end:
                if swallowed { return }
                context.write(wrapOutboundOut(.body(.byteBuffer(failed ? Self.failing.body : answer.body))), promise: nil)
                if keepAlive {
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                } else {
                    context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                }
            }
        }
    }

    /// Starts one on `host:port` (port 0: any free port; `port` then says which).
    static func start(name: String, host: String = "127.0.0.1", port: Int = 0, group: any EventLoopGroup,
                      failFlag: String? = nil, freezer: Freezer? = nil) async throws -> LabIngress {
        let children = ChannelSet()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                children.add(channel)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(Handler(name: name, failFlag: failFlag, freezer: freezer))
                }
            }
            .bind(host: host, port: port)
            .get()
        return LabIngress(channel: channel, port: channel.localAddress?.port ?? 0, children: children)
    }

    /// `baton lab ingress`: serves until the process is stopped.
    public static func serve(name: String, host: String, port: Int, failFlag: String?) async throws {
        let ingress = try await start(name: name, host: host, port: port, group: MultiThreadedEventLoopGroup.singleton, failFlag: failFlag)
        print("ingress \(name) on \(host):\(ingress.port)")
        try await ingress.channel.closeFuture.get()
    }

    /// One GET with `Host: host`; returns the body for a 200, else "STATUS body".
    public static func get(url: String, host: String) throws -> String {
        guard let u = URL(string: url), let h = u.host else { throw EdgeBench.Failure.start("not a URL: \(url)") }
        let port = u.port ?? 80
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr(h)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { return "connect failed" }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let path = u.path.isEmpty ? "/" : u.path
        let req = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n"
        _ = req.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        let text = String(decoding: out, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return "no response" }
        let status = text.split(separator: " ", maxSplits: 2).dropFirst().first.map(String.init) ?? "?"
        let body = String(text[split.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
        return status == "200" ? body : "\(status) \(body)"
    }
}
