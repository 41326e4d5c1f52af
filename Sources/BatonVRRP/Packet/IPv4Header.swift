import BatonAPI

/// The IPv4 header of a datagram read from a raw `IPPROTO_VRRP` socket, which on Linux delivers
/// the header too (with `tot_len` in network order and including the header, unlike BSD).
/// IPv6 raw sockets deliver no header: see ``VRRPWire``.
///
/// The kernel has already verified the header checksum and reassembled fragments, so neither is
/// checked here.
public struct IPv4Header: Sendable, Hashable {
    public var source: IPAddress
    public var destination: IPAddress
    /// Must be 255 for VRRP: see ``VRRPWire/checkTTL(_:)``.
    public var ttl: UInt8
    /// The IP protocol, 112 for VRRP.
    public var ipProtocol: UInt8
    /// The header length in bytes (IHL × 4, 20...60).
    public var headerLength: Int
    /// The datagram length in bytes, header included.
    public var totalLength: Int

    /// Splits a received datagram into its header and its payload (the VRRP message).
    ///
    /// Refuses, with `.ipHeader`: fewer than 20 bytes, a version other than 4, an IHL below 5 or
    /// past the end, and a total length that differs from the bytes received (keepalived refuses
    /// that too).
    public static func parse<Bytes: RandomAccessCollection<UInt8>>(
        _ datagram: Bytes
    ) throws(VRRPPacketError) -> (header: IPv4Header, payload: Bytes.SubSequence) {
        guard datagram.count >= 20 else {
            throw VRRPPacketError(.ipHeader, "length \(datagram.count) is shorter than the 20-byte IPv4 header")
        }
        func byte(_ offset: Int) -> UInt8 { datagram[datagram.index(datagram.startIndex, offsetBy: offset)] }
        func address(_ offset: Int) -> IPAddress {
            IPAddress(family: .v4, value: UInt128(byte(offset)) << 24 | UInt128(byte(offset + 1)) << 16
                | UInt128(byte(offset + 2)) << 8 | UInt128(byte(offset + 3)))
        }
        let version = byte(0) >> 4
        guard version == 4 else {
            throw VRRPPacketError(.ipHeader, "IP version \(version) is not 4")
        }
        let ihl = Int(byte(0) & 0x0F)
        guard ihl >= 5 else {
            throw VRRPPacketError(.ipHeader, "IHL \(ihl) is below the minimum of 5 (20 bytes)")
        }
        let headerLength = ihl * 4
        let totalLength = Int(byte(2)) << 8 | Int(byte(3))
        guard headerLength <= totalLength else {
            throw VRRPPacketError(.ipHeader, "IHL \(ihl) (\(headerLength) bytes) is longer than the total length \(totalLength)")
        }
        guard totalLength == datagram.count else {
            throw VRRPPacketError(.ipHeader, "total length \(totalLength) does not match the \(datagram.count) bytes received")
        }
        let header = IPv4Header(source: address(12), destination: address(16), ttl: byte(8), ipProtocol: byte(9),
                                headerLength: headerLength, totalLength: totalLength)
        let payloadStart = datagram.index(datagram.startIndex, offsetBy: headerLength)
        return (header, datagram[payloadStart...])
    }

    /// Refuses a datagram that is not VRRP (protocol 112) or that crossed a router (TTL 255).
    public func checkVRRP() throws(VRRPPacketError) {
        guard ipProtocol == VRRPWire.ipProtocol else {
            throw VRRPPacketError(.ipProtocol, "IP protocol \(ipProtocol) is not 112 (VRRP)")
        }
        try VRRPWire.checkTTL(ttl)
    }
}
