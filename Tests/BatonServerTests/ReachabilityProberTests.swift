import BatonAPI
import BatonDataplane
@testable import BatonServer
import Testing

/// The controller's probe of a silent node: which addresses it will probe at all (only on-link
/// ones: nothing leaves for a made-up address), and that loopback answers. What it sends and what
/// counts as an answer: `ICMPEchoSocketTests` (BatonDataplaneTests).
@Suite struct ReachabilityProberTests {
    @Test func probesOnlyAddressesOnOurOwnSubnets() async {
        #expect(ReachabilityProber.isOnLink(IPAddress("127.0.0.1")!))
        // TEST-NET-3 is on no interface of a test machine: reported reachable, with no packet sent.
        #expect(!ReachabilityProber.isOnLink(IPAddress("203.0.113.9")!))
        #expect(await ReachabilityProber().reachable("203.0.113.9"))
        #expect(await ReachabilityProber().reachable("fd00::1"), "IPv6 is not probed")
    }

    /// Loopback is on-link and answers echo (through a ping socket, or a raw one as root).
    /// `echo` calls an address it cannot probe reachable, so the test first makes sure that a
    /// probe socket opens here; otherwise it would pass without a packet sent.
    static let canProbe = (try? ICMPEchoSocket(IPAddress("127.0.0.1")!)) != nil

    @Test(.enabled(if: canProbe, "no ICMP socket here (neither an unprivileged ping socket nor root)"))
    func loopbackAnswers() throws {
        let loopback = IPAddress("127.0.0.1")!
        let socket = try ICMPEchoSocket(loopback)
        #expect(socket.probe(sequence: 1, timeout: .milliseconds(500), acceptingEarlier: true), "loopback did not answer an echo request")
        #expect(ReachabilityProber.echo(loopback, count: 3, interval: .milliseconds(100)))
    }
}
