import BatonAPI
import BatonCore

extension VRRPSpeaker {
    /// What the speaker runs for a validated configuration (from `OPENSHIFT_HA_*` or flags):
    /// one `InstanceConfiguration` per instance, each carrying the speaker-wide notify script.
    /// The checks (`configuration.health`) and the chain (`configuration.iptablesChain`) go to
    /// the speaker itself. Not carried: keepalived's `state MASTER` start (a preferred instance
    /// takes over after Master_Down_Interval, or at once when it outranks the current master
    /// and preempts).
    public static func instances(_ configuration: VRRPSpeakerConfiguration) -> [InstanceConfiguration] {
        configuration.instances.map { s in
            let (preempt, delay): (Bool, Duration) = switch s.preempt {
            case .preempt(let d): (true, s.initialState == .master ? .zero : d)
            case .nopreempt: (false, .zero)
            }
            return InstanceConfiguration(
                name: s.name, version: s.version, vrid: s.vrid, priority: s.priority, advertInterval: s.advertInterval,
                interface: s.interface,
                virtualAddresses: s.vips.map { VirtualAddress($0.address, prefixLength: $0.prefixLength) },
                unicastPeers: s.unicastPeers, authPassword: s.authPass.flatMap(VRRPPassword.init),
                preempt: preempt, preemptDelay: delay, notifyScript: configuration.notifyScript,
                virtualMAC: s.useVMAC)
        }
    }
}
