import NIOCore

/// Sits first in a downstream pipeline, below the HTTP codec: it sees raw bytes, so it can tell
/// an idle kept-alive connection from a client that sends a head slowly, and it can answer
/// malformed or oversized heads with raw bytes when the codec itself cannot go on.
///
/// The proxy handler calls `awaitHead` when the connection starts waiting for a request head and
/// `headReceived` when one is complete. If `timeout` passes in between, a client that sent part
/// of a head gets 408 and is cut off; an idle one is closed quietly.
final class SlowClientGuard: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let timeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var timer: Scheduled<Void>?
    private var bytesSeen = false
    /// How many connections this guard cut (for tests and logs).
    private(set) var cut = false

    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelActive(context: ChannelHandlerContext) {
        awaitHead()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if timer != nil { bytesSeen = true }
        context.fireChannelRead(data)
    }

    func awaitHead() {
        guard let context else { return }
        timer?.cancel()
        bytesSeen = false
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            self.timer = nil
            self.cut = true
            if self.bytesSeen {
                self.reject(status: "408 Request Timeout", body: "request head not received in time")
            } else {
                self.context?.close(promise: nil)
            }
        }
    }

    func headReceived() {
        timer?.cancel()
        timer = nil
    }

    /// Writes a whole response as raw bytes and closes: for a connection whose HTTP state is
    /// lost (a parse error, a timed-out head), never in the middle of a response.
    func reject(status: String, body: String) {
        guard let context else { return }
        timer?.cancel()
        timer = nil
        let text = "HTTP/1.1 \(status)\r\ncontent-type: text/plain\r\ncontent-length: \(body.utf8.count + 1)\r\nconnection: close\r\n\r\n\(body)\n"
        let buffer = context.channel.allocator.buffer(string: text)
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
