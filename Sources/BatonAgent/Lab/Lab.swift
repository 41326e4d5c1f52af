import BatonAPI
import BatonDataplane
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `baton lab`: a small cluster in network namespaces on this machine. Everything lives in
/// namespaces named `PREFIX-*` (never the machine's own namespace), and every process the lab
/// starts is recorded by PID in its state directory, so `down` removes it all, even after a crash.
///
/// Topology (PREFIX `blab`, N nodes):
/// - `blab-lan`: the LAN, a bridge `br0` (192.168.77.0/24).
/// - `blab-server`: `baton server` on 192.168.77.2:7000.
/// - `blab-ext`: the external host, 192.168.77.100, running `baton lab echo` on UDP 9000.
/// - `blab-nodeI`: node I, `eth0` = 192.168.77.(10+I), IP forwarding on, `baton agent
///   --dataplane linux`; pod subnet 10.244.I.0/24 behind `pod0`, and routes to the other nodes'
///   pod subnets through their LAN addresses, as a CNI would.
/// - `blab-podI`: a pod, 10.244.I.2, default route through its node.
/// - `blab-gw1`, `blab-gw2`: NAT gateways (192.168.77.51, .52) to the external host's public
///   address 203.0.113.100, for StaticRoutes (Lab+Gateways.swift).
/// EgressGateway `egw1` (pool 192.168.77.200-192.168.77.209, default EIP .200, nodes labelled
/// `egress=true`) and EgressClusterPolicy `lab-pods` (every pod) are applied.
public struct Lab: Sendable {
    public var prefix: String
    public var nodes: Int
    public var stateDir: String
    /// The `baton` binary the lab starts.
    public var binary: String

    public static let lanPrefix = "192.168.77"
    public static let serverAddress = "192.168.77.2"
    public static let serverPort = 7000
    public static let externalAddress = "192.168.77.100"
    public static let echoPort = 9000
    public static let eipPool = "192.168.77.200-192.168.77.209"
    public static let defaultEIP = "192.168.77.200"

    public init(prefix: String = "blab", nodes: Int = 3, stateDir: String? = nil, binary: String) {
        self.prefix = prefix
        self.nodes = nodes
        self.stateDir = stateDir ?? "/tmp/baton-lab-\(prefix)"
        self.binary = binary
    }

    public var lan: String { "\(prefix)-lan" }
    public var server: String { "\(prefix)-server" }
    public var external: String { "\(prefix)-ext" }
    public func node(_ i: Int) -> String { "\(prefix)-node\(i)" }
    public func pod(_ i: Int) -> String { "\(prefix)-pod\(i)" }
    public static func nodeName(_ i: Int) -> String { "node\(i)" }
    public static func nodeAddress(_ i: Int) -> String { "\(lanPrefix).\(10 + i)" }
    public static func podAddress(_ i: Int) -> String { "10.244.\(i).2" }
    public var serverURL: String { "http://\(Self.serverAddress):\(Self.serverPort)" }

    /// Refuses to run without root, `ip` or `nft`.
    public static func checkPrerequisites() throws {
        guard getuid() == 0 else { throw LabError("baton lab needs root (it creates network namespaces)") }
        for tool in ["ip", "nft", "bridge"] { _ = try Command.locate(tool) }
    }

    // MARK: up

    /// `startAgents: false` builds everything but the agents (a test snapshots the nodes first,
    /// then calls `startAgent`).
    /// `config`: a values.yaml with egressgateway's `feature.*` periods for the server and every
    /// agent (kept in the state directory, so agents the lab restarts use it too).
    public func up(startAgents: Bool = true, config: String? = nil, log: (String) -> Void) async throws {
        try Self.checkPrerequisites()
        guard (1...9).contains(nodes) else { throw LabError("--nodes must be between 1 and 9, not \(nodes)") }
        if !existingNamespaces().isEmpty { throw LabError("a lab named \(prefix) is already up; run baton lab down --prefix \(prefix) first") }
        try FileManager.default.createDirectory(atPath: stateDir + "/logs", withIntermediateDirectories: true)
        do {
            if let config { try String(contentsOfFile: config, encoding: .utf8).write(toFile: valuesPath, atomically: true, encoding: .utf8) }
            try buildNetwork()
            log("network: LAN \(Self.lanPrefix).0/24, \(nodes) nodes with a pod each, external host \(Self.externalAddress), NAT gateways \(Self.gatewayAddress(1)) and \(Self.gatewayAddress(2)) in front of \(Self.publicExternalAddress)")
            try startProcesses(agents: startAgents, log: log)
            try await applyObjects()
            log("applied EgressGateway egw1 (pool \(Self.eipPool)) and EgressClusterPolicy lab-pods")
        } catch {
            log("up failed: \(error); tearing down")
            down(log: { _ in })
            throw error
        }
    }

