import ArgumentParser
import BatonEdge
import Foundation

extension LabCommand {
    /// `baton lab bench edge`: Baton's edge against HAProxy on the same loopback upstreams.
    struct EdgeBenchCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "edge",
            abstract: "wrk against baton edge and against HAProxy, proxying to the same loopback upstreams with the same connections and duration; prints req/s and p50/p99 side by side at each thread count.",
            discussion: "Needs wrk and haproxy (Debian packages). Runs on loopback only, no root needed.")
        @Option(help: "wrk connections.") var connections = 32
        @Option(help: "Seconds per run.") var duration = 10
        @Option(help: "Event loops (Baton) / nbthread (HAProxy) to compare, comma-separated.") var threads = "1,2"
        @Option(name: .customLong("wrk-threads"), help: "wrk's own threads.") var wrkThreads = 1
        @Option(help: "Runs per proxy and thread count, in alternating order; the table shows each one's median.") var rounds = 3

        func run() async throws {
            let counts = threads.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !counts.isEmpty, counts.allSatisfy({ (1...64).contains($0) }) else {
                throw ValidationError("--threads: \"\(threads)\" must be a comma-separated list of numbers from 1 to 64")
            }
            guard (1...10_000).contains(connections) else { throw ValidationError("--connections: \(connections) must be between 1 and 10000") }
            guard (1...3600).contains(duration) else { throw ValidationError("--duration: \(duration) must be between 1 and 3600 seconds") }
            guard (1...connections).contains(wrkThreads) else { throw ValidationError("--wrk-threads: \(wrkThreads) must be between 1 and --connections") }
            var bench = EdgeBench(batonBinary: CommandLine.executablePath)
            bench.connections = connections
            bench.duration = duration
            bench.threads = counts
            bench.wrkThreads = wrkThreads
            guard (1...20).contains(rounds) else { throw ValidationError("--rounds: \(rounds) must be between 1 and 20") }
            bench.rounds = rounds
            do {
                let runs = try await bench.run()
                print("")
                print(bench.table(runs))
            } catch let e as EdgeBench.Failure {
                throw ValidationError(e.description)
            }
        }
    }
}

extension LabCommand {
    /// `baton lab bench edge-failover`: a cluster dies under load, behind Baton and behind HAProxy.
    struct EdgeFailoverBenchCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "edge-failover",
            abstract: "Kill a cluster under load behind baton edge and behind HAProxy (checks, observe layer7, redispatch); print failed requests and how long requests kept reaching the dead cluster.",
            discussion: "Needs haproxy (Debian package). Runs on loopback only, no root needed.")
        @Option(help: "Concurrent keep-alive clients.") var connections = 16
        @Option(help: "Seconds of load before the kill.") var before = 2
        @Option(help: "Seconds of load after the kill.") var after = 4
        @Option(help: "kill: the ingress dies and its port resets every connection; freeze: it stops answering and its connections stay open (a SIGSTOPped process, a blackholed link).")
        var mode = "kill"

        func run() async throws {
            guard (1...1000).contains(connections) else { throw ValidationError("--connections: \(connections) must be between 1 and 1000") }
            guard (1...600).contains(before), (1...600).contains(after) else { throw ValidationError("--before and --after must be between 1 and 600 seconds") }
            guard let m = EdgeFailoverBench.Mode(rawValue: mode) else {
                throw ValidationError("--mode: \(mode) is not kill or freeze")
            }
            var bench = EdgeFailoverBench(batonBinary: CommandLine.executablePath)
            bench.mode = m
            bench.connections = connections
            bench.before = before
            bench.after = after
            do {
                let results = try await bench.run()
                print("")
                print(EdgeFailoverBench.table(results, before: before, after: after, connections: connections, mode: m))
            } catch let e as EdgeBench.Failure {
                throw ValidationError(e.description)
            }
        }
    }
}
