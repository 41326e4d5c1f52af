import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// `baton lab ingress`: a cluster's ingress for the lab, an HTTP service answering every request
/// with the cluster's name. While the file `failFlag` exists it answers 503 "upstream connect
/// error", as an ingress whose upstream service failed does.
public enum LabIngress {
    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let name: String
        let failFlag: String?
        var head: HTTPRequestHead?
        init(name: String, failFlag: String?) { self.name = name; self.failFlag = failFlag }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h): head = h
            case .body: break
            case .end:
                guard let h = head else { return }
                let failing = failFlag.map { access($0, F_OK) == 0 } ?? false
                let body = failing ? "upstream connect error\n" : "\(name)\n"
                var headers = HTTPHeaders([("content-length", String(body.utf8.count)), ("content-type", "text/plain")])
                if !h.isKeepAlive { headers.add(name: "connection", value: "close") }
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: failing ? .serviceUnavailable : .ok,
                                                                     headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
                let keep = h.isKeepAlive
                context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                    if !keep { context.close(promise: nil) }
                }
            }
        }
    }

    /// Serves until the process is stopped.
    public static func serve(name: String, host: String, port: Int, failFlag: String?) async throws {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(name: name, failFlag: failFlag))
                }
            }
            .bind(host: host, port: port)
            .get()
        print("ingress \(name) on \(host):\(port)")
        try await channel.closeFuture.get()
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
