import NIOCore

/// The request as the edge sends it to an ingress, written straight to bytes.
enum UpstreamRequest {
    /// The head: the client's request line with HTTP/1.1; its field lines copied as they came,
    /// except the hop-by-hop fields, the fields `Connection` names and `Expect` (the edge
    /// answers that itself); then `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`
    /// and RFC 7239 `Forwarded`, appended to what earlier proxies wrote; and
    /// `transfer-encoding: chunked` for a chunked body, which goes on as it came.
    static func head(_ head: RequestFramer.Head, client: String?, host: String?, allocator: ByteBufferAllocator) -> ByteBuffer {
        var cache: Forwarding?
        var spare: ByteBuffer?
        return self.head(head, client: client, host: host, allocator: allocator, cache: &cache, spare: &spare)
    }

    /// The forwarding fields a plain head gets (see `RequestFramer.Head.plain`). They depend only
    /// on the client and the host, so a connection keeps the last ones: a kept-alive client
    /// sends the same host again and again.
    struct Forwarding {
        let host: String?
        let bytes: ByteBuffer
    }

    /// As above; `cache` holds the last forwarding fields of the connection (the client must not
    /// change while it is kept). `spare` is the buffer the connection's last plain head was
    /// written to: once nothing else holds it (its write went out and its exchange ended), the
    /// next plain head is written over it, with no allocation. It is left holding the result.
    static func head(_ head: RequestFramer.Head, client: String?, host: String?, allocator: ByteBufferAllocator,
                     cache: inout Forwarding?, spare: inout ByteBuffer?) -> ByteBuffer {
        guard head.plain else { return rewritten(head, client: client, host: host, allocator: allocator) }
        let forwarding: ByteBuffer
        if let c = cache, sameBytes(c.host, host) {
            forwarding = c.bytes
        } else {
            var f = allocator.buffer(capacity: 160)
            writeForwarding(&f, ip: client ?? "unknown", host: host, xff: [], forwarded: [], sawProto: false, sawHost: false)
            f.writeStaticString("\r\n")
            cache = Forwarding(host: host, bytes: f)
            forwarding = f
        }
        // The head as it came, request line and field lines in one copy (the request line too
        // when it already says HTTP/1.1), less its blank line; then the forwarding fields.
        var b: ByteBuffer
        if var last = spare {
            spare = nil
            // Keeps the storage when `last` is the only reference to it; otherwise takes new storage.
            last.clear()
            b = last
        } else {
            b = allocator.buffer(capacity: max(512, head.bytes.readableBytes + forwarding.readableBytes))
        }
        let fieldsEnd = head.bytes.readableBytes - 2
        if head.minor == 1 {
            b.writeImmutableBuffer(head.bytes.getSlice(at: head.bytes.readerIndex, length: fieldsEnd)!)
        } else {
            writeRequestLine(&b, head)
            b.writeImmutableBuffer(head.bytes.getSlice(at: head.bytes.readerIndex + head.fieldsAt, length: fieldsEnd - head.fieldsAt)!)
        }
        b.writeImmutableBuffer(forwarding)
        spare = b
        return b
    }

    /// Byte for byte: `==` would take canonically equivalent Unicode hosts for the same, and the
    /// forwarding fields must carry the host as it came.
    private static func sameBytes(_ a: String?, _ b: String?) -> Bool {
        switch (a, b) {
        case (nil, nil): true
        case let (a?, b?): HTTPBytes.same(a, b)
        default: false
        }
    }

    private static func writeRequestLine(_ b: inout ByteBuffer, _ head: RequestFramer.Head) {
        b.writeString(head.method)
        b.writeStaticString(" ")
        b.writeString(head.uri)
        b.writeStaticString(" HTTP/1.1\r\n")
    }

    /// A head with fields to drop or to append to, field by field (and every head whose target
    /// came in absolute form: it goes in origin form, with a Host field made from it).
    private static func rewritten(_ head: RequestFramer.Head, client: String?, host: String?, allocator: ByteBufferAllocator) -> ByteBuffer {
        let ip = client ?? "unknown"
        var named: [[UInt8]] = []
        var xff: [String] = []
        var forwarded: [String] = []
        var sawProto = false
        var sawHost = false
        var b = allocator.buffer(capacity: head.bytes.readableBytes + 160)
        writeRequestLine(&b, head)
        if head.hostFromTarget, let host {
            // An absolute-form target names the host; the client's Host field is replaced.
            b.writeStaticString("Host: ")
            b.writeString(host)
            b.writeStaticString("\r\n")
        }
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
                case 4 where head.hostFromTarget && HTTPBytes.equalsLowercase(name, "host"):
                    return
                default:
                    break
                }
                if !named.isEmpty && named.contains(where: { $0.count == name.count && zip($0, name).allSatisfy { $0 == HTTPBytes.lower($1) } }) {
                    return
                }
            }
            b.writeBytes(line)
        }
        writeForwarding(&b, ip: ip, host: host, xff: xff, forwarded: forwarded, sawProto: sawProto, sawHost: sawHost)
        if head.chunked { b.writeStaticString("transfer-encoding: chunked\r\n") }
        b.writeStaticString("\r\n")
        return b
    }

    /// `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded`, each after
    /// what earlier proxies wrote.
    private static func writeForwarding(_ b: inout ByteBuffer, ip: String, host: String?, xff: [String], forwarded: [String],
                                        sawProto: Bool, sawHost: Bool) {
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
    }
}
