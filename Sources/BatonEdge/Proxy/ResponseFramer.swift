import NIOCore

/// Finds the responses in an ingress connection's byte stream without decoding what it forwards:
/// the head, then the body as its framing says (RFC 9112 §6.3). Body bytes pass through as they
/// arrived (a chunked body keeps its chunk framing), unless `dechunk` is set for a client that
/// cannot take chunked coding (HTTP/1.0); then only the chunks' data comes out.
///
/// Pure: no I/O. `UpstreamHandler` feeds it every read and carries out what it finds.
struct ResponseFramer {
    typealias Failure = HTTPFramingError

    enum Framing: Equatable {
        /// No body: a response to HEAD, a 204 or a 304, or `content-length: 0`.
        case none
        case length(Int)
        case chunked
        /// The body ends when the ingress closes the connection.
        case untilClose
    }

    struct Head {
        var status: Int
        /// HTTP/1.`minor`.
        var minor: Int
        /// The ingress keeps the connection open after this response.
        var keepAlive: Bool
        var framing: Framing
        /// The head as received, status line through the blank line.
        var bytes: ByteBuffer
        /// Some field must not be passed on as it is: a hop-by-hop field, `Connection`, or a
        /// `Content-Length` beside chunked coding.
        var needsRewrite: Bool
        /// The whole response, head and body in one slice, when the body is length-framed and
        /// arrived with its head (the common small response): it can go out in one write. The
        /// framer then sends no `.body` part, only `.end`.
        var whole: ByteBuffer?
    }

    enum Part {
        case head(Head)
        case body(ByteBuffer)
        case end
    }

    static let maxHeadBytes = HTTPBytes.maxHeadBytes
    /// The largest response sent as one slice of head and body.
    static let maxWhole = 64 * 1024

    private enum State: Equatable {
        case head
        case length(remaining: Int)
        case chunked
        case untilClose
    }

    private var state: State = .head
    private var heads = HeadReader()
    /// The request this response answers was a HEAD: the response has no body, whatever it says.
    var requestWasHead = false
    var dechunk = false
    /// Bytes came after a complete response (an ingress must not send those): do not reuse.
    private(set) var sawExtraBytes = false
    private var chunks = ChunkWalker()

    /// Between responses (nothing of one has arrived).
    var isIdle: Bool { state == .head && heads.isEmpty }

