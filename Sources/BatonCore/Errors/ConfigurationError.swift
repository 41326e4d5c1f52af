/// A setting or combination of settings that the core refuses. The message names the keys
/// involved, so a startup failure can print it as it is.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Why the settings were refused. Extensible.
    public struct Code: RawRepresentable, Sendable, Hashable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// A period or timeout that must be positive is not.
        public static let notPositive = Code(rawValue: "notPositive")
        /// Two settings are in the wrong order (for example a timeout not above a period).
        public static let ordering = Code(rawValue: "ordering")
        /// A value lies outside the range its protocol or field allows (a VRID of 0, an advert
        /// interval that does not fit the wire field).
        public static let outOfRange = Code(rawValue: "outOfRange")
        /// Two settings that cannot both hold were both given (for example `nopreempt` and a
        /// `preemptDelay`).
        public static let conflicting = Code(rawValue: "conflicting")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
