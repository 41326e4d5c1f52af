import BatonAPI
import BatonCore
import Foundation
import Logging
import Synchronization

/// One virtual router at work: its socket, and the one thread that reads it, keeps its timer,
/// feeds the `VRRPInstance` and carries out what it returns, as keepalived's single VRRP thread
/// does: an advertisement is handled with the time it was read, and an advertisement due on a
/// timer leaves from the thread that woke for it, with no hop to another thread in between
/// (each hop delayed the master-down timer's start and the takeover's advertisement). It starts
/// the instance once the health verdict is `ready`, and turns each later verdict into the
/// instance's `.fault`, `.recovered` and `.priorityChanged` events. The state of the instance's
/// interface (from `VRRPLinkWatcher`) is folded into that verdict (`Verdict.tracking`): a link
/// that goes down is a FAULT, as keepalived has it, and one that comes back recovers the
/// instance by the same path as a check that passes again. Notify scripts run on a task, in
/// order, without holding up the thread.
///
/// With a virtual MAC interface the socket, the virtual addresses and their announcements are
/// on it; the advertisements' source stays the parent interface's address.
final class VRRPInstanceRunner: Sendable {
    /// What other threads hand the instance, consumed in the order handed.
    enum Control: Sendable {
        /// The checks' verdict changed (or came for the first time).
        case health(VRRPHealthMonitor.Verdict)
        /// The instance's interface went down or came back.
        case link(VRRPInterfaceState)
        case shutdown
    }

    let configuration: VRRPSpeaker.InstanceConfiguration
    let socket: VRRPSocket
    let clock: any BatonClock
    let host: any VRRPHost
    let logger: Logger
    let vrrpConfiguration: VRRPInstance.Configuration
    let virtualMAC: VRRPVirtualMAC?
    /// Where the virtual addresses go and are announced: the virtual MAC interface, or the
    /// instance's interface.
    let addressInterface: String
    private let initialVerdict: VRRPHealthMonitor.Verdict?
    private let initialLink: VRRPInterfaceState?
    let receiver: VRRPReceiver
    /// Handed in by `deliver` and `requestShutdown`; the thread takes them when woken.
    private let controls = Mutex<[Control]>([])

    /// - Parameters:
    ///   - initialVerdict: the health verdict to start with; nil waits for `deliver`.
    ///   - initialLink: the interface's state when the instance starts; nil: not watched.
    let onTransition: (@Sendable (VRRPSpeaker.Transition) -> Void)?

    init(configuration: VRRPSpeaker.InstanceConfiguration, virtualMAC: VRRPVirtualMAC? = nil,
         initialVerdict: VRRPHealthMonitor.Verdict? = .healthy, initialLink: VRRPInterfaceState? = nil,
         clock: any BatonClock, host: any VRRPHost, logger: Logger,
         onTransition: (@Sendable (VRRPSpeaker.Transition) -> Void)? = nil) throws {
        self.configuration = configuration
        self.onTransition = onTransition
        self.virtualMAC = virtualMAC
        self.addressInterface = virtualMAC?.name ?? configuration.interface
        self.initialVerdict = initialVerdict
        self.initialLink = initialLink
        self.clock = clock
        self.host = host
        self.logger = logger
        socket = try VRRPSocket(family: configuration.family, interface: addressInterface, sourceInterface: configuration.interface,
                                excluding: Set(configuration.virtualAddresses.map(\.address)))
        do {
            vrrpConfiguration = try VRRPInstance.Configuration(
                version: configuration.version, vrid: configuration.vrid, priority: configuration.priority,
                advertInterval: configuration.advertInterval, preempt: configuration.preempt,
                preemptDelay: configuration.preemptDelay, primaryAddress: socket.sourceAddress)
        } catch {
            socket.close()
            throw error
        }
        receiver = VRRPReceiver(configuration)
    }

    /// Hands the instance a new health verdict (in order with the other controls).
    func deliver(_ verdict: VRRPHealthMonitor.Verdict) { hand(.health(verdict)) }

    /// Hands the instance its interface's new state (in order with the other controls).
    func deliver(_ link: VRRPInterfaceState) { hand(.link(link)) }

    /// Asks the instance to leave (its `.shutdown` goes after the controls already handed).
    func requestShutdown() { hand(.shutdown) }

    private func hand(_ control: Control) {
        controls.withLock { $0.append(control) }
        socket.wake()
    }

