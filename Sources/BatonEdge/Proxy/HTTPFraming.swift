import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// What is wrong with an HTTP/1.1 message as the edge reads it (request or response).
enum HTTPFramingError: Error, Equatable, CustomStringConvertible {
    case headTooLarge
    case malformed(String)
    case upgrade
    case truncated
    case unsupported(String)

    var description: String {
        switch self {
        case .headTooLarge: "a head over \(HTTPBytes.maxHeadBytes) bytes"
        case .malformed(let why): "a malformed message: \(why)"
        case .upgrade: "a protocol switch (101), which the edge does not proxy"
        case .truncated: "the connection closed in the middle of a message"
        case .unsupported(let what): "unsupported: \(what)"
        }
    }
}

/// Walks the framing of a chunked body (RFC 9112 §7.1) without decoding it: sizes, data, the
/// CRLFs, trailers. In passthrough the bytes go on as they came, chunk framing included; with
/// `dechunk`, only the data does.
struct ChunkWalker {
    private enum State: Equatable {
        case chunkSize(value: Int, digits: Int, inExtension: Bool)
        case chunkSizeLF(value: Int)
        case chunkData(remaining: Int)
        case chunkDataCR
        case chunkDataLF
        case trailerLineStart
        case trailerLine
        case trailerLineLF
        case trailerEndLF
    }

    private var state = State.chunkSize(value: 0, digits: 0, inExtension: false)
    private var trailerBytes = 0

    /// Returns true at the end of the body, false when the buffer ran out first, nil when
    /// `emit` said stop.
    mutating func walk(_ buffer: inout ByteBuffer, dechunk: Bool, emit: (ByteBuffer) -> Bool) throws -> Bool? {
        // In passthrough, what was walked goes out as one slice of `run` (the buffer as it came:
        // only reader indices move, so it shares the storage).
        let run = buffer
        func flushRun(_ buffer: ByteBuffer) -> Bool {
            guard !dechunk, buffer.readerIndex > run.readerIndex else { return true }
            let slice = run.getSlice(at: run.readerIndex, length: buffer.readerIndex - run.readerIndex)!
            return emit(slice)
        }
        while buffer.readableBytes > 0 {
            if case .chunkData(let remaining) = state {
                let n = min(remaining, buffer.readableBytes)
                if dechunk {
                    let data = buffer.readSlice(length: n)!
                    guard emit(data) else { return nil }
                } else {
                    buffer.moveReaderIndex(forwardBy: n)
                }
                state = remaining == n ? .chunkDataCR : .chunkData(remaining: remaining - n)
                continue
            }
            let byte = buffer.readInteger(as: UInt8.self)!
            switch state {
            case .chunkSize(let value, let digits, let inExtension):
                if inExtension {
                    if byte == UInt8(ascii: "\r") { state = .chunkSizeLF(value: value) }
                    else if byte == UInt8(ascii: "\n") { throw HTTPFramingError.malformed("a chunk size line without CR") }
                } else if let d = HTTPBytes.hexValue(byte) {
                    guard digits < 15 else { throw HTTPFramingError.malformed("a chunk size over 15 hex digits") }
                    state = .chunkSize(value: value * 16 + d, digits: digits + 1, inExtension: false)
                } else if digits > 0 && (byte == UInt8(ascii: ";") || byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")) {
                    state = .chunkSize(value: value, digits: digits, inExtension: true)
                } else if digits > 0 && byte == UInt8(ascii: "\r") {
                    state = .chunkSizeLF(value: value)
                } else {
                    throw HTTPFramingError.malformed("a bad chunk size")
                }
            case .chunkSizeLF(let value):
                guard byte == UInt8(ascii: "\n") else { throw HTTPFramingError.malformed("a chunk size line without LF") }
                state = value == 0 ? .trailerLineStart : .chunkData(remaining: value)
                trailerBytes = 0
            case .chunkDataCR:
                guard byte == UInt8(ascii: "\r") else { throw HTTPFramingError.malformed("chunk data longer than its size") }
                state = .chunkDataLF
            case .chunkDataLF:
                guard byte == UInt8(ascii: "\n") else { throw HTTPFramingError.malformed("chunk data longer than its size") }
                state = .chunkSize(value: 0, digits: 0, inExtension: false)
            case .trailerLineStart:
                state = byte == UInt8(ascii: "\r") ? .trailerEndLF : .trailerLine
            case .trailerLine:
                trailerBytes += 1
                guard trailerBytes <= HTTPBytes.maxHeadBytes else { throw HTTPFramingError.headTooLarge }
                if byte == UInt8(ascii: "\r") { state = .trailerLineLF }
            case .trailerLineLF:
                guard byte == UInt8(ascii: "\n") else { throw HTTPFramingError.malformed("a trailer line without LF") }
                state = .trailerLineStart
            case .trailerEndLF:
                guard byte == UInt8(ascii: "\n") else { throw HTTPFramingError.malformed("the last chunk without its final CRLF") }
                state = .chunkSize(value: 0, digits: 0, inExtension: false)
                if dechunk { return true }
                return flushRun(buffer) ? true : nil
            default:
                preconditionFailure("not in a chunked body")
            }
        }
        return flushRun(buffer) ? false : nil
    }

}

