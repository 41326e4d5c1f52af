import BatonAPI

/// One line of keepalived's `virtual_ipaddress` block: an address the master adds to its
/// interface, and the prefix length it is added with.
public struct VRRPVirtualAddress: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    /// 1...32 or 1...128; nil adds a host address (/32 or /128), as keepalived does when the
    /// line has no prefix and as OpenShift's ipfailover always does.
    public let prefixLength: Int?

    /// Returns nil for a prefix length outside 1...32 (IPv4) or 1...128 (IPv6). A /0 would
    /// route every destination through the VIP's interface.
    public init?(_ address: IPAddress, prefixLength: Int? = nil) {
        if let p = prefixLength, !(1...address.bitWidth).contains(p) { return nil }
        self.address = address
        self.prefixLength = prefixLength
    }

    public var family: IPAddress.Family { address.family }

    /// `10.0.0.5` or `10.0.0.5/24`.
    public var description: String { prefixLength.map { "\(address)/\($0)" } ?? address.description }

    /// Parses one `--vip` value and returns its addresses, in order:
    /// - `ADDR` or `ADDR/PREFIX` (`10.0.0.5/24`: the address keeps its host bits);
    /// - an OpenShift range, as `OPENSHIFT_HA_VIRTUAL_IPS` writes one (`10.0.0.5-9`,
    ///   `fd00::10-1f`, `10.0.0.5-10.0.1.4`; see `IPSyntax.vipList`), expanded to host addresses.
    ///
    /// - Parameter field: how the message names the value (`--vip`).
    /// - Throws: `.vipSyntax` naming the item, or `.capacity` for a range larger than one
    ///   instance can carry (checked before the range is expanded).
    public static func parse(_ text: String, field: String = "vip") throws(VRRPConfigError) -> [VRRPVirtualAddress] {
        let item = VRRPConfigSyntax.trim(text)
        let syntax = VRRPConfigError(.vipSyntax,
            "\(field) \"\(text)\" is not an address, ADDR/PREFIX or a range (10.0.0.5, 10.0.0.5/24, 10.0.0.5-9, fd00::10-1f)")
        if let slash = item.firstIndex(of: "/") {
            let lengthText = item[item.index(after: slash)...]
            guard let address = IPAddress(String(item[..<slash])),
                  !lengthText.isEmpty, lengthText.utf8.count <= 3,
                  lengthText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let length = Int(lengthText) else { throw syntax }
            guard let vip = VRRPVirtualAddress(address, prefixLength: length) else {
                throw VRRPConfigError(.vipSyntax,
                    "\(field) \"\(text)\": prefix length /\(length) is not in 1...\(address.bitWidth)")
            }
            return [vip]
        }
        guard !item.isEmpty, !item.contains(","), case .success(let ranges) = IPSyntax.vipList(item),
              ranges.count == 1, let range = ranges.first else { throw syntax }
        let limit = VRRPCapacity.maxAddressesPerInstance(range.family)
        guard range.count <= UInt128(limit) else {
            throw VRRPConfigError(.capacity,
                "\(field) \"\(text)\" holds \(range.count) addresses; one instance carries at most \(limit) \(VRRPConfigSyntax.familyName(range.family)) VIPs")
        }
        return expand(range)
    }

    /// Every address of a range, as host addresses. The caller bounds the range's size.
    static func expand(_ range: IPRange) -> [VRRPVirtualAddress] {
        (0..<range.count).map { VRRPVirtualAddress(IPAddress(family: range.family, value: range.first.value + $0))! }
    }
}