    /// Feeds one read. `emit` returns false to stop (the connection is going away).
    mutating func feed(_ input: ByteBuffer, _ emit: (Part) -> Bool) throws {
        var buffer = input
        while buffer.readableBytes > 0 {
            switch state {
            case .head:
                guard var head = try takeHead(&buffer) else { return }
                if head.status >= 100 && head.status < 200 {
                    if head.status == 101 { throw Failure.upgrade }
                    continue  // An interim answer (100, 103): the final one follows.
                }
                // (The head was the bytes just before `buffer`'s reader index, in the same storage.)
                switch head.framing {
                case .none: state = .head
                case .length(let n) where n <= buffer.readableBytes && head.bytes.readableBytes + n <= Self.maxWhole:
                    // Head and body are adjacent in what was read: one slice of both.
                    let headLength = head.bytes.readableBytes
                    buffer.moveReaderIndex(to: buffer.readerIndex - headLength)
                    head.whole = buffer.readSlice(length: headLength + n)
                    state = .head
                case .length(let n): state = .length(remaining: n)
                case .chunked:
                    state = .chunked
                    chunks = ChunkWalker()
                case .untilClose: state = .untilClose
                }
                guard emit(.head(head)) else { return }
                if head.framing == .none || head.whole != nil {
                    guard emit(.end) else { return }
                    if buffer.readableBytes > 0 { sawExtraBytes = true }
                    return
                }
            case .length(let remaining):
                let n = min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: n)!
                state = remaining == n ? .head : .length(remaining: remaining - n)
                guard emit(.body(slice)) else { return }
                if state == .head {
                    guard emit(.end) else { return }
                    if buffer.readableBytes > 0 { sawExtraBytes = true }
                    return
                }
            case .untilClose:
                let slice = buffer.readSlice(length: buffer.readableBytes)!
                guard emit(.body(slice)) else { return }
            case .chunked:
                let ended = try chunks.walk(&buffer, dechunk: dechunk, emit: { emit(.body($0)) })
                if ended == nil { return }
                if ended == true {
                    state = .head
                    guard emit(.end) else { return }
                    if buffer.readableBytes > 0 { sawExtraBytes = true }
                    return
                }
            }
        }
    }

    /// The ingress closed its end. A body that runs until the close ends here; a close anywhere
    /// else inside a response is a truncation.
    mutating func eof(_ emit: (Part) -> Bool) throws {
        switch state {
        case .untilClose:
            state = .head
            _ = emit(.end)
        case .head where heads.isEmpty:
            return
        default:
            throw Failure.truncated
        }
    }

    // MARK: Heads

    private mutating func takeHead(_ buffer: inout ByteBuffer) throws -> Head? {
        guard let bytes = try heads.take(&buffer, max: Self.maxHeadBytes) else { return nil }
        return try parse(bytes)
    }

    private func parse(_ bytes: ByteBuffer) throws -> Head {
        try bytes.withUnsafeReadableBytes { p -> Head in
            // Status line: HTTP/1.x SSS[ reason]\r\n
            guard p.count >= 14, p[0] == 72, p[1] == 84, p[2] == 84, p[3] == 80, p[4] == 47, p[5] == 49, p[6] == 46,
                  p[7] == 48 || p[7] == 49, p[8] == 32,
                  let s0 = HTTPBytes.digit(p[9]), let s1 = HTTPBytes.digit(p[10]), let s2 = HTTPBytes.digit(p[11]),
                  p[12] == 32 || p[12] == 13 else {
                throw Failure.malformed("a bad status line")
            }
            let minor = Int(p[7] - 48)
            let status = s0 * 100 + s1 * 10 + s2
            var i = 12
            while i < p.count && p[i] != 10 { i += 1 }
            guard i < p.count, p[i - 1] == 13 else { throw Failure.malformed("a bad status line") }
            i += 1
            var contentLength: Int?
            var chunked = false
            var otherCoding = false
            var close = false
            var keepAliveToken = false
            var needsRewrite = false
            // Header fields, up to the blank line.
            while i < p.count && p[i] != 13 {
                let lineStart = i
                if p[i] == 32 || p[i] == 9 { throw Failure.malformed("a folded header line") }
                var colon = -1
                while i < p.count && p[i] != 10 {
                    if p[i] == 13 && i + 1 < p.count && p[i + 1] != 10 { throw Failure.malformed("a bare CR in a header line") }
                    if colon < 0 {
                        if p[i] == 58 { colon = i }
                        else if p[i] == 32 || p[i] == 9 || p[i] == 13 { throw Failure.malformed("a bad header field name") }
                    }
                    i += 1
                }
                guard i < p.count, colon > lineStart, p[i - 1] == 13 else { throw Failure.malformed("a bad header line") }
                let lineEnd = i - 1  // the CR
                i += 1
                var vs = colon + 1
                var ve = lineEnd
                while vs < ve && (p[vs] == 32 || p[vs] == 9) { vs += 1 }
                while ve > vs && (p[ve - 1] == 32 || p[ve - 1] == 9) { ve -= 1 }
                let name = UnsafeRawBufferPointer(rebasing: p[lineStart..<colon])
                let value = UnsafeRawBufferPointer(rebasing: p[vs..<ve])
                switch HTTPBytes.field(name) {
                case .contentLength:
                    guard let n = HTTPBytes.decimal(value) else { throw Failure.malformed("a bad content-length") }
                    if let c = contentLength, c != n { throw Failure.malformed("two different content-lengths") }
                    contentLength = n
                case .transferEncoding:
                    needsRewrite = true
                    // The last coding decides (RFC 9112 §6.3): chunked, or the body runs until close.
                    let last = HTTPBytes.lastToken(value)
                    chunked = HTTPBytes.equalsLowercase(last, "chunked")
                    otherCoding = !chunked
                case .connection:
                    needsRewrite = true
                    HTTPBytes.forEachToken(value) { t in
                        if HTTPBytes.equalsLowercase(t, "close") { close = true }
                        if HTTPBytes.equalsLowercase(t, "keep-alive") { keepAliveToken = true }
                    }
                case .hopByHop:
                    needsRewrite = true
                case .other:
                    break
                }
            }
            guard i + 1 < p.count, p[i] == 13, p[i + 1] == 10 else { throw Failure.malformed("a bad end of head") }
            let framing: Framing
            if requestWasHead || status == 204 || status == 304 || status < 200 {
                framing = .none
            } else if chunked {
                framing = .chunked
                if contentLength != nil { needsRewrite = true }
            } else if otherCoding {
                framing = .untilClose
            } else if let n = contentLength {
                framing = n == 0 ? .none : .length(n)
            } else {
                framing = .untilClose
            }
            let keepAlive = (minor == 1 ? !close : keepAliveToken) && framing != .untilClose
            return Head(status: status, minor: minor, keepAlive: keepAlive, framing: framing, bytes: bytes, needsRewrite: needsRewrite)
        }
    }

    // MARK: The head the client gets

    /// Whether the client gets the ingress's head unchanged.
    static func passesThrough(_ h: Head, clientMinor: Int, keepAlive: Bool) -> Bool {
        !h.needsRewrite && h.minor == clientMinor && clientMinor == 1 && keepAlive
    }

    /// The response head for the client: as the ingress sent it when nothing in it must
    /// change (the common case: no copy), else rebuilt with the client's HTTP version, without
    /// hop-by-hop fields and the fields `Connection` names, and with the edge's own
    /// `Connection` field. A chunked body stays chunked for HTTP/1.1 clients; for HTTP/1.0
    /// ones it is de-chunked and the connection closes after it.
    static func clientHead(_ h: Head, clientMinor: Int, keepAlive: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        if passesThrough(h, clientMinor: clientMinor, keepAlive: keepAlive) { return h.bytes }
        return h.bytes.withUnsafeReadableBytes { p -> ByteBuffer in
            var out = allocator.buffer(capacity: p.count + 32)
            out.writeStaticString(clientMinor == 0 ? "HTTP/1.0" : "HTTP/1.1")
            var i = 8
            while p[i] != 10 { i += 1 }
            out.writeBytes(UnsafeRawBufferPointer(rebasing: p[8...i]))
            i += 1
            // The fields `Connection` names go too (RFC 9110 §7.6.1).
            var named: [[UInt8]] = []
            var lines: [(start: Int, colon: Int, end: Int)] = []
            while i < p.count && p[i] != 13 {
                let start = i
                var colon = -1
                while p[i] != 10 {
                    if colon < 0 && p[i] == 58 { colon = i }
                    i += 1
                }
                i += 1
                lines.append((start, colon, i))
                let name = UnsafeRawBufferPointer(rebasing: p[start..<colon])
                if HTTPBytes.field(name) == .connection {
                    HTTPBytes.forEachToken(UnsafeRawBufferPointer(rebasing: p[(colon + 1)..<(i - 2)])) { t in
                        named.append(t.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 })
                    }
                }
            }
            for line in lines {
                let name = UnsafeRawBufferPointer(rebasing: p[line.start..<line.colon])
                switch HTTPBytes.field(name) {
                case .connection, .hopByHop:
                    continue
                case .transferEncoding:
                    if clientMinor == 0 && h.framing == .chunked { continue }
                case .contentLength:
                    if h.framing == .chunked { continue }
                case .other:
                    if !named.isEmpty && named.contains(where: { $0.count == name.count && zip($0, name).allSatisfy { a, b in a == (b >= 65 && b <= 90 ? b | 0x20 : b) } }) {
                        continue
                    }
                }
                out.writeBytes(UnsafeRawBufferPointer(rebasing: p[line.start..<line.end]))
            }
            if !keepAlive {
                out.writeStaticString("connection: close\r\n")
            } else if clientMinor == 0 {
                out.writeStaticString("connection: keep-alive\r\n")
            }
            out.writeStaticString("\r\n")
            return out
        }
    }
}
