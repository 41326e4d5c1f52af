import BatonAPI
import BatonClient
import BatonDataplane
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `baton lab bench staticroute`: a lab of its own (`Lab` with its two NAT gateways), and:
///
/// - The seed's manual failover once: primary.yaml applied, then deleted and secondary.yaml
///   applied; the time from the delete to every pod's traffic through the secondary.
/// Then one StaticRoute with both gateways (priority 0 and 10) and the default health check:
/// - `trials` times: pod 1 sends a UDP datagram every `intervalMs` to the external host's
///   public address; 0.5 s in, the primary gateway dies (its LAN link goes down). Outage: the
///   longest run of unanswered datagrams, from the first of them being sent to the first
///   answered one after it. Then the primary comes back and the bench waits for the failback
///   (the default hold-down) before the next trial.
/// - For `loadSeconds`, one busy loop per core (`loadProcesses`) while both gateways stay up:
///   every gateway switch any node's agent logs is a spurious one.
public struct StaticRouteBench: Sendable {
    public var lab: Lab
    public var trials: Int
    public var loadSeconds: Int
    public var loadProcesses: Int
    public var intervalMs = 5

    public init(prefix: String, stateDir: String?, binary: String, nodes: Int = 2, trials: Int, loadSeconds: Int, loadProcesses: Int) {
        self.lab = Lab(prefix: prefix, nodes: nodes, stateDir: stateDir, binary: binary)
        self.trials = trials
        self.loadSeconds = loadSeconds
        self.loadProcesses = loadProcesses
    }

    public struct Trial: Sendable {
        public var outage: Duration
        public var lost: Int
        /// Answers with a source that is neither gateway's public address.
        public var wrongSource: Int
        /// Whether the answers after the outage came through the secondary.
        public var movedToSecondary: Bool
    }

    public struct Results: Sendable {
        public var trials: [Trial]
        /// Switches logged by the agents during the load run; nil when it did not run.
        public var spuriousSwitches: Int?
        /// Gateways the agents judged unhealthy during the load run (a false verdict need not
        /// switch anything: the secondary's does not).
        public var falseUnhealthy: Int?
        /// The seed's manual failover (delete the primary StaticRoute, apply the secondary), from
        /// the delete to every pod's traffic through the secondary, both CLI calls included.
        public var manualProcedure: Duration?
        public var loadSeconds: Int
        public var loadProcesses: Int

        public var table: [String] {
            var s = Samples()
            for t in trials { s.add(t.outage.seconds) }
            let moved = trials.filter(\.movedToSecondary).count
            var out = [
                "StaticRoute failover, primary gateway's link cut, default health check (icmp every 50ms, timeout 50ms, failureThreshold 3):",
                "  trials   p50 outage   p99 outage   max outage   moved to secondary   wrong source",
                "  \(pad(trials.count, 6))   \(pad(ms(s.percentile(50)), 10))   \(pad(ms(s.percentile(99)), 10))   \(pad(ms(s.values.max() ?? .nan), 10))   \(pad("\(moved)/\(trials.count)", 18))   \(trials.map(\.wrongSource).reduce(0, +))",
                "  the seed's manual procedure: 30-60 s of waiting after a human notices, plus the noticing",
            ]
            if let manualProcedure {
                out.append(String(format: "The seed's manual procedure with Baton (delete primary, apply secondary): every pod through the secondary %.0f ms after the delete began", manualProcedure.seconds * 1000))
            }
            if let spuriousSwitches {
                out.append("Spurious gateway switches in \(loadSeconds) s under full CPU load (\(loadProcesses) busy loops), both gateways up: \(spuriousSwitches)"
                           + (falseUnhealthy.map { " (gateways judged unhealthy: \($0))" } ?? ""))
            }
            return out
        }

        func pad(_ v: Any, _ width: Int) -> String {
            let t = "\(v)"
            return t.count >= width ? t : String(repeating: " ", count: width - t.count) + t
        }
    }

    static let manifest = """
        apiVersion: networking.digitalocean.com/v1
        kind: StaticRoute
        metadata:
          name: bench
        spec:
          destinations: ["\(Lab.publicExternalAddress)"]
          gateways:
            - {address: "\(Lab.gatewayAddress(1))", priority: 0}
            - {address: "\(Lab.gatewayAddress(2))", priority: 10}
        """

