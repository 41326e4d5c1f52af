@testable import BatonEdge
import Logging
import NIOCore
import NIOEmbedded
import Testing

/// `UpstreamPool.flushAtTickEnd`: what the edge writes in one loop tick goes out at the tick's
/// end, every channel of it, and the next tick starts a new pass.
@Suite struct TickEndFlushTests {
    /// Keeps its context (the edge's handler, whose context the pool flushes).
    final class Tap: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var context: ChannelHandlerContext?
        func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    }

    /// Sits between the tap and the channel: on a flush it can write to another channel and
    /// ask for its flush (as a close's handlers might, inside the pass).
    final class Hook: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var onFlush: (() -> Void)?
        func flush(context: ChannelHandlerContext) {
            context.flush()
            let f = onFlush
            onFlush = nil
            f?()
        }
    }

    static func channel(_ loop: EmbeddedEventLoop) throws -> (EmbeddedChannel, Tap, Hook) {
        let tap = Tap(), hook = Hook()
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandlers([hook, tap])
        return (channel, tap, hook)
    }

    static func write(_ tap: Tap, _ text: String) {
        tap.context!.write(NIOAny(ByteBuffer(string: text)), promise: nil)
    }

    @Test func writesOfATickGoOutAtItsEndAndTheNextTickStartsAgain() throws {
        let loop = EmbeddedEventLoop()
        let pool = UpstreamPool(eventLoop: loop, connectTimeout: .seconds(1), maxIdlePerEndpoint: 1, requestsFlushAtOnce: true, logger: Logger(label: "test"))
        let (a, tapA, hookA) = try Self.channel(loop)
        let (b, tapB, _) = try Self.channel(loop)
        let (c, tapC, _) = try Self.channel(loop)

        Self.write(tapA, "to a")
        pool.flushAtTickEnd(tapA.context!)
        Self.write(tapB, "to b")
        pool.flushAtTickEnd(tapB.context!)
        // A's flush writes to C and asks for C's flush: it joins the same pass.
        hookA.onFlush = {
            Self.write(tapC, "to c")
            pool.flushAtTickEnd(tapC.context!)
        }
        // Nothing has gone out before the tick's tasks run.
        #expect(try a.readOutbound(as: ByteBuffer.self) == nil)
        #expect(try b.readOutbound(as: ByteBuffer.self) == nil)
        loop.run()
        #expect(try a.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "to a"))
        #expect(try b.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "to b"))
        #expect(try c.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "to c"))

        // The next tick: the pass is over, so a new one is queued, and waits for its tick's end.
        Self.write(tapB, "again")
        pool.flushAtTickEnd(tapB.context!)
        #expect(try b.readOutbound(as: ByteBuffer.self) == nil)
        loop.run()
        #expect(try b.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "again"))
        for ch in [a, b, c] { _ = try ch.finish() }
    }

    /// `UpstreamHandler.writeRequest` follows its pool: at once, or with the tick's end pass.
    @Test func aWholeRequestGoesAtOnceOrAtTheTicksEndAsItsPoolSays() throws {
        for atOnce in [true, false] {
            let loop = EmbeddedEventLoop()
            let pool = UpstreamPool(eventLoop: loop, connectTimeout: .seconds(1), maxIdlePerEndpoint: 1,
                                    requestsFlushAtOnce: atOnce, logger: Logger(label: "test"))
            let h = UpstreamHandler(endpoint: .init(address: "127.0.0.1", port: 80))
            let channel = EmbeddedChannel(handler: h, loop: loop)
            h.pool = pool
            h.writeRequest(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
            let before = try channel.readOutbound(as: ByteBuffer.self)
            loop.run()
            let after = try channel.readOutbound(as: ByteBuffer.self)
            #expect((before ?? after) == ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
            #expect((before != nil) == atOnce, "at once: \(atOnce)")
            _ = try channel.finish()
        }
    }

    /// Whole requests wait for the tick's end with one event loop and go at once with more,
    /// unless the setting says which.
    @Test func requestsFlushAtOnceWithMoreThanOneEventLoopUnlessSet() {
        var s = EdgeSettings(host: "127.0.0.1", port: 80, region: "r")
        #expect(!s.requestsFlushAtOnce)
        s.eventLoops = 2
        #expect(s.requestsFlushAtOnce)
        s.requestFlush = false
        #expect(!s.requestsFlushAtOnce)
        s.eventLoops = 1
        s.requestFlush = true
        #expect(s.requestsFlushAtOnce)
    }
}
