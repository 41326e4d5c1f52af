import BatonAPI

/// The constants of VRRP on the wire, for the transport and the state machine.
///
/// What a raw `IPPROTO_VRRP` socket delivers differs by family:
/// - IPv4 delivers the whole datagram, IP header first: parse it with ``IPv4Header/parse(_:)``
///   and decode its payload.
/// - IPv6 strips the header: the payload is the VRRP message, the source comes from
///   `recvmsg`'s address, the destination from `IPV6_PKTINFO` and the hop limit from
///   `IPV6_HOPLIMIT` ancillary data (`IPV6_RECVPKTINFO` and `IPV6_RECVHOPLIMIT` must be set).
///   keepalived sets `IPV6_CHECKSUM` to offset 6 so that the kernel fills in and verifies the
///   checksum; ``VRRPAdvertisement/encode(source:destination:checksumMode:)`` computes the same
///   value, so the transport may do either.
public enum VRRPWire {
    /// IANA protocol number of VRRP (IPv4 protocol, IPv6 next header).
    public static let ipProtocol: UInt8 = 112
    /// The TTL (IPv4) or hop limit (IPv6) that every advertisement is sent with and that a
    /// receiver must require (RFC 3768 7.1, RFC 9568 7.1): anything else crossed a router.
    public static let requiredTTL: UInt8 = 255
    /// The IPv4 multicast group, 224.0.0.18.
    public static let ipv4Group = IPAddress(family: .v4, value: 0xE000_0012)
    /// The IPv6 multicast group, ff02::12.
    public static let ipv6Group = IPAddress(family: .v6, value: 0xFF02_0000_0000_0000_0000_0000_0000_0012)
    /// The type of service / traffic class keepalived sends with (0xc0, precedence "internetwork
    /// control", as seen in captures of keepalived 2.2.7). Not checked on receipt.
    public static let keepalivedTrafficClass: UInt8 = 0xC0

    /// The multicast group of a family.
    public static func group(_ family: IPAddress.Family) -> IPAddress {
        family == .v4 ? ipv4Group : ipv6Group
    }

    /// Refuses a received TTL or hop limit other than 255.
    public static func checkTTL(_ ttl: UInt8) throws(VRRPPacketError) {
        guard ttl == requiredTTL else {
            throw VRRPPacketError(.ttl, "ttl \(ttl) is not 255: the packet crossed a router")
        }
    }
}
