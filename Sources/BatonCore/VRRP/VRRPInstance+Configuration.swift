import BatonAPI

extension VRRPInstance {
    /// One virtual router's settings, as a keepalived `vrrp_instance` or `baton vrrp`'s flags give
    /// them. Validated once, at `init`; an instance never sees a value the wire cannot carry.
    public struct Configuration: Sendable, Hashable {
        /// The address owner's priority (RFC 9568 §5.2.4): it becomes Master at startup without
        /// waiting, and its priority never changes.
        public static let addressOwnerPriority: UInt8 = 255

        public let version: VRRPProtocolVersion
        /// The Virtual Router ID, 1...255.
        public let vrid: UInt8
        /// This router's configured priority, 1...255 (255: it owns the virtual addresses).
        /// A tracked priority (`Event.priorityChanged`) changes `VRRPInstance.priority`, not this.
        public let priority: UInt8
        /// `Advertisement_Interval`: how often this router advertises while Master. VRRPv2: whole
        /// seconds, 1...255. VRRPv3: whole centiseconds, 10 ms...40.95 s.
        public let advertInterval: Duration
        /// `Preempt_Mode`: whether a Backup takes over from a lower-priority Master. false is
        /// keepalived's `nopreempt`: the Master changes only when it goes away.
        public let preempt: Bool
        /// keepalived's `preempt_delay`: how long a Backup keeps accepting a lower-priority Master
        /// after it first sees one, before it lets its down timer run out and preempts. 0: preempt
        /// at once. Needs `preempt`.
        public let preemptDelay: Duration
        /// This router's primary address on the VRRP interface (the source of its advertisements):
        /// the tie-break between equal priorities, higher wins (RFC 9568 §6.4.3). IPv4 for VRRPv2.
        public let primaryAddress: IPAddress

        /// Refuses a value the protocol cannot carry or a combination that cannot work, with a
        /// message that names the setting.
        public init(
            version: VRRPProtocolVersion,
            vrid: UInt8,
            priority: UInt8,
            advertInterval: Duration,
            preempt: Bool = true,
            preemptDelay: Duration = .zero,
            primaryAddress: IPAddress
        ) throws(ConfigurationError) {
            guard vrid >= 1 else {
                throw ConfigurationError(.outOfRange, "vrid must be 1...255, got 0")
            }
            guard priority >= 1 else {
                throw ConfigurationError(.outOfRange, "priority must be 1...255 (0 is reserved for a Master that is leaving), got 0")
            }
            switch version {
            case .v2:
                let (seconds, attoseconds) = advertInterval.components
                guard attoseconds == 0, (1...255).contains(seconds) else {
                    throw ConfigurationError(.outOfRange, "advertInterval must be whole seconds 1...255 for VRRPv2, got \(advertInterval)")
                }
                guard primaryAddress.family == .v4 else {
                    throw ConfigurationError(.outOfRange, "primaryAddress must be IPv4 for VRRPv2 (RFC 3768 is IPv4 only), got \(primaryAddress)")
                }
            case .v3:
                guard advertInterval >= .milliseconds(10), advertInterval <= .milliseconds(40_950),
                      advertInterval.components.attoseconds % Self.attosecondsPerCentisecond == 0 else {
                    throw ConfigurationError(.outOfRange, "advertInterval must be whole centiseconds 0.01...40.95 s for VRRPv3, got \(advertInterval)")
                }
            }
            guard preemptDelay >= .zero else {
                throw ConfigurationError(.outOfRange, "preemptDelay must not be negative, got \(preemptDelay)")
            }
            guard preempt || preemptDelay == .zero else {
                throw ConfigurationError(.conflicting, "preemptDelay (\(preemptDelay)) needs preempt; nopreempt never preempts")
            }
            self.version = version
            self.vrid = vrid
            self.priority = priority
            self.advertInterval = advertInterval
            self.preempt = preempt
            self.preemptDelay = preemptDelay
            self.primaryAddress = primaryAddress
        }

        /// Whether this router owns the virtual addresses (priority 255).
        public var isAddressOwner: Bool { priority == Self.addressOwnerPriority }

        /// `Skew_Time` for a router at `priority` that follows a Master advertising every
        /// `masterAdverInterval`. VRRPv3 (RFC 9568 §6.1): `((256 − Priority) × Master_Adver_Interval) / 256`.
        /// VRRPv2 (RFC 3768 §6.1): `(256 − Priority) / 256` seconds, whatever the interval.
        /// Exact (no rounding to centiseconds or microseconds).
        public func skewTime(priority: UInt8, masterAdverInterval: Duration) -> Duration {
            let share = 256 - Int(priority)
            switch version {
            case .v2: return .seconds(1) * share / 256
            case .v3: return masterAdverInterval * share / 256
            }
        }

        /// `Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time` (RFC 9568 §6.1; in VRRPv2,
        /// RFC 3768 §6.1, the interval is always this router's own `advertInterval`).
        public func masterDownInterval(priority: UInt8, masterAdverInterval: Duration) -> Duration {
            let interval = version == .v3 ? masterAdverInterval : advertInterval
            return interval * 3 + skewTime(priority: priority, masterAdverInterval: interval)
        }

        static let attosecondsPerCentisecond: Int64 = 10_000_000_000_000_000
    }
}
