import BatonAPI

/// The small parsers the environment and the flags share. Pure: no Foundation.
enum VRRPConfigSyntax {
    static func trim(_ s: String) -> String {
        var v = Substring(s)
        while let f = v.first, f.isWhitespace { v.removeFirst() }
        while let l = v.last, l.isWhitespace { v.removeLast() }
        return String(v)
    }

    /// A non-negative decimal integer: ASCII digits only, no sign, at most 9 digits (so that
    /// `99999999999999999999` is refused as a value, not as an overflow).
    static func integer(_ text: String) -> Int? {
        let t = trim(text)
        guard !t.isEmpty, t.utf8.count <= 9, t.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(t)
    }

    /// Decimal seconds, exactly: `1`, `0.5`, `.25`, `40.95`, up to nanoseconds. Refuses signs,
    /// exponents, `1.` and anything finer than a nanosecond.
    static func seconds(_ text: String) -> Duration? {
        let t = trim(text)
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2 else { return nil }
        let whole = parts[0]
        let fraction = parts.count == 2 ? parts[1] : ""
        let digits: (Substring) -> Bool = { $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        guard digits(whole), digits(fraction), whole.utf8.count <= 9, fraction.utf8.count <= 9,
              !whole.isEmpty || !fraction.isEmpty, parts.count == 1 || !fraction.isEmpty else { return nil }
        let w = whole.isEmpty ? 0 : Int64(whole)!
        let nanos = fraction.isEmpty ? 0 : Int64(fraction + String(repeating: "0", count: 9 - fraction.utf8.count))!
        return .seconds(w) + .nanoseconds(nanos)
    }

    /// `0.5 s`, `300 s`, `40.95 s`: a duration as an operator wrote it.
    static func describe(_ d: Duration) -> String {
        let (s, atto) = d.components
        if atto == 0 { return "\(s) s" }
        let nanos = atto / 1_000_000_000
        var frac = String(nanos)
        frac = String(repeating: "0", count: max(0, 9 - frac.count)) + frac
        while frac.hasSuffix("0") { frac.removeLast() }
        return "\(s).\(frac) s"
    }

    /// The duration in whole centiseconds, or nil if it is not a whole number of them.
    static func centiseconds(_ d: Duration) -> Int64? {
        let (s, atto) = d.components
        let centi: Int64 = 10_000_000_000_000_000 // attoseconds in a centisecond
        guard s >= 0, atto >= 0, atto % centi == 0 else { return nil }
        let (total, overflow) = s.multipliedReportingOverflow(by: 100)
        guard !overflow else { return nil }
        return total + atto / centi
    }

    /// A Linux interface name: 1-15 bytes of ASCII, no `/`, `:` or whitespace, not `.` or `..`.
    static func isInterfaceName(_ n: String) -> Bool {
        !n.isEmpty && n.utf8.count <= 15 && n != "." && n != ".."
            && !n.contains(where: { $0.isWhitespace || $0 == "/" || $0 == ":" || !$0.isASCII })
    }

    /// A keepalived instance name: what `vrrp_instance NAME {` and a notify script's `$2` can
    /// carry: 1-128 printable ASCII characters without whitespace, quotes, braces or `#`/`!`
    /// (keepalived's comment characters).
    static func isInstanceName(_ n: String) -> Bool {
        !n.isEmpty && n.utf8.count <= 128
            && n.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F && !"\"'{}#!".unicodeScalars.contains($0) }
    }

    /// What a command line may hold: not empty, no NUL or line break.
    static func isCommand(_ c: String) -> Bool {
        !trim(c).isEmpty && !c.contains(where: { $0 == "\0" || $0.isNewline })
    }

    /// A chain name for the rule admitting VRRP, as an nftables identifier (nft takes no quoted
    /// chain name in a table block): 1-64 characters, an ASCII letter or `_` first, then ASCII
    /// letters, digits, `_`, `-`, `.` or `/`.
    static func isChainName(_ c: String) -> Bool {
        guard let first = c.unicodeScalars.first, c.unicodeScalars.count <= 64,
              first.isASCII, first.properties.isAlphabetic || first == "_" else { return false }
        return c.unicodeScalars.allSatisfy { s in
            s.isASCII && (s.properties.isAlphabetic || ("0"..."9").contains(s) || "_-./".unicodeScalars.contains(s))
        }
    }

    static func familyName(_ f: IPAddress.Family) -> String { f == .v4 ? "IPv4" : "IPv6" }
}
