import BatonAPI
import BatonAgent
import BatonDataplane
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// StaticRoutes for real, in network namespaces made by `Lab` (never the machine's own): two
/// NAT gateways in front of the external host's public address 203.0.113.100, whose echo
/// service answers with the gateway's public address (203.0.113.1 or .2), as the seed's
/// `curl ifconfig.me/ip` does. The lab's egress policy is deleted first, so that pods' traffic
/// follows the nodes' routes only.
@Suite(.serialized, .enabled(if: LabPrerequisites.met,
                             "needs BATON_LAB_TESTS=1, root, iproute2 and nftables, and a built baton binary (.ci/run runs these as root, on their own after the other tests)"))
struct StaticRouteLabTests: EgressProcessSuite {
    static let destination = Lab.publicExternalAddress
    static let primary = Lab.gatewayAddress(1), secondary = Lab.gatewayAddress(2)
    static let primaryPublic = Lab.gatewayPublicAddress(1), secondaryPublic = Lab.gatewayPublicAddress(2)

    static func manifest(_ name: String, spec: String) -> String {
        """
        apiVersion: networking.digitalocean.com/v1
        kind: StaticRoute
        metadata:
          name: \(name)
        spec:
        \(spec)
        """
    }

    /// The seed's primary.yaml and secondary.yaml, with the lab's addresses.
    static func seed(_ name: String, gateway: String) -> String {
        manifest(name, spec: """
              destinations:
                - "\(destination)"
              gateway: "\(gateway)"
            """)
    }

    static func failover(_ name: String = "failover", holdDown: String = "1s", failback: Bool = true, destination: String = destination) -> String {
        manifest(name, spec: """
              destinations:
                - "\(destination)"
              gateways:
                - address: "\(primary)"
                  priority: 0
                - address: "\(secondary)"
                  priority: 10
              healthCheck:
                holdDown: \(holdDown)
                failback: \(failback)
            """)
    }

    func up(_ tag: String, nodes: Int = 2) async throws -> Lab {
        let lab = Lab(prefix: "s\(tag)\(getpid() % 100_000)", nodes: nodes, binary: BatonBinary.path!)
        try await lab.up { _ in }
        try await lab.runInServer(["delete", "egressclusterpolicy", "lab-pods"], retryFor: 10)
        return lab
    }

    func apply(_ lab: Lab, _ yaml: String) async throws {
        let path = lab.stateDir + "/sr-\(UUID().uuidString).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        try await lab.runInServer(["apply", "-f", path])
    }

    /// The public address the external host saw for one datagram from pod `i` (nil: no answer).
    func seenFrom(_ lab: Lab, pod i: Int) throws -> String? {
        try lab.probe(from: lab.pod(i), to: Self.destination)
    }

    /// Waits until every pod is seen as `publicAddress`.
    func waitSeen(_ lab: Lab, _ publicAddress: String, pods: ClosedRange<Int>? = nil, timeout: Duration = .seconds(20)) async throws {
        for i in pods ?? 1...lab.nodes {
            _ = try await waitFor("pod\(i) seen as \(publicAddress)", timeout: timeout) { try seenFrom(lab, pod: i) == publicAddress ? true : nil }
        }
    }

    /// Node `i`'s routes with Baton's protocol number, in every table.
    func batonRoutes(_ lab: Lab, node i: Int) throws -> String {
        try Command.run("ip", ["-n", lab.node(i), "route", "show", "table", "all", "proto", "217"])
            + Command.run("ip", ["-n", lab.node(i), "-6", "route", "show", "table", "all", "proto", "217"])
    }

    func status(_ lab: Lab, _ name: String) async throws -> StaticRouteStatus? {
        let json = try await lab.runInServer(["get", "sr", name, "-o", "json"])
        return try Resource(json: try JSONValue.parse(Data(json.utf8))).decodeStatus(StaticRouteStatus.self)
    }

