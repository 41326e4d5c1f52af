import NIOCore

/// Finds the requests in a client connection's bytes: the head, read and checked strictly
/// (RFC 9112), then the body by its framing, passed on as it came (a chunked body keeps its
/// chunks, trailers included). It refuses what request smuggling needs: Content-Length beside
/// Transfer-Encoding, two different lengths, codings other than chunked, folded lines, bare CRs,
/// control bytes, whitespace before a colon.
///
/// Pure: no I/O. `EdgeProxyHandler` feeds it what the client sends and stops it between
/// requests (pipelined ones wait in their bytes until the response before them has ended).
struct RequestFramer {
    typealias Failure = HTTPFramingError

    /// One request's head. A class: it goes from the framer through the handler into the
    /// exchange, and a struct of its strings and buffer would be copied, and each of them
    /// retained, at every step.
    final class Head {
        let method: String
        let uri: String
        /// HTTP/1.`minor`.
        let minor: Int
        /// The client keeps the connection after this request (HTTP/1.1 without `close`, or
        /// HTTP/1.0 with `keep-alive`).
        let keepAlive: Bool
        let hostCount: Int
        /// The Host field's value; for an absolute-form target, the target's authority instead.
        let host: String?
        /// The target came in absolute form (`http://host/path`): `uri` is its path and query,
        /// `host` its authority, and the ingress gets a Host field made from it in place of the
        /// client's (RFC 9112 §3.2.2).
        let hostFromTarget: Bool
        let contentLength: Int
        let chunked: Bool
        let expect: String?
        /// The head as received, request line through the blank line.
        let bytes: ByteBuffer
        /// Where the field lines start in `bytes` (after the request line's CRLF).
        let fieldsAt: Int
        /// No field the edge drops or adds to (hop-by-hop fields, those `Connection` names,
        /// `Transfer-Encoding`, `Expect`, and the forwarding fields): the ingress can get the
        /// field lines as one copy.
        let plain: Bool

        init(method: String, uri: String, minor: Int, keepAlive: Bool, hostCount: Int, host: String?, hostFromTarget: Bool = false,
             contentLength: Int, chunked: Bool, expect: String?, bytes: ByteBuffer, fieldsAt: Int, plain: Bool) {
            self.method = method
            self.uri = uri
            self.minor = minor
            self.keepAlive = keepAlive
            self.hostCount = hostCount
            self.host = host
            self.hostFromTarget = hostFromTarget
            self.contentLength = contentLength
            self.chunked = chunked
            self.expect = expect
            self.bytes = bytes
            self.fieldsAt = fieldsAt
            self.plain = plain
        }

        var hasBody: Bool { chunked || contentLength > 0 }

        /// Calls `body` with each field's name and value (trimmed) and its whole line, CRLF
        /// included, in order.
        func forEachField(_ body: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer,
                                   _ line: UnsafeRawBufferPointer) -> Void) {
            bytes.withUnsafeReadableBytes { p in
                var i = 0
                while p[i] != 10 { i += 1 }
                i += 1
                while i < p.count && p[i] != 13 {
                    let start = i
                    var colon = -1
                    while p[i] != 10 {
                        if colon < 0 && p[i] == 58 { colon = i }
                        i += 1
                    }
                    i += 1
                    var vs = colon + 1
                    var ve = i - 2
                    while vs < ve && (p[vs] == 32 || p[vs] == 9) { vs += 1 }
                    while ve > vs && (p[ve - 1] == 32 || p[ve - 1] == 9) { ve -= 1 }
                    body(UnsafeRawBufferPointer(rebasing: p[start..<colon]), UnsafeRawBufferPointer(rebasing: p[vs..<ve]),
                         UnsafeRawBufferPointer(rebasing: p[start..<i]))
                }
            }
        }

