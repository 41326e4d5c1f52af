/// Why a `baton vrrp` configuration was refused, whether it came from the `OPENSHIFT_HA_*`
/// environment or from flags. The message names the field (the variable, the flag or the
/// instance's field) and the value, so the command can print it as it is and exit.
///
/// Passwords are the one exception: an `auth-pass` message gives the length, never the text.
public struct VRRPConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Which rule failed. Extensible: match on the codes you handle and print the rest.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// A required value is missing (`OPENSHIFT_HA_VIRTUAL_IPS`, a `--vip`).
        public static let missing = Code(rawValue: "missing")
        /// A number that does not parse or is out of its range (`OPENSHIFT_HA_MONITOR_PORT`,
        /// `OPENSHIFT_HA_CHECK_INTERVAL`, `OPENSHIFT_HA_REPLICA_COUNT`, …).
        public static let number = Code(rawValue: "number")
        /// A virtual router id outside 1...255, including `VRRP_ID_OFFSET` plus the number of
        /// instances, or two instances with one id on one interface.
        public static let vrid = Code(rawValue: "vrid")
        /// A priority outside 1...255.
        public static let priority = Code(rawValue: "priority")
        /// An advert interval out of the version's range, or finer than the version carries.
        public static let advertInterval = Code(rawValue: "advertInterval")
        /// The VRRP version is not 2 or 3, or version 2 with IPv6.
        public static let version = Code(rawValue: "version")
        /// `auth-pass` with version 3, empty, longer than 8 bytes, or holding a NUL.
        public static let authentication = Code(rawValue: "authentication")
        /// IPv4 and IPv6 in one instance, or a unicast peer of the other family.
        public static let addressFamily = Code(rawValue: "addressFamily")
        /// A VIP item that is not an address, a range or `ADDR/PREFIX`.
        public static let vipSyntax = Code(rawValue: "vipSyntax")
        /// A VIP listed twice, in one instance or in two.
        public static let vipOverlap = Code(rawValue: "vipOverlap")
        /// More VIPs than one advertisement carries, or than Baton handles in total.
        public static let capacity = Code(rawValue: "capacity")
        /// `OPENSHIFT_HA_PREEMPTION` or a preempt delay that does not parse, or a preemption
        /// that cannot apply (nopreempt for the address owner or an initial MASTER).
        public static let preemption = Code(rawValue: "preemption")
        /// Settings that contradict each other (`--preempt-delay` with `--nopreempt`).
        public static let conflict = Code(rawValue: "conflict")
        /// A unicast peer that is not an address, repeats, or is one of the VIPs.
        public static let unicastPeer = Code(rawValue: "unicastPeer")
        /// An interface name Linux would not accept.
        public static let interface = Code(rawValue: "interface")
        /// An instance name that keepalived's configuration could not hold, or a repeated one.
        public static let name = Code(rawValue: "name")
        /// An empty check or notify script, or one that is not a full path where the seed wants one.
        public static let script = Code(rawValue: "script")
        /// A built-in check's target that does not parse (`--check-tcp`, `--check-http`), or a
        /// check setting given without a check.
        public static let check = Code(rawValue: "check")
        /// An `OPENSHIFT_HA_IPTABLES_CHAIN` that is not a chain name.
        public static let chain = Code(rawValue: "chain")

        public var description: String { rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
