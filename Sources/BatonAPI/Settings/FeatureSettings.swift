/// The egress settings `baton server --config values.yaml` takes, under egressgateway's Helm keys:
/// `feature.tunnelMonitorPeriod`, `feature.tunnelUpdatePeriod`, `feature.eipEvictionTimeout`
/// (also accepted under `feature.gatewayFailover.*`, where egressgateway's chart writes them),
/// and the tunnel and mark allocation keys. Periods are seconds; fractions are allowed.
///
/// Baton's defaults aim at sub-second failover without false evictions: an agent heartbeats
/// every 0.2 s, the controller checks every 0.1 s, and a tunnel is evicted after 0.7 s without
/// a heartbeat — three missed heartbeats plus 0.1 s for scheduling and network jitter. The worst
/// case from the last heartbeat to the eviction decision is 0.7 + 0.1 = 0.8 s. egressgateway's
/// own defaults are 5, 5 and 5 (its chart), which its own rule forbids; Baton refuses such a
/// configuration, as egressgateway's troubleshooting guide says to.
public struct FeatureSettings: Sendable, Hashable {
    /// Seconds between the controller's checks of tunnel freshness.
    public var tunnelMonitorPeriod: Double = 0.1
    /// Seconds between an agent's heartbeats.
    public var tunnelUpdatePeriod: Double = 0.2
    /// Seconds without a heartbeat after which a tunnel goes HeartbeatTimeout and its EIPs move.
    public var eipEvictionTimeout: Double = 0.7
    /// Where tunnel addresses come from (egressgateway's `feature.tunnelIpv4Subnet`).
    public var tunnelIpv4Subnet: String = "172.31.0.0/16"
    public var tunnelIpv6Subnet: String = "fd11::/112"
    /// VXLAN settings, egressgateway's `feature.vxlan.*`.
    public var vxlanName: String = "egress.vxlan"
    public var vxlanID: Int = 100
    public var vxlanPort: Int = 7789
    /// First packet mark handed to a tunnel (egressgateway's base, 0x26000000).
    public var markBase: UInt32 = 0x2600_0000
    /// Baton's own key `feature.unreachableNodeProbe`: when a node's heartbeat is one
    /// `tunnelUpdatePeriod` (and 25 ms) late, the controller sends ICMP echo to the node's address,
    /// and evicts at once if nothing answers; otherwise it waits for `eipEvictionTimeout`.
    public var unreachableNodeProbe: Bool = true
    /// Baton's own key `feature.holdEIPsWithoutQuorum`: when the store (etcd) has provably lost
    /// quorum — every member says it has no leader or refuses the connection — the server answers
    /// heartbeats with 503 `StoreWithoutQuorum`, and agents keep their EIPs instead of fencing,
    /// since no replica can move an EIP until the store returns (docs/etcd.md). False: agents
    /// fence after `eipEvictionTimeout` whatever the reason, as with any unanswered heartbeat.
    public var holdEIPsWithoutQuorum: Bool = true

    public init() {}

