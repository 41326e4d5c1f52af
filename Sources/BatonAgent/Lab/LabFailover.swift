import BatonAPI
import BatonDataplane
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How `baton lab failover` makes the EIP's node fail.
public enum LabFailureMode: String, CaseIterable, Sendable {
    /// The node's LAN link is cut (its bridge port goes down).
    case link
    /// The node's agent is SIGKILLed; the node itself keeps running.
    case kill
    /// Every process of the node is SIGSTOPped; its kernel keeps forwarding and answering.
    case freeze
    /// The node is cut off from the server only (an nftables table in the node drops everything
    /// to and from the server's address); it stays on the LAN with the external host. The server
    /// evicts it early (it neither heartbeats nor answers the probe) while the node still holds
    /// the EIP until its own fence ends the lease: the new holder must wait for that.
    case partition

    public var what: String {
        switch self {
        case .link: "LAN link cut"
        case .kill: "agent SIGKILLed"
        case .freeze: "node frozen (SIGSTOP)"
        case .partition: "cut off from the server only"
        }
    }
}

/// One failover as the lab measured it. Times are CLOCK_MONOTONIC nanoseconds, the clock of
/// every lab tool (sender, echo, wire watcher), so they compare across processes.
public struct LabFailoverTrial: Sendable {
    public var mode: LabFailureMode
    public var failedNode: Int
    public var senderPod: Int
    public var newNode: Int?
    public var failureAt: UInt64
    /// The server marked the failed node's tunnel HeartbeatTimeout.
    public var evictedAt: UInt64?
    /// The first gratuitous ARP for the EIP from another node.
    public var announcedAt: UInt64?
    /// The first datagram that reached the external host with the EIP from another node.
    public var firstPacketAt: UInt64?
    /// The longest run of the pod's datagrams that got no answer with the EIP as their source.
    public var outage: Duration
    public var lost: Int
    /// Datagrams of the pod seen at the external host with a source other than the EIP.
    public var wrongSource: Int
    /// How long the external host saw the old and the new node both answer for the EIP (ARP
    /// replies or packets from the EIP): the old node's last answer after the new node's first.
    public var dualAnswer: Duration

    func ms(_ t: UInt64?) -> String {
        guard let t else { return "never" }
        return String(format: "+%.1f ms", (Double(t) - Double(failureAt)) / 1e6)
    }

    /// The timeline `baton lab failover` prints.
    public var timeline: [String] {
        let new = newNode.map { Lab.nodeName($0) } ?? "no node"
        return [
            "\(ms(failureAt))\tfailure: \(Lab.nodeName(failedNode)) \(mode.what)",
            "\(ms(evictedAt))\teviction: the server marks \(Lab.nodeName(failedNode))'s tunnel HeartbeatTimeout",
            "\(ms(announcedAt))\tannouncement: \(new) sends gratuitous ARP for \(Lab.defaultEIP)",
            "\(ms(firstPacketAt))\tfirst packet from \(Lab.defaultEIP) via \(new) at the external host",
            String(format: "outage seen by pod%ld: %.0f ms (%ld datagrams lost); wrong source: %ld; two nodes answering: %.0f ms",
                   senderPod, outage.milliseconds, lost, wrongSource, dualAnswer.milliseconds),
        ]
    }
}

extension Duration {
    /// Milliseconds as a fraction, for printing.
    public var milliseconds: Double { Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15 }
}

