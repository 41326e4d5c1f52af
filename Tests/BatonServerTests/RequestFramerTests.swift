@testable import BatonEdge
import NIOCore
import Testing

/// `RequestFramer` reads client requests strictly and passes bodies on as they came;
/// `UpstreamRequest` writes the head an ingress gets.
@Suite struct RequestFramerTests {
    struct Seen {
        var heads: [RequestFramer.Head] = []
        var body = ""
        var ends = 0
    }

    static func run(_ wire: String, split: Int? = nil, max: Int = 8192, framer: inout RequestFramer) throws -> Seen {
        var seen = Seen()
        let emit: (RequestFramer.Part) -> Bool = { part in
            switch part {
            case .head(let h): seen.heads.append(h)
            case .body(let b): seen.body += String(buffer: b)
            case .end: seen.ends += 1
            }
            return true
        }
        let bytes = Array(wire.utf8)
        let cut = min(split ?? bytes.count, bytes.count)
        var first = ByteBuffer(bytes: bytes[0..<cut])
        try framer.feed(&first, emit)
        if cut < bytes.count {
            var rest = ByteBuffer(bytes: bytes[cut...])
            try framer.feed(&rest, emit)
        }
        return seen
    }

    static func run(_ wire: String, split: Int? = nil, max: Int = 8192) throws -> Seen {
        var f = RequestFramer(maxHeadBytes: max)
        return try run(wire, split: split, max: max, framer: &f)
    }

    static let get = "GET /productpage?x=1 HTTP/1.1\r\nHost: bookinfo.example.com\r\nX-Healthcheck: true\r\n\r\n"
    static let post = "POST /count HTTP/1.1\r\nhost: h\r\nContent-Length: 5\r\n\r\nhello"
    static let chunked = "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n"

    @Test func requestsSplitAnywhereReadTheSame() throws {
        let wire = Self.get + Self.post + Self.chunked
        for split in 0...wire.utf8.count {
            let s = try Self.run(wire, split: split)
            #expect(s.heads.map(\.method) == ["GET", "POST", "POST"], "split at \(split)")
            #expect(s.ends == 3)
            #expect(s.body == "hello" + "5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n", "split at \(split)")
        }
        let s = try Self.run(Self.get)
        let h = try #require(s.heads.first)
        #expect(h.uri == "/productpage?x=1" && h.minor == 1 && h.keepAlive && h.hostCount == 1)
        #expect(h.host == "bookinfo.example.com")
        #expect(h.header("x-healthcheck") == "true" && h.header("X-HEALTHCHECK") == "true" && h.header("x-missing") == nil)
        #expect(try Self.run(Self.chunked).heads.first?.chunked == true)
        #expect(try Self.run(Self.post).heads.first?.contentLength == 5)
    }

    @Test func theFramerStopsBetweenRequestsWhenAsked() throws {
        var f = RequestFramer(maxHeadBytes: 8192)
        var buffer = ByteBuffer(string: Self.get + Self.post)
        var heads = 0
        try f.feed(&buffer) { part in
            if case .head = part { heads += 1 }
            if case .end = part { return false }
            return true
        }
        #expect(heads == 1)
        #expect(String(buffer: buffer) == Self.post)
    }

    @Test func keepAliveFollowsTheVersionAndConnection() throws {
        #expect(try Self.run("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").heads[0].keepAlive == false)
        #expect(try Self.run("GET / HTTP/1.0\r\n\r\n").heads[0].keepAlive == false)
        #expect(try Self.run("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").heads[0].keepAlive == true)
        // Empty lines before a request line are skipped.
        #expect(try Self.run("\r\n\r\n" + Self.get).heads.count == 1)
    }

