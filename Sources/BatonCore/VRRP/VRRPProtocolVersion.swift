/// The VRRP version a `VRRPInstance` runs, which decides its timing rules:
/// - `v2` (RFC 3768): IPv4 only; the advertisement interval is whole seconds (1...255);
///   `Skew_Time` is `(256 − Priority) / 256` seconds whatever the interval; a Backup never learns
///   the Master's interval, and drops an advertisement whose interval differs from its own.
/// - `v3` (RFC 9568, which replaced RFC 5798): IPv4 and IPv6; the interval is centiseconds
///   (0.01...40.95 s); `Skew_Time` scales with the interval, and a Backup learns the Master's.
///
/// The raw value is the version nibble on the wire; the codec (BatonVRRP) uses this same type
/// under the name `VRRPVersion`.
public enum VRRPProtocolVersion: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case v2 = 2
    case v3 = 3

    public var description: String { "VRRPv\(rawValue)" }
}
