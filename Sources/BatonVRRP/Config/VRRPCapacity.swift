import BatonAPI

/// How many virtual IPs the standalone speaker carries, and why.
///
/// **Per instance.** One advertisement names every VIP of its instance, and its count field is
/// 8 bits wide, so at most 255. It must also fit one frame. On a 1500-byte MTU:
/// - IPv4: 20-byte IP header + 8-byte VRRP header (+ 8 bytes of authentication data for
///   version 2) + 4 per address leaves room for 362 or more, so the count field's **255** is the
///   limit.
/// - IPv6: 40-byte header + 8-byte VRRP header + 16 per address. The bare arithmetic,
///   (1500 − 48) / 16, gives 90. keepalived 2.2.7 (`vrrp_complete_instance` in
///   keepalived/vrrp/vrrp.c) also subtracts the 14-byte Ethernet header from the MTU, so it
///   advertises at most (1500 − 14 − 48) / 16 = **89**, moves the rest to unadvertised
///   "eVIPs", and discards any advert whose address count differs from its own ("received an
///   unexpected ip number count"). A Baton instance with 90 IPv6 VIPs would never be heard by a
///   keepalived peer, so Baton counts as keepalived does: 89.
///
/// **In total.** VRIDs are 1...255 per interface and family, so one speaker runs at most 255
/// instances of a family on an interface: **255 × 255 = 65,025 IPv4 VIPs** and
/// **255 × 89 = 22,695 IPv6 VIPs**. From the OpenShift environment the VRIDs are
/// `OPENSHIFT_HA_VRRP_ID_OFFSET + 1 ... 255`, so at the default offset of 10 it is
/// 245 × 255 = 62,475 IPv4 or 245 × 89 = 21,805 IPv6 VIPs (with `OPENSHIFT_HA_VIP_GROUPS`
/// = 245), and without VIP groups (one VIP per instance, as OpenShift's 254-VIP limit
/// assumes) 255 − offset VIPs: 245 at the default offset.
///
/// Baton assumes a 1500-byte MTU: the configuration is checked before any interface is looked at.
/// The `IPFailover` kind refuses what exceeds the same figures (`IPFailoverSpec.maxVirtualIPs`
/// and the per-instance limits; a test keeps the two equal), so the agent is never handed an
/// IPFailover its speaker cannot carry.
public enum VRRPCapacity {
    /// The link MTU the limits are computed for.
    public static let standardMTU = 1500
    /// VRIDs 1...255: instances of one family on one interface.
    public static let maxInstances = 255
    /// The advertisement's 8-bit count field.
    public static let maxAddressesPerAdvertisement = 255

    /// The most VIPs one instance advertises on a link of `mtu` bytes, counted as keepalived
    /// counts them (Ethernet header included; see the type's comment).
    public static func maxAddressesPerInstance(_ family: IPAddress.Family, version: VRRPVersion,
                                               mtu: Int = standardMTU) -> Int {
        let ethernet = 14, vrrpHeader = 8
        let ipHeader = family == .v4 ? 20 : 40
        let auth = (family == .v4 && version == .v2) ? 8 : 0
        let addressSize = family == .v4 ? 4 : 16
        let fits = max(0, mtu - ethernet - ipHeader - vrrpHeader - auth) / addressSize
        return min(fits, maxAddressesPerAdvertisement)
    }

    /// 255 on a 1500-byte MTU (the count field is the limit).
    public static let maxIPv4AddressesPerInstance = maxAddressesPerInstance(.v4, version: .v2)
    /// 89 on a 1500-byte MTU.
    public static let maxIPv6AddressesPerInstance = maxAddressesPerInstance(.v6, version: .v3)

    /// The most VIPs of a family one instance carries on a 1500-byte MTU, with the version
    /// Baton would use for it (2 for IPv4, 3 for IPv6: the two give the same IPv4 limit).
    public static func maxAddressesPerInstance(_ family: IPAddress.Family) -> Int {
        family == .v4 ? maxIPv4AddressesPerInstance : maxIPv6AddressesPerInstance
    }

    /// 255 instances × 255 = 65,025.
    public static let maxIPv4VirtualIPs = maxInstances * maxIPv4AddressesPerInstance
    /// 255 instances × 89 = 22,695.
    public static let maxIPv6VirtualIPs = maxInstances * maxIPv6AddressesPerInstance

    /// The most VIPs of a family an OpenShift environment can spread over its VRIDs,
    /// `offset + 1 ... 255`: (255 − offset) × per instance.
    public static func maxVirtualIPs(_ family: IPAddress.Family, vrrpIDOffset: Int) -> Int {
        max(0, maxInstances - vrrpIDOffset) * maxAddressesPerInstance(family)
    }
}
