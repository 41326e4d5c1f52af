/// One node's egress tunnel endpoint and heartbeat. The object is named after its node; its
/// agent writes the status every `tunnelUpdatePeriod`, and the controller moves the node's
/// EIPs away when `lastHeartbeatTime` is older than `eipEvictionTimeout`.
public struct EgressTunnelStatus: Sendable, Hashable, Codable {
    /// The node's tunnel device and the interface it rides on.
    public struct Tunnel: Sendable, Hashable, Codable {
        public var ipv4: String?
        public var ipv6: String?
        public var mac: String?
        public var parent: Parent?

        public init(ipv4: String? = nil, ipv6: String? = nil, mac: String? = nil, parent: Parent? = nil) {
            self.ipv4 = ipv4
            self.ipv6 = ipv6
            self.mac = mac
            self.parent = parent
        }
    }

    /// The interface that carries the tunnel, and its addresses.
    public struct Parent: Sendable, Hashable, Codable {
        public var name: String?
        public var ipv4: String?
        public var ipv6: String?

        public init(name: String? = nil, ipv4: String? = nil, ipv6: String? = nil) {
            self.name = name
            self.ipv4 = ipv4
            self.ipv6 = ipv6
        }
    }

    /// egressgateway's tunnel phases.
    public enum Phase: String, Sendable, Hashable, Codable, CaseIterable {
        /// Waiting for a tunnel address.
        case pending = "Pending"
        /// Setting up the tunnel address.
        case initializing = "Init"
        /// Allocating the tunnel address failed.
        case failed = "Failed"
        case ready = "Ready"
        /// The agent's heartbeat is older than the eviction timeout.
        case heartbeatTimeout = "HeartbeatTimeout"
        case nodeNotReady = "NodeNotReady"
    }

    public var tunnel: Tunnel?
    public var phase: Phase?
    /// The node's packet mark as hex text (`0x26d9b723`): a string, never a number.
    public var mark: String?
    /// RFC 3339, written by the agent.
    public var lastHeartbeatTime: String?
    /// Baton's extension: the spec generation this status was computed from.
    public var observedGeneration: Int64?

    public init(tunnel: Tunnel? = nil, phase: Phase? = nil, mark: String? = nil, lastHeartbeatTime: String? = nil,
                observedGeneration: Int64? = nil) {
        self.tunnel = tunnel
        self.phase = phase
        self.mark = mark
        self.lastHeartbeatTime = lastHeartbeatTime
        self.observedGeneration = observedGeneration
    }

    /// `mark` as a number (a 32-bit fwmark), nil when unset or malformed.
    public var markValue: UInt32? {
        guard let mark, mark.hasPrefix("0x") || mark.hasPrefix("0X") else { return nil }
        return UInt32(mark.dropFirst(2), radix: 16)
    }
}

extension KindInfo {
    /// egressgateway's EgressTunnel (`egt`). Columns are the CRD's `additionalPrinterColumns`
    /// (charts/crds/egressgateway.spidernet.io_egresstunnels.yaml), which `kubectl get egt`
    /// prints as `NAME TUNNELMAC TUNNELIPV4 TUNNELIPV6 MARK PHASE`.
    public static let egressTunnel = KindInfo(
        group: "egressgateway.spidernet.io", version: "v1beta1", kind: "EgressTunnel", plural: "egresstunnels",
        shortNames: ["egt"], namespaced: false,
        schema: .object([
            "spec": .object([:], description: "EgressTunnel has no spec: the agent fills the status."),
            "status": .object([
                "tunnel": .object([
                    "ipv4": .string(),
                    "ipv6": .string(),
                    "mac": .string(),
                    "parent": .object([
                        "name": .string(),
                        "ipv4": .string(),
                        "ipv6": .string(),
                    ]),
                ]),
                "phase": .string(enum: EgressTunnelStatus.Phase.allCases.map(\.rawValue)),
                "mark": .string("The node's packet mark, as hex text (0x26d9b723)."),
                "lastHeartbeatTime": .string(format: "date-time").orNull,
                "observedGeneration": .integer("The spec generation this status reflects (Baton's extension)."),
            ]),
        ]),
        columns: [
            PrinterColumn("TUNNELMAC", jsonPath: ".status.tunnel.mac", description: "tunnelMac"),
            PrinterColumn("TUNNELIPV4", jsonPath: ".status.tunnel.ipv4", description: "tunnelIPv4"),
            PrinterColumn("TUNNELIPV6", jsonPath: ".status.tunnel.ipv6", description: "tunnelIPv6"),
            PrinterColumn("MARK", jsonPath: ".status.mark", description: "mark"),
            PrinterColumn("PHASE", jsonPath: ".status.phase", description: "phase"),
        ],
        validateStatus: { object in
            guard let status = object.decodeStatus(EgressTunnelStatus.self) else { return [] }
            var errors: [FieldError] = []
            errors += EgressValidation.address(status.tunnel?.ipv4, family: .v4, field: "status.tunnel.ipv4")
            errors += EgressValidation.address(status.tunnel?.ipv6, family: .v6, field: "status.tunnel.ipv6")
            errors += EgressValidation.address(status.tunnel?.parent?.ipv4, family: .v4, field: "status.tunnel.parent.ipv4")
            errors += EgressValidation.address(status.tunnel?.parent?.ipv6, family: .v6, field: "status.tunnel.parent.ipv6")
            if let mac = status.tunnel?.mac, !mac.isEmpty, !EgressValidation.isMAC(mac) {
                errors.append(.invalid("status.tunnel.mac", mac, "must be a MAC address such as 66:50:85:cb:b2:bf"))
            }
            if let mark = status.mark, !mark.isEmpty, status.markValue == nil {
                errors.append(.invalid("status.mark", mark, "must be a 32-bit mark in hex, such as 0x26d9b723"))
            }
            if let time = status.lastHeartbeatTime, !EgressValidation.isRFC3339(time) {
                errors.append(.invalid("status.lastHeartbeatTime", time, "must be an RFC 3339 time, such as 2023-11-27T12:04:56Z"))
            }
            return errors
        })
}

extension EgressValidation {
    /// Six colon-separated pairs of hex digits.
    static func isMAC(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 6 && parts.allSatisfy { $0.count == 2 && $0.allSatisfy(\.isHexDigit) }
    }

    /// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, with fields in range.
    static func isRFC3339(_ text: String) -> Bool {
        let c = Array(text.utf8)
        func num(_ from: Int, _ len: Int) -> Int? {
            guard from + len <= c.count else { return nil }
            var v = 0
            for b in c[from..<from + len] {
                guard b >= 48 && b <= 57 else { return nil }
                v = v * 10 + Int(b - 48)
            }
            return v
        }
        func at(_ i: Int, _ ch: Character) -> Bool { i < c.count && c[i] == ch.asciiValue! }
        guard let _ = num(0, 4), at(4, "-"), let month = num(5, 2), at(7, "-"), let day = num(8, 2),
              at(10, "T") || at(10, "t") || at(10, " "), let hour = num(11, 2), at(13, ":"), let minute = num(14, 2),
              at(16, ":"), let second = num(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second <= 60 else { return false }
        var i = 19
        if at(i, ".") {
            i += 1
            let start = i
            while i < c.count, c[i] >= 48, c[i] <= 57 { i += 1 }
            if i == start { return false }
        }
        if at(i, "Z") || at(i, "z") { return i + 1 == c.count }
        guard at(i, "+") || at(i, "-"), let oh = num(i + 1, 2), at(i + 3, ":"), let om = num(i + 4, 2) else { return false }
        return oh < 24 && om < 60 && i + 6 == c.count
    }
}
