import ArgumentParser
import BatonAPI
import BatonAgent
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `baton lab`: a cluster in network namespaces on this machine (root).
struct LabCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "A testbed in network namespaces on this machine (root): a LAN, nodes with pods, an external echo host, a server and agents.",
        subcommands: [Up.self, Down.self, Status.self, Failover.self, Bench.self, Echo.self, Probe.self, Watch.self, Send.self, Spin.self, EdgeLabCommand.self, IngressCommand.self])

    struct LabOptions: ParsableArguments {
        @Option(help: "Prefix of the lab's namespaces (PREFIX-lan, PREFIX-node1, ...).") var prefix = "blab"
        @Option(name: .customLong("state-dir"), help: "Where the lab keeps its PIDs, logs and server data (default /tmp/baton-lab-PREFIX).")
        var stateDir: String?

        func lab(nodes: Int = 3) throws -> Lab {
            guard !prefix.isEmpty, prefix.count <= 8, prefix.allSatisfy({ $0.isLetter || $0.isNumber }) else {
                throw ValidationError("--prefix: \"\(prefix)\" must be 1-8 letters or digits")
            }
            return Lab(prefix: prefix, nodes: nodes, stateDir: stateDir, binary: CommandLine.executablePath)
        }
    }

    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Build the lab, start the server and one agent per node, apply a gateway and a policy.")
        @OptionGroup var options: LabOptions
        @Option(help: "How many nodes.") var nodes = 3
        @Option(help: "A values.yaml with feature.* periods for the server and the agents (as baton server --config).") var config: String?

        func run() async throws {
            guard (1...9).contains(nodes) else { throw ValidationError("--nodes: \(nodes) is not between 1 and 9") }
            let lab = try options.lab(nodes: nodes)
            if let config {
                do { _ = try FeatureSettings.parse(yaml: String(contentsOfFile: config, encoding: .utf8)) } catch let e as APIError {
                    throw ValidationError("--config \(config): \(e.message)")
                } catch { throw ValidationError("--config: cannot read \(config): \(error.localizedDescription)") }
            }
            do { try await lab.up(config: config) { print($0) } } catch let e as LabError { throw ValidationError(e.description) }
            print("lab \(lab.prefix) is up; try: baton lab status --prefix \(lab.prefix)")
        }
    }

    struct Down: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop every process and remove every namespace the lab made (also after a crash).")
        @OptionGroup var options: LabOptions

        func run() async throws {
            do { try Lab.checkPrerequisites() } catch let e as LabError { throw ValidationError(e.description) }
            try options.lab().down { print($0) }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The lab's namespaces, processes, tunnels and gateways, and where each pod's traffic leaves from.")
        @OptionGroup var options: LabOptions

        func run() async throws {
            do { try Lab.checkPrerequisites() } catch let e as LabError { throw ValidationError(e.description) }
            let lab = try options.lab()
            let namespaces = lab.existingNamespaces()
            guard !namespaces.isEmpty else {
                print("lab \(lab.prefix) is down")
                return
            }
            print("namespaces: \(namespaces.sorted().joined(separator: " "))")
            for (name, pid) in lab.recordedPIDs().sorted(by: { $0.key < $1.key }) {
                print("\(name): pid \(pid) \(kill(pid, 0) == 0 ? "running" : "gone")")
            }
            print(try await lab.runInServer(["get", "egt"]))
            print(try await lab.runInServer(["get", "egw"]))
            let pods = namespaces.filter { $0.hasPrefix("\(lab.prefix)-pod") }.sorted()
            for pod in pods {
                let seen = try? lab.probe(from: pod)
                print("\(pod) -> \(Lab.externalAddress):\(Lab.echoPort) seen from \(seen ?? "(no answer)")")
            }
        }
    }

    struct Echo: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "UDP echo that answers each datagram with the source address it saw (the lab's external host).", shouldDisplay: false)
        @Option(help: "HOST:PORT") var listen = "0.0.0.0:9000"
        @Option(name: .customLong("answer-as"), help: "Answer with this address instead of the source seen (tells a client which host answered).")
        var answerAs: String?
        @Flag(help: "Do not log the datagrams.") var quiet = false

        func validate() throws {
            var address = in_addr()
            if let answerAs, inet_pton(AF_INET, answerAs, &address) != 1 {
                throw ValidationError("--answer-as: \"\(answerAs)\" is not an IPv4 address")
            }
        }

        func run() throws {
            let (host, port) = try Self.split(listen)
            try LabEcho.serve(host: host, port: port, answerAs: answerAs, quiet: quiet)
        }

        static func split(_ text: String) throws -> (String, UInt16) {
            guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
                throw ValidationError("\"\(text)\" is not HOST:PORT")
            }
            return (String(text[..<colon]), port)
        }
    }

    struct Probe: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send one datagram to an echo service and print the source address it saw.", shouldDisplay: false)
        @Option(help: "HOST:PORT") var to = "\(Lab.externalAddress):\(Lab.echoPort)"
        @Option(name: .customLong("timeout-ms"), help: "How long to wait for the answer, in milliseconds.") var timeoutMs = 1000

        func validate() throws {
            guard (1...60_000).contains(timeoutMs) else { throw ValidationError("--timeout-ms: \(timeoutMs) is not between 1 and 60000") }
        }

        func run() throws {
            let (host, port) = try Echo.split(to)
            guard let seen = try LabEcho.probe(host: host, port: port, timeout: .milliseconds(timeoutMs)) else { throw ExitCode(1) }
            print(seen)
        }
    }

    struct Spin: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Keep one core busy (a loop, no I/O) for a while, or until the parent process is gone.", shouldDisplay: false)
        @Option(help: "How long, in seconds.") var seconds: Int
        @Option(help: "Stop as soon as this process is no longer the parent (default: the parent at start).") var parent: Int32?

        func validate() throws {
            guard (1...86_400).contains(seconds) else { throw ValidationError("--seconds: \(seconds) is not between 1 and 86400") }
            if let parent, parent < 1 { throw ValidationError("--parent: \(parent) is not a process ID") }
        }

        func run() { LabLoad.spin(for: .seconds(seconds), parent: parent ?? getppid()) }
    }
}
