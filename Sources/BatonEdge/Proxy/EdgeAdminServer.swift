import NIOCore
import NIOHTTP1
import NIOPosix

/// The edge's own small HTTP endpoint (`--metrics HOST:PORT`): `GET /metrics` answers the
/// Prometheus text that `render` returns, `GET /healthz` answers "ok".
public enum EdgeAdminServer {
    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let render: @Sendable () -> String
        init(render: @escaping @Sendable () -> String) { self.render = render }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let head) = unwrapInboundIn(data) else { return }
            let (status, body): (HTTPResponseStatus, String) = switch head.uri.split(separator: "?").first ?? "" {
            case "/metrics": (.ok, render())
            case "/healthz": (.ok, "ok\n")
            default: (.notFound, "not found\n")
            }
            let headers = HTTPHeaders([("content-type", "text/plain; version=0.0.4"), ("content-length", String(body.utf8.count))])
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    /// Binds on `group` and returns the listening channel.
    public static func bind(host: String, port: Int, group: any EventLoopGroup,
                            render: @escaping @Sendable () -> String) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(render: render))
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}