extension Lab {
    /// Makes the node holding the default EIP fail in `mode` while a pod on another node sends a
    /// datagram every 10 ms to the external echo; measures, then brings the node back (link up,
    /// a new agent, SIGCONT) and waits until the lab is settled again. The lab must be up.
    public func failover(mode: LabFailureMode, log: (String) -> Void = { _ in }) async throws -> LabFailoverTrial {
        try Self.checkPrerequisites()
        let holders = try eipHolders()
        guard holders.count == 1, let failed = holders.first else {
            throw LabError("expected exactly one node to hold \(Self.defaultEIP), found \(holders.map(Self.nodeName))")
        }
        guard let pod = (1...nodes).first(where: { $0 != failed }) else { throw LabError("failover needs at least 2 nodes") }
        var macs: [String: Int] = [:]
        for i in 1...nodes { macs[try mac(of: node(i))] = i }
        let oldMAC = try mac(of: node(failed))

        let trialDir = stateDir + "/trial"
        try? FileManager.default.removeItem(atPath: trialDir)
        try FileManager.default.createDirectory(atPath: trialDir, withIntermediateDirectories: true)
        let wirePath = trialDir + "/wire.log", sendPath = trialDir + "/send.log"
        let watcher = try child(netns: external, [binary, "lab", "watch", "--interface", "eth0", "--eip", Self.defaultEIP,
                                                   "--udp-port", "\(Self.echoPort)", "--probe-ms", "10"], output: wirePath)
        let tunnels = try TimestampedLines(try child(netns: server, [binary, "get", "egt", "-w", "--server", serverURL, "--token", token()], output: nil))
        defer {
            kill(watcher.processIdentifier, SIGKILL)
            kill(tunnels.process.processIdentifier, SIGKILL)
            watcher.waitUntilExit()
            tunnels.process.waitUntilExit()
        }
        let sendMillis = 5000
        let sender = try child(netns: self.pod(pod), [binary, "lab", "send", "--to", "\(Self.externalAddress):\(Self.echoPort)",
                                                      "--interval-ms", "10", "--duration-ms", "\(sendMillis)"], output: sendPath)
        log("failover (\(mode.rawValue)): \(Self.nodeName(failed)) holds \(Self.defaultEIP); pod\(pod) sends a datagram every 10 ms")
        try await Task.sleep(for: .seconds(1))

        // The failure.
        let failureAt = LabEcho.monotonicNanos()
        var frozen: [Int32] = []
        switch mode {
        case .link: try ip(["link set n\(failed) down"], netns: lan)
        case .kill:
            guard let pid = recordedPIDs()["agent-node\(failed)"] else { throw LabError("no agent recorded for \(Self.nodeName(failed))") }
            kill(pid, SIGKILL)
        case .freeze:
            frozen = try pids(in: node(failed))
            for p in frozen { kill(p, SIGSTOP) }
        case .partition:
            _ = try Command.run("ip", ["netns", "exec", node(failed), "nft", "-f", "-"], input: """
                table inet baton_lab_partition {
                    chain in { type filter hook input priority -50; policy accept; ip saddr \(Self.serverAddress) drop; }
                    chain out { type filter hook output priority -50; policy accept; ip daddr \(Self.serverAddress) drop; }
                }

                """)
        }

        // The node comes back; the EIP must stay where it went (no fail-back).
        func restore() throws {
            switch mode {
            case .link: try ip(["link set n\(failed) up"], netns: lan)
            case .kill: try startAgent(failed)
            case .freeze: for p in frozen { kill(p, SIGCONT) }
            case .partition: _ = try Command.run("ip", ["netns", "exec", node(failed), "nft", "delete", "table", "inet", "baton_lab_partition"])
            }
        }
        do {
            try await waitForRecovery(wirePath: wirePath, oldMAC: oldMAC, after: failureAt)
        } catch {
            try? restore()
            throw error
        }
        try restore()
        sender.waitUntilExit()
        try await Task.sleep(for: .milliseconds(300))

        let wire = WireLog.parse(try String(contentsOfFile: wirePath, encoding: .utf8))
        let records = SenderLog.parse(try String(contentsOfFile: sendPath, encoding: .utf8))
        let answers = wire.filter { e in e.nanos > failureAt && (e.kind == .arpReply || e.kind == .garp || (e.kind == .udp && e.sourceIP == Self.defaultEIP)) }
        let firstNew = answers.first { $0.mac != oldMAC }
        let newMAC = firstNew?.mac
        let lastOld = answers.last { $0.mac == oldMAC }
        var dual = Duration.zero
        if let first = firstNew, let last = lastOld, last.nanos > first.nanos {
            dual = .nanoseconds(Int64(last.nanos - first.nanos))
        }
        let result = LabSender.outage(records, expectedSource: Self.defaultEIP)
        let wrongOnWire = wire.filter { $0.kind == .udp && $0.sourceIP != Self.defaultEIP }.count
        let evicted = tunnels.lines().first { line, t in
            t > failureAt && line.split(separator: " ", omittingEmptySubsequences: true).first.map(String.init) == Self.nodeName(failed)
                && line.hasSuffix("HeartbeatTimeout")
        }?.1
        let trial = LabFailoverTrial(
            mode: mode, failedNode: failed, senderPod: pod, newNode: newMAC.flatMap { macs[$0] }, failureAt: failureAt,
            evictedAt: evicted,
            announcedAt: wire.first { $0.nanos > failureAt && $0.kind == .garp && $0.mac != oldMAC }?.nanos,
            firstPacketAt: wire.first { $0.nanos > failureAt && $0.kind == .udp && $0.sourceIP == Self.defaultEIP && $0.mac != oldMAC }?.nanos,
            outage: result.outage, lost: result.lost, wrongSource: max(result.wrongSource, wrongOnWire), dualAnswer: dual)
        try await settle(after: failed)
        return trial
    }

