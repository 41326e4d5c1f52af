/// Why the packet layer refused bytes or values: a received packet that is not a valid VRRP
/// advertisement, an IPv4 header that does not hold together, or an advertisement that cannot
/// be built. The message names the field and its value, so a receiver can log it as it is.
public struct VRRPPacketError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Which check failed. Extensible: match on the codes you handle and log the rest.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Fewer bytes than the fixed header needs.
        public static let truncated = Code(rawValue: "truncated")
        /// The version nibble is not 2 or 3, or version 2 is used over IPv6.
        public static let version = Code(rawValue: "version")
        /// The type nibble is not 1 (advertisement).
        public static let type = Code(rawValue: "type")
        /// Virtual router id 0.
        public static let vrid = Code(rawValue: "vrid")
        /// No virtual address, or more than 255.
        public static let addressCount = Code(rawValue: "addressCount")
        /// An advertisement interval of 0, out of range, or not whole seconds for version 2.
        public static let interval = Code(rawValue: "interval")
        /// The byte count does not match the address count.
        public static let length = Code(rawValue: "length")
        /// Addresses of the wrong family or of mixed families.
        public static let addressFamily = Code(rawValue: "addressFamily")
        /// The checksum does not match in any accepted form.
        public static let checksum = Code(rawValue: "checksum")
        /// A version 2 authentication type other than 0 (none) or 1 (simple password), or
        /// authentication on version 3.
        public static let authentication = Code(rawValue: "authentication")
        /// An IPv4 header whose version, header length or total length does not hold together.
        public static let ipHeader = Code(rawValue: "ipHeader")
        /// An IP protocol other than 112 (VRRP).
        public static let ipProtocol = Code(rawValue: "ipProtocol")
        /// A TTL or hop limit other than 255: the packet crossed a router.
        public static let ttl = Code(rawValue: "ttl")

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
