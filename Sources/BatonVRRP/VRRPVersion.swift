import BatonCore

/// The version nibble on the wire: the same type the state machine runs on (BatonCore's
/// `VRRPProtocolVersion`), so the codec and `VRRPInstance` never need a mapping.
public typealias VRRPVersion = VRRPProtocolVersion