    /// Waits until the external host sees a packet from the EIP through another node (at most
    /// 3 s), then half a second more, so that a late answer from the old node would show.
    func waitForRecovery(wirePath: String, oldMAC: String, after failureAt: UInt64) async throws {
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline {
            let wire = WireLog.parse((try? String(contentsOfFile: wirePath, encoding: .utf8)) ?? "")
            if wire.contains(where: { $0.kind == .udp && $0.sourceIP == Self.defaultEIP && $0.mac != oldMAC && $0.nanos > failureAt }) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .milliseconds(500))
    }

    /// Waits until every tunnel is Ready and exactly one node binds the EIP (at most 15 s).
    func settle(after failed: Int) async throws {
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            let rows = (try? await runInServer(["get", "egt"])) ?? ""
            let ready = rows.split(separator: "\n").filter { $0.hasSuffix("Ready") }.count
            if ready == nodes, (try? eipHolders().count) == 1 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw LabError("the lab did not settle after \(Self.nodeName(failed)) came back; see \(stateDir)/logs")
    }

    /// The nodes whose parent interface binds the default EIP.
    public func eipHolders() throws -> [Int] {
        try (1...nodes).filter { i in
            try Command.run("ip", ["-n", node(i), "-4", "addr", "show", "dev", "eth0"]).contains("\(Self.defaultEIP)/32")
        }
    }

    func mac(of netns: String) throws -> String {
        let out = try Command.run("ip", ["-n", netns, "-j", "link", "show", "dev", "eth0"])
        guard let mac = (try? JSONValue.parse(Data(out.utf8)))?.arrayValue?.first?["address"]?.stringValue else {
            throw LabError("cannot read the MAC of \(netns)'s eth0")
        }
        return mac.lowercased()
    }

    func pids(in netns: String) throws -> [Int32] {
        try Command.run("ip", ["netns", "pids", netns]).split(separator: "\n").compactMap { Int32($0) }
    }

    func token() throws -> String {
        try String(contentsOfFile: stateDir + "/server/admin.token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts `argv` in `netns` as a child of this process, its standard output to `output` (or
    /// a pipe when nil). It runs inside the lab's namespaces, so `down` also stops it.
    public func child(netns: String, _ argv: [String], output: String?) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Command.locate("ip"))
        process.arguments = ["netns", "exec", netns] + argv
        if let output {
            FileManager.default.createFile(atPath: output, contents: nil)
            process.standardOutput = FileHandle(forWritingAtPath: output)
        } else {
            process.standardOutput = Pipe()
        }
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.runWithStopSignalsUnblocked()
        return process
    }
}

/// Reads a child's standard output on a thread of its own and stamps each line (CLOCK_MONOTONIC)
/// as it arrives.
final class TimestampedLines: @unchecked Sendable {
    let process: Process
    private let collected = Mutex<[(String, UInt64)]>([])

    init(_ process: Process) throws {
        self.process = process
        guard let pipe = process.standardOutput as? Pipe else { throw LabError("the child's output is not a pipe") }
        let handle = pipe.fileHandleForReading
        let thread = Thread { [self] in
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return }
                let t = LabEcho.monotonicNanos()
                pending.append(chunk)
                while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<nl], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...nl)
                    self.collected.withLock { $0.append((line.trimmingCharacters(in: .whitespaces), t)) }
                }
            }
        }
        thread.start()
    }

    func lines() -> [(String, UInt64)] { collected.withLock { $0 } }
}