    func buildNetwork() throws {
        var ns = ["netns add \(lan)", "netns add \(server)", "netns add \(external)"]
        for i in 1...nodes { ns += ["netns add \(node(i))", "netns add \(pod(i))"] }
        try ip(ns)
        // The LAN bridge and one veth per host, each created inside the lab's namespaces.
        var lanCmds = ["link add br0 type bridge", "link set br0 up", "link set lo up"]
        let hosts = [(server, "srv", Self.serverAddress), (external, "ext", Self.externalAddress)]
            + (1...nodes).map { (node($0), "n\($0)", Self.nodeAddress($0)) }
        for (nsName, port, _) in hosts {
            lanCmds.append("link add \(port) type veth peer name eth0 netns \(nsName)")
            lanCmds.append("link set \(port) master br0 up")
        }
        try ip(lanCmds, netns: lan)
        for (nsName, _, address) in hosts {
            try ip(["link set lo up", "link set eth0 up", "address add \(address)/24 dev eth0"], netns: nsName)
        }
        for i in 1...nodes {
            try ip(["link add pod0 type veth peer name eth0 netns \(pod(i))", "link set pod0 up",
                    "address add 10.244.\(i).1/24 dev pod0"]
                   + (1...nodes).filter { $0 != i }.map { "route add 10.244.\($0).0/24 via \(Self.nodeAddress($0))" },
                   netns: node(i))
            try sysctl(node(i), "net/ipv4/ip_forward", "1")
            try ip(["link set lo up", "link set eth0 up", "address add \(Self.podAddress(i))/24 dev eth0",
                    "route add default via 10.244.\(i).1"], netns: pod(i))
        }
        try buildGateways()
    }