    @Test func whatSmugglingNeedsIsRefused() {
        let bad: [(String, HTTPFramingError?)] = [
            ("GARBAGE NONSENSE\r\n\r\n", nil),
            ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", nil),
            ("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", nil),
            ("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", nil),
            ("GET / HTTP/1.1\r\nHost : h\r\n\r\n", nil),
            ("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", nil),
            ("GET / HTTP/1.1\r\nHost: h\rx\r\n\r\n", nil),
            ("GET / HTTP/1.1\r\nHost: h\u{01}\r\n\r\n", nil),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", nil),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", nil),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", nil),
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", nil),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", nil),
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .unsupported("transfer-encoding gzip, chunked")),
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", nil),
        ]
        for (wire, expected) in bad {
            do {
                _ = try Self.run(wire)
                Issue.record("accepted \(wire.debugDescription)")
            } catch let e as HTTPFramingError {
                if let expected { #expect(e == expected) } else if case .malformed = e {} else { Issue.record("\(e) for \(wire.debugDescription)") }
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    @Test func headsOverTheLimitAreTooLarge() {
        let big = "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + String(repeating: "a", count: 9000) + "\r\n\r\n"
        #expect(throws: HTTPFramingError.headTooLarge) { try Self.run(big) }
        #expect(throws: HTTPFramingError.headTooLarge) { try Self.run(big, split: 100) }
        // Without its end in sight, too.
        #expect(throws: HTTPFramingError.headTooLarge) { try Self.run(String(big.dropLast(4))) }
    }

    @Test func theIngressGetsTheHeadWithoutHopByHopFieldsAndWithForwardedOnes() throws {
        let wire = "POST /up HTTP/1.1\r\nHost: h.example\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n"
            + "Keep-Alive: timeout=5\r\nTE: trailers\r\nExpect: 100-continue\r\nX-Forwarded-For: 192.0.2.99\r\n"
            + "Forwarded: for=192.0.2.99\r\nTransfer-Encoding: chunked\r\nX-Kept: k\r\n\r\n0\r\n\r\n"
        let h = try #require(try Self.run(wire).heads.first)
        let up = String(buffer: UpstreamRequest.head(h, client: "127.0.0.1", host: "h.example", allocator: ByteBufferAllocator()))
        #expect(up == "POST /up HTTP/1.1\r\nHost: h.example\r\nX-Kept: k\r\n"
            + "X-Forwarded-For: 192.0.2.99, 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h.example\r\n"
            + "Forwarded: for=192.0.2.99, for=127.0.0.1;proto=http;host=\"h.example\"\r\ntransfer-encoding: chunked\r\n\r\n")
        let v6 = try #require(try Self.run("GET / HTTP/1.0\r\n\r\n").heads.first)
        #expect(String(buffer: UpstreamRequest.head(v6, client: "2001:db8::1", host: nil, allocator: ByteBufferAllocator()))
            == "GET / HTTP/1.1\r\nX-Forwarded-For: 2001:db8::1\r\nX-Forwarded-Proto: http\r\nForwarded: for=\"[2001:db8::1]\";proto=http\r\n\r\n")
    }

    /// RFC 9112 §3.2.2: an absolute-form target names the host. The edge routes by it, and the
    /// ingress gets the origin form with a Host field made from the target, not the client's.
    @Test func anAbsoluteFormTargetNamesTheHostAndGoesOnInOriginForm() throws {
        let h = try #require(try Self.run("GET HTTP://Bookinfo.example.com:8080/productpage?x=1 HTTP/1.1\r\nHost: other.example\r\nAccept: */*\r\n\r\n").heads.first)
        #expect(h.uri == "/productpage?x=1")
        #expect(h.host == "Bookinfo.example.com:8080" && h.hostFromTarget && h.hostCount == 1)
        #expect(!h.plain)
        var cache: UpstreamRequest.Forwarding?
        var spare: ByteBuffer?
        let up = String(buffer: UpstreamRequest.head(h, client: "127.0.0.1", host: h.host, allocator: ByteBufferAllocator(),
                                                     cache: &cache, spare: &spare))
        #expect(up == "GET /productpage?x=1 HTTP/1.1\r\nHost: Bookinfo.example.com:8080\r\nAccept: */*\r\n"
            + "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: Bookinfo.example.com:8080\r\n"
            + "Forwarded: for=127.0.0.1;proto=http;host=\"Bookinfo.example.com:8080\"\r\n\r\n")
        // An empty path is `/`, a query alone gets one, OPTIONS with neither asks about the server.
        #expect(try Self.run("GET https://h.example HTTP/1.1\r\nHost: h.example\r\n\r\n").heads.first?.uri == "/")
        #expect(try Self.run("GET http://h.example?q=1 HTTP/1.1\r\nHost: h.example\r\n\r\n").heads.first?.uri == "/?q=1")
        #expect(try Self.run("OPTIONS http://h.example HTTP/1.1\r\nHost: h.example\r\n\r\n").heads.first?.uri == "*")
        // Origin form and `*` stay as they are, and the Host field names the host.
        let origin = try #require(try Self.run("OPTIONS * HTTP/1.1\r\nHost: h.example\r\n\r\n").heads.first)
        #expect(origin.uri == "*" && origin.host == "h.example" && !origin.hostFromTarget && origin.plain)
        // Other schemes, userinfo, no host, a fragment, or a bare word are refused.
        for target in ["ftp://h.example/", "http://user@h.example/", "http:///path", "http://h.example/#frag", "productpage", "http:/h"] {
            #expect(throws: HTTPFramingError.malformed("a bad request target"), "\(target)") {
                try Self.run("GET \(target) HTTP/1.1\r\nHost: h.example\r\n\r\n")
            }
        }
    }

    /// A head with nothing to drop or append to reaches the ingress as one copy of its bytes and
    /// the connection's cached forwarding fields; the result is what the field-by-field path
    /// writes.
    @Test func aPlainHeadIsCopiedWholeWithTheSameForwardingFieldsAsTheFieldByFieldPath() throws {
        let plain = try #require(try Self.run("GET /a?b=1 HTTP/1.1\r\nHost: h.example\r\nAccept: */*\r\nX-Forwarded-Port: 80\r\n\r\n").heads.first)
        #expect(plain.plain)
        var cache: UpstreamRequest.Forwarding?
        var spare: ByteBuffer?
        let up = String(buffer: UpstreamRequest.head(plain, client: "127.0.0.1", host: "h.example", allocator: ByteBufferAllocator(),
                                                     cache: &cache, spare: &spare))
        let expected = "GET /a?b=1 HTTP/1.1\r\nHost: h.example\r\nAccept: */*\r\nX-Forwarded-Port: 80\r\n"
            + "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h.example\r\n"
            + "Forwarded: for=127.0.0.1;proto=http;host=\"h.example\"\r\n\r\n"
        #expect(up == expected)
        // The same bytes as the field-by-field path gives (a head that is not plain only because
        // of a `Connection: keep-alive`, which is dropped).
        let notPlain = try #require(try Self.run("GET /a?b=1 HTTP/1.1\r\nHost: h.example\r\nConnection: keep-alive\r\nAccept: */*\r\nX-Forwarded-Port: 80\r\n\r\n").heads.first)
        #expect(!notPlain.plain)
        #expect(String(buffer: UpstreamRequest.head(notPlain, client: "127.0.0.1", host: "h.example", allocator: ByteBufferAllocator())) == expected)
        // The cache follows the host; an HTTP/1.0 request line is rewritten to HTTP/1.1.
        let other = try #require(try Self.run("GET / HTTP/1.0\r\nHost: other.example\r\n\r\n").heads.first)
        #expect(other.plain)
        #expect(String(buffer: UpstreamRequest.head(other, client: "127.0.0.1", host: "other.example", allocator: ByteBufferAllocator(),
                                                    cache: &cache, spare: &spare))
            == "GET / HTTP/1.1\r\nHost: other.example\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"
            + "X-Forwarded-Host: other.example\r\nForwarded: for=127.0.0.1;proto=http;host=\"other.example\"\r\n\r\n")
        #expect(cache?.host == "other.example")
        #expect(String(buffer: UpstreamRequest.head(plain, client: "127.0.0.1", host: "h.example", allocator: ByteBufferAllocator(),
                                                    cache: &cache, spare: &spare)) == expected)
        // Every field the edge drops or appends to makes a head not plain.
        for field in ["Connection: close", "Keep-Alive: 5", "TE: trailers", "Trailer: x", "Upgrade: h2c", "Proxy-Connection: x",
                      "Expect: 100-continue", "X-Forwarded-For: 192.0.2.1", "x-forwarded-proto: https", "X-Forwarded-Host: a",
                      "Forwarded: for=192.0.2.1"] {
            let h = try #require(try Self.run("GET / HTTP/1.1\r\nHost: h\r\n\(field)\r\n\r\n").heads.first)
            #expect(!h.plain, "\(field)")
        }
        let chunked = try #require(try Self.run("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").heads.first)
        #expect(!chunked.plain)
    }

    /// A connection writes each plain head for an ingress over the buffer of its last one, but
    /// only once nothing else holds that buffer: a head still held (its write pending, or its
    /// exchange alive for a retry) keeps its bytes.
    @Test func aSpareHeadBufferIsReusedOnlyWhenNothingElseHoldsIt() throws {
        let a = try #require(try Self.run("GET /first HTTP/1.1\r\nHost: h.example\r\n\r\n").heads.first)
        let b = try #require(try Self.run("GET /second/longer HTTP/1.1\r\nHost: h.example\r\n\r\n").heads.first)
        var cache: UpstreamRequest.Forwarding?
        var spare: ByteBuffer?
        let allocator = ByteBufferAllocator()
        let held = UpstreamRequest.head(a, client: "127.0.0.1", host: "h.example", allocator: allocator, cache: &cache, spare: &spare)
        let heldText = String(buffer: held)
        // `held` still refers to the spare: the next head goes to new storage.
        let second = UpstreamRequest.head(b, client: "127.0.0.1", host: "h.example", allocator: allocator, cache: &cache, spare: &spare)
        #expect(String(buffer: held) == heldText)
        #expect(String(buffer: second).hasPrefix("GET /second/longer HTTP/1.1\r\n"))
        let secondAddress = second.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        #expect(secondAddress != held.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) })
        // Once only the spare holds it, its storage takes the next head.
        let text = String(buffer: second)
        _ = consume second
        let third = UpstreamRequest.head(a, client: "127.0.0.1", host: "h.example", allocator: allocator, cache: &cache, spare: &spare)
        #expect(third.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } == secondAddress)
        #expect(String(buffer: third) == heldText)
        #expect(text.hasPrefix("GET /second/longer"))
    }

    /// Host values are compared byte for byte: canonically equivalent Unicode is not the same
    /// host on the wire.
    @Test func bytesCompareExactly() {
        func same(_ a: String, _ b: String) -> Bool {
            Array(b.utf8).withUnsafeBytes { HTTPBytes.same(a, $0) }
        }
        #expect(same("bench.example.com", "bench.example.com"))
        #expect(!same("bench.example.com", "bench.example.org"))
        #expect(!same("bench.example.com", "bench.example.co"))
        #expect(same("", ""))
        #expect(!same("", "a"))
        let precomposed = "caf\u{E9}.example", decomposed = "cafe\u{301}.example"
        #expect(precomposed == decomposed)
        #expect(!same(precomposed, decomposed))
        #expect(!HTTPBytes.same(precomposed, decomposed))
        #expect(HTTPBytes.same(decomposed, "cafe\u{301}.example"))
        // A string built from characters, not from a literal.
        let built = String(["b", "e", "n", "c", "h"])
        #expect(HTTPBytes.same(built, "bench") && !HTTPBytes.same(built, "bencH"))
    }
}
