import BatonAPI

/// One VRRP advertisement, as a value: what a master sends every advert interval and what a
/// backup reads. Version 2 (RFC 3768) or version 3 (RFC 9568, which replaced RFC 5798).
///
/// The initializer refuses values that cannot go on the wire, so a value in hand always encodes.
/// Encoding and decoding are in `VRRPAdvertisement+Codec.swift`.
public struct VRRPAdvertisement: Sendable, Hashable {
    public let version: VRRPVersion
    /// The virtual router id, 1...255 (keepalived's `virtual_router_id`).
    public let vrid: UInt8
    /// 0...255: 255 is the address owner, 0 means the master is leaving.
    public let priority: UInt8
    /// The advert interval in centiseconds, the unit of version 3's 12-bit field (1...4095, so
    /// 0.01 s to 40.95 s). Version 2 carries whole seconds (1...255), so for version 2 this is a
    /// multiple of 100 in 100...25500. keepalived's `advert_int 0.5` is 50 here.
    public let maxAdvertIntervalCentiseconds: UInt16
    /// The virtual addresses, in the order they go on the wire (keepalived's
    /// `virtual_ipaddress` order). 1...255 of them, all of one family; IPv4 for version 2.
    public let addresses: [IPAddress]
    /// Version 2 only: none, or keepalived's `auth_type PASS`. Always `.none` for version 3.
    public let authentication: VRRPAuthentication

    /// Builds an advertisement, refusing what the wire cannot carry: a vrid of 0, no address or
    /// more than 255, mixed families, IPv6 with version 2, an interval out of range (or not whole
    /// seconds for version 2), and authentication with version 3.
    public init(
        version: VRRPVersion,
        vrid: UInt8,
        priority: UInt8,
        maxAdvertIntervalCentiseconds: UInt16,
        addresses: [IPAddress],
        authentication: VRRPAuthentication = .none
    ) throws(VRRPPacketError) {
        guard vrid != 0 else {
            throw VRRPPacketError(.vrid, "virtual router id 0 is not in 1...255")
        }
        guard let first = addresses.first else {
            throw VRRPPacketError(.addressCount, "address count 0: an advertisement names at least one virtual address")
        }
        guard addresses.count <= 255 else {
            throw VRRPPacketError(.addressCount, "address count \(addresses.count) is more than the 255 one advertisement can carry")
        }
        if let other = addresses.first(where: { $0.family != first.family }) {
            throw VRRPPacketError(.addressFamily, "address \(other) is not of the same family as \(first)")
        }
        switch version {
        case .v2:
            guard first.family == .v4 else {
                throw VRRPPacketError(.addressFamily, "address \(first) is IPv6, but VRRP 2 is IPv4 only")
            }
            guard maxAdvertIntervalCentiseconds % 100 == 0, (100...25_500).contains(maxAdvertIntervalCentiseconds) else {
                throw VRRPPacketError(.interval, "advert interval \(maxAdvertIntervalCentiseconds) centiseconds is not whole seconds in 1...255, as VRRP 2 requires")
            }
        case .v3:
            guard (1...4095).contains(maxAdvertIntervalCentiseconds) else {
                throw VRRPPacketError(.interval, "max advert interval \(maxAdvertIntervalCentiseconds) centiseconds is not in 1...4095")
            }
            guard authentication == .none else {
                throw VRRPPacketError(.authentication, "authentication \(authentication) is not allowed with VRRP 3, which has none")
            }
        }
        self.init(unchecked: version, vrid: vrid, priority: priority,
                  interval: maxAdvertIntervalCentiseconds, addresses: addresses, authentication: authentication)
    }

    /// For the decoder, which has checked every field already.
    init(unchecked version: VRRPVersion, vrid: UInt8, priority: UInt8, interval: UInt16,
         addresses: [IPAddress], authentication: VRRPAuthentication) {
        self.version = version
        self.vrid = vrid
        self.priority = priority
        self.maxAdvertIntervalCentiseconds = interval
        self.addresses = addresses
        self.authentication = authentication
    }

    /// The family of the addresses, which is the family of the packet.
    public var family: IPAddress.Family { addresses[0].family }

    /// The advert interval as a duration (exact: whole centiseconds).
    public var maxAdvertInterval: Duration { .milliseconds(Int64(maxAdvertIntervalCentiseconds) * 10) }

    /// The same advertisement with another priority: the priority-0 advert a master sends when
    /// it shuts down, or an effective priority lowered by a failed check.
    public func withPriority(_ priority: UInt8) -> VRRPAdvertisement {
        VRRPAdvertisement(unchecked: version, vrid: vrid, priority: priority, interval: maxAdvertIntervalCentiseconds,
                          addresses: addresses, authentication: authentication)
    }
}

/// The authentication of a VRRP 2 advertisement. RFC 3768 removed authentication; keepalived
/// still offers RFC 2338's simple text password (`auth_type PASS`), which Baton speaks for
/// compatibility only: it is sent in clear and protects nothing. keepalived's `auth_type AH`
/// (type 2) is refused.
public enum VRRPAuthentication: Sendable, Hashable, CustomStringConvertible {
    /// Type 0: the 8 authentication bytes are zero on send and ignored on receipt.
    case none
    /// Type 1: the password in the 8 authentication bytes.
    case password(VRRPPassword)

    /// The auth type byte on the wire.
    public var wireType: UInt8 {
        switch self {
        case .none: 0
        case .password: 1
        }
    }

    public var description: String {
        switch self {
        case .none: "none"
        case .password: "PASS"
        }
    }
}

/// keepalived's `auth_pass`: up to 8 bytes, zero-padded to 8 on the wire and compared as all
/// 8 bytes (as keepalived compares them).
public struct VRRPPassword: Sendable, Hashable, CustomStringConvertible {
    /// Exactly the 8 bytes on the wire.
    public let wire: [UInt8]

    /// A password of 1...8 UTF-8 bytes with no NUL. Returns nil otherwise (keepalived would
    /// silently cut a longer one to 8; Baton's configuration refuses it instead).
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard (1...8).contains(bytes.count), !bytes.contains(0) else { return nil }
        self.wire = bytes + [UInt8](repeating: 0, count: 8 - bytes.count)
    }

    /// The 8 authentication bytes of a received packet, as they are.
    init(wire: ArraySlice<UInt8>) {
        self.wire = Array(wire)
    }

    /// The text up to the first zero byte. The password itself, so never log it.
    public var text: String { String(decoding: wire.prefix { $0 != 0 }, as: UTF8.self) }

    /// Redacted, so that a logged advertisement does not leak the password.
    public var description: String { "********" }
}
