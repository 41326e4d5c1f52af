import BatonAPI

/// What happens when this node, with a higher priority, hears a lower-priority master.
public enum VRRPPreemption: Sendable, Hashable, CustomStringConvertible {
    /// Take over, `delay` after startup or after first hearing the lower-priority master
    /// (keepalived's `preempt_delay`; 0...1000 s, keepalived's range). `.zero` is VRRP's
    /// default: take over at once.
    case preempt(delay: Duration)
    /// Never take over from a live master (keepalived's `nopreempt`).
    case nopreempt

    /// keepalived's `preempt_delay` range (`TIMER_MAX_SEC` in keepalived's lib/timer.h).
    public static let maxDelay: Duration = .seconds(1000)

    /// `preempt_delay 300` or `nopreempt`, as keepalived.conf and `OPENSHIFT_HA_PREEMPTION` write it.
    public var description: String {
        switch self {
        case .nopreempt: "nopreempt"
        case .preempt(let d): "preempt_delay \(VRRPConfigSyntax.describe(d).dropLast(2))"
        }
    }
}

/// The state an instance starts in (keepalived's `state`). VRRP starts every instance but the
/// address owner's as backup; keepalived's `state MASTER` makes a non-owner claim the VIPs at
/// once instead of waiting `Master_Down_Interval`, which OpenShift's ipfailover uses for the
/// instances a node prefers.
public enum VRRPInitialState: String, Sendable, Hashable {
    case backup = "BACKUP"
    case master = "MASTER"
}

/// One VRRP instance, as a keepalived `vrrp_instance` block holds it. A value in hand is valid:
/// the initializer refuses what cannot work, with a message that names the instance, the
/// field and the value.
public struct VRRPInstanceSettings: Sendable, Hashable {
    /// keepalived's instance name: what a notify script receives as `$2`. From the OpenShift
    /// environment it is `<OPENSHIFT_HA_CONFIG_NAME, scrubbed>_VIP_<n>`, e.g. `ipfailover_VIP_1`.
    public let name: String
    /// The virtual router id, 1...255; unique per interface and address family.
    public let vrid: UInt8
    /// 1...254 for a backup; 255 declares this node the address owner (RFC 9568 6.1: the VIPs
    /// are this node's own interface addresses), which starts as master and always preempts.
    /// Baton accepts 255 because keepalived does; nothing derives it for you.
    public let priority: UInt8
    /// How often the master advertises. Version 2: whole seconds, 1...255 s. Version 3: whole
    /// centiseconds, 0.01...40.95 s.
    public let advertInterval: Duration
    public let version: VRRPVersion
    /// The interface that carries the adverts and the VIPs.
    public let interface: String
    /// 1 or more, all of one family, none repeated, at most
    /// `VRRPCapacity.maxAddressesPerInstance(family)`.
    public let vips: [VRRPVirtualAddress]
    /// Where adverts go instead of 224.0.0.18 / ff02::12; empty means multicast. The instance's
    /// family, none repeated, none a VIP. The list may hold this node's own address (OpenShift
    /// gives every replica the same list): the speaker skips it when it sends.
    public let unicastPeers: [IPAddress]
    /// keepalived's `auth_type PASS` / `auth_pass`: version 2 only, 1...8 bytes. Sent in clear;
    /// for compatibility with keepalived peers, not for security.
    public let authPass: String?
    public let preempt: VRRPPreemption
    /// Whether the master answers with the virtual MAC 00-00-5e-00-01-{vrid} (IPv4) or
    /// 00-00-5e-00-02-{vrid} (IPv6) on a macvlan, as keepalived's `use_vmac` does.
    public let useVMAC: Bool
    public let initialState: VRRPInitialState

