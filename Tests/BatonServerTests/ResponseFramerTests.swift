@testable import BatonEdge
import NIOCore
import Testing

/// `ResponseFramer` finds responses in an ingress's byte stream without decoding them: every
/// framing, split at every byte, and the malformed ones refused.
@Suite struct ResponseFramerTests {
    struct Seen {
        var heads: [ResponseFramer.Head] = []
        var body = ""
        var ends = 0
    }

    /// Feeds `wire` in two pieces split at `split` (or whole), then EOF if asked.
    static func run(_ wire: String, split: Int? = nil, head: Bool = false, dechunk: Bool = false, eof: Bool = false,
                    framer: inout ResponseFramer) throws -> Seen {
        framer.requestWasHead = head
        framer.dechunk = dechunk
        var seen = Seen()
        let emit: (ResponseFramer.Part) -> Bool = { part in
            switch part {
            case .head(let h):
                seen.heads.append(h)
                // A body that came with its head rides in `whole`, after the head's bytes.
                if let w = h.whole {
                    let n = h.bytes.readableBytes
                    seen.body += w.getString(at: w.readerIndex + n, length: w.readableBytes - n) ?? "?"
                }
                #expect(h.whole.map { String(buffer: $0).hasPrefix(String(buffer: h.bytes)) } ?? true)
            case .body(let b): seen.body += String(buffer: b)
            case .end: seen.ends += 1
            }
            return true
        }
        let bytes = Array(wire.utf8)
        let cut = min(split ?? bytes.count, bytes.count)
        try framer.feed(ByteBuffer(bytes: bytes[0..<cut]), emit)
        if cut < bytes.count { try framer.feed(ByteBuffer(bytes: bytes[cut...]), emit) }
        if eof { try framer.eof(emit) }
        return seen
    }

    static func run(_ wire: String, split: Int? = nil, head: Bool = false, dechunk: Bool = false, eof: Bool = false) throws -> Seen {
        var f = ResponseFramer()
        return try run(wire, split: split, head: head, dechunk: dechunk, eof: eof, framer: &f)
    }

    static let plain = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n\r\nhello"
    static let chunkedBody = "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n"
    static let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedBody

    @Test func aContentLengthBodySplitAnywhere() throws {
        for split in 0...Self.plain.utf8.count {
            let s = try Self.run(Self.plain, split: split)
            #expect(s.heads.count == 1 && s.body == "hello" && s.ends == 1, "split at \(split)")
            #expect(s.heads.first?.framing == .length(5))
            #expect(s.heads.first?.keepAlive == true)
            #expect(s.heads.first?.needsRewrite == false)
            // Whole when head and body came in one read, in parts otherwise.
            let headLength = Self.plain.utf8.count - 5
            #expect((s.heads.first?.whole != nil) == (split < headLength || split == Self.plain.utf8.count), "split at \(split)")
            #expect(s.heads.first.map { String(buffer: $0.bytes) } == "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n\r\n")
        }
        // The same connection, the next response.
        var f = ResponseFramer()
        _ = try Self.run(Self.plain, framer: &f)
        let again = try Self.run(Self.plain.replacingOccurrences(of: "hello", with: "again"), framer: &f)
        #expect(again.body == "again" && again.ends == 1)
        #expect(f.isIdle)
    }

    @Test func aChunkedBodyPassesThroughWithItsFramingOrComesOutDechunked() throws {
        for split in 0...Self.chunked.utf8.count {
            let s = try Self.run(Self.chunked, split: split)
            #expect(s.body == Self.chunkedBody && s.ends == 1, "split at \(split): \(s.body.debugDescription)")
            #expect(s.heads.first?.framing == .chunked)
            let d = try Self.run(Self.chunked, split: split, dechunk: true)
            #expect(d.body == "hello world" && d.ends == 1, "dechunked, split at \(split)")
        }
    }

