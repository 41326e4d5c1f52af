/// Whether the interface a VRRP instance runs on can carry its advertisements and virtual
/// addresses, as keepalived tracks an instance's interface: while it is down (administratively,
/// or without a carrier, or gone) the instance is in FAULT, whatever its checks say; when it
/// comes back the instance leaves FAULT as after a failed check (Backup, then Master by the
/// normal rules, announcing its addresses on becoming Master).
///
/// Pure: the speaker reads the link from rtnetlink and hands each change to the instance's
/// health verdict (`VRRPHealthMonitor.Verdict.tracking(_:)`), so a link fault takes the same
/// path into `VRRPInstance` (`.fault`, `.recovered`) as a failed check.
public struct VRRPInterfaceState: Sendable, Hashable, CustomStringConvertible {
    public var interface: String
    public var up: Bool
    /// What is wrong when not up (`no carrier`, `administratively down`, `deleted`), for the
    /// FAULT reason and the logs.
    public var condition: String

    public init(interface: String, up: Bool, condition: String = "") {
        self.interface = interface
        self.up = up
        self.condition = up ? "up" : (condition.isEmpty ? "down" : condition)
    }

    /// The FAULT reason while down; nil while up.
    public var faultReason: String? { up ? nil : "interface \(interface) is down: \(condition)" }

    public var description: String { "\(interface): \(condition)" }
}

extension VRRPHealthMonitor.Verdict {
    /// The verdict an instance on `interface` runs under: the checks' verdict, except that an
    /// interface that is down puts the instance in FAULT (its reason ahead of a failed check's).
    /// Readiness and the priority offset stay the checks'. Nil `interface`: not tracked.
    ///
    /// Fed through `events(since:base:)`, a link that goes down gives `.fault`, and one that
    /// comes back gives `.recovered` unless a check still holds the instance in FAULT.
    public func tracking(_ interface: VRRPInterfaceState?) -> Self {
        guard let reason = interface?.faultReason else { return self }
        return Self(ready: ready, fault: reason, priorityOffset: priorityOffset)
    }
}
