import NIOCore

/// The head timer of one client connection, kept by its `EdgeProxyHandler` (which reads the
/// raw bytes, so it can tell an idle kept-alive connection from a client that sends a head
/// slowly). It can also answer with raw bytes when the request cannot be read.
///
/// The handler calls `awaitHead` when the connection starts waiting for a request head,
/// `bytesArrived` for every read, and `headReceived` when a head is complete. If `timeout`
/// passes in between, a client that sent part of a head gets 408 and is cut off; an idle one is
/// closed quietly.
final class SlowClientGuard {
    let timeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var timer: Scheduled<Void>?
    private var bytesSeen = false
    private var waiting = false
    private var deadline = NIODeadline.now()

    init(timeout: TimeAmount) { self.timeout = timeout }

    /// The connection is open: the wait for the first head starts.
    func start(_ context: ChannelHandlerContext) {
        self.context = context
        awaitHead()
    }

    func stop() {
        timer?.cancel()
        timer = nil
        context = nil
    }

    func bytesArrived() {
        if waiting { bytesSeen = true }
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

    private func arm(_ context: ChannelHandlerContext, at when: NIODeadline) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: when) { [self] in
            self.timer = nil
            guard self.waiting, let context = self.context else { return }
            if NIODeadline.now() < self.deadline {
                self.arm(context, at: self.deadline)
                return
            }
            self.waiting = false
            if self.bytesSeen {
                self.reject(status: "408 Request Timeout", body: "request head not received in time")
            } else {
                context.close(promise: nil)
            }
        }
    }

    /// Writes a whole response as raw bytes and closes: for a connection whose request cannot be
    /// read (malformed, oversized, timed out), never in the middle of a response.
    func reject(status: String, body: String) {
        guard let context else { return }
        waiting = false
        let text = "HTTP/1.1 \(status)\r\ncontent-type: text/plain\r\ncontent-length: \(body.utf8.count + 1)\r\nconnection: close\r\n\r\n\(body)\n"
        let buffer = context.channel.allocator.buffer(string: text)
        context.writeAndFlush(NIOAny(buffer)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