    /// Builds an instance, refusing:
    /// - a name keepalived's configuration could not hold, or a bad interface name;
    /// - a vrid outside 1...255, a priority outside 1...255;
    /// - no VIP, a repeated VIP, IPv4 and IPv6 VIPs together, more VIPs than one advert carries;
    /// - version 2 with IPv6;
    /// - an advert interval that is not whole seconds in 1...255 (v2) or whole centiseconds in
    ///   0.01...40.95 s (v3);
    /// - `authPass` with version 3, empty, longer than 8 bytes, or holding a NUL;
    /// - a unicast peer of the other family, repeated, or one of the VIPs;
    /// - a preempt delay outside 0...1000 s; `nopreempt` with priority 255 or an initial MASTER,
    ///   and a non-zero preempt delay with an initial MASTER (keepalived clears both, with a
    ///   warning, in `vrrp_complete_instance`).
    ///
    /// - Parameter version: nil picks keepalived's default: 2 for IPv4, 3 for IPv6.
    public init(
        name: String,
        vrid: Int,
        priority: Int = 100,
        advertInterval: Duration = .seconds(1),
        version: VRRPVersion? = nil,
        interface: String,
        vips: [VRRPVirtualAddress],
        unicastPeers: [IPAddress] = [],
        authPass: String? = nil,
        preempt: VRRPPreemption = .preempt(delay: .zero),
        useVMAC: Bool = false,
        initialState: VRRPInitialState = .backup
    ) throws(VRRPConfigError) {
        guard VRRPConfigSyntax.isInstanceName(name) else {
            throw VRRPConfigError(.name,
                "instance name \"\(name)\" must be 1-128 printable ASCII characters without whitespace, quotes, braces, '#' or '!'")
        }
        let this = "instance \(name)"
        guard (1...255).contains(vrid) else {
            throw VRRPConfigError(.vrid, "\(this): vrid \(vrid) is not in 1...255")
        }
        guard (1...255).contains(priority) else {
            throw VRRPConfigError(.priority,
                "\(this): priority \(priority) is not in 1...255 (1-254 for a backup, 255 for the address owner; 0 is only sent by a master that leaves)")
        }
        guard VRRPConfigSyntax.isInterfaceName(interface) else {
            throw VRRPConfigError(.interface,
                "\(this): interface \"\(interface)\" is not a network interface name (1-15 characters, no '/', ':' or whitespace)")
        }

        guard let first = vips.first else {
            throw VRRPConfigError(.missing, "\(this): no vip; an instance needs at least one virtual address")
        }
        let family = first.family
        var seen: [IPAddress: VRRPVirtualAddress] = [:]
        for vip in vips {
            guard vip.family == family else {
                throw VRRPConfigError(.addressFamily,
                    "\(this): vip \(vip) is \(VRRPConfigSyntax.familyName(vip.family)) but vip \(first) is \(VRRPConfigSyntax.familyName(family)); VRRP carries one address family per instance")
            }
            if let earlier = seen[vip.address] {
                throw VRRPConfigError(.vipOverlap, "\(this): vip \(vip) is listed twice (also as \(earlier))")
            }
            seen[vip.address] = vip
        }

        let version = version ?? (family == .v4 ? .v2 : .v3)
        if version == .v2, family == .v6 {
            throw VRRPConfigError(.version,
                "\(this): version 2 is IPv4 only, but vip \(first) is IPv6; use version 3")
        }
        let limit = VRRPCapacity.maxAddressesPerInstance(family, version: version)
        guard vips.count <= limit else {
            throw VRRPConfigError(.capacity,
                "\(this): \(vips.count) \(VRRPConfigSyntax.familyName(family)) vips do not fit one advertisement; on a \(VRRPCapacity.standardMTU)-byte MTU an instance carries at most \(limit)")
        }

        let interval = VRRPConfigSyntax.describe(advertInterval)
        switch version {
        case .v2:
            guard advertInterval.components.attoseconds == 0 else {
                throw VRRPConfigError(.advertInterval,
                    "\(this): advert interval \(interval) is not whole seconds, and VRRP 2 carries whole seconds; use version 3 for fractions")
            }
            guard (1...255).contains(advertInterval.components.seconds) else {
                throw VRRPConfigError(.advertInterval,
                    "\(this): advert interval \(interval) is not in 1...255 s, the range of VRRP 2")
            }
        case .v3:
            guard let centi = VRRPConfigSyntax.centiseconds(advertInterval) else {
                throw VRRPConfigError(.advertInterval,
                    "\(this): advert interval \(interval) is not whole centiseconds, the unit VRRP 3 carries")
            }
            guard (1...4095).contains(centi) else {
                throw VRRPConfigError(.advertInterval,
                    "\(this): advert interval \(interval) is not in 0.01...40.95 s, the range of VRRP 3")
            }
        }

        if let authPass {
            let bytes = authPass.utf8.count
            guard version == .v2 else {
                throw VRRPConfigError(.authentication,
                    "\(this): auth-pass is set with version 3, which has no authentication (RFC 9568); drop it or use version 2")
            }
            guard bytes > 0 else {
                throw VRRPConfigError(.authentication, "\(this): auth-pass is empty")
            }
            guard bytes <= 8 else {
                throw VRRPConfigError(.authentication,
                    "\(this): auth-pass of \(bytes) bytes is longer than the 8 that keepalived's auth_type PASS carries")
            }
            guard VRRPPassword(authPass) != nil else {
                throw VRRPConfigError(.authentication, "\(this): auth-pass holds a NUL byte")
            }
        }

        var peers: Set<IPAddress> = []
        for peer in unicastPeers {
            guard peer.family == family else {
                throw VRRPConfigError(.addressFamily,
                    "\(this): unicast peer \(peer) is \(VRRPConfigSyntax.familyName(peer.family)) but the instance's vips are \(VRRPConfigSyntax.familyName(family))")
            }
            guard peers.insert(peer).inserted else {
                throw VRRPConfigError(.unicastPeer, "\(this): unicast peer \(peer) is listed twice")
            }
            if seen[peer] != nil {
                throw VRRPConfigError(.unicastPeer, "\(this): unicast peer \(peer) is also one of the instance's vips")
            }
        }

        switch preempt {
        case .preempt(let delay):
            guard delay >= .zero, delay <= VRRPPreemption.maxDelay else {
                throw VRRPConfigError(.preemption,
                    "\(this): preempt delay \(VRRPConfigSyntax.describe(delay)) is not in 0...1000 s")
            }
            if delay > .zero, initialState == .master {
                throw VRRPConfigError(.preemption,
                    "\(this): preempt delay \(VRRPConfigSyntax.describe(delay)) cannot apply to an instance that starts as MASTER (keepalived clears it); use delay 0 or start as BACKUP")
            }
        case .nopreempt:
            if priority == 255 {
                throw VRRPConfigError(.preemption,
                    "\(this): nopreempt with priority 255: the address owner always preempts")
            }
            if initialState == .master {
                throw VRRPConfigError(.preemption,
                    "\(this): nopreempt cannot apply to an instance that starts as MASTER (keepalived clears it); start as BACKUP")
            }
        }

        self.name = name
        self.vrid = UInt8(vrid)
        self.priority = UInt8(priority)
        self.advertInterval = advertInterval
        self.version = version
        self.interface = interface
        self.vips = vips
        self.unicastPeers = unicastPeers
        self.authPass = authPass
        self.preempt = preempt
        self.useVMAC = useVMAC
        self.initialState = initialState
    }

    /// The family of the VIPs, which is the family of the adverts.
    public var family: IPAddress.Family { vips[0].family }

    /// The advert interval in the unit version 3 carries (version 2's whole seconds × 100).
    public var advertIntervalCentiseconds: UInt16 { UInt16(VRRPConfigSyntax.centiseconds(advertInterval)!) }

    /// Whether adverts go to `unicastPeers` rather than the multicast group.
    public var usesUnicast: Bool { !unicastPeers.isEmpty }

    /// keepalived's authentication for this instance.
    public var authentication: VRRPAuthentication {
        authPass.flatMap(VRRPPassword.init).map(VRRPAuthentication.password) ?? .none
    }

    /// The advertisement this instance sends at `priority` (its own, a lowered effective
    /// priority, or 0 when it leaves). Never fails: the initializer checked every field.
    public func advertisement(priority: UInt8? = nil) -> VRRPAdvertisement {
        try! VRRPAdvertisement(version: version, vrid: vrid, priority: priority ?? self.priority,
                               maxAdvertIntervalCentiseconds: advertIntervalCentiseconds,
                               addresses: vips.map(\.address), authentication: authentication)
    }
}
