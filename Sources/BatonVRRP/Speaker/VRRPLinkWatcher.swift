import BatonCore
import BatonDataplane
import Foundation
import Logging
import Synchronization

/// Watches the interfaces the speaker's instances run on through rtnetlink (`LinkWatch`: a
/// route netlink socket in `RTMGRP_LINK`, no polling) and publishes each change of whether one
/// is up, as `VRRPInterfaceState`. It decides nothing: the instance runner folds the state into
/// its health verdict (`Verdict.tracking`), and `VRRPInstance` goes to FAULT and back.
///
/// `init` reads every watched interface's state at once (subscribed first, so nothing between
/// the read and the first change is missed); `run` publishes the changes from a thread of its
/// own until `requestStop()`.
final class VRRPLinkWatcher: Sendable {
    let logger: Logger
    /// The watched interfaces' states when the watcher was made.
    let initial: [String: VRRPInterfaceState]
    private let watch: LinkWatch
    private let names: Set<String>
    private let last: Mutex<[String: VRRPInterfaceState]>
    private let stopping = Mutex(false)
    private let publish: @Sendable (VRRPInterfaceState) -> Void

    /// - Parameter publish: called from the watcher's thread with every change of a watched
    ///   interface (not with the initial states).
    init(interfaces: Set<String>, logger: Logger, publish: @escaping @Sendable (VRRPInterfaceState) -> Void) throws {
        self.logger = logger
        self.publish = publish
        names = interfaces
        watch = try LinkWatch()
        var states: [String: VRRPInterfaceState] = [:]
        do {
            for link in try watch.dump() where interfaces.contains(link.name) { states[link.name] = Self.state(link) }
        } catch {
            watch.close()
            throw error
        }
        // A watched interface the dump did not list is gone (the sockets would not have opened).
        for name in interfaces where states[name] == nil {
            states[name] = VRRPInterfaceState(interface: name, up: false, condition: "not found")
        }
        initial = states
        last = Mutex(states)
    }

    static func state(_ link: LinkStatus) -> VRRPInterfaceState {
        VRRPInterfaceState(interface: link.name, up: link.isUp, condition: link.condition)
    }

    func run() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let thread = Thread { [self] in
                readLoop()
                watch.close()
                continuation.resume()
            }
            thread.name = "vrrp-link"
            thread.start()
        }
    }

    /// Closes the socket of a watcher that will never `run` (the speaker failed to start).
    func close() { watch.close() }

    func requestStop() {
        stopping.withLock { $0 = true }
        watch.wake()
    }

    private func readLoop() {
        while !stopping.withLock({ $0 }) {
            let links: [LinkStatus]
            do {
                guard let read = try watch.next() else { continue }
                links = read
            } catch {
                logger.error("cannot read link changes from rtnetlink; the interfaces are no longer watched", metadata: ["error": "\(error)"])
                return
            }
            for link in links where names.contains(link.name) {
                let state = Self.state(link)
                let changed = last.withLock { last in
                    defer { last[link.name] = state }
                    return last[link.name]?.up != state.up
                }
                guard changed else { continue }
                if state.up {
                    logger.notice("interface up", metadata: ["interface": "\(state.interface)"])
                } else {
                    logger.warning("interface down", metadata: ["interface": "\(state.interface)", "condition": "\(state.condition)"])
                }
                publish(state)
            }
        }
    }
}