    @Test func bodilessResponsesEndWithTheirHead() throws {
        let toHead = try Self.run("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n", head: true)
        #expect(toHead.heads.first?.framing == ResponseFramer.Framing.none && toHead.ends == 1 && toHead.body.isEmpty)
        for status in ["204 No Content", "304 Not Modified"] {
            let s = try Self.run("HTTP/1.1 \(status)\r\ncontent-length: 10\r\n\r\n")
            #expect(s.ends == 1 && s.body.isEmpty, "\(status)")
        }
        let zero = try Self.run("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        #expect(zero.ends == 1 && zero.heads.count == 1)
    }

    @Test func interimAnswersAreSkipped() throws {
        let s = try Self.run("HTTP/1.1 100 Continue\r\n\r\n" + Self.plain, split: 10)
        #expect(s.heads.map(\.status) == [200])
        #expect(s.body == "hello")
        #expect(throws: ResponseFramer.Failure.upgrade) { try Self.run("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n") }
    }

    @Test func aBodyWithoutLengthRunsUntilTheClose() throws {
        let s = try Self.run("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it", split: 30, eof: true)
        #expect(s.heads.first?.framing == .untilClose)
        #expect(s.heads.first?.keepAlive == false)
        #expect(s.body == "all of it" && s.ends == 1)
        // A close in the middle of a length-framed body is a truncation.
        #expect(throws: ResponseFramer.Failure.truncated) { try Self.run("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nhalf", eof: true) }
    }

    @Test func keepAliveFollowsTheVersionAndConnection() throws {
        let close = try Self.run("HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 1\r\n\r\nx")
        #expect(close.heads.first?.keepAlive == false && close.heads.first?.needsRewrite == true)
        let old = try Self.run("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\nx")
        #expect(old.heads.first?.keepAlive == false && old.heads.first?.minor == 0)
        let oldKept = try Self.run("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 1\r\n\r\nx")
        #expect(oldKept.heads.first?.keepAlive == true)
    }

    @Test func malformedResponsesAreRefused() {
        let bad = [
            "HTTP/2.0 200 OK\r\n\r\n",
            "HTTP/1.1 2x0 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\n folded: yes\r\n\r\n",
            "HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno-colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nx: a\rb\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n",
        ]
        for wire in bad {
            #expect(throws: ResponseFramer.Failure.self, "\(wire.debugDescription)") { try Self.run(wire) }
        }
        let huge = "HTTP/1.1 200 OK\r\nx: " + String(repeating: "a", count: 70_000)
        #expect(throws: ResponseFramer.Failure.headTooLarge) { try Self.run(huge) }
    }

    @Test func bytesAfterAResponseMarkTheConnectionUnusable() throws {
        var f = ResponseFramer()
        let s = try Self.run(Self.plain + "HTTP/1.1 200 OK\r\n", framer: &f)
        #expect(s.ends == 1)
        #expect(f.sawExtraBytes)
    }

    @Test func theClientsHeadIsTheIngresssUnlessSomethingMustChange() throws {
        let a = ByteBufferAllocator()
        let plain = try Self.run(Self.plain).heads[0]
        let same = ResponseFramer.clientHead(plain, clientMinor: 1, keepAlive: true, allocator: a)
        #expect(same == plain.bytes)
        #expect(String(buffer: ResponseFramer.clientHead(plain, clientMinor: 1, keepAlive: false, allocator: a))
            == "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n")
        #expect(String(buffer: ResponseFramer.clientHead(plain, clientMinor: 0, keepAlive: true, allocator: a))
            == "HTTP/1.0 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\nconnection: keep-alive\r\n\r\n")

        let hop = try Self.run("HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\nX-Private: p\r\n"
                               + "Content-Length: 3\r\nX-Kept: k\r\n\r\nabc").heads[0]
        #expect(hop.needsRewrite)
        #expect(String(buffer: ResponseFramer.clientHead(hop, clientMinor: 1, keepAlive: true, allocator: a))
            == "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Kept: k\r\n\r\n")

        // Chunked with a stray content-length: TE wins; an HTTP/1.0 client gets neither and a close.
        let chunked = try Self.run("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n0\r\n\r\n").heads[0]
        #expect(String(buffer: ResponseFramer.clientHead(chunked, clientMinor: 1, keepAlive: true, allocator: a))
            == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(String(buffer: ResponseFramer.clientHead(chunked, clientMinor: 0, keepAlive: false, allocator: a))
            == "HTTP/1.0 200 OK\r\nconnection: close\r\n\r\n")
    }
}
