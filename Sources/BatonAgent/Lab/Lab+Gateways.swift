import BatonDataplane
import Foundation

/// Two NAT gateways in front of the external host, in the shape of the StaticRoute seed's test
/// (`curl ifconfig.me/ip` answers with the NAT gateway's public address):
/// - `PREFIX-gw1`, `PREFIX-gw2`: `eth0` on the LAN (192.168.77.51, .52), `eth1` on a "public"
///   segment 203.0.113.0/24 (bridge `br1` in `PREFIX-lan`) as 203.0.113.1 and .2, forwarding,
///   masquerading what leaves by `eth1`, and routes to the pod subnets through their nodes.
/// - The external host gets `eth1` = 203.0.113.100 on that segment: its echo service (UDP 9000)
///   answers with the source it saw, the public address of the gateway a node's traffic took.
/// Nodes have no route to 203.0.113.0/24 of their own: only a StaticRoute gets them there.
extension Lab {
    public static let gatewayCount = 2
    public static func gatewayAddress(_ i: Int) -> String { "\(lanPrefix).\(50 + i)" }
    public static func gatewayPublicAddress(_ i: Int) -> String { "203.0.113.\(i)" }
    /// The external host's public address: the StaticRoutes' destination in the lab.
    public static let publicExternalAddress = "203.0.113.100"

    public func gateway(_ i: Int) -> String { "\(prefix)-gw\(i)" }

    func buildGateways() throws {
        try ip((1...Self.gatewayCount).map { "netns add \(gateway($0))" })
        var lanCmds = ["link add br1 type bridge", "link set br1 up",
                       "link add pext type veth peer name eth1 netns \(external)", "link set pext master br1 up"]
        for i in 1...Self.gatewayCount {
            lanCmds += ["link add g\(i) type veth peer name eth0 netns \(gateway(i))", "link set g\(i) master br0 up",
                        "link add p\(i) type veth peer name eth1 netns \(gateway(i))", "link set p\(i) master br1 up"]
        }
        try ip(lanCmds, netns: lan)
        try ip(["link set eth1 up", "address add \(Self.publicExternalAddress)/24 dev eth1"], netns: external)
        for i in 1...Self.gatewayCount {
            try ip(["link set lo up", "link set eth0 up", "link set eth1 up",
                    "address add \(Self.gatewayAddress(i))/24 dev eth0",
                    "address add \(Self.gatewayPublicAddress(i))/24 dev eth1"]
                   // The pod subnets are behind their nodes, as a VPC routes them.
                   + (1...nodes).map { "route add 10.244.\($0).0/24 via \(Self.nodeAddress($0))" }, netns: gateway(i))
            try sysctl(gateway(i), "net/ipv4/ip_forward", "1")
            _ = try Command.run("ip", ["netns", "exec", gateway(i), try Command.locate("nft"), "-f", "-"], input: """
                table ip baton_lab_nat {
                  chain post {
                    type nat hook postrouting priority srcnat; policy accept;
                    oifname "eth1" masquerade
                  }
                }

                """)
        }
    }

    /// Takes gateway `i` off the LAN (`down: true`) or puts it back: a gateway that dies.
    /// Its routes to the pod subnets went with the link, and come back with it.
    public func setGateway(_ i: Int, down: Bool) throws {
        if down {
            try ip(["link set eth0 down"], netns: gateway(i))
        } else {
            try ip(["link set eth0 up"] + (1...nodes).map { "route replace 10.244.\($0).0/24 via \(Self.nodeAddress($0))" }, netns: gateway(i))
        }
    }
}
