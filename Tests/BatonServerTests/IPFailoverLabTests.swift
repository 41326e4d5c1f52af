import BatonAPI
import BatonAgent
import BatonDataplane
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The agent's managed mode for real, in network namespaces made by `Lab` (never the machine's
/// own): the agents of two nodes run an applied IPFailover with VRRP, elect one Master, hand
/// the VIP over when its agent stops, and leave nothing behind when it is deleted.
@Suite(.serialized, .enabled(if: LabPrerequisites.met,
                             "needs BATON_LAB_TESTS=1, root, iproute2 and nftables, and a built baton binary"))
struct IPFailoverLabTests: EgressProcessSuite {
    static let vip = "192.168.77.150"

    static func manifest(_ extra: String = "") -> String {
        """
        apiVersion: baton.io/v1
        kind: IPFailover
        metadata:
          name: lab-vips
        spec:
          virtualIPs: \(vip)
          monitorPort: 0
          nodeSelector:
            matchLabels:
              egress: "true"
        \(extra)
        """
    }

    func apply(_ lab: Lab, _ yaml: String) async throws {
        let path = lab.stateDir + "/ipf.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        try await lab.runInServer(["apply", "-f", path])
    }

    /// The nodes whose eth0 holds the VIP.
    func holders(_ lab: Lab) throws -> [Int] {
        try (1...lab.nodes).filter { i in
            try Command.run("ip", ["-n", lab.node(i), "-4", "addr", "show", "dev", "eth0"]).contains("\(Self.vip)/32")
        }
    }

    /// node → state of its one instance, from the IPFailover's status.
    func states(_ lab: Lab) async throws -> [String: String] {
        let out = try await lab.runInServer(["get", "ipf", "lab-vips", "-o", "json"])
        guard let object = try? Resource(json: JSONValue.parse(Data(out.utf8))),
              let nodes = object.decodeStatus(IPFailoverStatus.self)?.nodes else { return [:] }
        return nodes.compactMapValues { $0.instances?.first?.state }
    }

    /// Baton's nftables tables admitting VRRP in node `i`.
    func vrrpTables(_ lab: Lab, _ i: Int) throws -> [String] {
        try Command.run("ip", ["netns", "exec", lab.node(i), "nft", "list", "tables"])
            .split(separator: "\n").map(String.init).filter { $0.contains("baton_vrrp") }
    }

    func stopAgent(_ lab: Lab, _ i: Int, _ signal: Int32) async throws {
        let pid = try #require(lab.recordedPIDs()["agent-node\(i)"])
        #expect(kill(pid, signal) == 0)
        try await waitExited(pid, "agent-node\(i)")
    }