    /// Waits until every node reports `name` Ready through `gateway`.
    func waitReady(_ lab: Lab, _ name: String, via gateway: String) async throws -> StaticRouteStatus {
        try await waitFor("every node to report \(name) Ready via \(gateway)") { () -> StaticRouteStatus? in
            guard let s = try await status(lab, name), let nodes = s.nodes, nodes.count == lab.nodes,
                  nodes.values.allSatisfy({ $0.phase == "Ready" && $0.gateway == gateway }) else { return nil }
            return s
        }
    }

    func events(_ lab: Lab) async throws -> String { try await lab.runInServer(["events"]) }

    @Test func theSeedsManifestsApplyVerbatimAndTheManualProcedureAndAnInPlaceEditSwitchEveryNode() async throws {
        let lab = try await up("a")
        defer { lab.down { _ in } }
        // Nothing routes the destination before a StaticRoute does.
        #expect(try seenFrom(lab, pod: 1) == nil)

        try await apply(lab, Self.seed("primary", gateway: Self.primary))
        try await waitSeen(lab, Self.primaryPublic)
        for i in 1...lab.nodes {
            #expect(try batonRoutes(lab, node: i).contains("\(Self.destination) via \(Self.primary) dev eth0"))
        }
        let ready = try await waitReady(lab, "primary", via: Self.primary)
        #expect(ready.nodes?.values.allSatisfy { $0.health?.first?.state == "Healthy" } == true)
        let table = try await lab.runInServer(["get", "sr", "-o", "wide"])
        #expect(table.contains("IN USE") && table.contains("READY"))
        #expect(table.contains("[\"\(Self.destination)\"]   \(Self.primary)   \(Self.primary)   \(lab.nodes)/\(lab.nodes)"), "\(table)")

        // The seed's manual failover: delete the primary, apply the secondary.
        try await lab.runInServer(["delete", "sr", "primary"])
        try await apply(lab, Self.seed("secondary", gateway: Self.secondary))
        try await waitSeen(lab, Self.secondaryPublic)
        for i in 1...lab.nodes {
            let routes = try batonRoutes(lab, node: i)
            #expect(routes.contains("via \(Self.secondary)") && !routes.contains("via \(Self.primary)"), "node\(i): \(routes)")
        }

        // spec.gateway edited in place (the original's issue #23): every node follows, and says so.
        try await apply(lab, Self.seed("secondary", gateway: Self.primary))
        try await waitSeen(lab, Self.primaryPublic)
        _ = try await waitReady(lab, "secondary", via: Self.primary)
        let log = try await events(lab)
        for i in 1...lab.nodes {
            #expect(log.contains("node node\(i): gateway \(Self.secondary) -> \(Self.primary): the StaticRoute's gateways changed"), "\(log)")
        }

        // Deleting the StaticRoute removes its routes on every node.
        try await lab.runInServer(["delete", "sr", "secondary"])
        for i in 1...lab.nodes {
            _ = try await waitFor("node\(i)'s routes removed") { try batonRoutes(lab, node: i).isEmpty ? true : nil }
        }
        #expect(try seenFrom(lab, pod: 1) == nil)
    }

