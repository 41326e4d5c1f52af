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
        if waiting { bytesSeen = true }
        context.fireChannelRead(data)
    }

    /// Starts the wait for a head. The timer is lazy: one scheduled task at a time, which on
    /// firing re-arms itself for the current wait instead of being cancelled and scheduled again
    /// for every request of a kept-alive connection.
    func awaitHead() {
        guard let context else { return }
        bytesSeen = false
        waiting = true
        deadline = .now() + timeout
        if timer == nil { arm(context, at: deadline) }
    }

    func headReceived() {
        waiting = false
    }

    private var waiting = false
    private var deadline = NIODeadline.now()

    private func arm(_ context: ChannelHandlerContext, at when: NIODeadline) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: when) { [self] in
            self.timer = nil
            guard self.waiting, let context = self.context else { return }
            if NIODeadline.now() < self.deadline {
                self.arm(context, at: self.deadline)
                return
            }
            self.waiting = false
            self.cut = true
            if self.bytesSeen {
                self.reject(status: "408 Request Timeout", body: "request head not received in time")
            } else {
                context.close(promise: nil)
            }
        }
    }

    /// Writes a whole response as raw bytes and closes: for a connection whose HTTP state is
    /// lost (a parse error, a timed-out head), never in the middle of a response.
    func reject(status: String, body: String) {
        guard let context else { return }
        waiting = false
        let text = "HTTP/1.1 \(status)\r\ncontent-type: text/plain\r\ncontent-length: \(body.utf8.count + 1)\r\nconnection: close\r\n\r\n\(body)\n"
        let buffer = context.channel.allocator.buffer(string: text)
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