        /// The first value of the field `name` (any case), for route rules that match headers.
        func header(_ name: String) -> String? {
            var found: String?
            let wanted = Array(name.utf8)
            forEachField { n, v, _ in
                guard found == nil, n.count == wanted.count else { return }
                for k in 0..<n.count where HTTPBytes.lower(n[k]) != HTTPBytes.lower(wanted[k]) { return }
                found = String(decoding: v, as: UTF8.self)
            }
            return found
        }
    }

    enum Part {
        case head(Head)
        case body(ByteBuffer)
        case end
    }

    private enum State: Equatable {
        case head
        case length(remaining: Int)
        case chunked
    }

    let maxHeadBytes: Int
    private var state = State.head
    private var heads = HeadReader()
    private var chunks = ChunkWalker()
    /// The last Host value read: a kept-alive client sends the same one again, which then costs
    /// no new string.
    private var lastHost: String?

    init(maxHeadBytes: Int) { self.maxHeadBytes = maxHeadBytes }

    /// Feeds bytes. Stops when `emit` returns false, leaving what is left in `buffer`.
    mutating func feed(_ buffer: inout ByteBuffer, _ emit: (Part) -> Bool) throws {
        while buffer.readableBytes > 0 {
            switch state {
            case .head:
                guard let head = try takeHead(&buffer) else { return }
                if head.chunked {
                    state = .chunked
                    chunks = ChunkWalker()
                } else if head.contentLength > 0 {
                    state = .length(remaining: head.contentLength)
                }
                guard emit(.head(head)) else { return }
                if !head.hasBody { guard emit(.end) else { return } }
            case .length(let remaining):
                let n = min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: n)!
                state = remaining == n ? .head : .length(remaining: remaining - n)
                guard emit(.body(slice)) else { return }
                if state == .head { guard emit(.end) else { return } }
            case .chunked:
                guard let ended = try chunks.walk(&buffer, dechunk: false, emit: { emit(.body($0)) }) else { return }
                if ended {
                    state = .head
                    guard emit(.end) else { return }
                }
            }
        }
    }

    // MARK: Heads

    private mutating func takeHead(_ buffer: inout ByteBuffer) throws -> Head? {
        if heads.isEmpty {
            // Empty lines before a request line are ignored (RFC 9112 §2.2).
            while let b = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), b == 13 || b == 10 {
                buffer.moveReaderIndex(forwardBy: 1)
            }
            guard buffer.readableBytes > 0 else { return nil }
        }
        guard let bytes = try heads.take(&buffer, max: maxHeadBytes) else { return nil }
        return try parse(bytes)
    }

    private mutating func parse(_ bytes: ByteBuffer) throws -> Head {
        try bytes.withUnsafeReadableBytes { p -> Head in
            // Request line: method SP request-target SP HTTP/1.x CRLF
            var i = 0
            while i < p.count && HTTPBytes.isTokenByte(p[i]) { i += 1 }
            guard i > 0, i < p.count, p[i] == 32 else { throw Failure.malformed("a bad method") }
            let method = String(decoding: UnsafeRawBufferPointer(rebasing: p[0..<i]), as: UTF8.self)
            i += 1
            let targetStart = i
            while i < p.count && p[i] > 32 && p[i] < 127 { i += 1 }
            guard i > targetStart, i + 13 <= p.count, p[i] == 32 else { throw Failure.malformed("a bad request target") }
            var uri = String(decoding: UnsafeRawBufferPointer(rebasing: p[targetStart..<i]), as: UTF8.self)
            // Origin form (`/path`), `*`, or CONNECT's authority form (answered 405 later); any
            // other target must be in absolute form.
            var authority: String?
            if p[targetStart] != 47, !(i - targetStart == 1 && p[targetStart] == 42), method != "CONNECT" {
                guard let (a, path) = Self.absoluteForm(uri, method: method) else { throw Failure.malformed("a bad request target") }
                authority = a
                uri = path
            }
            i += 1
            guard p[i] == 72, p[i + 1] == 84, p[i + 2] == 84, p[i + 3] == 80, p[i + 4] == 47, p[i + 5] == 49, p[i + 6] == 46,
                  p[i + 7] == 48 || p[i + 7] == 49, p[i + 8] == 13, p[i + 9] == 10 else {
                throw Failure.malformed("not HTTP/1.0 or HTTP/1.1")
            }
            let minor = Int(p[i + 7] - 48)
            i += 10
            let fieldsAt = i
            var plain = true
            var hostCount = 0
            var host: String?
            var contentLength: Int?
            var transferEncoding = false
            var chunked = false
            var close = false
            var keepAliveToken = false
            var expect: String?
            while i < p.count && p[i] != 13 {
                let lineStart = i
                while i < p.count && HTTPBytes.isTokenByte(p[i]) { i += 1 }
                guard i > lineStart, i < p.count, p[i] == 58 else {
                    throw Failure.malformed(p[lineStart] == 32 || p[lineStart] == 9 ? "a folded header line" : "a bad header field name")
                }
                let colon = i
                i += 1
                while i < p.count && p[i] != 13 {
                    let b = p[i]
                    guard b >= 32 || b == 9, b != 127 else { throw Failure.malformed("a control byte in a header value") }
                    i += 1
                }
                guard i + 1 < p.count, p[i + 1] == 10 else { throw Failure.malformed("a bare CR in a header line") }
                var vs = colon + 1
                var ve = i
                while vs < ve && (p[vs] == 32 || p[vs] == 9) { vs += 1 }
                while ve > vs && (p[ve - 1] == 32 || p[ve - 1] == 9) { ve -= 1 }
                i += 2
                let name = UnsafeRawBufferPointer(rebasing: p[lineStart..<colon])
                let value = UnsafeRawBufferPointer(rebasing: p[vs..<ve])
                switch HTTPBytes.field(name) {
                case .contentLength:
                    guard let n = HTTPBytes.decimal(value) else { throw Failure.malformed("a bad content-length") }
                    if let c = contentLength, c != n { throw Failure.malformed("two different content-lengths") }
                    contentLength = n
                case .transferEncoding:
                    plain = false
                    guard !transferEncoding else { throw Failure.malformed("two transfer-encoding fields") }
                    transferEncoding = true
                    guard HTTPBytes.equalsLowercase(value, "chunked") else {
                        throw Failure.unsupported("transfer-encoding \(String(decoding: value, as: UTF8.self))")
                    }
                    chunked = true
                case .connection:
                    plain = false
                    HTTPBytes.forEachToken(value) { t in
                        if HTTPBytes.equalsLowercase(t, "close") { close = true }
                        if HTTPBytes.equalsLowercase(t, "keep-alive") { keepAliveToken = true }
                    }
                case .hopByHop:
                    plain = false
                case .other:
                    if name.count == 4 && HTTPBytes.equalsLowercase(name, "host") {
                        hostCount += 1
                        if host == nil {
                            if let last = lastHost, HTTPBytes.same(last, value) {
                                host = last
                            } else {
                                host = String(decoding: value, as: UTF8.self)
                                lastHost = host
                            }
                        }
                    } else if name.count == 6 && HTTPBytes.equalsLowercase(name, "expect") {
                        expect = String(decoding: value, as: UTF8.self)
                        plain = false
                    } else if plain && HTTPBytes.isForwardingField(name) {
                        plain = false
                    }
                }
            }
            guard i + 1 < p.count, p[i] == 13, p[i + 1] == 10 else { throw Failure.malformed("a bad end of head") }
            if transferEncoding && contentLength != nil {
                throw Failure.malformed("both content-length and transfer-encoding")
            }
            if transferEncoding && minor == 0 { throw Failure.malformed("transfer-encoding in an HTTP/1.0 request") }
            return Head(method: method, uri: uri, minor: minor, keepAlive: minor == 1 ? !close : keepAliveToken,
                        hostCount: hostCount, host: authority ?? host, hostFromTarget: authority != nil,
                        contentLength: contentLength ?? 0, chunked: chunked, expect: expect,
                        bytes: bytes, fieldsAt: fieldsAt, plain: plain && authority == nil)
        }
    }

    /// An absolute-form target's authority and its path and query in origin form (`/` when the
    /// path is empty; `*` for an OPTIONS with neither), or nil when it is not an `http` or
    /// `https` URI with a host. Userinfo (`user@host`) is refused: RFC 9110 §4.2.4 forbids it
    /// in these URIs, and a recipient should treat it as an error.
    static func absoluteForm(_ target: String, method: String) -> (authority: String, path: String)? {
        let t = target.utf8
        let lower = t.prefix(8).map(HTTPBytes.lower)
        let schemeLength: Int
        if lower.starts(with: "http://".utf8) { schemeLength = 7 }
        else if lower.starts(with: "https://".utf8) { schemeLength = 8 }
        else { return nil }
        let rest = t.dropFirst(schemeLength)
        let end = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? rest.endIndex
        let authority = rest[..<end]
        guard !authority.isEmpty, !authority.contains(UInt8(ascii: "@")) else { return nil }
        let tail = rest[end...]
        if tail.contains(UInt8(ascii: "#")) { return nil }  // a request target has no fragment
        let path: String
        if tail.isEmpty { path = method == "OPTIONS" ? "*" : "/" }
        else if tail.first == UInt8(ascii: "?") { path = "/" + String(decoding: tail, as: UTF8.self) }
        else { path = String(decoding: tail, as: UTF8.self) }
        return (String(decoding: authority, as: UTF8.self), path)
    }
}
