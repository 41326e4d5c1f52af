import ArgumentParser
import BatonAPI
import BatonAgent
import Foundation

extension LabCommand {
    /// Which failures a command runs: one mode, or all of them in turn.
    enum ModeChoice: String, ExpressibleByArgument, CaseIterable {
        case link, kill, freeze, partition, all
        var modes: [LabFailureMode] { self == .all ? LabFailureMode.allCases : [LabFailureMode(rawValue: rawValue)!] }
    }

    struct Failover: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make the EIP's node fail while a pod sends a datagram every 10 ms, and print the timeline (the lab must be up).",
            discussion: "Modes: link (the node's LAN link is cut), kill (its agent is SIGKILLed), freeze (SIGSTOP on its processes), partition (cut off from the server only: it keeps the LAN and its EIP until its own fence ends); all runs the four in turn. After each run the node comes back and the EIP stays where it went.")
        @OptionGroup var options: LabOptions
        @Option(help: "link, kill, freeze, partition or all.") var mode: ModeChoice = .all

        func run() async throws {
            do { try Lab.checkPrerequisites() } catch let e as LabError { throw ValidationError(e.description) }
            let lab = try options.lab(nodes: try LabCommand.upNodes(options))
            for m in mode.modes {
                let trial: LabFailoverTrial
                do { trial = try await lab.failover(mode: m) { say($0) } } catch let e as LabError { throw ValidationError(e.description) }
                for line in trial.timeline { say("  " + line) }
                say("")
            }
        }
    }

    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Benchmarks in the lab.", subcommands: [
            FailoverBench.self, VRRPBenchCommand.self, StaticRouteBenchCommand.self, EdgeBenchCommand.self, EdgeFailoverBenchCommand.self,
        ])
    }

    struct FailoverBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "failover",
            abstract: "Repeat `baton lab failover` for each kind of failure and print p50/p99/max outage, wrong-source packets and dual-answer time (the lab must be up).")
        @OptionGroup var options: LabOptions
        @Option(help: "Trials per kind of failure.") var trials = 20
        @Option(help: "link, kill, freeze, partition or all.") var mode: ModeChoice = .all

        func run() async throws {
            guard (1...1000).contains(trials) else { throw ValidationError("--trials: \(trials) is not between 1 and 1000") }
            do { try Lab.checkPrerequisites() } catch let e as LabError { throw ValidationError(e.description) }
            let lab = try options.lab(nodes: try LabCommand.upNodes(options))
            var rows: [String] = []
            for m in mode.modes {
                var results: [LabFailoverTrial] = []
                for t in 1...trials {
                    let trial: LabFailoverTrial
                    do { trial = try await lab.failover(mode: m) } catch let e as LabError { throw ValidationError(e.description) }
                    results.append(trial)
                    let moved = "node\(trial.failedNode) -> " + (trial.newNode.map { "node\($0)" } ?? "none")
                    say("\(m.rawValue) trial \(t)/\(trials): \(moved), " + String(format: "outage %.0f ms, wrong source %ld, dual answer %.0f ms",
                                 trial.outage.milliseconds, trial.wrongSource, trial.dualAnswer.milliseconds))
                }
                let outages = results.map(\.outage.milliseconds).sorted()
                let evictions = results.compactMap { r in r.evictedAt.map { Double($0) - Double(r.failureAt) } }.map { $0 / 1e6 }.sorted()
                rows.append("| \(m.what) | \(trials) " + String(format: "| %.0f | %.0f | %.0f | %.0f | %ld | %.0f |",
                                   percentile(outages, 0.5), percentile(outages, 0.99), outages.last ?? 0,
                                   percentile(evictions, 0.5), results.map(\.wrongSource).reduce(0, +),
                                   results.map(\.dualAnswer.milliseconds).max() ?? 0))
            }
            say("")
            let custom = FileManager.default.fileExists(atPath: lab.valuesPath)
            let settings = custom ? try FeatureSettings.parse(yaml: String(contentsOfFile: lab.valuesPath, encoding: .utf8)) : FeatureSettings()
            say("Baton, \(custom ? "settings from \(lab.valuesPath)" : "default settings"): tunnelMonitorPeriod \(settings.tunnelMonitorPeriod) s, "
                + "tunnelUpdatePeriod \(settings.tunnelUpdatePeriod) s, eipEvictionTimeout \(settings.eipEvictionTimeout) s, "
                + "unreachableNodeProbe \(settings.unreachableNodeProbe); \(lab.nodes) nodes, a datagram every 10 ms:")
            say("| failure | trials | outage p50 ms | outage p99 ms | outage max ms | eviction p50 ms | wrong-source packets | two nodes answering, max ms |")
            say("|---|---|---|---|---|---|---|---|")
            for r in rows { say(r) }
            say("egressgateway (not run: it needs Kubernetes): 15-20 s by its own timers (tunnel heartbeat timeout and EIP eviction at its Helm defaults).")
        }

        func percentile(_ sorted: [Double], _ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
        }
    }

    /// How many nodes the running lab has (its node namespaces).
    static func upNodes(_ options: LabOptions) throws -> Int {
        let lab = try options.lab()
        let count = lab.existingNamespaces().filter { $0.hasPrefix("\(lab.prefix)-node") }.count
        guard count > 0 else { throw ValidationError("lab \(lab.prefix) is down; run baton lab up first") }
        return count
    }
}

extension Duration {
    var ms: Double { Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15 }
}

/// Prints a line at once, also into a file or a pipe (print's buffer would hold a benchmark's
/// progress until it ends).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
