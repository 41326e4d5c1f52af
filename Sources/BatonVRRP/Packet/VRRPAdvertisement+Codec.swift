import BatonAPI

// The wire layout (RFC 3768 5.1 and RFC 9568 5.1), all fields big-endian:
//
//   byte 0     version (high nibble) and type (low nibble, 1 = advertisement)
//   byte 1     virtual router id
//   byte 2     priority
//   byte 3     count of addresses
//   bytes 4-5  v2: auth type, advert interval in seconds
//              v3: 4 reserved bits (zero on send, ignored on receipt), 12-bit max advert
//                  interval in centiseconds
//   bytes 6-7  checksum
//   then       the addresses (4 or 16 bytes each)
//   then       v2 only: 8 bytes of authentication data

extension VRRPAdvertisement {
    /// An advertisement as received, with the checksum form that matched.
    public struct Decoded: Sendable, Hashable {
        public var advertisement: VRRPAdvertisement
        /// For VRRP 3 over IPv4, the form the sender used, tried in this order: `.withPseudoHeader`,
        /// `.vrrpOnly`, `.pseudoHeaderWithGroupDestination` (to the group the first and the last
        /// are the same, and the first is reported). A speaker that must answer in kind (as
        /// keepalived does for `old_unicast_checksum`) sends with this. `.vrrpOnly` for VRRP 2
        /// and `.withPseudoHeader` for IPv6, which have one form each.
        public var checksumMode: VRRPChecksumMode

        public init(advertisement: VRRPAdvertisement, checksumMode: VRRPChecksumMode) {
            self.advertisement = advertisement
            self.checksumMode = checksumMode
        }
    }