    @Test(arguments: [true, false])
    func killingThePrimarySwitchesEveryNodeAndItsReturnFollowsFailback(failback: Bool) async throws {
        let lab = try await up(failback ? "b" : "c")
        defer { lab.down { _ in } }
        try await apply(lab, Self.failover(holdDown: "1s", failback: failback))
        try await waitSeen(lab, Self.primaryPublic)
        _ = try await waitReady(lab, "failover", via: Self.primary)

        try lab.setGateway(1, down: true)
        try await waitSeen(lab, Self.secondaryPublic)
        let moved = try await waitReady(lab, "failover", via: Self.secondary)
        for (node, entry) in moved.nodes ?? [:] {
            #expect(entry.lastSwitchTime != nil, "\(node)")
            #expect(entry.health?.first { $0.address == Self.primary }?.state == "Unhealthy", "\(node)")
        }
        let log = try await events(lab)
        for i in 1...lab.nodes {
            #expect(log.contains("node node\(i): gateway \(Self.primary) -> \(Self.secondary): gateway \(Self.primary) is unhealthy"), "\(log)")
        }

        try lab.setGateway(1, down: false)
        if failback {
            try await waitSeen(lab, Self.primaryPublic)
            _ = try await waitReady(lab, "failover", via: Self.primary)
            let back = try await events(lab)
            #expect(back.contains("is healthy again and past its hold-down: failing back from \(Self.secondary)"), "\(back)")
        } else {
            // The primary answers again: every node sees it healthy, and stays where it is
            // well past the 1 s hold-down.
            _ = try await waitFor("the primary healthy again on every node") { () -> Bool? in
                let s = try await status(lab, "failover")
                return s?.nodes?.values.allSatisfy { $0.health?.first { $0.address == Self.primary }?.state == "Healthy" } == true ? true : nil
            }
            let healthyAt = ContinuousClock.now
            while ContinuousClock.now - healthyAt < .seconds(3) {
                for i in 1...lab.nodes { #expect(try seenFrom(lab, pod: i) == Self.secondaryPublic) }
            }
            #expect(try await status(lab, "failover")?.nodes?.values.allSatisfy { $0.gateway == Self.secondary } == true)
        }
    }

    @Test func eachNodeUsesTheGatewayThatWorksForItAndConflictsAreSettledByPriority() async throws {
        let lab = try await up("d")
        defer { lab.down { _ in } }
        // node2 cannot reach the primary; node1 can.
        _ = try Command.run("ip", ["netns", "exec", lab.node(2), "nft", "-f", "-"], input: """
            table ip lab_cut {
              chain out {
                type filter hook output priority 0; policy accept;
                ip daddr \(Self.primary) drop
              }
            }

            """)
        try await apply(lab, Self.failover(holdDown: "1s"))
        try await waitSeen(lab, Self.primaryPublic, pods: 1...1)
        try await waitSeen(lab, Self.secondaryPublic, pods: 2...2)
        let s = try await waitFor("node1 on the primary, node2 on the secondary") { () -> StaticRouteStatus? in
            let s = try await status(lab, "failover")
            return s?.nodes?["node1"]?.gateway == Self.primary && s?.nodes?["node2"]?.gateway == Self.secondary ? s : nil
        }
        #expect(s.nodes?["node2"]?.phase == "Ready")

        // A second StaticRoute for the same destination, through the secondary at priority 5:
        // the failover route (priority 0) keeps it; both say so; nothing fails with "file exists".
        try await apply(lab, Self.manifest("rival", spec: """
              destinations: ["\(Self.destination)"]
              gateways: [{address: "\(Self.secondary)", priority: 5}]
            """))
        let rival = try await waitFor("the rival's status on every node") { () -> StaticRouteStatus? in
            let r = try await status(lab, "rival")
            return r?.nodes?.count == lab.nodes ? r : nil
        }
        for (node, entry) in rival.nodes ?? [:] {
            #expect(entry.phase == "NotReady", "\(node)")
            #expect(entry.message?.contains("by failover") == true, "\(node): \(entry.message ?? "")")
            #expect(entry.conflicts == [.init(destination: "\(Self.destination)/32", staticRoute: "failover", winner: false)])
        }
        let winner = try await waitFor("the failover route's conflict noted") { () -> StaticRouteStatus? in
            let w = try await status(lab, "failover")
            return w?.nodes?.values.allSatisfy { $0.conflicts?.first?.winner == true } == true ? w : nil
        }
        #expect(winner.nodes?.values.allSatisfy { $0.phase == "Ready" } == true)
        try await waitSeen(lab, Self.primaryPublic, pods: 1...1)
        // The winner goes: the rival takes the destination over.
        try await lab.runInServer(["delete", "sr", "failover"])
        try await waitSeen(lab, Self.secondaryPublic)

        // A route Baton did not make is never replaced or removed.
        try lab.ip(["route add 198.51.100.0/24 via \(Self.primary)"], netns: lab.node(1))
        try await apply(lab, Self.seed("foreign", gateway: Self.secondary).replacingOccurrences(of: "\"\(Self.destination)\"", with: "\"198.51.100.0/24\""))
        _ = try await waitFor("node1 to report the foreign route") { () -> Bool? in
            let f = try await status(lab, "foreign")
            return f?.nodes?["node1"]?.phase == "Failed" && f?.nodes?["node1"]?.message?.contains("that Baton did not make") == true ? true : nil
        }
        let mainRoutes = try Command.run("ip", ["-n", lab.node(1), "route", "show", "198.51.100.0/24"])
        #expect(mainRoutes.contains("via \(Self.primary)") && !mainRoutes.contains("proto 217"))
        try await lab.runInServer(["delete", "sr", "foreign"])
        #expect(try Command.run("ip", ["-n", lab.node(1), "route", "show", "198.51.100.0/24"]).contains("via \(Self.primary)"))
    }

    @Test func aDefaultRouteKeepsAgentsConnectedARestartDropsNothingAndCleanupLeavesNothing() async throws {
        let lab = Lab(prefix: "se\(getpid() % 100_000)", nodes: 2, binary: BatonBinary.path!)
        defer { lab.down { _ in } }
        try await lab.up(startAgents: false) { _ in }
        try await lab.runInServer(["delete", "egressclusterpolicy", "lab-pods"], retryFor: 10)
        let before = try (1...2).map { try LabTests.snapshot(lab, node: $0) }
        for i in 1...2 { try lab.startAgent(i, extra: ["--cleanup"]) }

        try await apply(lab, Self.failover("default", holdDown: "1s", destination: "0.0.0.0/0"))
        try await waitSeen(lab, Self.primaryPublic)
        _ = try await waitReady(lab, "default", via: Self.primary)
        for i in 1...2 {
            #expect(try batonRoutes(lab, node: i).contains("default via \(Self.primary) dev eth0 table 217"))
            // The server keeps its path: the LAN, by the main table.
            let path = try Command.run("ip", ["-n", lab.node(i), "route", "get", Lab.serverAddress])
            #expect(path.contains("dev eth0") && !path.contains("via"), "\(path)")
        }
        try lab.setGateway(1, down: true)
        _ = try await waitReady(lab, "default", via: Self.secondary)
        try lab.setGateway(1, down: false)
        _ = try await waitReady(lab, "default", via: Self.primary)

        // An agent killed and started again: the route never leaves the table.
        let pid = try #require(lab.recordedPIDs()["agent-node1"])
        #expect(kill(pid, SIGKILL) == 0)
        try await waitExited(pid, "agent-node1")
        #expect(try batonRoutes(lab, node: 1).contains("default via \(Self.primary)"))
        try lab.startAgent(1, extra: ["--cleanup"])
        let restartedAt = ContinuousClock.now
        while ContinuousClock.now - restartedAt < .seconds(3) {
            #expect(try batonRoutes(lab, node: 1).contains("default via \(Self.primary)"))
            #expect(try seenFrom(lab, pod: 1) == Self.primaryPublic)
        }

        // --cleanup: each node as it was before its agent started.
        for i in 1...2 {
            let p = try #require(lab.recordedPIDs()["agent-node\(i)"])
            #expect(kill(p, SIGTERM) == 0)
            try await waitExited(p, "agent-node\(i)")
            #expect(try batonRoutes(lab, node: i).isEmpty)
            let after = try LabTests.snapshot(lab, node: i)
            for (b, a) in zip(before[i - 1], after) { #expect(a == b) }
        }
    }

    /// IPv6: the lab's LAN gets fd00:77::/64 (nodes ::1I, gateways ::5I) for this test; each
    /// node probes the gateways with ICMPv6, routes through the primary, and moves to the
    /// secondary when the primary's link is cut.
    @Test func anIPv6StaticRouteFailsOverAsAnIPv4OneDoes() async throws {
        let lab = try await up("f")
        defer { lab.down { _ in } }
        for i in 1...lab.nodes { try lab.ip(["address add fd00:77::1\(i)/64 dev eth0 nodad"], netns: lab.node(i)) }
        for g in 1...2 { try lab.ip(["address add fd00:77::5\(g)/64 dev eth0 nodad"], netns: lab.gateway(g)) }
        try await apply(lab, Self.manifest("v6", spec: """
              destinations: ["2001:db8:113::/64"]
              gateways:
                - {address: "fd00:77::51", priority: 0}
                - {address: "fd00:77::52", priority: 10}
              healthCheck: {holdDown: 1s}
            """))
        let ready = try await waitReady(lab, "v6", via: "fd00:77::51")
        #expect(ready.nodes?.values.allSatisfy { $0.health?.allSatisfy { $0.state == "Healthy" } == true } == true)
        for i in 1...lab.nodes {
            #expect(try Command.run("ip", ["-n", lab.node(i), "-6", "route", "show", "2001:db8:113::/64"]).contains("via fd00:77::51 dev eth0 proto 217"))
        }
        try lab.setGateway(1, down: true)
        _ = try await waitReady(lab, "v6", via: "fd00:77::52")
        for i in 1...lab.nodes {
            #expect(try Command.run("ip", ["-n", lab.node(i), "-6", "route", "show", "2001:db8:113::/64"]).contains("via fd00:77::52 dev eth0 proto 217"))
        }
        try await lab.runInServer(["delete", "sr", "v6"])
        for i in 1...lab.nodes {
            _ = try await waitFor("node\(i)'s IPv6 route removed") { try batonRoutes(lab, node: i).isEmpty ? true : nil }
        }
    }

    /// A TCP health check: each gateway is healthy while something listens on the port; a
    /// refused connection counts as a failed probe.
    @Test func aTCPHealthCheckFollowsTheListenerNotThePing() async throws {
        let lab = try await up("t")
        defer { lab.down { _ in } }
        func listener(_ g: Int) throws -> Int32 {
            try StaticRouteDataplaneLabTests.inNamespace(lab.gateway(g)) { () -> Int32 in
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var a = sockaddr_in()
                a.sin_family = sa_family_t(AF_INET)
                a.sin_port = UInt16(8080).bigEndian
                var on: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
                guard withUnsafePointer(to: &a, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0,
                      Glibc.listen(fd, 128) == 0 else { throw LabError("cannot listen in \(lab.gateway(g)): errno \(errno)") }
                return fd
            }
        }
        // Closed on every path: an open socket would keep its namespace alive after `down`.
        let first = Mutex<Int32?>(try listener(1)), second = try listener(2)
        defer {
            close(second)
            if let fd = first.withLock({ $0 }) { close(fd) }
        }
        try await apply(lab, Self.manifest("tcp", spec: """
              destinations: ["\(Self.destination)"]
              gateways:
                - {address: "\(Self.primary)", priority: 0}
                - {address: "\(Self.secondary)", priority: 10}
              healthCheck: {type: tcp, port: 8080, interval: 100ms, timeout: 100ms, holdDown: 1s}
            """))
        _ = try await waitFor("both gateways healthy by TCP") { () -> Bool? in
            let s = try await status(lab, "tcp")
            return s?.nodes?.count == lab.nodes && s?.nodes?.values.allSatisfy({ $0.gateway == Self.primary && $0.health?.allSatisfy { $0.state == "Healthy" } == true }) == true ? true : nil
        }
        try await waitSeen(lab, Self.primaryPublic)
        // The primary still answers pings, but nothing listens any more.
        if let fd = first.withLock({ fd in defer { fd = nil }; return fd }) { close(fd) }
        try await waitSeen(lab, Self.secondaryPublic)
        let moved = try await waitReady(lab, "tcp", via: Self.secondary)
        #expect(moved.nodes?.values.allSatisfy { $0.health?.first { $0.address == Self.primary }?.state == "Unhealthy" } == true)
    }

    /// Two healthy gateways at one priority share the route (the original's issue #22); one
    /// dies and the other carries it alone.
    @Test func healthyGatewaysAtOnePriorityShareTheRoute() async throws {
        let lab = try await up("m")
        defer { lab.down { _ in } }
        try await apply(lab, Self.manifest("ecmp", spec: """
              destinations: ["\(Self.destination)"]
              gateways: [{address: "\(Self.primary)", priority: 1}, {address: "\(Self.secondary)", priority: 1}]
            """))
        _ = try await waitFor("both gateways in use on every node") { () -> Bool? in
            let s = try await status(lab, "ecmp")
            return s?.nodes?.count == lab.nodes && s?.nodes?.values.allSatisfy({ $0.gateways == [Self.primary, Self.secondary] && $0.phase == "Ready" }) == true ? true : nil
        }
        for i in 1...lab.nodes {
            let r = try batonRoutes(lab, node: i)
            #expect(r.contains("nexthop via \(Self.primary) dev eth0") && r.contains("nexthop via \(Self.secondary) dev eth0"), "\(r)")
        }
        let table = try await lab.runInServer(["get", "sr", "ecmp", "-o", "wide"])
        #expect(table.contains("\(Self.primary),\(Self.secondary)   \(lab.nodes)/\(lab.nodes)"), "\(table)")
        try lab.setGateway(2, down: true)
        _ = try await waitFor("the primary alone on every node") { () -> Bool? in
            let s = try await status(lab, "ecmp")
            return s?.nodes?.values.allSatisfy({ $0.gateways == [Self.primary] && $0.phase == "Ready" }) == true ? true : nil
        }
        for i in 1...lab.nodes {
            #expect(try batonRoutes(lab, node: i).contains("\(Self.destination) via \(Self.primary) dev eth0"))
        }
        try await waitSeen(lab, Self.primaryPublic)
    }

    /// `baton lab bench staticroute`, briefly: every trial moves the pod's traffic to the
    /// secondary with a measured outage, and the short load run switches nothing.
    @Test func theBenchMeasuresAnOutageAndCountsNoSpuriousSwitch() async throws {
        let bench = StaticRouteBench(prefix: "sb\(getpid() % 100_000)", stateDir: nil, binary: BatonBinary.path!,
                                     trials: 2, loadSeconds: 2, loadProcesses: 2)
        defer { bench.lab.down { _ in } }
        let results = try await bench.run { _ in }
        #expect(results.trials.count == 2)
        for t in results.trials {
            #expect(t.movedToSecondary)
            #expect(t.outage > .zero && t.lost > 0)
            #expect(t.wrongSource == 0)
        }
        #expect(results.manualProcedure.map { $0 > .zero } == true)
        #expect(results.spuriousSwitches == 0 && results.falseUnhealthy == 0)
        #expect(results.table.contains { $0.contains("p99 outage") })
        #expect(bench.lab.existingNamespaces().isEmpty)
    }

}

/// How the bench reads a sender's log (no root needed).
@Suite struct StaticRouteBenchOutageTests {
    @Test func theOutageIsTheLongestRunOfUnansweredDatagrams() {
        let records = [
            SenderRecord(seq: 0, sent: 0, received: 1, source: "203.0.113.1"),
            SenderRecord(seq: 1, sent: 5, received: nil), SenderRecord(seq: 2, sent: 10, received: nil),
            SenderRecord(seq: 3, sent: 15, received: 16, source: "203.0.113.2"),
            SenderRecord(seq: 4, sent: 20, received: nil),
            SenderRecord(seq: 5, sent: 25, received: 26, source: "203.0.113.2"),
        ]
        let (outage, lost) = StaticRouteBench.outage(records)
        #expect(outage == .nanoseconds(10) && lost == 3)
    }
}
