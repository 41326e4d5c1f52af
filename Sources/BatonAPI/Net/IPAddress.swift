#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address, held as a 128-bit number so that ranges and prefixes are arithmetic.
public struct IPAddress: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    public enum Family: Sendable, Hashable { case v4, v6 }

    public let family: Family
    /// The address as an unsigned number (the low 32 bits for IPv4).
    public let value: UInt128

    public init(family: Family, value: UInt128) {
        self.family = family
        self.value = family == .v4 ? value & 0xFFFF_FFFF : value
    }

    /// Parses dotted-quad IPv4 or any RFC 4291 IPv6 text form. Returns nil for anything else,
    /// including zone indices and leading zeros in IPv4 octets.
    public init?(_ text: String) {
        if text.contains(":") {
            var a = in6_addr()
            guard inet_pton(AF_INET6, text, &a) == 1 else { return nil }
            let bytes = withUnsafeBytes(of: &a) { Array($0) }
            var v: UInt128 = 0
            for b in bytes { v = (v << 8) | UInt128(b) }
            self.init(family: .v6, value: v)
        } else {
            // inet_pton(AF_INET) is strict dotted-quad on glibc; also refuse octets with leading zeros,
            // which some parsers read as octal.
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4, parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) && ($0.count == 1 || $0.first != "0") }) else { return nil }
            var v: UInt128 = 0
            for p in parts {
                guard let o = UInt8(p) else { return nil }
                v = (v << 8) | UInt128(o)
            }
            self.init(family: .v4, value: v)
        }
    }

    public var bitWidth: Int { family == .v4 ? 32 : 128 }

    /// Canonical text: dotted quad, or RFC 5952 for IPv6.
    public var description: String {
        switch family {
        case .v4:
            let v = UInt32(truncatingIfNeeded: value)
            return "\(v >> 24).\((v >> 16) & 0xFF).\((v >> 8) & 0xFF).\(v & 0xFF)"
        case .v6:
            var a = in6_addr()
            withUnsafeMutableBytes(of: &a) { buf in
                for i in 0..<16 { buf[i] = UInt8(truncatingIfNeeded: value >> UInt128((15 - i) * 8)) }
            }
            var out = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            _ = inet_ntop(AF_INET6, &a, &out, socklen_t(out.count))
            return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        a.family == b.family ? a.value < b.value : a.family == .v4
    }

    /// The address `n` places on (nil past the end of the family's space).
    public func advanced(by n: UInt128) -> IPAddress? {
        let max: UInt128 = family == .v4 ? 0xFFFF_FFFF : UInt128.max
        guard max - value >= n else { return nil }
        return IPAddress(family: family, value: value + n)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let a = IPAddress(s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "\"\(s)\" is not an IP address")
        }
        self = a
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// An inclusive range of addresses of one family: what a pool entry, a CIDR or a VIP range
/// stands for.
public struct IPRange: Sendable, Hashable, CustomStringConvertible {
    public let first: IPAddress
    public let last: IPAddress

    public init?(first: IPAddress, last: IPAddress) {
        guard first.family == last.family, first.value <= last.value else { return nil }
        self.first = first
        self.last = last
    }

    public var family: IPAddress.Family { first.family }
    /// How many addresses (saturating at UInt128.max for the whole IPv6 space).
    public var count: UInt128 { last.value - first.value == UInt128.max ? UInt128.max : last.value - first.value + 1 }

    public func contains(_ a: IPAddress) -> Bool { a.family == family && a.value >= first.value && a.value <= last.value }
    public func overlaps(_ o: IPRange) -> Bool { o.family == family && o.first.value <= last.value && first.value <= o.last.value }

    public var description: String { first == last ? first.description : "\(first)-\(last)" }
}

/// A prefix such as `10.6.0.0/16` or `fd00::/64`.
public struct IPPrefix: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    /// Parses `ADDR/LEN`. With `strict`, host bits must be zero (as `ip route` requires of a destination).
    public init?(_ text: String, strict: Bool = false) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPAddress(String(parts[0])),
              parts[1].allSatisfy(\.isNumber), let len = Int(parts[1]), len >= 0, len <= a.bitWidth else { return nil }
        let masked = IPPrefix.mask(a, len)
        if strict && masked != a { return nil }
        self.address = masked
        self.length = len
    }

    public init(address: IPAddress, length: Int) {
        self.address = IPPrefix.mask(address, length)
        self.length = length
    }

    static func mask(_ a: IPAddress, _ len: Int) -> IPAddress {
        let hostBits = a.bitWidth - len
        if hostBits <= 0 { return a }
        if hostBits >= 128 { return IPAddress(family: a.family, value: 0) }
        let m: UInt128 = ~((UInt128(1) << UInt128(hostBits)) - 1)
        return IPAddress(family: a.family, value: a.value & m)
    }

    public var range: IPRange {
        let hostBits = address.bitWidth - length
        let span: UInt128 = hostBits >= 128 ? UInt128.max : (UInt128(1) << UInt128(hostBits)) - 1
        return IPRange(first: address, last: IPAddress(family: address.family, value: address.value | span))!
    }

    public func contains(_ a: IPAddress) -> Bool { range.contains(a) }
    public var description: String { "\(address)/\(length)" }
}

