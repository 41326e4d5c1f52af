/// The VRRP versions Baton speaks: 2 (RFC 3768, IPv4 only, whole-second adverts) and 3
/// (RFC 9568, which replaced RFC 5798: IPv4 and IPv6, centisecond adverts).
public enum VRRPVersion: UInt8, Sendable, Hashable, CaseIterable {
    case v2 = 2
    case v3 = 3
}
