import BatonAPI

/// egressgateway's failover timers (`feature.tunnelMonitorPeriod`, `feature.tunnelUpdatePeriod`,
/// `feature.eipEvictionTimeout`) as durations. The Helm-style keys are in seconds; the caller
/// converts them (fractions allowed) and validates with `validate()` at startup.
public struct EgressFailoverSettings: Sendable, Hashable {
    /// How often the controller checks every tunnel's heartbeat.
    public var tunnelMonitorPeriod: Duration
    /// How often an agent heartbeats.
    public var tunnelUpdatePeriod: Duration
    /// How long after the last received heartbeat a node's EIPs may move away.
    public var eipEvictionTimeout: Duration
    /// How long after the last received heartbeat the controller probes the node's address, and
    /// evicts it early if nothing answers (nil: never; see `HeartbeatMonitor`).
    public var probeSuspectAfter: Duration?

    public init(tunnelMonitorPeriod: Duration, tunnelUpdatePeriod: Duration, eipEvictionTimeout: Duration,
                probeSuspectAfter: Duration? = nil) {
        self.tunnelMonitorPeriod = tunnelMonitorPeriod
        self.tunnelUpdatePeriod = tunnelUpdatePeriod
        self.eipEvictionTimeout = eipEvictionTimeout
        self.probeSuspectAfter = probeSuspectAfter
    }

    /// Refuses non-positive periods and, with egressgateway's message, an eviction timeout that
    /// is not greater than `tunnelUpdatePeriod + tunnelMonitorPeriod` (a healthy node whose
    /// heartbeat lands just after a check could otherwise be evicted).
    public func validate() throws(ConfigurationError) {
        for (key, value) in [("tunnelMonitorPeriod", tunnelMonitorPeriod), ("tunnelUpdatePeriod", tunnelUpdatePeriod),
                             ("eipEvictionTimeout", eipEvictionTimeout)] where value <= .zero {
            throw ConfigurationError(.notPositive, "\(key) must be greater than 0, got \(value)")
        }
        guard eipEvictionTimeout > tunnelUpdatePeriod + tunnelMonitorPeriod else {
            throw ConfigurationError(.ordering, "eipEvictionTimeout should be greater than the sum of tunnelUpdatePeriod and tunnelMonitorPeriod")
        }
    }
}

extension EgressFailoverSettings {
    /// The timers of a parsed values file (`baton server --config`), which has already refused an
    /// eviction timeout that breaks the rule.
    public init(_ feature: FeatureSettings) {
        let update = Duration.milliseconds(Int64((feature.tunnelUpdatePeriod * 1000).rounded()))
        self.init(tunnelMonitorPeriod: .milliseconds(Int64((feature.tunnelMonitorPeriod * 1000).rounded())),
                  tunnelUpdatePeriod: update,
                  eipEvictionTimeout: .milliseconds(Int64((feature.eipEvictionTimeout * 1000).rounded())),
                  probeSuspectAfter: feature.unreachableNodeProbe ? update + .milliseconds(25) : nil)
    }
}