    /// The VRRP message: what goes after the IP header, checksum included.
    ///
    /// - Parameters:
    ///   - source: the IP source the packet is sent from (for keepalived over IPv6, the
    ///     interface's link-local address).
    ///   - destination: the group (``VRRPWire/group(_:)``) or a unicast peer.
    ///   - checksumMode: only used for VRRP 3 over IPv4; defaults to keepalived's form.
    /// - Throws: `.addressFamily` if the source or destination is not of the addresses' family.
    public func encode(
        source: IPAddress,
        destination: IPAddress,
        checksumMode: VRRPChecksumMode = .keepalivedDefault
    ) throws(VRRPPacketError) -> [UInt8] {
        try Self.checkFamilies(family, source: source, destination: destination)
        let addressSize = family == .v4 ? 4 : 16
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + addresses.count * addressSize + 8)
        bytes.append(version.rawValue << 4 | 1)
        bytes.append(vrid)
        bytes.append(priority)
        bytes.append(UInt8(addresses.count))
        switch version {
        case .v2:
            bytes.append(authentication.wireType)
            bytes.append(UInt8(maxAdvertIntervalCentiseconds / 100))
        case .v3:
            bytes.append(UInt8(maxAdvertIntervalCentiseconds >> 8))
            bytes.append(UInt8(truncatingIfNeeded: maxAdvertIntervalCentiseconds))
        }
        bytes.append(0)
        bytes.append(0)
        for address in addresses { bytes.append(contentsOf: address.wireBytes) }
        if version == .v2 {
            switch authentication {
            case .none: bytes.append(contentsOf: [UInt8](repeating: 0, count: 8))
            case .password(let password): bytes.append(contentsOf: password.wire)
            }
        }
        let mode = Self.effectiveMode(version: version, family: family, requested: checksumMode)
        let checksum = Self.checksum(bytes, mode: mode, source: source, destination: destination)
        bytes[6] = UInt8(checksum >> 8)
        bytes[7] = UInt8(truncatingIfNeeded: checksum)
        return bytes
    }

    /// Reads a VRRP message (the IP payload) and checks it as RFC 3768 7.1 and RFC 9568 7.1 ask,
    /// short of what needs configuration (the vrid, the addresses, the password and the interval
    /// the receiver expects, and the TTL, which the IP layer carries: see ``VRRPWire/checkTTL(_:)``).
    ///
    /// Checked, in this order: the length of the fixed header, the version (2 or 3; 2 only over
    /// IPv4), the type (1), the vrid (not 0), the address count (not 0), the v2 auth type (0 or 1;
    /// 2, IP Authentication Header, is refused by name), the interval (not 0), the length against
    /// the count, and the checksum. For VRRP 3 over IPv4 any ``VRRPChecksumMode`` is accepted and
    /// the one that matched is reported.
    ///
    /// - Parameters:
    ///   - source, destination: the packet's IP addresses, which give the family and the
    ///     pseudo-header. For IPv4 take them from ``IPv4Header``; for IPv6 from `recvmsg`'s
    ///     address and `IPV6_PKTINFO`.
    public static func decode(
        _ bytes: some Collection<UInt8>,
        source: IPAddress,
        destination: IPAddress
    ) throws(VRRPPacketError) -> Decoded {
        let bytes = Array(bytes)
        let family = source.family
        try checkFamilies(family, source: source, destination: destination)
        guard bytes.count >= 8 else {
            throw VRRPPacketError(.truncated, "length \(bytes.count) is shorter than the 8-byte VRRP header")
        }
        let versionNibble = bytes[0] >> 4
        guard let version = VRRPVersion(rawValue: versionNibble) else {
            throw VRRPPacketError(.version, "version \(versionNibble) is not VRRP 2 or 3")
        }
        if version == .v2 && family == .v6 {
            throw VRRPPacketError(.version, "version 2 over IPv6: VRRP 2 is IPv4 only")
        }
        let type = bytes[0] & 0x0F
        guard type == 1 else {
            throw VRRPPacketError(.type, "type \(type) is not 1 (advertisement)")
        }
        let vrid = bytes[1]
        guard vrid != 0 else {
            throw VRRPPacketError(.vrid, "virtual router id 0 is not in 1...255")
        }
        let count = Int(bytes[3])
        guard count != 0 else {
            throw VRRPPacketError(.addressCount, "address count 0: an advertisement names at least one virtual address")
        }

        let interval: UInt16
        switch version {
        case .v2:
            switch bytes[4] {
            case 0, 1: break
            case 2: throw VRRPPacketError(.authentication, "auth type 2 (IP Authentication Header) is not supported: use none or PASS")
            case let other: throw VRRPPacketError(.authentication, "auth type \(other) is not 0 (none) or 1 (simple password)")
            }
            guard bytes[5] != 0 else {
                throw VRRPPacketError(.interval, "advert interval 0 seconds is not in 1...255")
            }
            interval = UInt16(bytes[5]) * 100
        case .v3:
            interval = (UInt16(bytes[4]) << 8 | UInt16(bytes[5])) & 0x0FFF
            guard interval != 0 else {
                throw VRRPPacketError(.interval, "max advert interval 0 centiseconds is not in 1...4095")
            }
        }

        let addressSize = family == .v4 ? 4 : 16
        let expected = 8 + count * addressSize + (version == .v2 ? 8 : 0)
        guard bytes.count == expected else {
            let familyName = family == .v4 ? "IPv4" : "IPv6"
            throw VRRPPacketError(.length, "length \(bytes.count) does not fit \(count) \(familyName) address\(count == 1 ? "" : "es") (expected \(expected) bytes)")
        }

        let received = UInt16(bytes[6]) << 8 | UInt16(bytes[7])
        var candidates = [effectiveMode(version: version, family: family, requested: .keepalivedDefault)]
        if version == .v3 && family == .v4 {
            candidates.append(.vrrpOnly)
            // To the group, the old unicast form is the current one: no need to try it twice.
            if destination != VRRPWire.ipv4Group { candidates.append(.pseudoHeaderWithGroupDestination) }
        }
        var zeroed = bytes
        zeroed[6] = 0
        zeroed[7] = 0
        var computed: [(VRRPChecksumMode, UInt16)] = []
        for mode in candidates {
            let value = checksum(zeroed, mode: mode, source: source, destination: destination)
            if value == received {
                return Decoded(advertisement: advertisement(bytes, version: version, vrid: vrid, count: count,
                                                            interval: interval, family: family),
                               checksumMode: mode)
            }
            computed.append((mode, value))
        }
        let expectation = computed.count == 1
            ? hex(computed[0].1)
            : computed.map { "\(hex($0.1)) \($0.0)" }.joined(separator: ", ")
        throw VRRPPacketError(.checksum, "checksum \(hex(received)) does not match (expected \(expectation))")
    }

    private static func advertisement(_ bytes: [UInt8], version: VRRPVersion, vrid: UInt8, count: Int,
                                      interval: UInt16, family: IPAddress.Family) -> VRRPAdvertisement {
        let addressSize = family == .v4 ? 4 : 16
        let addresses = (0..<count).map { i in
            IPAddress(family: family, wire: bytes[(8 + i * addressSize)..<(8 + (i + 1) * addressSize)])
        }
        var authentication = VRRPAuthentication.none
        if version == .v2 && bytes[4] == 1 {
            let start = 8 + count * addressSize
            authentication = .password(VRRPPassword(wire: bytes[start..<(start + 8)]))
        }
        return VRRPAdvertisement(unchecked: version, vrid: vrid, priority: bytes[2], interval: interval,
                                 addresses: addresses, authentication: authentication)
    }

    /// The mode that applies: the requested one only for VRRP 3 over IPv4.
    private static func effectiveMode(version: VRRPVersion, family: IPAddress.Family,
                                      requested: VRRPChecksumMode) -> VRRPChecksumMode {
        switch (version, family) {
        case (.v2, _): .vrrpOnly
        case (.v3, .v6): .withPseudoHeader
        case (.v3, .v4): requested
        }
    }

    /// The checksum of a message whose checksum field is zero.
    private static func checksum(_ message: [UInt8], mode: VRRPChecksumMode,
                                 source: IPAddress, destination: IPAddress) -> UInt16 {
        var sum: UInt32 = 0
        switch mode {
        case .vrrpOnly:
            break
        case .withPseudoHeader:
            sum = InternetChecksum.pseudoHeaderSum(source: source, destination: destination, length: message.count)
        case .pseudoHeaderWithGroupDestination:
            sum = InternetChecksum.pseudoHeaderSum(source: source, destination: VRRPWire.group(source.family),
                                                   length: message.count)
        }
        InternetChecksum.add(message, to: &sum)
        return InternetChecksum.finish(sum)
    }

    private static func checkFamilies(_ family: IPAddress.Family, source: IPAddress,
                                      destination: IPAddress) throws(VRRPPacketError) {
        guard source.family == family, destination.family == family else {
            let familyName = family == .v4 ? "IPv4" : "IPv6"
            throw VRRPPacketError(.addressFamily, "source \(source) and destination \(destination) are not both \(familyName)")
        }
    }
}

/// `0x00ab`: four hex digits, as checksums are written.
private func hex(_ value: UInt16) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 4 - digits.count) + digits
}
