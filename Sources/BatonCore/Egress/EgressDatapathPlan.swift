import BatonAPI

/// What one node's egress data plane must look like, decided from the EgressTunnels, the
/// placed policies and what this node's agent may announce. Pure: `BatonDataplane` renders it
/// into one nftables table and one batch of netlink changes.
///
/// The design follows egressgateway's:
/// - Every node has a VXLAN device with the MAC and tunnel IP the controller allocated, and a
///   static FDB and neighbour entry for every other node (no learning).
/// - Every node `N` gets a routing table numbered by N's `mark`, with one default route through
///   N's tunnel IP, and a rule `fwmark MARK → table MARK`.
/// - On a node whose pods match a policy whose EIP is on another node `G`, the matching packets
///   get G's mark and so leave through the tunnel to G.
/// - On the EIP's node, matching traffic leaving by the parent interface is SNATed to the EIP
///   (masqueraded for `useNodeIP`). Connections that came through the tunnel remember their
///   origin node's mark, and their replies go back through the tunnel.
/// - Matching traffic that would leave by the parent interface without being SNATed is dropped:
///   a pod's packet never leaves with the node's own address (for example while the EIP is
///   fenced, or placed nowhere).
public struct EgressDatapathPlan: Sendable, Hashable {
    /// Another node, reached through the tunnel.
    public struct Peer: Sendable, Hashable {
        public var node: String
        public var mark: UInt32
        public var mac: String
        public var tunnelIPv4: IPAddress
        /// The node's own (parent interface) address: the VXLAN destination.
        public var nodeIPv4: IPAddress
    }

    /// One policy as this node enforces it.
    public struct Rule: Sendable, Hashable {
        public enum Action: Sendable, Hashable {
            /// The EIP is announced here: SNAT to it.
            case snat(IPAddress)
            /// `useNodeIP` and placed here: masquerade.
            case masquerade
            /// The EIP is on another node: mark for its table (local pods only).
            case tunnel(mark: UInt32, node: String)
            /// No usable EIP: the traffic is dropped rather than leave with the node's address.
            case drop(reason: String)
        }

        public var policy: EgressPolicyRef
        public var sources: [IPRange]
        /// Destinations to match; empty with `excludeCluster` means "anything outside the cluster".
        public var destinations: [IPRange]
        public var excludeCluster: Bool
        public var action: Action
    }

    public var node: String
    public var mark: UInt32?
    public var mac: String?
    public var tunnelIPv4: IPAddress?
    public var tunnelPrefix: Int
    public var nodeIPv4: IPAddress?
    public var peers: [Peer]
    /// Policy rules, in priority order (a packet takes the first that matches).
    public var rules: [Rule]
    /// Cluster networks (pod and service CIDRs, node addresses): never egress destinations.
    public var cluster: [IPRange]
    /// EIPs this node binds on its parent interface.
    public var eips: Set<IPAddress>

    /// One other node as the plan needs it, read from its EgressTunnel.
    public struct Tunnel: Sendable, Hashable {
        public var node: String
        public var mark: UInt32?
        public var mac: String?
        public var tunnelIPv4: IPAddress?
        public var nodeIPv4: IPAddress?

        public init(node: String, mark: UInt32?, mac: String?, tunnelIPv4: IPAddress?, nodeIPv4: IPAddress?) {
            self.node = node
            self.mark = mark
            self.mac = mac
            self.tunnelIPv4 = tunnelIPv4
            self.nodeIPv4 = nodeIPv4
        }

        /// From an EgressTunnel's status (`mark` as `0x…`, `tunnel.mac/ipv4`, `tunnel.parent.ipv4`).
        public init(node: String, status: EgressTunnelStatus?) {
            self.init(node: node, mark: status?.markValue, mac: status?.tunnel?.mac,
                      tunnelIPv4: status?.tunnel?.ipv4.flatMap(IPAddress.init),
                      nodeIPv4: status?.tunnel?.parent?.ipv4.flatMap(IPAddress.init))
        }
    }

    /// One policy as the plan needs it: where it is placed and what it matches.
    public struct Policy: Sendable, Hashable {
        public var ref: EgressPolicyRef
        public var podSubnets: [String]
        public var destSubnets: [String]
        public var priority: Int64
        /// The placed node and EIP (from the policy's status); nil node: placed nowhere.
        public var node: String?
        public var eipv4: IPAddress?
        public var useNodeIP: Bool

