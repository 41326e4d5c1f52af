/// What the checksum of a VRRP 3 advertisement over IPv4 covers. Implementations disagree, so
/// a sender picks one and a receiver accepts all of them (as Baton's decoder does, reporting
/// which one matched). The mode does not apply elsewhere: VRRP 2 never uses a pseudo-header
/// (RFC 3768 5.3.8) and VRRP 3 over IPv6 always does (RFC 9568 5.2.8).
///
/// What keepalived does, read in acassen/keepalived (not copied):
/// - Every keepalived release, including Debian bookworm's 2.2.7, puts an IPv4 pseudo-header
///   (source, destination, zero, protocol 112, VRRP length) in front of the message, and its
///   receiver accepts only that form (`vrrp_build_vrrp_v3` and `vrrp_check_packet` in
///   `keepalived/vrrp/vrrp.c` at tag v2.2.7). Captures of 2.2.7 in Baton's tests confirm it.
/// - 2.2.8 added `v3_checksum_as_v2` (commit b57d7d7a, "VRRP: add v3_checksum_as_v2
///   configuration option") to leave the pseudo-header out, for Cisco and Juniper, which read
///   RFC 5798 5.2.8 as IPv6 only. The default did not change. RFC 9568 (April 2024) settled on
///   that reading, and keepalived's man page now says to set the option "for compliance with
///   RFC9568" (commit b41dfe2c, 2.3.3); keepalived issue #2324 about its default is open.
/// - Up to 1.3.6 keepalived put 224.0.0.18 in the pseudo-header even when it sent unicast
///   (fixed in commit bcf29363, 1.3.7). `old_unicast_checksum` still sends that form, and a
///   unicast receiver switches to it when a peer's checksum only matches that way.
public enum VRRPChecksumMode: Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// RFC 5798 as keepalived reads it: an IPv4 pseudo-header with the packet's real
    /// destination (the group, or the unicast peer). keepalived's default in every release.
    case withPseudoHeader
    /// The VRRP message alone, as in VRRP 2: RFC 9568, Cisco, Juniper, and keepalived 2.2.8+
    /// with `v3_checksum_as_v2`.
    case vrrpOnly
    /// An IPv4 pseudo-header with 224.0.0.18 as destination whatever the real destination:
    /// keepalived up to 1.3.6 in unicast, and later ones with `old_unicast_checksum`. The same
    /// as ``withPseudoHeader`` for multicast.
    case pseudoHeaderWithGroupDestination

    /// What keepalived sends unless configured otherwise, Baton's default for peering with it.
    public static let keepalivedDefault: VRRPChecksumMode = .withPseudoHeader

    public var description: String {
        switch self {
        case .withPseudoHeader: "with the IPv4 pseudo-header"
        case .vrrpOnly: "without a pseudo-header"
        case .pseudoHeaderWithGroupDestination: "with the IPv4 pseudo-header to 224.0.0.18"
        }
    }
}