    public func run(log: @escaping @Sendable (String) -> Void) async throws -> Results {
        lab.down { _ in }
        try await lab.up(log: log)
        defer { lab.down(log: log) }
        try await lab.runInServer(["delete", "egressclusterpolicy", "lab-pods"], retryFor: 10)
        let manual = try await manualProcedure()
        log(String(format: "manual procedure: %.0f ms", manual.seconds * 1000))
        let path = lab.stateDir + "/bench-sr.yaml"
        try Self.manifest.write(toFile: path, atomically: true, encoding: .utf8)
        try await lab.runInServer(["apply", "-f", path])
        try await waitSeen(Lab.gatewayPublicAddress(1), within: .seconds(20))
        // Both gateways judged healthy before the first trial.
        try await Task.sleep(for: .seconds(1))

        var results: [Trial] = []
        for k in 1...trials {
            try Task.checkCancellation()
            let t = try await trial(k)
            results.append(t)
            log(String(format: "trial %d: outage %.1f ms, %d lost, %@", k, t.outage.seconds * 1000, t.lost,
                       t.movedToSecondary ? "moved to the secondary" : "NOT moved to the secondary"))
            try lab.setGateway(1, down: false)
            // The default hold-down (5 s) passes before the route fails back.
            try await waitSeen(Lab.gatewayPublicAddress(1), within: .seconds(30))
        }

        var spurious: Int?, unhealthy: Int?
        if loadSeconds > 0 {
            let before = logged("gateway switched"), unhealthyBefore = logged("state=Unhealthy")
            log("load: \(loadProcesses) busy loops for \(loadSeconds) s")
            for i in 1...loadProcesses {
                try lab.spawn("load\(i)", netns: lab.server, [lab.binary, "lab", "spin", "--seconds", "\(loadSeconds)", "--parent", "\(getpid())"])
            }
            try await Task.sleep(for: .seconds(loadSeconds))
            try await Task.sleep(for: .seconds(1))
            spurious = logged("gateway switched") - before
            unhealthy = logged("state=Unhealthy") - unhealthyBefore
        }
        return Results(trials: results, spuriousSwitches: spurious, falseUnhealthy: unhealthy, manualProcedure: manual, loadSeconds: loadSeconds,
                       loadProcesses: loadProcesses)
    }

    /// The seed's primary.yaml, then its manual failover: delete it, apply secondary.yaml.
    func manualProcedure() async throws -> Duration {
        func seed(_ name: String, _ gateway: String) throws -> String {
            let path = "\(lab.stateDir)/\(name).yaml"
            try """
                apiVersion: networking.digitalocean.com/v1
                kind: StaticRoute
                metadata:
                  name: \(name)
                spec:
                  destinations: ["\(Lab.publicExternalAddress)"]
                  gateway: "\(gateway)"
                """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let primary = try seed("primary", Lab.gatewayAddress(1)), secondary = try seed("secondary", Lab.gatewayAddress(2))
        try await lab.runInServer(["apply", "-f", primary])
        try await waitSeen(Lab.gatewayPublicAddress(1), within: .seconds(20), pods: 1...lab.nodes)
        let started = ContinuousClock.now
        try await lab.runInServer(["delete", "-f", primary])
        try await lab.runInServer(["apply", "-f", secondary])
        try await waitSeen(Lab.gatewayPublicAddress(2), within: .seconds(60), pods: 1...lab.nodes, every: .milliseconds(5))
        let took = ContinuousClock.now - started
        try await lab.runInServer(["delete", "-f", secondary])
        return took
    }

    func trial(_ k: Int) async throws -> Trial {
        let duration = 1500
        let sender = try lab.spawn("send\(k)", netns: lab.pod(1), [
            lab.binary, "lab", "send", "--to", "\(Lab.publicExternalAddress):\(Lab.echoPort)",
            "--interval-ms", "\(intervalMs)", "--duration-ms", "\(duration)",
        ])
        try await Task.sleep(for: .milliseconds(500))
        try lab.setGateway(1, down: true)
        while sender.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        let text = try String(contentsOfFile: "\(lab.stateDir)/logs/send\(k).log", encoding: .utf8)
        let records = SenderLog.parse(text)
        let (outage, lost) = Self.outage(records)
        let known = [Lab.gatewayPublicAddress(1), Lab.gatewayPublicAddress(2)]
        let wrong = records.filter { $0.source != nil && !known.contains($0.source!) }.count
        let moved = records.last(where: { $0.source != nil })?.source == Lab.gatewayPublicAddress(2)
        return Trial(outage: outage, lost: lost, wrongSource: wrong, movedToSecondary: moved)
    }

    /// The longest run of unanswered datagrams: from its first being sent to the next answered
    /// one being sent (to the last sent when none was answered after it).
    public static func outage(_ records: [SenderRecord]) -> (Duration, Int) {
        let sorted = records.sorted { $0.seq < $1.seq }
        let lost = sorted.filter { $0.received == nil }.count
        var best: UInt64 = 0
        var i = 0
        while i < sorted.count {
            guard sorted[i].received == nil else { i += 1; continue }
            var end = i
            while end < sorted.count, sorted[end].received == nil { end += 1 }
            let until = end < sorted.count ? sorted[end].sent : sorted[sorted.count - 1].sent
            best = max(best, until >= sorted[i].sent ? until - sorted[i].sent : 0)
            i = end
        }
        return (.nanoseconds(Int64(best)), lost)
    }

    func waitSeen(_ source: String, within limit: Duration, pods: ClosedRange<Int> = 1...1, every: Duration = .milliseconds(100)) async throws {
        let deadline = ContinuousClock.now + limit
        for i in pods {
            while true {
                if try lab.probe(from: lab.pod(i), to: Lab.publicExternalAddress) == source { break }
                guard ContinuousClock.now < deadline else {
                    throw LabError("pod\(i) never reached \(Lab.publicExternalAddress) through \(source) within \(limit)")
                }
                try await Task.sleep(for: every)
            }
        }
    }

    /// How many lines with `marker` the agents have logged so far, every node together
    /// (`gateway switched`, `state=Unhealthy`).
    func logged(_ marker: String) -> Int {
        (1...lab.nodes).reduce(0) { n, i in
            let text = (try? String(contentsOfFile: "\(lab.stateDir)/logs/agent-node\(i).log", encoding: .utf8)) ?? ""
            return n + text.components(separatedBy: marker).count - 1
        }
    }
}
