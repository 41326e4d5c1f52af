import BatonAPI
import BatonCore
import Dispatch
import Foundation
import Logging
import Synchronization

/// Runs the speaker's checks on `VRRPHealthMonitor`'s schedule and publishes each verdict (the
/// first one at once). It decides nothing: the monitor says when a check runs, when a run timed
/// out, and what the outcomes mean.
///
/// One thread keeps the schedule; each run gets a thread of its own (a TCP or HTTP check ends by
/// its deadline; a script is killed with its process group when the monitor cancels it). `run`
/// returns once the schedule thread and every run have ended.
final class VRRPHealthRunner: Sendable {
    private struct Completion: Sendable {
        var check: Int
        var run: UInt64
        var outcome: VRRPHealthMonitor.Outcome
    }

    let settings: VRRPHealthSettings
    let clock: any BatonClock
    let logger: Logger
    private let publish: @Sendable (VRRPHealthMonitor.Verdict) -> Void
    private let wake = DispatchSemaphore(value: 0)
    private let completions = Mutex<[Completion]>([])
    private let stopping = Mutex(false)
    /// Scripts running now, by run number, so that a timeout or the stop can kill them.
    private let scripts = Mutex<[UInt64: VRRPScriptRun]>([:])
    /// Threads still running (the schedule's and the runs'), and who waits for the last one.
    private let outstanding = Mutex<(count: Int, waiter: CheckedContinuation<Void, Never>?)>((0, nil))

    /// - Parameter publish: called with every verdict, from the schedule thread.
    init(settings: VRRPHealthSettings, clock: any BatonClock, logger: Logger,
         publish: @escaping @Sendable (VRRPHealthMonitor.Verdict) -> Void) {
        self.settings = settings
        self.clock = clock
        self.logger = logger
        self.publish = publish
    }

    func run() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            outstanding.withLock { $0 = (1, continuation) }
            let thread = Thread { [self] in
                scheduleLoop()
                finished()
            }
            thread.name = "vrrp-health"
            thread.start()
        }
    }

    /// Stops the schedule and kills running scripts; `run` returns once every run has ended.
    func requestStop() {
        stopping.withLock { $0 = true }
        for script in scripts.withLock({ Array($0.values) }) { script.stop() }
        wake.signal()
    }

    // MARK: The schedule

    private func scheduleLoop() {
        var monitor = VRRPHealthMonitor(checks: settings.monitorChecks, now: clock.now)
        logger.info("checking", metadata: [
            "checks": "\(settings.checks.map(\.description).joined(separator: ", "))",
            "interval": "\(settings.interval)", "timeout": "\(settings.timeout)",
            "weight": "\(settings.weight)", "rise": "\(settings.rise)", "fall": "\(settings.fall)",
        ])
        publish(monitor.verdict)
        while !stopping.withLock({ $0 }) {
            for c in completions.withLock({ queue in defer { queue = [] }; return queue }) {
                carryOut(monitor.handle(.completed(check: c.check, run: c.run, c.outcome), now: clock.now))
            }
            carryOut(monitor.handle(.timerFired, now: clock.now))
            guard let next = monitor.nextDeadline else { wake.wait(); continue }
            let left = next - clock.now
            if left > .zero {
                let (s, atto) = left.components
                let nanos = Int(clamping: s * 1_000_000_000 + atto / 1_000_000_000 + 1)
                _ = wake.wait(timeout: .now() + .nanoseconds(nanos))
            }
        }
        for script in scripts.withLock({ Array($0.values) }) { script.stop() }
    }

    private func carryOut(_ actions: [VRRPHealthMonitor.Action]) {
        for action in actions {
            switch action {
            case .run(let check, let run, let deadline):
                start(check: check, run: run, timeout: deadline - clock.now)
            case .cancel(let check, let run):
                logger.debug("check timed out: stopping it", metadata: ["check": "\(settings.checks[check])"])
                scripts.withLock { $0[run] }?.stop()
            case .statusChanged(let check, let status, let reason):
                switch status {
                case .up:
                    logger.notice("check succeeded", metadata: ["check": "\(settings.checks[check])"])
                case .down:
                    logger.warning("check failed", metadata: ["check": "\(settings.checks[check])", "reason": "\(reason ?? "")"])
                case .unknown:
                    break
                }
            case .verdictChanged(let verdict):
                logger.notice("health changed", metadata: [
                    "fault": "\(verdict.fault ?? "none")", "priorityOffset": "\(verdict.priorityOffset)",
                ])
                publish(verdict)
            }
        }
    }

    // MARK: Runs

    private func start(check index: Int, run: UInt64, timeout: Duration) {
        let check = settings.checks[index]
        let script: VRRPScriptRun? = if case .script = check { VRRPScriptRun(arguments: check.scriptArguments) } else { nil }
        if let script { scripts.withLock { $0[run] = script } }
        outstanding.withLock { $0.count += 1 }
        let thread = Thread { [self] in
            let outcome: VRRPHealthMonitor.Outcome
            switch check {
            case .tcpConnect(let host, let port):
                outcome = VRRPCheckProbe.tcpConnect(host: host, port: port, timeout: timeout)
            case .httpGet(let target):
                outcome = VRRPCheckProbe.httpGet(target, timeout: timeout)
            case .script:
                outcome = script!.run()
                scripts.withLock { $0[run] = nil }
            }
            logger.trace("check ran", metadata: ["check": "\(check)", "outcome": "\(outcome)"])
            completions.withLock { $0.append(Completion(check: index, run: run, outcome: outcome)) }
            wake.signal()
            finished()
        }
        thread.name = "vrrp-check"
        thread.start()
    }

    private func finished() {
        let waiter: CheckedContinuation<Void, Never>? = outstanding.withLock { state in
            state.count -= 1
            guard state.count == 0 else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}