    /// Reads a Helm values document. Unknown keys under `feature` are refused with their path, so
    /// a misspelled period is not silently ignored; other top-level keys belong to other parts of
    /// the chart and are ignored.
    public static func parse(_ values: JSONValue) throws(APIError) -> FeatureSettings {
        var s = FeatureSettings()
        guard case .object(let top) = values else {
            if values.isNull { return s }
            throw APIError.badRequest("the values file must be a mapping")
        }
        guard let feature = top["feature"], !feature.isNull else { return s }
        guard case .object(var f) = feature else { throw APIError.badRequest("feature: must be a mapping") }
        var errors: [FieldError] = []
        // egressgateway's chart nests the failover periods under feature.gatewayFailover.
        if let gf = f.removeValue(forKey: "gatewayFailover"), case .object(let g) = gf {
            for (k, v) in g {
                guard ["tunnelMonitorPeriod", "tunnelUpdatePeriod", "eipEvictionTimeout", "enable"].contains(k) else {
                    errors.append(.unknown("feature.gatewayFailover.\(k)")); continue
                }
                if k != "enable" && f[k] == nil { f[k] = v }
            }
        }
        func seconds(_ key: String) -> Double? {
            guard let v = f[key] else { return nil }
            guard let d = v.doubleValue ?? v.stringValue.flatMap(Double.init), d > 0, d.isFinite else {
                errors.append(.invalid("feature.\(key)", JSONPath.scalarText(v), "must be a positive number of seconds"))
                return nil
            }
            return d
        }
        for (k, v) in f.sorted(by: { $0.key < $1.key }) {
            switch k {
            case "tunnelMonitorPeriod": if let d = seconds(k) { s.tunnelMonitorPeriod = d }
            case "tunnelUpdatePeriod": if let d = seconds(k) { s.tunnelUpdatePeriod = d }
            case "eipEvictionTimeout": if let d = seconds(k) { s.eipEvictionTimeout = d }
            case "tunnelIpv4Subnet", "tunnelIpv6Subnet":
                guard let text = v.stringValue, let p = IPPrefix(text), (k == "tunnelIpv4Subnet") == (p.address.family == .v4) else {
                    errors.append(.invalid("feature.\(k)", JSONPath.scalarText(v), "must be an \(k == "tunnelIpv4Subnet" ? "IPv4" : "IPv6") CIDR"))
                    continue
                }
                if k == "tunnelIpv4Subnet" { s.tunnelIpv4Subnet = text } else { s.tunnelIpv6Subnet = text }
            case "vxlan":
                guard case .object(let x) = v else { errors.append(.invalid("feature.vxlan", "", "must be a mapping")); continue }
                for (xk, xv) in x {
                    switch xk {
                    case "name": if let n = xv.stringValue, !n.isEmpty, n.count <= 15 { s.vxlanName = n } else {
                        errors.append(.invalid("feature.vxlan.name", JSONPath.scalarText(xv), "must be an interface name of 1 to 15 characters")) }
                    case "id": if let n = xv.intValue, (1...16_777_215).contains(n) { s.vxlanID = Int(n) } else {
                        errors.append(.invalid("feature.vxlan.id", JSONPath.scalarText(xv), "must be a VNI from 1 to 16777215")) }
                    case "port": if let n = xv.intValue, (1...65535).contains(n) { s.vxlanPort = Int(n) } else {
                        errors.append(.invalid("feature.vxlan.port", JSONPath.scalarText(xv), "must be a UDP port from 1 to 65535")) }
                    default: break  // egressgateway's chart has more vxlan keys (disableChecksumOffload…); none matter here
                    }
                }
            case "unreachableNodeProbe":
                if let b = v.boolValue { s.unreachableNodeProbe = b } else {
                    errors.append(.invalid("feature.unreachableNodeProbe", JSONPath.scalarText(v), "must be true or false"))
                }
            case "holdEIPsWithoutQuorum":
                if let b = v.boolValue { s.holdEIPsWithoutQuorum = b } else {
                    errors.append(.invalid("feature.holdEIPsWithoutQuorum", JSONPath.scalarText(v), "must be true or false"))
                }
            case "markBase", "tunnelMarkBase":
                let text = JSONPath.scalarText(v)
                let n = text.hasPrefix("0x") ? UInt32(text.dropFirst(2), radix: 16) : v.intValue.flatMap { UInt32(exactly: $0) }
                if let n { s.markBase = n } else { errors.append(.invalid("feature.\(k)", text, "must be a 32-bit mark, as 0x26000000")) }
            default:
                // egressgateway's chart has many other feature keys (enableIPv4, iptables…): accept and ignore them.
                break
            }
        }
        if errors.isEmpty, s.eipEvictionTimeout <= s.tunnelMonitorPeriod + s.tunnelUpdatePeriod {
            throw APIError.badRequest("eipEvictionTimeout should be greater than the sum of tunnelUpdatePeriod and tunnelMonitorPeriod (eipEvictionTimeout \(s.eipEvictionTimeout) s, tunnelUpdatePeriod \(s.tunnelUpdatePeriod) s, tunnelMonitorPeriod \(s.tunnelMonitorPeriod) s)")
        }
        if !errors.isEmpty {
            throw APIError(code: 400, reason: .badRequest,
                           message: "invalid values: " + errors.map(\.description).joined(separator: "; "), causes: errors)
        }
        return s
    }

    /// Reads a values.yaml text.
    public static func parse(yaml: String) throws(APIError) -> FeatureSettings {
        let docs = try Manifest.parseDocuments(yaml)
        return try parse(docs.first ?? .null)
    }
}
