import ArgumentParser
import BatonAgent
import BatonDataplane
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension LabCommand {
    struct StaticRouteBenchCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "staticroute",
            abstract: "Kill a StaticRoute's primary gateway and measure the outage a pod sees, then count spurious gateway switches under full CPU load (root; builds and removes its own lab).",
            discussion: """
                A lab of its own (PREFIX-*, two nodes, two NAT gateways) with one StaticRoute through both gateways \
                (priority 0 and 10) at the default health check. Each trial: pod 1 sends a UDP datagram every \
                --interval-ms to the external host's public address; 0.5 s in, the primary's link is cut. Outage: the \
                longest run of unanswered datagrams. The primary then comes back and the route fails back after the \
                default hold-down. Then --load-seconds with one busy loop per core: every switch is spurious.
                """)

        @Option(help: "Prefix of the bench lab's namespaces.") var prefix = "bsrb"
        @Option(name: .customLong("state-dir"), help: "Where the bench keeps its PIDs and logs (default /tmp/baton-lab-PREFIX).")
        var stateDir: String?
        @Option(help: "Failover trials.") var trials = 20
        @Option(name: .customLong("load-seconds"), help: "How long both gateways stay up under full CPU load (0 skips the load run).")
        var loadSeconds = 600
        @Option(name: .customLong("load-processes"), help: "Busy loops during the load run (default: one per online CPU).")
        var loadProcesses: Int?
        @Option(name: .customLong("interval-ms"), help: "Milliseconds between the pod's datagrams.") var intervalMs = 5

        func validate() throws {
            guard !prefix.isEmpty, prefix.count <= 8, prefix.allSatisfy({ $0.isLetter || $0.isNumber }) else {
                throw ValidationError("--prefix: \"\(prefix)\" must be 1-8 letters or digits")
            }
            guard (1...1000).contains(trials) else { throw ValidationError("--trials: \(trials) is not between 1 and 1000") }
            guard (0...86_400).contains(loadSeconds) else { throw ValidationError("--load-seconds: \(loadSeconds) is not between 0 and 86400") }
            if let loadProcesses, !(1...256).contains(loadProcesses) {
                throw ValidationError("--load-processes: \(loadProcesses) is not between 1 and 256")
            }
            guard (1...100).contains(intervalMs) else { throw ValidationError("--interval-ms: \(intervalMs) is not between 1 and 100") }
        }

        func run() async throws {
            do { try Lab.checkPrerequisites() } catch { throw ValidationError("\(error)") }
            var bench = StaticRouteBench(prefix: prefix, stateDir: stateDir, binary: CommandLine.executablePath, trials: trials,
                                         loadSeconds: loadSeconds, loadProcesses: loadProcesses ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
            bench.intervalMs = intervalMs
            let run = bench
            let work = Task { try await run.run { say($0) } }
            let signals = VRRPBenchCommand.onInterrupt {
                say("interrupted: tearing down")
                work.cancel()
                DispatchQueue.global().asyncAfter(deadline: .now() + 10) {
                    run.lab.down { say($0) }
                    Glibc.exit(130)
                }
            }
            defer { for source in signals { source.cancel() } }
            let results = try await work.value
            say("")
            for line in results.table { say(line) }
        }
    }
}
