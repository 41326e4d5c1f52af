import BatonAPI
import BatonCore
import Foundation
import Logging
import Synchronization

/// One virtual router at work: its socket, the thread that reads it and keeps its timer, and
/// the task that feeds the `VRRPInstance` and carries out what it returns. It starts the
/// instance once the health verdict is `ready`, and turns each later verdict into the
/// instance's `.fault`, `.recovered` and `.priorityChanged` events. The state of the instance's
/// interface (from `VRRPLinkWatcher`) is folded into that verdict (`Verdict.tracking`): a link
/// that goes down is a FAULT, as keepalived has it, and one that comes back recovers the
/// instance by the same path as a check that passes again.
///
/// With a virtual MAC interface the socket, the virtual addresses and their announcements are
/// on it; the advertisements' source stays the parent interface's address.
final class VRRPInstanceRunner: Sendable {
    /// What the instance task consumes, in the order it happened.
    enum Input: Sendable {
        /// A valid advertisement for this virtual router (TTL, checksum, version, vrid,
        /// authentication and, in unicast mode, the peer already checked).
        case advertisement(VRRPAdvertisement, source: IPAddress)
        /// The wake-up time (`nextDeadline`, or the announcement repeat) came.
        case timer
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
    private let inputs: AsyncStream<Input>
    private let inputsIn: AsyncStream<Input>.Continuation
    /// When the reading thread must deliver `.timer`: the earlier of the instance's
    /// `nextDeadline` and the announcement repeat.
    private let wakeAt = Mutex<BatonInstant?>(nil)
    private let stopping = Mutex(false)
    private let threadDone = Mutex<CheckedContinuation<Void, Never>?>(nil)
    private let threadExited = Mutex(false)

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
        (inputs, inputsIn) = AsyncStream.makeStream()
    }

    /// Hands the instance a new health verdict (in order with everything else it consumes).
    func deliver(_ verdict: VRRPHealthMonitor.Verdict) {
        inputsIn.yield(.health(verdict))
    }

    /// Hands the instance its interface's new state (in order with everything else it consumes).
    func deliver(_ link: VRRPInterfaceState) {
        inputsIn.yield(.link(link))
    }

    /// Asks the instance to leave (its `.shutdown` goes after whatever is already queued).
    func requestShutdown() {
        inputsIn.yield(.shutdown)
    }

    func run() async {
        let thread = Thread { [self] in readLoop() }
        thread.name = "vrrp-\(configuration.name)"
        thread.start()
        let (notifications, notificationsIn) = AsyncStream<NotifyCall>.makeStream()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.runNotifyScript(notifications) }
            await instanceLoop(notify: notificationsIn)
            notificationsIn.finish()
            await group.waitForAll()
        }
        stopping.withLock { $0 = true }
        socket.wake()
        await withCheckedContinuation { continuation in
            let exited = threadExited.withLock { exited in
                if !exited { threadDone.withLock { $0 = continuation } }
                return exited
            }
            if exited { continuation.resume() }
        }
        socket.close()
    }

    // MARK: The instance task

    /// A notify script call: the new state and the priority the instance has then.
    struct NotifyCall: Sendable {
        var state: VRRPInstance.NotifyState
        var priority: UInt8

        /// keepalived 2.2.7's generic `notify` arguments: `INSTANCE NAME STATE PRIORITY`.
        func arguments(name: String) -> [String] { ["INSTANCE", name, state.rawValue, "\(priority)"] }
    }

    private func instanceLoop(notify: AsyncStream<NotifyCall>.Continuation) async {
        var instance = VRRPInstance(configuration: vrrpConfiguration)
        var announceRepeatAt: BatonInstant? = nil
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
                    sendAdvertisement(priority: priority)
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

        if let link, !link.up {
            logger.warning("the interface is down: starting in FAULT", metadata: ["interface": "\(link.interface)", "condition": "\(link.condition)"])
        }
        if let initialVerdict {
            checks = initialVerdict
            apply(initialVerdict.tracking(link), now: clock.now)
        }
        setWakeAt(instance.nextDeadline, announceRepeatAt)
        for await input in inputs {
            let now = clock.now
            switch input {
            case .advertisement(let advertisement, let source):
                logger.trace("advertisement", metadata: ["from": "\(source)", "priority": "\(advertisement.priority)"])
                carryOut(instance.handle(VRRPReceiver.event(advertisement, source: source), now: now), now: now)
            case .timer:
                if let at = announceRepeatAt, now >= at {
                    announceRepeatAt = nil
                    if instance.state == .master { announce(count: configuration.announcements.repeatBurst) }
                }
                carryOut(instance.handle(.timerFired, now: now), now: now)
            case .health(let verdict):
                checks = verdict
                apply(verdict.tracking(link), now: now)
            case .link(let state):
                link = state
                if let checks { apply(checks.tracking(state), now: now) }
            case .shutdown:
                carryOut(instance.handle(.shutdown, now: now), now: now)
                return
            }
            setWakeAt(instance.nextDeadline, announceRepeatAt)
            // After a timer the thread waits for a new wake-up time: give it one even if unchanged.
            if case .timer = input { socket.wake() }
        }
    }

    private func setWakeAt(_ deadline: BatonInstant?, _ repeatAt: BatonInstant?) {
        let next = [deadline, repeatAt].compactMap { $0 }.min()
        let changed = wakeAt.withLock { current in
            defer { current = next }
            return current != next
        }
        if changed { socket.wake() }
    }

    private func sendAdvertisement(priority: UInt8) {
        do {
            let advertisement = try VRRPAdvertisement(
                version: configuration.version, vrid: configuration.vrid, priority: priority,
                maxAdvertIntervalCentiseconds: configuration.advertIntervalCentiseconds,
                addresses: configuration.virtualAddresses.map(\.address),
                authentication: configuration.authPassword.map(VRRPAuthentication.password) ?? .none)
            let destinations = configuration.unicastPeers.isEmpty ? [VRRPWire.group(configuration.family)] : configuration.unicastPeers
            for destination in destinations {
                let message = try advertisement.encode(source: socket.sourceAddress, destination: destination,
                                                       checksumMode: configuration.checksumMode)
                try socket.send(message, to: destination)
            }
        } catch {
            logger.error("cannot send an advertisement", metadata: ["priority": "\(priority)", "error": "\(error)"])
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

    // MARK: The reading thread

    private func readLoop() {
        // The wake-up time a `.timer` was delivered for: wait for the task to set another.
        var firedFor: BatonInstant? = nil
        while !stopping.withLock({ $0 }) {
            let target = wakeAt.withLock { $0 }
            let timeout: Duration? = (target == nil || target == firedFor) ? nil : target! - clock.now
            switch socket.receive(timeout: timeout) {
            case .timedOut:
                firedFor = target
                inputsIn.yield(.timer)
            case .woken:
                firedFor = nil
            case .datagram(let datagram):
                if let input = accept(datagram) { inputsIn.yield(input) }
            }
        }
        let waiter = threadExited.withLock { exited in
            exited = true
            return threadDone.withLock { $0 }
        }
        waiter?.resume()
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