/// Gathers a message head (request or status line through the blank line) that may come over
/// several reads, up to a limit.
struct HeadReader {
    /// A head not yet complete.
    private var pending: ByteBuffer?

    var isEmpty: Bool { pending == nil }

    /// Takes a whole head off `buffer`, or keeps what there is of one and returns nil. What
    /// followed the head stays in `buffer`, in order, right after the head in the same storage.
    mutating func take(_ buffer: inout ByteBuffer, max: Int) throws -> ByteBuffer? {
        if var p = pending {
            let searchFrom = Swift.max(0, p.readableBytes - 3)
            p.writeImmutableBuffer(buffer)
            buffer.moveReaderIndex(to: buffer.writerIndex)
            guard let end = HTTPBytes.headEnd(p, from: searchFrom) else {
                if p.readableBytes > max { throw HTTPFramingError.headTooLarge }
                pending = p
                return nil
            }
            pending = nil
            guard end <= max else { throw HTTPFramingError.headTooLarge }
            let head = p.readSlice(length: end)!
            if p.readableBytes > 0 { buffer = p }
            return head
        }
        guard let end = HTTPBytes.headEnd(buffer, from: 0) else {
            if buffer.readableBytes > max { throw HTTPFramingError.headTooLarge }
            pending = buffer
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return nil
        }
        guard end <= max else { throw HTTPFramingError.headTooLarge }
        return buffer.readSlice(length: end)!
    }
}

/// Byte-level helpers for HTTP/1.1 heads: no `String` is made for what is only compared.
enum HTTPBytes {
    static let maxHeadBytes = 64 * 1024

    /// Whether `string`'s UTF-8 is exactly `bytes` (one memory compare for a native string; a
    /// generic `elementsEqual` over `String.UTF8View` walks it byte by byte).
    static func same(_ string: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let utf8 = string.utf8
        guard utf8.count == bytes.count else { return false }
        if let r = utf8.withContiguousStorageIfAvailable({ s in
            s.isEmpty || memcmp(s.baseAddress!, bytes.baseAddress!, s.count) == 0
        }) { return r }
        return utf8.elementsEqual(bytes)
    }

    /// Whether two strings have the same UTF-8, byte for byte (`==` also takes canonically
    /// equivalent Unicode for the same).
    static func same(_ a: String, _ b: String) -> Bool {
        let u = b.utf8
        if let r = u.withContiguousStorageIfAvailable({ same(a, UnsafeRawBufferPointer($0)) }) { return r }
        return a.utf8.elementsEqual(u)
    }