        public init(ref: EgressPolicyRef, podSubnets: [String], destSubnets: [String], priority: Int64 = 0,
                    node: String?, eipv4: IPAddress?, useNodeIP: Bool) {
            self.ref = ref
            self.podSubnets = podSubnets
            self.destSubnets = destSubnets
            self.priority = priority
            self.node = node
            self.eipv4 = eipv4
            self.useNodeIP = useNodeIP
        }
    }

    /// Decides node `node`'s data plane. `announced`: the EIPs its agent may announce now (placed
    /// here and not fenced); `clusterCIDRs`: pod and service networks.
    public init(node: String, tunnels: [Tunnel], policies: [Policy], announced: Set<String>, clusterCIDRs: [String],
                tunnelPrefix: Int = 16) {
        self.node = node
        self.tunnelPrefix = tunnelPrefix
        let me = tunnels.first { $0.node == node }
        mark = me?.mark
        mac = me?.mac
        tunnelIPv4 = me?.tunnelIPv4
        nodeIPv4 = me?.nodeIPv4
        var peers: [Peer] = []
        for t in tunnels.sorted(by: { $0.node < $1.node }) where t.node != node {
            guard let mark = t.mark, let mac = t.mac, let tip = t.tunnelIPv4, let nip = t.nodeIPv4 else { continue }
            peers.append(Peer(node: t.node, mark: mark, mac: mac, tunnelIPv4: tip, nodeIPv4: nip))
        }
        self.peers = peers
        let peerByNode = Dictionary(peers.map { ($0.node, $0) }, uniquingKeysWith: { a, _ in a })

        var cluster = clusterCIDRs.compactMap(IPSyntax.poolEntry).filter { $0.family == .v4 }
        for t in tunnels { if let ip = t.nodeIPv4 { cluster.append(IPRange(first: ip, last: ip)!) } }
        self.cluster = cluster

        var rules: [Rule] = []
        var eips: Set<IPAddress> = []
        // A policy with destSubnet is more specific than one without and goes first; then priority
        // (lower first), then name, so every node orders the rules alike.
        let ordered = policies.sorted {
            ($0.destSubnets.isEmpty ? 1 : 0, $0.priority, $0.ref) < ($1.destSubnets.isEmpty ? 1 : 0, $1.priority, $1.ref)
        }
        for p in ordered {
            let sources = p.podSubnets.compactMap(IPSyntax.poolEntry).filter { $0.family == .v4 }
            guard !sources.isEmpty else { continue }
            let destinations = p.destSubnets.compactMap(IPSyntax.poolEntry).filter { $0.family == .v4 }
            let action: Rule.Action
            if let at = p.node, !at.isEmpty {
                if at == node {
                    if p.useNodeIP {
                        action = .masquerade
                    } else if let eip = p.eipv4, announced.contains(eip.description) {
                        action = .snat(eip)
                        eips.insert(eip)
                    } else {
                        action = .drop(reason: "EIP not announced here (fenced or not yet announced)")
                    }
                } else if let peer = peerByNode[at] {
                    action = .tunnel(mark: peer.mark, node: at)
                } else {
                    action = .drop(reason: "node \(at) has no usable EgressTunnel")
                }
            } else {
                action = .drop(reason: "placed on no node")
            }
            rules.append(Rule(policy: p.ref, sources: sources, destinations: destinations,
                              excludeCluster: destinations.isEmpty, action: action))
        }
        self.rules = rules
        self.eips = eips
    }

    /// The pod sources whose tracked connections must be forgotten when the node goes from `old`
    /// to this plan: those of every policy whose action changed. Conntrack keeps the NAT it chose
    /// for a connection's first packet, so without this a flow that was tunnelled keeps leaving
    /// unSNATed once the EIP comes here (and is dropped by the guard until it times out), and a
    /// flow SNATed here keeps its SNAT after the EIP left.
    public func sourcesToForget(since old: EgressDatapathPlan) -> [IPRange] {
        let before = Dictionary(old.rules.map { ($0.policy, $0) }, uniquingKeysWith: { a, _ in a })
        var out: [IPRange] = []
        for rule in rules {
            guard let was = before[rule.policy], was.action != rule.action else { continue }
            for s in rule.sources where !out.contains(s) { out.append(s) }
        }
        return out
    }
}
