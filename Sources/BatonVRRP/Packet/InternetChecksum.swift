import BatonAPI

/// The RFC 1071 Internet checksum, with the pseudo-headers that VRRP 3 puts in front of the
/// message. Internal: callers go through encode and decode.
enum InternetChecksum {
    /// Adds big-endian 16-bit words to a running sum; an odd last byte is padded with zero.
    static func add(_ bytes: some Sequence<UInt8>, to sum: inout UInt32) {
        var high: UInt8? = nil
        for b in bytes {
            if let h = high {
                sum &+= UInt32(h) << 8 | UInt32(b)
                high = nil
                if sum & 0x8000_0000 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
            } else {
                high = b
            }
        }
        if let h = high { sum &+= UInt32(h) << 8 }
    }

    /// Folds the carries and complements: the value that goes in the checksum field.
    static func finish(_ sum: UInt32) -> UInt16 {
        var s = sum
        while s > 0xFFFF { s = (s & 0xFFFF) + (s >> 16) }
        return ~UInt16(s)
    }

    /// The checksum of a whole buffer.
    static func of(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var sum: UInt32 = 0
        add(bytes, to: &sum)
        return finish(sum)
    }

    /// The sum of an IPv4 pseudo-header (RFC 768 layout: source, destination, zero, protocol,
    /// upper-layer length) or an IPv6 one (RFC 8200 8.1: source, destination, 32-bit length,
    /// three zero bytes, next header).
    static func pseudoHeaderSum(source: IPAddress, destination: IPAddress, length: Int) -> UInt32 {
        var sum: UInt32 = 0
        add(source.wireBytes, to: &sum)
        add(destination.wireBytes, to: &sum)
        // Both layouts sum to the same words: the protocol and the length, each as a 16-bit word
        // (the IPv6 length's high word is zero for any VRRP message).
        sum &+= UInt32(VRRPWire.ipProtocol)
        sum &+= UInt32(length & 0xFFFF) + UInt32(length >> 16)
        return sum
    }
}

extension IPAddress {
    /// The address in network byte order: 4 bytes for IPv4, 16 for IPv6.
    var wireBytes: [UInt8] {
        let count = family == .v4 ? 4 : 16
        return (0..<count).map { UInt8(truncatingIfNeeded: value >> UInt128((count - 1 - $0) * 8)) }
    }

    /// The address from 4 (IPv4) or 16 (IPv6) bytes in network byte order.
    init(family: Family, wire: some Collection<UInt8>) {
        var v: UInt128 = 0
        for b in wire { v = v << 8 | UInt128(b) }
        self.init(family: family, value: v)
    }
}
