import NIOCore

/// The request as the edge sends it to an ingress, written straight to bytes.
enum UpstreamRequest {
    /// The head: the client's request line with HTTP/1.1; its field lines copied as they came,
    /// except the hop-by-hop fields, the fields `Connection` names and `Expect` (the edge
    /// answers that itself); then `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`
    /// and RFC 7239 `Forwarded`, appended to what earlier proxies wrote; and
    /// `transfer-encoding: chunked` for a chunked body, which goes on as it came.
    static func head(_ head: RequestFramer.Head, client: String?, host: String?, allocator: ByteBufferAllocator) -> ByteBuffer {
        let ip = client ?? "unknown"
        var named: [[UInt8]] = []
        var xff: [String] = []
        var forwarded: [String] = []
        var sawProto = false
        var sawHost = false
        var b = allocator.buffer(capacity: head.bytes.readableBytes + 160)
        b.writeString(head.method)
        b.writeStaticString(" ")
        b.writeString(head.uri)
        b.writeStaticString(" HTTP/1.1\r\n")
        head.forEachField { name, value, _ in
            if HTTPBytes.field(name) == .connection {
                HTTPBytes.forEachToken(value) { t in named.append(t.map(HTTPBytes.lower)) }
            }
        }
        head.forEachField { name, value, line in
            switch HTTPBytes.field(name) {
            case .connection, .hopByHop, .transferEncoding:
                return
            case .contentLength:
                break
            case .other:
                switch name.count {
                case 6 where HTTPBytes.equalsLowercase(name, "expect"):
                    return
                case 15 where HTTPBytes.equalsLowercase(name, "x-forwarded-for"):
                    xff.append(String(decoding: value, as: UTF8.self))
                    return
                case 9 where HTTPBytes.equalsLowercase(name, "forwarded"):
                    forwarded.append(String(decoding: value, as: UTF8.self))
                    return
                case 17 where HTTPBytes.equalsLowercase(name, "x-forwarded-proto"):
                    sawProto = true
                case 16 where HTTPBytes.equalsLowercase(name, "x-forwarded-host"):
                    sawHost = true
                default:
                    break
                }
                if !named.isEmpty && named.contains(where: { $0.count == name.count && zip($0, name).allSatisfy { $0 == HTTPBytes.lower($1) } }) {
                    return
                }
            }
            b.writeBytes(line)
        }
        b.writeStaticString("X-Forwarded-For: ")
        for v in xff {
            b.writeString(v)
            b.writeStaticString(", ")
        }
        b.writeString(ip)
        b.writeStaticString("\r\n")
        if !sawProto { b.writeStaticString("X-Forwarded-Proto: http\r\n") }
        if let host, !sawHost {
            b.writeStaticString("X-Forwarded-Host: ")
            b.writeString(host)
            b.writeStaticString("\r\n")
        }
        b.writeStaticString("Forwarded: ")
        for v in forwarded {
            b.writeString(v)
            b.writeStaticString(", ")
        }
        b.writeStaticString("for=")
        if ip.utf8.contains(UInt8(ascii: ":")) {
            b.writeStaticString("\"[")
            b.writeString(ip)
            b.writeStaticString("]\"")
        } else {
            b.writeString(ip)
        }
        b.writeStaticString(";proto=http")
        if let host {
            b.writeStaticString(";host=\"")
            b.writeString(host)
            b.writeStaticString("\"")
        }
        b.writeStaticString("\r\n")
        if head.chunked { b.writeStaticString("transfer-encoding: chunked\r\n") }
        b.writeStaticString("\r\n")
        return b
    }
}
