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
