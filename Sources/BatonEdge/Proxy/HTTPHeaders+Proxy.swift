import NIOCore
import NIOHTTP1

extension HTTPHeaders {
    /// RFC 9110 §7.6.1's hop-by-hop fields, plus the ones a proxy must not pass on.
    static let hopByHop: [String] = ["connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                                     "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"]

    /// Removes the hop-by-hop fields and every field the `Connection` header names. NIO's
    /// encoders then frame the message for the next hop (content-length or chunked).
    mutating func removeHopByHop() {
        // One pass first: most messages carry none of them, and then nothing is copied.
        guard contains(where: { Self.isHopByHop($0.name) }) else { return }
        for value in self["connection"] {
            for token in value.split(separator: ",") {
                let name = String(token).trimmedOWS().lowercased()
                if !name.isEmpty && name != "close" && name != "keep-alive" { remove(name: name) }
            }
        }
        for name in Self.hopByHop { remove(name: name) }
    }

    static func isHopByHop(_ name: String) -> Bool {
        let n = name.utf8.count
        guard n == 2 || (n >= 7 && n <= 19) else { return false }
        return hopByHop.contains { $0.utf8.count == n && $0.utf8.elementsEqual(name.utf8, by: { a, b in a == (b | 0x20) || a == b }) }
    }

    /// The request head's size as the wire carried it, near enough: for the 431 limit.
    static func headSize(_ head: HTTPRequestHead) -> Int {
        var n = head.uri.utf8.count + 16
        for (name, value) in head.headers { n += name.utf8.count + value.utf8.count + 4 }
        return n
    }

    /// Adds `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and RFC 7239 `Forwarded`,
    /// appending to what earlier proxies wrote.
    mutating func addForwarded(client: String?, host: String?) {
        let ip = client ?? "unknown"
        if let xff = self.first(name: "x-forwarded-for") {
            replaceOrAdd(name: "X-Forwarded-For", value: "\(xff), \(ip)")
        } else {
            add(name: "X-Forwarded-For", value: ip)
        }
        if self["x-forwarded-proto"].isEmpty { add(name: "X-Forwarded-Proto", value: "http") }
        if let host, self["x-forwarded-host"].isEmpty { add(name: "X-Forwarded-Host", value: host) }
        let forNode = ip.utf8.contains(UInt8(ascii: ":")) ? "\"[\(ip)]\"" : ip
        var element = "for=\(forNode);proto=http"
        if let host { element += ";host=\"\(host)\"" }
        if let existing = self.first(name: "forwarded") {
            replaceOrAdd(name: "Forwarded", value: "\(existing), \(element)")
        } else {
            add(name: "Forwarded", value: element)
        }
    }
}

extension SocketAddress {
    var ipString: String? { ipAddress }
}

extension String {
    /// Without the optional whitespace (spaces, tabs) HTTP allows around a list element.
    func trimmedOWS() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}

/// The request as the edge sends it to an ingress, written straight to bytes.
enum UpstreamRequest {
    /// The head: HTTP/1.1; without the hop-by-hop fields, the fields `Connection` names and
    /// `Expect` (the edge answers that itself); with `X-Forwarded-For`, `X-Forwarded-Proto`,
    /// `X-Forwarded-Host` and RFC 7239 `Forwarded` appended to what earlier proxies wrote; and
    /// `transfer-encoding: chunked` when the body comes chunked (the decoder took the chunks
    /// apart; `chunk` puts them back).
    static func head(_ head: HTTPRequestHead, client: String?, host: String?, chunked: Bool,
                     allocator: ByteBufferAllocator) -> ByteBuffer {
        let ip = client ?? "unknown"
        var named: [String] = []
        var xff: [String] = []
        var forwarded: [String] = []
        var sawProto = false
        var sawHost = false
        if head.headers.contains(name: "connection") {
            for value in head.headers["connection"] {
                for token in value.split(separator: ",") {
                    let name = String(token).trimmedOWS().lowercased()
                    if !name.isEmpty { named.append(name) }
                }
            }
        }
        var b = allocator.buffer(capacity: 192 + head.uri.utf8.count)
        b.writeString(head.method.rawValue)
        b.writeStaticString(" ")
        b.writeString(head.uri)
        b.writeStaticString(" HTTP/1.1\r\n")
        for (name, value) in head.headers {
            let n = name.utf8.count
            if HTTPHeaders.isHopByHop(name) { continue }
            if n == 6 && name.equalsIgnoringCase("expect") { continue }
            if n == 15 && name.equalsIgnoringCase("x-forwarded-for") { xff.append(value); continue }
            if n == 9 && name.equalsIgnoringCase("forwarded") { forwarded.append(value); continue }
            if n == 17 && name.equalsIgnoringCase("x-forwarded-proto") { sawProto = true }
            if n == 16 && name.equalsIgnoringCase("x-forwarded-host") { sawHost = true }
            if !named.isEmpty && named.contains(where: { name.equalsIgnoringCase($0) }) { continue }
            b.writeString(name)
            b.writeStaticString(": ")
            b.writeString(value)
            b.writeStaticString("\r\n")
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
        if chunked { b.writeStaticString("transfer-encoding: chunked\r\n") }
        b.writeStaticString("\r\n")
        return b
    }

    /// One piece of a chunked body: its size line, the data, CRLF.
    static func chunk(_ data: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var b = allocator.buffer(capacity: data.readableBytes + 12)
        b.writeString(String(data.readableBytes, radix: 16))
        b.writeStaticString("\r\n")
        b.writeImmutableBuffer(data)
        b.writeStaticString("\r\n")
        return b
    }

    static let lastChunk = ByteBuffer(string: "0\r\n\r\n")
}

extension String {
    /// ASCII case-insensitive equality (header names).
    func equalsIgnoringCase(_ other: String) -> Bool {
        guard utf8.count == other.utf8.count else { return false }
        return utf8.elementsEqual(other.utf8) { a, b in
            a == b || (a | 0x20 == b | 0x20 && (a | 0x20) >= 97 && (a | 0x20) <= 122)
        }
    }
}
