import BatonAPI
import BatonCore

/// A virtual address and the prefix length it is added with (`ip address add VIP/PREFIX`).
/// Unlike `IPPrefix`, the host bits are kept: they are the address.
public struct VirtualAddress: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    /// 32 (IPv4) or 128 (IPv6) unless given, as keepalived adds a `virtual_ipaddress` without one.
    public let prefixLength: Int

    public init(_ address: IPAddress, prefixLength: Int? = nil) {
        self.address = address
        self.prefixLength = prefixLength ?? address.bitWidth
    }

    /// Parses `ADDR` or `ADDR/PREFIX`; nil when it does not parse or the length is out of range.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let address = IPAddress(String(parts[0])) else { return nil }
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].allSatisfy(\.isASCII), parts[1].allSatisfy(\.isNumber),
                  let length = Int(parts[1]), (0...address.bitWidth).contains(length) else { return nil }
            self.init(address, prefixLength: length)
        } else {
            self.init(address)
        }
    }

    public var description: String { "\(address)/\(prefixLength)" }
}

extension VRRPSpeaker {
    /// One virtual router this speaker runs: what a keepalived `vrrp_instance` says. The
    /// environment (`OPENSHIFT_HA_*`) and flag configuration maps onto this.
    public struct InstanceConfiguration: Sendable, Hashable {
        /// The instance's name: the notify script's `$2`, and the logs' `instance`.
        public var name: String
        public var version: VRRPProtocolVersion
        public var vrid: UInt8
        public var priority: UInt8
        /// VRRPv2: whole seconds; VRRPv3: whole centiseconds (see `VRRPInstance.Configuration`).
        public var advertInterval: Duration
        /// The interface advertisements go out on and the virtual addresses are added to.
        public var interface: String
        /// 1...255 addresses of one family (IPv4 for VRRPv2), advertised in this order.
        public var virtualAddresses: [VirtualAddress]
        /// When not empty, advertisements go to each peer instead of the group, and only the
        /// peers' unicast advertisements are accepted, whatever their TTL (keepalived's
        /// `unicast_peer`; see `VRRPReceiver`).
        public var unicastPeers: [IPAddress]
        /// VRRPv2's `auth_type PASS` / `auth_pass` (compatibility only: it is sent in clear).
        public var authPassword: VRRPPassword?
        public var preempt: Bool
        public var preemptDelay: Duration
        /// Run as `SCRIPT INSTANCE NAME STATE PRIORITY` after each transition, as keepalived 2.2.7
        /// runs its `notify` (PRIORITY: the instance's priority then; STOP on shutdown).
        public var notifyScript: String?
        /// The gratuitous ARP / unsolicited NA schedule on becoming Master.
        public var announcements: AnnouncementSchedule
        /// The checksum form sent for VRRPv3 over IPv4 (every form is accepted).
        public var checksumMode: VRRPChecksumMode
        /// keepalived's `use_vmac`: the virtual addresses live on a macvlan with the virtual MAC
        /// (`VRRPVirtualMAC`), and the advertisements and announcements leave from it.
        public var virtualMAC: Bool

        public init(name: String, version: VRRPProtocolVersion = .v3, vrid: UInt8, priority: UInt8 = 100,
                    advertInterval: Duration = .seconds(1), interface: String, virtualAddresses: [VirtualAddress],
                    unicastPeers: [IPAddress] = [], authPassword: VRRPPassword? = nil, preempt: Bool = true,
                    preemptDelay: Duration = .zero, notifyScript: String? = nil,
                    announcements: AnnouncementSchedule = .keepalived, checksumMode: VRRPChecksumMode = .keepalivedDefault,
                    virtualMAC: Bool = false) {
            self.name = name
            self.version = version
            self.vrid = vrid
            self.priority = priority
            self.advertInterval = advertInterval
            self.interface = interface
            self.virtualAddresses = virtualAddresses
            self.unicastPeers = unicastPeers
            self.authPassword = authPassword
            self.preempt = preempt
            self.preemptDelay = preemptDelay
            self.notifyScript = notifyScript
            self.announcements = announcements
            self.checksumMode = checksumMode
            self.virtualMAC = virtualMAC
        }

        /// The family of the virtual addresses, which is the family the instance speaks.
        public var family: IPAddress.Family { virtualAddresses.first?.address.family ?? .v4 }

        /// Refuses what cannot work, naming the setting; the rest (vrid, priority, interval,
        /// preemption) `VRRPInstance.Configuration` checks with the interface's address.
        public func validate() throws(ConfigurationError) {
            guard !name.isEmpty else { throw ConfigurationError(.outOfRange, "name must not be empty") }
            guard !interface.isEmpty, interface.utf8.count <= 15, !interface.contains("/"), !interface.contains(" ") else {
                throw ConfigurationError(.outOfRange, "interface \"\(interface)\" is not an interface name")
            }
            guard let first = virtualAddresses.first else {
                throw ConfigurationError(.outOfRange, "virtualAddresses must name at least one address")
            }
            guard virtualAddresses.count <= 255 else {
                throw ConfigurationError(.outOfRange, "virtualAddresses has \(virtualAddresses.count) addresses; one advertisement carries at most 255")
            }
            if let other = virtualAddresses.first(where: { $0.address.family != first.address.family }) {
                throw ConfigurationError(.conflicting, "virtual address \(other.address) is not of the same family as \(first.address)")
            }
            if version == .v2 && first.address.family == .v6 {
                throw ConfigurationError(.conflicting, "virtual address \(first.address) is IPv6, but VRRPv2 is IPv4 only")
            }
            if let peer = unicastPeers.first(where: { $0.family != first.address.family }) {
                throw ConfigurationError(.conflicting, "unicast peer \(peer) is not of the virtual addresses' family")
            }
            if authPassword != nil && version != .v2 {
                throw ConfigurationError(.conflicting, "authPassword needs VRRPv2; VRRPv3 has no authentication")
            }
        }

        /// The advert interval in the wire's centiseconds.
        var advertIntervalCentiseconds: UInt16 {
            let (seconds, attoseconds) = advertInterval.components
            return UInt16(clamping: seconds * 100 + attoseconds / 10_000_000_000_000_000)
        }
    }

    /// When a new Master announces its virtual addresses (gratuitous ARP for IPv4, unsolicited
    /// NA for IPv6): `burst` at once, then `repeatBurst` more `repeatAfter` later (unless it has
    /// left Master by then).
    public struct AnnouncementSchedule: Sendable, Hashable {
        public var burst: Int
        public var repeatAfter: Duration
        public var repeatBurst: Int

        public init(burst: Int, repeatAfter: Duration, repeatBurst: Int) {
            self.burst = burst
            self.repeatAfter = repeatAfter
            self.repeatBurst = repeatBurst
        }

        /// keepalived's defaults: `vrrp_garp_master_repeat 5` at once, and again 5 after
        /// `vrrp_garp_master_delay 5` seconds.
        public static let keepalived = AnnouncementSchedule(burst: 5, repeatAfter: .seconds(5), repeatBurst: 5)
    }
}