    static func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(b - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(b - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    /// The length of the head through its blank line, if `b` holds all of it.
    static func headEnd(_ b: ByteBuffer, from: Int) -> Int? {
        b.withUnsafeReadableBytes { p -> Int? in
            guard p.count >= 4 else { return nil }
            var i = from
            while i + 3 < p.count {
                if p[i + 3] == 10 {
                    if p[i] == 13 && p[i + 1] == 10 && p[i + 2] == 13 { return i + 4 }
                    i += 1
                } else if p[i + 3] == 13 {
                    i += 1
                } else {
                    i += 4
                }
            }
            return nil
        }
    }

    enum Field { case contentLength, transferEncoding, connection, hopByHop, other }

    /// `X-Forwarded-For`, `-Proto`, `-Host` or `Forwarded`: what the edge appends to.
    static func isForwardingField(_ name: UnsafeRawBufferPointer) -> Bool {
        switch name.count {
        case 9: equalsLowercase(name, "forwarded")
        case 15: equalsLowercase(name, "x-forwarded-for")
        case 16: equalsLowercase(name, "x-forwarded-host")
        case 17: equalsLowercase(name, "x-forwarded-proto")
        default: false
        }
    }

    /// Sorts a field name, ignoring case; lengths first, so most names cost one comparison.
    static func field(_ name: UnsafeRawBufferPointer) -> Field {
        switch name.count {
        case 14 where equalsLowercase(name, "content-length"): .contentLength
        case 17 where equalsLowercase(name, "transfer-encoding"): .transferEncoding
        case 10 where equalsLowercase(name, "connection"): .connection
        case 10 where equalsLowercase(name, "keep-alive"): .hopByHop
        case 2 where equalsLowercase(name, "te"): .hopByHop
        case 7 where equalsLowercase(name, "trailer") || equalsLowercase(name, "upgrade"): .hopByHop
        case 16 where equalsLowercase(name, "proxy-connection"): .hopByHop
        case 18 where equalsLowercase(name, "proxy-authenticate"): .hopByHop
        case 19 where equalsLowercase(name, "proxy-authorization"): .hopByHop
        default: .other
        }
    }

    static func equalsLowercase(_ bytes: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
        guard bytes.count == lower.utf8CodeUnitCount else { return false }
        let l = lower.utf8Start
        for i in 0..<bytes.count {
            var b = bytes[i]
            if b >= 65 && b <= 90 { b |= 0x20 }
            if b != l[i] { return false }
        }
        return true
    }

    static func lower(_ b: UInt8) -> UInt8 { b >= 65 && b <= 90 ? b | 0x20 : b }

    /// A `tchar` (RFC 9110 §5.6.2): what methods and field names are made of.
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case 48...57, 65...90, 97...122: true
        case 33, 35, 36, 37, 38, 39, 42, 43, 45, 46, 94, 95, 96, 124, 126: true
        default: false
        }
    }

    static func digit(_ b: UInt8) -> Int? { b >= 48 && b <= 57 ? Int(b - 48) : nil }

    static func decimal(_ v: UnsafeRawBufferPointer) -> Int? {
        guard !v.isEmpty, v.count <= 18 else { return nil }
        var n = 0
        for b in v {
            guard let d = digit(b) else { return nil }
            n = n * 10 + d
        }
        return n
    }

    /// Calls `body` with each comma-separated element of a list value, trimmed.
    static func forEachToken(_ v: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        var start = 0
        for i in 0...v.count where i == v.count || v[i] == 44 {
            var s = start
            var e = i
            while s < e && (v[s] == 32 || v[s] == 9) { s += 1 }
            while e > s && (v[e - 1] == 32 || v[e - 1] == 9) { e -= 1 }
            if e > s { body(UnsafeRawBufferPointer(rebasing: v[s..<e])) }
            start = i + 1
        }
    }

    static func lastToken(_ v: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var last = UnsafeRawBufferPointer(rebasing: v[0..<0])
        forEachToken(v) { last = $0 }
        return last
    }
}
