import ArgumentParser
import BatonAgent
import BatonDataplane
import Dispatch
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension LabCommand {
    struct VRRPBenchCommand: AsyncParsableCommand {
        /// Which failures the bench runs: one, or all three in turn.
        enum Failures: String, ExpressibleByArgument, CaseIterable {
            case link, kill, freeze, all
            var failures: [VRRPBenchFailure] { self == .all ? VRRPBenchFailure.allCases : [VRRPBenchFailure(rawValue: rawValue)!] }
        }

        static let configuration = CommandConfiguration(
            commandName: "vrrp",
            abstract: "Fail a VRRP master (link cut, SIGKILL, SIGSTOP) under keepalived and under baton vrrp at the same advert intervals, and count false failovers under full CPU load (root; builds and removes its own namespaces).",
            discussion: """
                Each advert interval (--advert-interval, and Baton's default) runs keepalived and Baton in turn, each \
                on two routers of its own (priority 200 and 100, VRRPv3) on one LAN, with a client that sends a UDP \
                probe to the VIP every 5 ms. Outage: the longest run of unanswered probes around the failure. \
                Takeover: from the failure to the first probe the backup answered. Reaction: on the wire, from the \
                master's last advert reaching the backup's bridge port to the backup's first advert or gratuitous ARP \
                (kernel timestamps), printed with its excess over Master_Down_Interval. Then every pair runs at once \
                for --load-seconds with one busy loop per core, and each backup's MASTER transitions are counted. \
                Namespaces are PREFIX-*; Ctrl-C, or the next run, removes everything (so does baton lab down --prefix PREFIX).
                """)

        @Option(help: "Prefix of the bench's namespaces (PREFIX-lan, PREFIX-client, PREFIX-r1, ...).") var prefix = "bvr"
        @Option(name: .customLong("state-dir"), help: "Where the bench keeps its PIDs and logs (default /tmp/baton-lab-PREFIX).")
        var stateDir: String?
        @Option(help: "Trials per failure, interval and speaker.") var trials = 20
        @Option(help: "link, kill, freeze or all.") var mode: Failures = .all
        @Option(name: .customLong("advert-interval"), help: "An advert interval both speakers run at, in seconds (repeatable; Baton's default is always added).")
        var advertIntervals: [Double] = [0.02]
        @Option(name: .customLong("load-seconds"), help: "How long every pair runs under full CPU load (0 skips the load run).")
        var loadSeconds = 600
        @Option(name: .customLong("load-processes"), help: "Busy loops during the load run (default: one per online CPU).")
        var loadProcesses: Int?
        @Option(name: .customLong("realtime-priority"), help: "SCHED_RR priority for both speakers (Baton's --realtime-priority, keepalived's vrrp_rt_priority).")
        var realtimePriority = VRRPCommand.defaultRealtimePriority
        @Flag(name: .customLong("no-realtime"), help: "Run both speakers without real-time scheduling.") var noRealtime = false
        @Option(help: "The keepalived binary.") var keepalived = "keepalived"
        @Option(name: .customLong("keep-logs"), help: "Copy the speakers' logs and notify logs to this directory before tearing down.")
        var keepLogs: String?

        func validate() throws {
            guard !prefix.isEmpty, prefix.count <= 8, prefix.allSatisfy({ $0.isLetter || $0.isNumber }) else {
                throw ValidationError("--prefix: \"\(prefix)\" must be 1-8 letters or digits")
            }
            guard (1...1000).contains(trials) else { throw ValidationError("--trials: \(trials) is not between 1 and 1000") }
            _ = try intervals()
            guard (0...86_400).contains(loadSeconds) else { throw ValidationError("--load-seconds: \(loadSeconds) is not between 0 and 86400") }
            if let loadProcesses, !(1...256).contains(loadProcesses) {
                throw ValidationError("--load-processes: \(loadProcesses) is not between 1 and 256")
            }
            guard (1...99).contains(realtimePriority) else { throw ValidationError("--realtime-priority: \(realtimePriority) is not between 1 and 99") }
        }

        /// The intervals in centiseconds, in the order given, Baton's default last (once).
        func intervals() throws -> [Int] {
            var out: [Int] = []
            for seconds in advertIntervals {
                let cs = (seconds * 100).rounded()
                guard seconds.isFinite, abs(seconds * 100 - cs) < 1e-6, (1...4095).contains(cs) else {
                    throw ValidationError("--advert-interval: \(seconds) is not whole centiseconds in 0.01...40.95 (VRRPv3)")
                }
                if !out.contains(Int(cs)) { out.append(Int(cs)) }
            }
            let def = VRRPCommand.defaultAdvertIntervalCentiseconds
            if !out.contains(def) { out.append(def) }
            guard out.count <= 6 else { throw ValidationError("--advert-interval: at most 5 intervals besides Baton's default") }
            return out
        }

        func run() async throws {
            do { try Lab.checkPrerequisites(); _ = try Command.locate(keepalived) } catch {
                throw ValidationError("\(error)")
            }
            var bench = VRRPBench(prefix: prefix, stateDir: stateDir, binary: CommandLine.executablePath, intervals: try intervals(),
                                  batonDefault: VRRPCommand.defaultAdvertIntervalCentiseconds, trials: trials, modes: mode.failures,
                                  loadSeconds: loadSeconds, loadProcesses: loadProcesses ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))),
                                  realtimePriority: noRealtime ? nil : realtimePriority, keepalived: keepalived)
            bench.keepLogs = keepLogs
            let run = bench
            let work = Task { try await run.run { say($0) } }
            let interrupted = Mutex(false)
            let signals = Self.onInterrupt {
                interrupted.withLock { $0 = true }
                say("interrupted: tearing down")
                work.cancel()
                // A step that does not notice the cancellation within 10 s: tear down from here.
                DispatchQueue.global().asyncAfter(deadline: .now() + 10) {
                    run.lab.down { say($0) }
                    Glibc.exit(130)
                }
            }
            defer { for source in signals { source.cancel() } }
            let results: VRRPBenchResults
            do { results = try await work.value } catch {
                if interrupted.withLock({ $0 }) { throw ExitCode(130) }
                throw error
            }

            let scheduling = noRealtime ? "no real-time scheduling for either"
                : "SCHED_RR priority \(realtimePriority) for both (Baton --realtime-priority \(realtimePriority); keepalived vrrp_rt_priority \(realtimePriority), vrrp_rlimit_rttime \(VRRPBench.keepalivedRTTimeLimit))"
            let version = (try? Command.run(try Command.locate(keepalived), ["--version"]))?.split(separator: "\n").first.map(String.init) ?? "keepalived"
            say("")
            say("\(version) and Baton, VRRPv3, master priority \(VRRPBench.masterPriority), backup \(VRRPBench.backupPriority); \(scheduling); a UDP probe to the VIP every 5 ms:")
            for line in results.failoverTable { say(line) }
            say("")
            say("The backup's reaction on the wire: from the master's last advertisement reaching the backup's bridge port to the backup's first advertisement or gratuitous ARP (kernel timestamps, SO_TIMESTAMPNS); excess: the reaction less Master_Down_Interval (3 intervals + Skew_Time at priority \(VRRPBench.backupPriority)):")
            for line in results.reactionTable { say(line) }
            if loadSeconds > 0 {
                say("")
                say("False failovers (the backup became MASTER) in \(loadSeconds) s under full CPU load (\(bench.loadProcesses) busy loops), every pair at once:")
                for line in results.loadTable { say(line) }
            }
            let verdict = results.verdict
            if !verdict.isEmpty {
                say("")
                for line in verdict { say(line) }
            }
        }

        /// On Ctrl-C (or SIGTERM), `handler` once: the bench is cancelled and its own teardown
        /// stops every process and removes every namespace before the command exits.
        static func onInterrupt(_ handler: @escaping @Sendable () -> Void) -> [DispatchSourceSignal] {
            let once = Mutex(false)
            return [SIGINT, SIGTERM].map { sig in
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler {
                    let first = once.withLock { fired in
                        defer { fired = true }
                        return !fired
                    }
                    if first { handler() }
                }
                source.resume()
                return source
            }
        }
    }
}