/// Parsing of the address forms that manifests use.
public enum IPSyntax {
    /// One pool entry as egressgateway accepts it: a single IP, a range `a-b`, or a CIDR.
    public static func poolEntry(_ text: String) -> IPRange? {
        let t = text.trimmed
        if t.contains("/") { return IPPrefix(t)?.range }
        if let dash = t.firstIndex(of: "-") {
            guard let a = IPAddress(String(t[..<dash])), let b = IPAddress(String(t[t.index(after: dash)...])) else { return nil }
            return IPRange(first: a, last: b)
        }
        guard let a = IPAddress(t) else { return nil }
        return IPRange(first: a, last: a)
    }

    /// A destination as route tables take it: an IP or a CIDR.
    public static func destination(_ text: String) -> IPPrefix? {
        if text.contains("/") { return IPPrefix(text) }
        guard let a = IPAddress(text) else { return nil }
        return IPPrefix(address: a, length: a.bitWidth)
    }

    /// OpenShift's VIP range list: `1.2.3.4-6,1.2.3.9`, where a range's end is the last octet
    /// (IPv4) or the last hextet (IPv6), or a whole address. Returns nil with the bad element.
    public static func vipList(_ text: String) -> Result<[IPRange], VIPSyntaxError> {
        var out: [IPRange] = []
        for raw in text.split(separator: ",") {
            let item = String(raw).trimmed
            if item.isEmpty { continue }
            if let dash = item.firstIndex(of: "-") {
                let startText = String(item[..<dash])
                let endText = String(item[item.index(after: dash)...])
                guard let start = IPAddress(startText) else { return .failure(VIPSyntaxError(item: item)) }
                let end: IPAddress?
                if let full = IPAddress(endText) {
                    end = full
                } else if start.family == .v4, let last = UInt8(endText), endText.allSatisfy(\.isNumber) {
                    end = IPAddress(family: .v4, value: (start.value & ~0xFF) | UInt128(last))
                } else if start.family == .v6, !endText.isEmpty, endText.count <= 4, let last = UInt16(endText, radix: 16) {
                    end = IPAddress(family: .v6, value: (start.value & ~0xFFFF) | UInt128(last))
                } else {
                    end = nil
                }
                guard let end, let r = IPRange(first: start, last: end) else { return .failure(VIPSyntaxError(item: item)) }
                out.append(r)
            } else {
                guard let a = IPAddress(item) else { return .failure(VIPSyntaxError(item: item)) }
                out.append(IPRange(first: a, last: a)!)
            }
        }
        return .success(out)
    }

    public struct VIPSyntaxError: Error, Sendable, Hashable { public var item: String }
}