    func run() async {
        let (notifications, notificationsIn) = AsyncStream<NotifyCall>.makeStream()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.runNotifyScript(notifications) }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let thread = Thread { [self] in
                    instanceLoop(notify: notificationsIn)
                    notificationsIn.finish()
                    continuation.resume()
                }
                thread.name = "vrrp-\(configuration.name)"
                thread.start()
            }
            await group.waitForAll()
        }
        socket.close()
    }

    // MARK: The instance thread

    /// A notify script call: the new state and the priority the instance has then.
    struct NotifyCall: Sendable {
        var state: VRRPInstance.NotifyState
        var priority: UInt8

        /// keepalived 2.2.7's generic `notify` arguments: `INSTANCE NAME STATE PRIORITY`.
        func arguments(name: String) -> [String] { ["INSTANCE", name, state.rawValue, "\(priority)"] }
    }

    /// Runs the instance until its `.shutdown`: waits on the socket until the next wake-up time
    /// (the instance's `nextDeadline`, or the announcement repeat), a datagram, or a control.
    private func instanceLoop(notify: AsyncStream<NotifyCall>.Continuation) {
        var instance = VRRPInstance(configuration: vrrpConfiguration)
        var announceRepeatAt: BatonInstant? = nil
        // The advertisements by priority, encoded once: all else in them is fixed.
        var encoded: [UInt8: [(destination: IPAddress, message: [UInt8])]] = [:]
        logger.info("starting", metadata: [
            "vrid": "\(configuration.vrid)", "priority": "\(configuration.priority)", "version": "\(configuration.version)",
            "interface": "\(addressInterface)", "source": "\(socket.sourceAddress)",
            "vips": "\(configuration.virtualAddresses.map(\.description).joined(separator: ","))",
            "advertInterval": "\(configuration.advertInterval)",
        ])
        func carryOut(_ actions: [VRRPInstance.Action], now: BatonInstant) {
            for action in actions {
                switch action {
                case .sendAdvertisement(let priority):
                    sendAdvertisement(priority: priority, encoded: &encoded)
                case .becameMaster:
                    logger.notice("became MASTER", metadata: ["priority": "\(instance.priority)"])
                    do { try host.addAddresses(configuration.virtualAddresses, interface: addressInterface) } catch {
                        logger.error("cannot add the virtual addresses", metadata: ["error": "\(error)"])
                    }
                    announce(count: configuration.announcements.burst)
                    announceRepeatAt = configuration.announcements.repeatBurst > 0 ? now + configuration.announcements.repeatAfter : nil
                case .becameBackup:
                    logger.notice("became BACKUP", metadata: ["priority": "\(instance.priority)", "masterDownInterval": "\(instance.masterDownInterval)"])
                case .becameFault(let reason):
                    logger.warning("became FAULT", metadata: ["reason": "\(reason)"])
                case .releaseAddresses:
                    announceRepeatAt = nil
                    do { try host.removeAddresses(configuration.virtualAddresses, interface: addressInterface) } catch {
                        logger.error("cannot remove the virtual addresses", metadata: ["error": "\(error)"])
                    }
                    logger.info("released the virtual addresses")
                case .announceAddresses:
                    logger.info("announcing the virtual addresses again: a lower priority is advertising")
                    announce(count: configuration.announcements.burst)
                case .notify(let state):
                    notify.yield(NotifyCall(state: state, priority: instance.priority))
                    onTransition?(VRRPSpeaker.Transition(instance: configuration.name, vrid: configuration.vrid,
                                                         state: state, priority: instance.priority))
                }
            }
        }

        // The verdict the instance runs under (the checks' with the link folded in); nil until
        // the first one (then it waits, not started).
        var applied: VRRPHealthMonitor.Verdict? = nil
        var started = false
        var checks: VRRPHealthMonitor.Verdict? = nil
        var link = initialLink
        func apply(_ verdict: VRRPHealthMonitor.Verdict, now: BatonInstant) {
            let base = configuration.priority
            let before = instance.priority
            if started, let old = applied {
                for event in verdict.events(since: old, base: base) { carryOut(instance.handle(event, now: now), now: now) }
            } else if verdict.ready {
                started = true
                for event in verdict.startupEvents(base: base) { carryOut(instance.handle(event, now: now), now: now) }
            } else {
                logger.info("waiting for the first result of every check before starting")
            }
            if instance.priority != before {
                logger.notice("effective priority changed", metadata: [
                    "priority": "\(instance.priority)", "configured": "\(base)", "offset": "\(verdict.priorityOffset)"])
            }
            applied = verdict
        }

        // Every event is handled with the clock read when it was seen (a datagram: right after
        // it was read), never earlier than the one before.
        var last = clock.now
        func now() -> BatonInstant {
            last = max(last, clock.now)
            return last
        }

        if let link, !link.up {
            logger.warning("the interface is down: starting in FAULT", metadata: ["interface": "\(link.interface)", "condition": "\(link.condition)"])
        }
        if let initialVerdict {
            checks = initialVerdict
            apply(initialVerdict.tracking(link), now: now())
        }
        while true {
            for control in controls.withLock({ queue in defer { queue = [] }; return queue }) {
                switch control {
                case .health(let verdict):
                    checks = verdict
                    apply(verdict.tracking(link), now: now())
                case .link(let state):
                    link = state
                    if let checks { apply(checks.tracking(state), now: now()) }
                case .shutdown:
                    carryOut(instance.handle(.shutdown, now: now()), now: last)
                    return
                }
            }
            // The advertisements this instance may send next, encoded before they are due: a
            // Backup's takeover advert must not pay for its first encoding.
            for priority in [instance.priority, 0] where encoded[priority] == nil {
                encoded[priority] = try? encodeAdvertisement(priority: priority)
            }
            let wakeAt = [instance.nextDeadline, announceRepeatAt].compactMap { $0 }.min()
            if case .datagram(let datagram) = socket.receive(timeout: wakeAt.map { $0 - clock.now }) {
                // When the kernel received it, on the instance's clock (its age moved back from
                // now), so the master-down timer runs from the arrival, not from this thread's
                // wake-up. An implausible age (the wall clock stepped) falls back to now.
                let before = last
                let received = Self.arrival(now: now(), notBefore: before, receivedAt: datagram.receivedAt,
                                            realtimeNow: VRRPSocket.realtimeNanos())
                last = received
                if case .advertisement(let advertisement, let source) = accept(datagram) {
                    logger.trace("advertisement", metadata: ["from": "\(source)", "priority": "\(advertisement.priority)"])
                    carryOut(instance.handle(VRRPReceiver.event(advertisement, source: source), now: received), now: received)
                }
            }
            // What is due, whether the wait timed out or datagrams kept arriving until past it.
            let current = now()
            if let at = announceRepeatAt, current >= at {
                announceRepeatAt = nil
                if instance.state == .master { announce(count: configuration.announcements.repeatBurst) }
            }
            if let deadline = instance.nextDeadline, current >= deadline {
                carryOut(instance.handle(.timerFired, now: current), now: current)
            }
        }
    }

    /// The longest a datagram may have waited in the socket for its kernel receive time to be
    /// believed (a longer one means the wall clock moved).
    static let plausibleAge = Duration.milliseconds(100)

    /// When a datagram arrived on the instance's clock: `now` moved back by its age, the time
    /// since the kernel received it (`receivedAt`, CLOCK_REALTIME nanoseconds, against
    /// `realtimeNow`), but never before `notBefore` (the last event handled). Without a receive
    /// time, or with an age that is not in 0..<`plausibleAge`, `now`.
    static func arrival(now: BatonInstant, notBefore: BatonInstant, receivedAt: Int64?, realtimeNow: Int64) -> BatonInstant {
        guard let receivedAt else { return now }
        let age = Duration.nanoseconds(realtimeNow - receivedAt)
        guard age > .zero, age < plausibleAge else { return now }
        return max(notBefore, now - age)
    }

    /// What `accept` returns: a valid advertisement for this virtual router.
    enum Input: Sendable {
        case advertisement(VRRPAdvertisement, source: IPAddress)
    }

    /// Sends one advertisement at `priority` to the group or every unicast peer, encoding it
    /// the first time that priority is sent (`encoded` keeps it).
    private func sendAdvertisement(priority: UInt8, encoded: inout [UInt8: [(destination: IPAddress, message: [UInt8])]]) {
        do {
            if encoded[priority] == nil { encoded[priority] = try encodeAdvertisement(priority: priority) }
            for (destination, message) in encoded[priority] ?? [] { try socket.send(message, to: destination) }
        } catch {
            logger.error("cannot send an advertisement", metadata: ["priority": "\(priority)", "error": "\(error)"])
        }
    }

    /// The advertisement at `priority`, encoded for the group or for each unicast peer.
    private func encodeAdvertisement(priority: UInt8) throws -> [(destination: IPAddress, message: [UInt8])] {
        let advertisement = try VRRPAdvertisement(
            version: configuration.version, vrid: configuration.vrid, priority: priority,
            maxAdvertIntervalCentiseconds: configuration.advertIntervalCentiseconds,
            addresses: configuration.virtualAddresses.map(\.address),
            authentication: configuration.authPassword.map(VRRPAuthentication.password) ?? .none)
        let destinations = configuration.unicastPeers.isEmpty ? [VRRPWire.group(configuration.family)] : configuration.unicastPeers
        return try destinations.map { destination in
            (destination, try advertisement.encode(source: socket.sourceAddress, destination: destination, checksumMode: configuration.checksumMode))
        }
    }

    private func announce(count: Int) {
        for _ in 0..<count {
            do { try host.announce(configuration.virtualAddresses, interface: addressInterface) } catch {
                logger.warning("cannot announce the virtual addresses", metadata: ["error": "\(error)"])
                return
            }
        }
    }

    private func runNotifyScript(_ notifications: AsyncStream<NotifyCall>) async {
        for await notification in notifications {
            guard let script = configuration.notifyScript else { continue }
            do { try await host.notify(script: script, arguments: notification.arguments(name: configuration.name)) } catch {
                logger.warning("notify script failed", metadata: ["state": "\(notification.state.rawValue)", "error": "\(error)"])
            }
        }
    }

    /// The receive path (`VRRPReceiver`); a refused packet is logged at debug, another virtual
    /// router's at trace.
    func accept(_ datagram: VRRPSocket.Datagram) -> Input? {
        switch receiver.check(datagram) {
        case .advertisement(let advertisement, let source):
            return .advertisement(advertisement, source: source)
        case .otherVirtualRouter(let vrid):
            logger.trace("another virtual router", metadata: ["vrid": "\(vrid)"])
        case .dropped(let reason):
            logger.debug("dropped a packet", metadata: ["from": "\(datagram.source)", "reason": "\(reason)"])
        }
        return nil
    }
}
