import BatonAPI
import BatonCore

/// One virtual router's receive path as a decision, with no socket and no clock of its own: a
/// datagram as the transport read it (`VRRPSocket.Datagram`: the VRRP message, its IP source and
/// destination, its TTL or hop limit) is an advertisement for this virtual router, another
/// virtual router's traffic, or a packet to drop, with the reason. The speaker's reading thread
/// runs ``check(_:)``; tests run ``receive(_:into:now:)``, the whole path into the state machine.
///
/// It checks what the codec leaves to configuration, as keepalived 2.2.7's `vrrp_check_packet`
/// does, in this order:
/// - the TTL / hop limit is 255 (RFC 9568 §7.1), except in unicast mode, where keepalived checks
///   none (and sends IPv6 unicast with the kernel's default hop limit, 64);
/// - the vrid is ours (anything else is another router on the LAN: not an error);
/// - the codec's checks (length, version, type, count, interval, checksum);
/// - the version is ours, and for VRRPv2 the auth type and password are ours;
/// - multicast mode takes only packets sent to a multicast group, unicast mode only unicast ones
///   from a configured peer.
/// What needs the instance's state (our own looped-back packets, VRRPv2's interval) the
/// `VRRPInstance` decides.
public struct VRRPReceiver: Sendable, Hashable {
    public enum Verdict: Sendable, Hashable {
        /// A valid advertisement for this virtual router, from `source`.
        case advertisement(VRRPAdvertisement, source: IPAddress)
        /// Another virtual router's packet (another vrid): normal on a shared LAN.
        case otherVirtualRouter(vrid: UInt8)
        /// Not acceptable, for `reason` (which names the field and its value).
        case dropped(reason: String)
    }

    public let vrid: UInt8
    public let version: VRRPProtocolVersion
    public let authentication: VRRPAuthentication
    /// Empty in multicast mode.
    public let unicastPeers: [IPAddress]

    public init(vrid: UInt8, version: VRRPProtocolVersion, authentication: VRRPAuthentication = .none, unicastPeers: [IPAddress] = []) {
        self.vrid = vrid
        self.version = version
        self.authentication = authentication
        self.unicastPeers = unicastPeers
    }

    public init(_ configuration: VRRPSpeaker.InstanceConfiguration) {
        self.init(vrid: configuration.vrid, version: configuration.version,
                  authentication: configuration.authPassword.map(VRRPAuthentication.password) ?? .none,
                  unicastPeers: configuration.unicastPeers)
    }

    public func check(_ datagram: VRRPSocket.Datagram) -> Verdict {
        let unicast = !unicastPeers.isEmpty
        guard unicast || datagram.ttl == VRRPWire.requiredTTL else {
            return .dropped(reason: "ttl \(datagram.ttl) is not 255")
        }
        // Another virtual router's traffic on the same LAN is normal: check the vrid byte first.
        guard datagram.message.count >= 2 else { return .dropped(reason: "length \(datagram.message.count)") }
        guard datagram.message[1] == vrid else { return .otherVirtualRouter(vrid: datagram.message[1]) }
        let advertisement: VRRPAdvertisement
        do {
            advertisement = try VRRPAdvertisement.decode(datagram.message, source: datagram.source, destination: datagram.destination).advertisement
        } catch {
            return .dropped(reason: error.message)
        }
        guard advertisement.version == version else {
            return .dropped(reason: "version \(advertisement.version) is not \(version)")
        }
        if version == .v2 {
            guard advertisement.authentication.wireType == authentication.wireType else {
                return .dropped(reason: "auth type \(advertisement.authentication) is not \(authentication)")
            }
            if case .password(let theirs) = advertisement.authentication, case .password(let ours) = authentication, theirs != ours {
                return .dropped(reason: "wrong password")
            }
        }
        guard Self.isMulticast(datagram.destination) != unicast else {
            return .dropped(reason: unicast ? "multicast to \(datagram.destination), but this instance is unicast"
                                            : "unicast to \(datagram.destination), but this instance is multicast")
        }
        if unicast && !unicastPeers.contains(datagram.source) {
            return .dropped(reason: "\(datagram.source) is not a unicast peer")
        }
        return .advertisement(advertisement, source: datagram.source)
    }

    /// The state machine's event for an accepted advertisement.
    public static func event(_ advertisement: VRRPAdvertisement, source: IPAddress) -> VRRPInstance.Event {
        .advertisementReceived(priority: advertisement.priority, maxAdvertInterval: advertisement.maxAdvertInterval, source: source)
    }

    /// The whole receive path: ``check(_:)``, and an accepted advertisement handed to `instance`
    /// at `now`. Returns what the instance decided (nothing for a refused packet).
    public func receive(_ datagram: VRRPSocket.Datagram, into instance: inout VRRPInstance, now: BatonInstant) -> (Verdict, [VRRPInstance.Action]) {
        let verdict = check(datagram)
        guard case .advertisement(let advertisement, let source) = verdict else { return (verdict, []) }
        return (verdict, instance.handle(Self.event(advertisement, source: source), now: now))
    }

    /// 224.0.0.0/4 or ff00::/8.
    static func isMulticast(_ address: IPAddress) -> Bool {
        switch address.family {
        case .v4: address.value >> 28 == 0xE
        case .v6: address.value >> 120 == 0xFF
        }
    }
}
