import BatonAPI
import BatonCore
import BatonDataplane
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The static-route data plane on its own, IPv4 and IPv6, in two namespaces this suite makes
/// (never the machine's own): a node, and a gateway namespace answering for two gateway
/// addresses per family (ECMP). Its work runs on a thread moved into the node's namespace.
@Suite(.serialized, .enabled(if: LabPrerequisites.met,
                             "needs BATON_LAB_TESTS=1, root, iproute2 and nftables, and a built baton binary"))
struct StaticRouteDataplaneLabTests {
    let node = "sdp\(getpid() % 100_000)-node"
    let gw = "sdp\(getpid() % 100_000)-gw"

    static let v4 = (g1: IPAddress("10.77.0.2")!, g2: IPAddress("10.77.0.3")!, dead: IPAddress("10.77.0.9")!)
    static let v6 = (g1: IPAddress("fd00:77::2")!, g2: IPAddress("fd00:77::3")!, dead: IPAddress("fd00:77::9")!)

    func build() throws {
        _ = try Command.run("ip", ["netns", "add", node])
        _ = try Command.run("ip", ["netns", "add", gw])
        _ = try Command.run("ip", ["-n", node, "-batch", "-"], input: """
            link set lo up
            link add eth0 type veth peer name eth0 netns \(gw)
            link set eth0 up
            address add 10.77.0.1/24 dev eth0
            address add fd00:77::1/64 dev eth0 nodad

            """)
        _ = try Command.run("ip", ["-n", gw, "-batch", "-"], input: """
            link set lo up
            link set eth0 up
            address add 10.77.0.2/24 dev eth0
            address add 10.77.0.3/24 dev eth0
            address add fd00:77::2/64 dev eth0 nodad
            address add fd00:77::3/64 dev eth0 nodad

            """)
    }

    func tearDown() {
        _ = try? Command.run("ip", ["netns", "del", node])
        _ = try? Command.run("ip", ["netns", "del", gw])
    }