    func startProcesses(agents: Bool, log: (String) -> Void) throws {
        let data = stateDir + "/server"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try spawn("server", netns: server, [binary, "server", "--data-dir", data, "--listen", "\(Self.serverAddress):\(Self.serverPort)"] + configArguments)
        try spawn("echo", netns: external, [binary, "lab", "echo", "--listen", "0.0.0.0:\(Self.echoPort)"])
        let tokenPath = data + "/admin.token"
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: tokenPath) {
            guard Date() < deadline else { throw LabError("baton server did not start; see \(stateDir)/logs/server.log") }
            usleep(50_000)
        }
        log("baton server on \(serverURL) (namespace \(server)); echo service on \(Self.externalAddress):\(Self.echoPort)")
        guard agents else { return }
        for i in 1...nodes { try startAgent(i) }
        log("\(nodes) agents started (--dataplane linux)")
    }

    public func startAgent(_ i: Int, extra: [String] = []) throws {
        let token = try token()
        try spawn("agent-node\(i)", netns: node(i), [
            binary, "agent", "--server", serverURL, "--token", token, "--node", Self.nodeName(i),
            "--labels", "egress=true", "--address", Self.nodeAddress(i), "--interface", "eth0",
            "--cluster-cidr", "10.244.0.0/16", "--dataplane", "linux",
        ] + configArguments + extra)
    }

    /// Where `up --config` keeps the lab's values.yaml.
    public var valuesPath: String { stateDir + "/values.yaml" }

    var configArguments: [String] {
        FileManager.default.fileExists(atPath: valuesPath) ? ["--config", valuesPath] : []
    }

    func applyObjects() async throws {
        let manifest = """
        apiVersion: egressgateway.spidernet.io/v1beta1
        kind: EgressGateway
        metadata:
          name: egw1
        spec:
          ippools:
            ipv4:
              - \(Self.eipPool)
            ipv4DefaultEIP: \(Self.defaultEIP)
          nodeSelector:
            selector:
              matchLabels:
                egress: "true"
        ---
        apiVersion: egressgateway.spidernet.io/v1beta1
        kind: EgressClusterPolicy
        metadata:
          name: lab-pods
        spec:
          egressGatewayName: egw1
          appliedTo:
            podSubnet:
              - 10.244.0.0/16
        """
        let path = stateDir + "/lab.yaml"
        try manifest.write(toFile: path, atomically: true, encoding: .utf8)
        try await runInServer(["apply", "-f", path], retryFor: 10)
    }

    /// Runs `baton ARGS` inside the server's namespace against the lab's server (the machine's
    /// own namespace has no route to the lab).
    @discardableResult
    public func runInServer(_ args: [String], retryFor seconds: Double = 0) async throws -> String {
        let token = try token()
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            do {
                return try Command.run("ip", ["netns", "exec", server, binary] + args + ["--server", serverURL, "--token", token])
            } catch {
                if Date() >= deadline { throw error }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    // MARK: down

    /// Stops every process the lab started (by PID: those recorded, and any left in its
    /// namespaces) and deletes its namespaces and state. Safe to run twice, or after a crash.
    public func down(log: (String) -> Void) {
        var pids = Set(recordedPIDs().values)
        for ns in existingNamespaces() { pids.formUnion((try? self.pids(in: ns)) ?? []) }
        for p in pids { kill(p, SIGKILL) }
        for p in pids { _ = waitGone(p) }
        let namespaces = existingNamespaces()
        for ns in namespaces { _ = try? Command.run("ip", ["netns", "del", ns]) }
        try? FileManager.default.removeItem(atPath: stateDir)
        log("stopped \(pids.count) processes, removed \(namespaces.count) namespaces")
    }

    /// Polls every 10 ms, reaping `pid` if it is a child, until it is gone or `limit` passed. A
    /// zombie whose parent is not this process counts as gone (it runs no more).
    func waitGone(_ pid: Int32, within limit: Duration = .seconds(1)) -> Bool {
        for _ in 0..<max(1, Int(limit.milliseconds / 10)) {
            if kill(pid, 0) != 0 || Self.isZombie(pid) { return true }
            var status: Int32 = 0
            _ = waitpid(pid, &status, WNOHANG)
            usleep(10_000)
        }
        return false
    }

    static func isZombie(_ pid: Int32) -> Bool {
        // /proc/PID/stat: "PID (COMM) STATE ..."; COMM may hold spaces and parentheses.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    public func existingNamespaces() -> [String] {
        let out = (try? Command.run("ip", ["netns", "list"])) ?? ""
        return out.split(separator: "\n").compactMap { line in
            let name = String(line.split(separator: " ").first ?? "")
            return name.hasPrefix(prefix + "-") ? name : nil
        }
    }

    // MARK: Processes

    /// Starts `argv` inside `netns` (it outlives `baton lab up`), with
    /// its output in `logs/NAME.log`, and records its PID.
    @discardableResult
    public func spawn(_ name: String, netns: String, _ argv: [String]) throws -> Process {
        let process = Process()
        // `ip netns exec` execs the command, so the recorded PID is the process's own.
        process.executableURL = URL(fileURLWithPath: try Command.locate("ip"))
        process.arguments = ["netns", "exec", netns] + argv
        let logPath = "\(stateDir)/logs/\(name).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let handle = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.runWithStopSignalsUnblocked()
        var pids = recordedPIDs()
        pids[name] = process.processIdentifier
        try pids.map { "\($0.key) \($0.value)" }.sorted().joined(separator: "\n").write(toFile: stateDir + "/pids", atomically: true, encoding: .utf8)
        return process
    }

    public func recordedPIDs() -> [String: Int32] {
        let text = (try? String(contentsOfFile: stateDir + "/pids", encoding: .utf8)) ?? ""
        var out: [String: Int32] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let p = Int32(parts[1]) { out[String(parts[0])] = p }
        }
        return out
    }

    // MARK: Helpers

    public func ip(_ commands: [String], netns: String? = nil) throws {
        let args = (netns.map { ["-n", $0] } ?? []) + ["-batch", "-"]
        _ = try Command.run("ip", args, input: commands.joined(separator: "\n") + "\n")
    }

    func sysctl(_ netns: String, _ key: String, _ value: String) throws {
        _ = try Command.run("ip", ["netns", "exec", netns, try Command.locate("sh"), "-c", "echo \(value) > /proc/sys/\(key)"])
    }

}

public struct LabError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Lab {
    /// The source address the external echo saw for one datagram sent from pod namespace `pod`.
    public func probe(from pod: String, to host: String = Self.externalAddress, port: Int = Self.echoPort) throws -> String? {
        let out = try? Command.run("ip", ["netns", "exec", pod, binary, "lab", "probe", "--to", "\(host):\(port)"])
        return out.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.flatMap { $0.isEmpty ? nil : $0 }
    }
}