    @Test func twoNodesElectOneMasterTheVIPMovesWhenItsAgentStopsAndDeletingItRemovesItEverywhere() async throws {
        let lab = Lab(prefix: "bv\(getpid() % 100_000)", nodes: 2, binary: BatonBinary.path!)
        defer { lab.down { _ in } }
        try await lab.up { _ in }
        try await apply(lab, Self.manifest())

        // OpenShift's priorities: node2 (.12, slot 12) prefers the instance, 255 − 12 = 243;
        // node1 (.11) is a backup at 11 + random(0..<32). One Master, the other Backup.
        _ = try await waitFor("one node holding the VIP", timeout: .seconds(15)) { try holders(lab) == [2] ? true : nil }
        _ = try await waitFor("the status: node2 master, node1 backup") {
            try await states(lab) == ["node2": "master", "node1": "backup"] ? true : nil
        }
        #expect(try holders(lab) == [2])
        #expect(try vrrpTables(lab, 1).count == 1 && vrrpTables(lab, 2).count == 1, "IPTABLES_CHAIN's default: a table admitting VRRP")

        // node2's agent stops (SIGTERM): its speaker sends priority 0, node1 takes over within
        // Skew_Time, and node2 keeps neither the VIP nor the table.
        let stoppedAt = ContinuousClock.now
        try await stopAgent(lab, 2, SIGTERM)
        _ = try await waitFor("node1 holding the VIP", timeout: .seconds(5)) { try holders(lab) == [1] ? true : nil }
        #expect(ContinuousClock.now - stoppedAt < .seconds(3), "a priority-0 handover, not Master_Down_Interval")
        #expect(try vrrpTables(lab, 2).isEmpty)
        _ = try await waitFor("node1 master in the status; node2's entry removed") {
            try await states(lab) == ["node1": "master"] ? true : nil
        }

        // node2 comes back: the instance it prefers starts as MASTER and preempts at once, as keepalived's would.
        try lab.startAgent(2)
        _ = try await waitFor("node2 holding the VIP again", timeout: .seconds(15)) { try holders(lab) == [2] ? true : nil }

        // Deleted: every node drops the VIP and the table; the agents keep running.
        try await lab.runInServer(["delete", "ipf", "lab-vips"])
        _ = try await waitFor("no node holding the VIP", timeout: .seconds(5)) {
            try holders(lab).isEmpty && vrrpTables(lab, 1).isEmpty && vrrpTables(lab, 2).isEmpty ? true : nil
        }
        for i in 1...2 { #expect(kill(try #require(lab.recordedPIDs()["agent-node\(i)"]), 0) == 0, "agent-node\(i) runs on") }

        // An interface the nodes do not have yet: each speaker fails, the status says so, and
        // the agent starts it again once the interface is there (its retry schedule).
        try await apply(lab, """
            apiVersion: baton.io/v1
            kind: IPFailover
            metadata:
              name: later
            spec:
              virtualIPs: 10.99.0.1
              interface: eth9
              monitorPort: 0
              iptablesChain: ""
            """)
        func entry(_ node: String) async throws -> IPFailoverStatus.NodeState? {
            let out = try await lab.runInServer(["get", "ipf", "later", "-o", "json"])
            return (try? Resource(json: JSONValue.parse(Data(out.utf8))))?.decodeStatus(IPFailoverStatus.self)?.nodes?[node]
        }
        for i in 1...2 {
            let failed = try await waitFor("node\(i) reporting the failed speaker") { () -> String? in
                try await entry("node\(i)")?.message
            }
            #expect(failed.contains("the speaker failed") && failed.contains("eth9"), "\(failed)")
        }
        for i in 1...2 { try lab.ip(["link add eth9 type veth peer name eth9p", "link set eth9p up", "link set eth9 up", "address add 10.99.0.\(10 + i)/24 dev eth9"], netns: lab.node(i)) }
        for i in 1...2 {
            _ = try await waitFor("node\(i) running it on eth9", timeout: .seconds(40)) { () -> Bool? in
                let e = try await entry("node\(i)")
                return e?.message == nil && e?.instances?.first?.state == "master" ? true : nil
            }
        }
    }

    /// A SIGKILLed agent leaves its speaker's VIP on the node; when it starts again, the
    /// speaker removes it before starting as Backup, as keepalived does. With `nopreempt` the
    /// new Backup then never takes the VIP back, so a VIP still there would be the leftover.
    @Test func aKilledAgentsLeftoverVIPIsRemovedWhenItStartsAgain() async throws {
        let lab = Lab(prefix: "bk\(getpid() % 100_000)", nodes: 2, binary: BatonBinary.path!)
        defer { lab.down { _ in } }
        try await lab.up { _ in }
        try await apply(lab, Self.manifest("  preemption: nopreempt"))
        let master = try await waitFor("one node holding the VIP", timeout: .seconds(15)) { () -> Int? in
            let h = try holders(lab)
            return h.count == 1 ? h[0] : nil
        }
        let other = 3 - master

        try await stopAgent(lab, master, SIGKILL)
        // The killed speaker left its VIP; the other node takes over after Master_Down_Interval.
        _ = try await waitFor("the other node taking over", timeout: .seconds(10)) { try holders(lab).contains(other) ? true : nil }
        #expect(try holders(lab) == [1, 2], "the killed node's VIP is left behind")

        try lab.startAgent(master)
        _ = try await waitFor("the leftover VIP removed", timeout: .seconds(10)) { try holders(lab) == [other] ? true : nil }
        _ = try await waitFor("the restarted node a Backup in the status") {
            try await states(lab)["node\(master)"] == "backup" ? true : nil
        }
        #expect(try holders(lab) == [other])
        let log = try String(contentsOfFile: "\(lab.stateDir)/logs/agent-node\(master).log", encoding: .utf8)
        #expect(log.contains("removing virtual addresses left on the interface by an earlier run"))
    }

    /// A Baton node and a keepalived configured as the ipfailover pod would configure it for the
    /// same IPFailover (`OPENSHIFT_HA_CONFIG_NAME` = its name: instance `lab_vips_VIP_1`, VRID
    /// 11, VRRPv2 with `auth_pass lab-vips`) share the election: Baton (243) is Master, the
    /// VIP goes to keepalived when Baton's agent stops, and comes back when it returns.
    @Test(.enabled(if: (try? Command.locate("keepalived")) != nil, "needs keepalived (Debian's package)"))
    func aBatonNodeAndAKeepalivedIPFailoverPodWithTheSameSettingsShareTheElection() async throws {
        let keepalived = try Command.locate("keepalived")
        let lab = Lab(prefix: "bq\(getpid() % 100_000)", nodes: 2, binary: BatonBinary.path!)
        defer { lab.down { _ in } }
        try await lab.up(startAgents: false) { _ in }
        // What generate_failover_config writes for node1 (.11, 2 replicas: not its preferred
        // instance, so a Backup at slot + random), without the check (MONITOR_PORT 0).
        let conf = """
            global_defs {
                router_id node1
            }
            vrrp_instance lab_vips_VIP_1 {
                interface eth0
                virtual_router_id 11
                priority 30
                preempt_delay 300
                authentication {
                    auth_type PASS
                    auth_pass lab-vips
                }
                virtual_ipaddress {
                    \(Self.vip) dev eth0
                }
            }

            """
        let path = lab.stateDir + "/keepalived.conf"
        try conf.write(toFile: path, atomically: true, encoding: .utf8)
        try lab.spawn("keepalived-node1", netns: lab.node(1), [keepalived, "-n", "-l", "-D", "-P", "-f", path,
                                                               "-p", lab.stateDir + "/keepalived.pid", "-r", lab.stateDir + "/vrrp.pid"])
        _ = try await waitFor("keepalived holding the VIP alone", timeout: .seconds(10)) { try holders(lab) == [1] ? true : nil }

        try lab.startAgent(2)
        try await apply(lab, Self.manifest())
        // Baton's instance starts as keepalived's MASTER-start would: it outranks keepalived (243
        // against 30) and preempts at once; keepalived accepts its adverts (same VRID, password).
        _ = try await waitFor("Baton taking the VIP over from keepalived", timeout: .seconds(10)) { try holders(lab) == [2] ? true : nil }
        _ = try await waitFor("node2 master in the status") { try await states(lab) == ["node2": "master"] ? true : nil }

        let stoppedAt = ContinuousClock.now
        try await stopAgent(lab, 2, SIGTERM)
        _ = try await waitFor("keepalived taking the VIP back", timeout: .seconds(5)) { try holders(lab) == [1] ? true : nil }
        #expect(ContinuousClock.now - stoppedAt < .seconds(3), "keepalived heard Baton's priority-0 advert")

        try lab.startAgent(2)
        _ = try await waitFor("Baton preempting keepalived again", timeout: .seconds(10)) { try holders(lab) == [2] ? true : nil }
    }
}
