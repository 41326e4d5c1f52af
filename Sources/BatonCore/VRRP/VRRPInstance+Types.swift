import BatonAPI

extension VRRPInstance {
    /// Where the instance is in RFC 9568 §6.4 (which calls Master "Active"), plus keepalived's
    /// FAULT.
    public enum State: String, Sendable, Hashable, CaseIterable {
        /// Not running: before `.startup` and after `.shutdown` (RFC 9568 §6.4.1). No timer.
        case initialize
        /// Watching the Master; the timer is the master-down timer (RFC 9568 §6.4.2).
        case backup
        /// Holding the virtual addresses; the timer is the advertisement timer (RFC 9568 §6.4.3).
        case master
        /// Running but unable to serve (a failed check, the interface down), as keepalived's FAULT:
        /// it sends nothing, ignores advertisements and has no timer until `.recovered`.
        case fault
    }

    /// What happened, as the caller saw it. Every event is handled with the caller's `now`.
    public enum Event: Sendable, Hashable {
        /// The instance starts (RFC 9568 §6.4.1's Startup event). Ignored unless in `initialize`.
        case startup
        /// The instance stops (RFC's Shutdown event), for example on SIGTERM.
        case shutdown
        /// A valid advertisement for this VRID arrived from `source` (the sender's primary address,
        /// the IP source of the packet). `maxAdvertInterval` is the packet's interval field: VRRPv3's
        /// Max Adver Int (centiseconds), or VRRPv2's Adver Int (seconds). The codec has already
        /// checked TTL, checksum, version, type and authentication.
        case advertisementReceived(priority: UInt8, maxAdvertInterval: Duration, source: IPAddress)
        /// The caller's sleep until `nextDeadline` ended. Harmless when early: the instance compares
        /// its deadline with `now` and does nothing before it.
        case timerFired
        /// A check failed or the interface went down: leave service until `.recovered`.
        case fault(String)
        /// The fault cleared: start again as at startup (the owner becomes Master, others Backup).
        case recovered
        /// The effective priority changed (keepalived's track-script weight). A non-owner's
        /// priority is kept in 1...254; an address owner's does not change.
        case priorityChanged(UInt8)
    }

    /// What the caller must do, in the order returned.
    public enum Action: Sendable, Hashable {
        /// Send one advertisement now with this priority and the configured `advertInterval`.
        /// Priority 0 tells Backups this Master is leaving, so one takes over within `Skew_Time`.
        case sendAdvertisement(priority: UInt8)
        /// This router is Master: add the virtual addresses and announce them (gratuitous ARP /
        /// unsolicited NA) on the transport's repeat schedule. Always follows the advertisement
        /// it sent on becoming Master, as RFC 9568 §6.4.2 orders it.
        case becameMaster
        /// This router is Backup (from Initialize, Fault or Master).
        case becameBackup
        /// This router is in Fault, for `reason`; it sends nothing until recovered.
        case becameFault(reason: String)
        /// Remove the virtual addresses (and stop announcing them): this router is leaving Master.
        case releaseAddresses
        /// Announce the virtual addresses again (a burst of gratuitous ARP / unsolicited NA), the
        /// state unchanged: a Master that hears a lower priority (a frozen or cut-off Master
        /// back, say) takes the LAN's neighbour caches back from the router that stood in for
        /// it, as keepalived does by default (`vrrp_garp_lower_prio_repeat`).
        case announceAddresses
        /// Run the notify script with this state (keepalived's `$3`), after the transition.
        case notify(NotifyState)
    }

    /// The state a keepalived notify script receives as its third argument.
    public enum NotifyState: String, Sendable, Hashable, CaseIterable {
        case master = "MASTER"
        case backup = "BACKUP"
        case fault = "FAULT"
        /// keepalived passes STOP when the instance shuts down.
        case stop = "STOP"
    }
}
