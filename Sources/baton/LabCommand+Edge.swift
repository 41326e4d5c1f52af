import ArgumentParser
import BatonAgent
import BatonEdge
import Foundation

extension LabCommand {
    /// `baton lab edge`: the seed's edge topology in namespaces, and its three drills.
    struct EdgeLabCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "edge",
            abstract: "The edge gateway testbed in network namespaces (root): a server, baton edge in region-1, cluster-1 (region-1) and cluster-2 (region-2) ingresses, a client.",
            subcommands: [Up.self, Down.self, DrillCommand.self, Traffic.self])

        struct Options: ParsableArguments {
            @Option(help: "Prefix of the lab's namespaces (PREFIX-edge, PREFIX-c1, ...).") var prefix = "bedge"

            func lab() throws -> EdgeLab {
                guard !prefix.isEmpty, prefix.count <= 8, prefix.allSatisfy({ $0.isLetter || $0.isNumber }) else {
                    throw ValidationError("--prefix: \"\(prefix)\" must be 1-8 letters or digits")
                }
                return EdgeLab(prefix: prefix, binary: CommandLine.executablePath)
            }
        }

        struct Up: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Build the edge lab and apply the Gateway in one of the seed's three modes.")
            @OptionGroup var options: Options
            @Option(help: "auto ({}), named (cluster-1, cluster-2) or weights (50/50).") var mode: String = "auto"

            func run() async throws {
                guard let m = EdgeLab.Mode(rawValue: mode) else {
                    throw ValidationError("--mode: \"\(mode)\" must be one of \(EdgeLab.Mode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                do { try await options.lab().up(mode: m) { print($0) } } catch let e as LabError { throw ValidationError(e.description) }
            }
        }

        struct Down: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Stop every process and remove every namespace the edge lab made.")
            @OptionGroup var options: Options
            func run() async throws {
                do { try Lab.checkPrerequisites() } catch let e as LabError { throw ValidationError(e.description) }
                try options.lab().down { print($0) }
            }
        }

        struct DrillCommand: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "drill",
                abstract: "The seed's failure drills: delete-gateway, stop-ingress or fail-ingress on a cluster (--restore undoes it).")
            @OptionGroup var options: Options
            @Argument(help: "delete-gateway, stop-ingress or fail-ingress.") var drill: String
            @Option(help: "cluster-1 or cluster-2.") var cluster: String
            @Flag(help: "Undo the drill.") var restore = false

            func run() async throws {
                guard let d = EdgeLab.Drill(rawValue: drill) else {
                    throw ValidationError("\"\(drill)\" is not a drill: use \(EdgeLab.Drill.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                do { print(try await options.lab().drill(d, cluster: cluster, restore: restore)) } catch let e as LabError {
                    throw ValidationError(e.description)
                }
            }
        }

        struct Traffic: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Send requests from the client namespace through the edge and count the answers.")
            @OptionGroup var options: Options
            @Option(name: [.customShort("n"), .long], help: "How many requests.") var count = 20

            func run() async throws {
                guard (1...10_000).contains(count) else { throw ValidationError("--count: \(count) must be between 1 and 10000") }
                for (answer, n) in try options.lab().traffic(count: count).sorted(by: { $0.key < $1.key }) { print("\(n)\t\(answer)") }
            }
        }
    }

    /// `baton lab ingress`: a lab cluster's ingress (or, with --get, one request to an edge).
    struct IngressCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ingress", abstract: "An HTTP service answering with a cluster's name (503 while --fail-flag exists); or --get URL for one request.",
            shouldDisplay: false)
        @Option(help: "The cluster's name.") var name: String?
        @Option(help: "HOST:PORT.") var listen: String?
        @Option(name: .customLong("fail-flag"), help: "Answer 503 while this file exists.") var failFlag: String?
        @Option(help: "Send one GET to this URL instead, print the body (200) or the status and body.") var get: String?
        @Option(help: "The Host header for --get.") var host: String = EdgeLab.hostname

        func run() async throws {
            if let get {
                print(try LabIngress.get(url: get, host: host))
                return
            }
            guard let name, let listen else { throw ValidationError("needs --name and --listen HOST:PORT (or --get URL)") }
            let (host, port) = try hostAndPort(listen, flag: "--listen")
            try await LabIngress.serve(name: name, host: host, port: port, failFlag: failFlag)
        }
    }
}