    /// glibc's setns(2), which Swift's Glibc module leaves out (it needs _GNU_SOURCE).
    static func setns(_ fd: Int32, _ type: Int32) -> Int32 {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "setns") else { return -1 }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)(fd, type)
    }

    /// Runs `body` on a thread of its own inside namespace `ns` (threads it starts, and
    /// processes it runs, are in that namespace too).
    static func inNamespace<T: Sendable>(_ ns: String, _ body: @escaping @Sendable () throws -> T) throws -> T {
        let result = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            let fd = open("/var/run/netns/\(ns)", O_RDONLY)
            guard fd >= 0, Self.setns(fd, 0x4000_0000 /* CLONE_NEWNET */) == 0 else {
                result.withLock { $0 = .failure(DataplaneCommandError("cannot enter namespace \(ns): errno \(errno)")) }
                return
            }
            close(fd)
            result.withLock { $0 = Result { try body() } }
        }
        thread.start()
        done.wait()
        return try result.withLock { $0! }.get()
    }

    /// The verdicts of `count` probes of `target`.
    static func probe(_ target: IPAddress, _ method: GatewayProber.Method, count: Int) -> [Bool] {
        let verdicts = Mutex<[Bool]>([])
        let enough = DispatchSemaphore(value: 0)
        let prober = GatewayProber(target: target, method: method, interval: .milliseconds(20), timeout: .milliseconds(20), realtimePriority: nil) { answered in
            let n = verdicts.withLock { $0.append(answered); return $0.count }
            if n == count { enough.signal() }
        }
        prober.start()
        enough.wait()
        prober.stop()
        return Array(verdicts.withLock { $0 }.prefix(count))
    }

    @Test func probesAnswerAndFailInProcessIPv4AndIPv6() throws {
        defer { tearDown() }
        try build()
        // A TCP listener in the gateway namespace (the kernel completes connections without accept).
        let listener = try Self.inNamespace(gw) { () -> Int32 in
            let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
            var any = sockaddr_in6()
            any.sin6_family = sa_family_t(AF_INET6)
            any.sin6_port = UInt16(8080).bigEndian
            var off: Int32 = 0
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
            guard withUnsafePointer(to: &any, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }) == 0,
                  listen(fd, 64) == 0 else { throw DataplaneCommandError("cannot listen: errno \(errno)") }
            return fd
        }
        defer { close(listener) }
        let verdicts = try Self.inNamespace(node) { () -> [String: [Bool]] in
            [
                "icmp v4 live": Self.probe(Self.v4.g1, .icmp, count: 3),
                "icmp v4 dead": Self.probe(Self.v4.dead, .icmp, count: 3),
                "icmp v6 live": Self.probe(Self.v6.g2, .icmp, count: 3),
                "icmp v6 dead": Self.probe(Self.v6.dead, .icmp, count: 3),
                "tcp v4 open": Self.probe(Self.v4.g2, .tcp(port: 8080), count: 3),
                "tcp v6 open": Self.probe(Self.v6.g1, .tcp(port: 8080), count: 3),
                "tcp v4 closed": Self.probe(Self.v4.g1, .tcp(port: 8081), count: 3),
            ]
        }
        // The first probe of a live gateway may wait on ARP/ND: judge the last two.
        for live in ["icmp v4 live", "icmp v6 live", "tcp v4 open", "tcp v6 open"] {
            #expect(verdicts[live]?.suffix(2) == [true, true], "\(live): \(verdicts[live] ?? [])")
        }
        for dead in ["icmp v4 dead", "icmp v6 dead", "tcp v4 closed"] {
            #expect(verdicts[dead] == [false, false, false], "\(dead): \(verdicts[dead] ?? [])")
        }
    }

    @Test func routesReplaceAndShareGatewaysTouchNothingForeignAndCleanUpIPv4AndIPv6() throws {
        defer { tearDown() }
        try build()
        let node = self.node
        let routes = LinuxStaticRoutes()
        func p(_ s: String) -> IPPrefix { IPSyntax.destination(s)! }
        func ip(_ args: [String]) throws -> String { try Command.run("ip", ["-n", node] + args) }

        let ecmp = StaticRouteTable([
            p("0.0.0.0/0"): [Self.v4.g1, Self.v4.g2], p("198.51.100.0/24"): [Self.v4.g1],
            p("::/0"): [Self.v6.g1, Self.v6.g2], p("2001:db8::/32"): [Self.v6.g1],
        ])
        let failed = try Self.inNamespace(node) { try routes.apply(from: StaticRouteTable(), to: ecmp) }
        #expect(failed.isEmpty, "\(failed)")
        #expect(try Self.inNamespace(node) { try routes.installed() } == ecmp)
        let v4Default = try ip(["-4", "route", "show", "table", "217"])
        #expect(v4Default.contains("nexthop via 10.77.0.2") && v4Default.contains("nexthop via 10.77.0.3"), "\(v4Default)")
        let v6Default = try ip(["-6", "route", "show", "table", "217"])
        #expect(v6Default.contains("fd00:77::2") && v6Default.contains("fd00:77::3"), "\(v6Default)")
        #expect(try ip(["-6", "route", "show", "2001:db8::/32"]).contains("via fd00:77::2 dev eth0 proto 217"))
        for family in ["-4", "-6"] {
            let rules = try ip([family, "rule"])
            #expect(rules.contains("150:\tfrom all lookup main suppress_prefixlength 0") && rules.contains("151:\tfrom all lookup 217"), "\(rules)")
        }
        // The node's own networks keep their path beside the default route.
        #expect(try ip(["route", "get", "10.77.0.3"]).contains("dev eth0") && !(try ip(["route", "get", "10.77.0.3"]).contains("via")))

        // One replace per changed destination; the default routes go, and their rules with them.
        let switched = StaticRouteTable([p("198.51.100.0/24"): [Self.v4.g2], p("2001:db8::/32"): [Self.v6.g2]])
        #expect(try Self.inNamespace(node) { try routes.apply(from: ecmp, to: switched) }.isEmpty)
        #expect(try ip(["-4", "route", "show", "198.51.100.0/24"]).contains("via 10.77.0.3 dev eth0 proto 217"))
        #expect(try ip(["-6", "route", "show", "table", "217"]).isEmpty)
        #expect(!(try ip(["-4", "rule"]).contains("lookup 217")))

        // A route Baton did not make stays, and the destination is reported.
        _ = try ip(["-6", "route", "add", "2001:db8:1::/48", "via", "fd00:77::2"])
        let wanted = StaticRouteTable(switched.routes.merging([p("2001:db8:1::/48"): [Self.v6.g2]]) { a, _ in a })
        let refused = try Self.inNamespace(node) { try routes.apply(from: switched, to: wanted) }
        #expect(refused[p("2001:db8:1::/48")]?.contains("that Baton did not make") == true, "\(refused)")
        let foreign = try ip(["-6", "route", "show", "2001:db8:1::/48"])
        #expect(foreign.contains("via fd00:77::2 dev eth0") && !foreign.contains("proto 217"), "\(foreign)")

        // Cleanup: nothing of Baton's is left, the foreign route is.
        try Self.inNamespace(node) { try routes.cleanup() }
        #expect(try ip(["route", "show", "table", "all", "proto", "217"]).isEmpty)
        #expect(try ip(["-6", "route", "show", "table", "all", "proto", "217"]).isEmpty)
        #expect(try ip(["-6", "route", "show", "2001:db8:1::/48"]).contains("via fd00:77::2"))
    }

    /// The node reaches the server (10.99.0.1) and a cluster network (10.98.0.0/16) only through
    /// its own default route: a Baton default route through another gateway must not take them.
    @Test func aDefaultRouteLeavesTheServerAndTheClusterOnTheNodesOwnPath() throws {
        defer { tearDown() }
        try build()
        let node = self.node
        func ip(_ args: [String]) throws -> String { try Command.run("ip", ["-n", node] + args) }
        _ = try ip(["route", "add", "default", "via", "10.77.0.2"])
        let routes = LinuxStaticRoutes(pinned: [IPPrefix("10.99.0.1/32")!, IPPrefix("10.98.0.0/16")!, IPPrefix("10.77.0.0/24")!])
        let table = StaticRouteTable([IPSyntax.destination("0.0.0.0/0")!: [Self.v4.g2]])
        #expect(try Self.inNamespace(node) { try routes.apply(from: StaticRouteTable(), to: table) }.isEmpty)
        #expect(try ip(["route", "get", "10.99.0.1"]).contains("via 10.77.0.2"))
        #expect(try ip(["route", "get", "10.98.1.1"]).contains("via 10.77.0.2"))
        #expect(try ip(["route", "get", "198.51.100.7"]).contains("via 10.77.0.3"))
        // The LAN is on a connected route already: nothing is pinned for it.
        #expect(!(try ip(["route", "show", "proto", "217"]).contains("10.77.0.0/24")))
        #expect(try Self.inNamespace(node) { try routes.installed() } == table)
        try Self.inNamespace(node) { try routes.cleanup() }
        #expect(try ip(["route", "show", "table", "all", "proto", "217"]).isEmpty)
        #expect(try ip(["route", "show", "default"]).contains("via 10.77.0.2"))
    }
}
