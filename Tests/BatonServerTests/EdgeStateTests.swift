import BatonAPI
import BatonCore
@testable import BatonEdge
import BatonTesting
import Logging
import Synchronization
import Testing

/// `EdgeState` joins passive and active health and reports locality changes; driven step by
/// step with a manual clock, no sockets.
@Suite struct EdgeStateTests {
    static let host = "bookinfo.example.com"
    static let e1 = EdgeEndpoint(address: "127.0.0.11", port: 80)
    static let e2 = EdgeEndpoint(address: "127.0.0.12", port: 80)

    final class Notices: Sendable {
        let list = Mutex<[EdgeNotice]>([])
        /// The messages of the notices so far (they stay for `take`).
        func messages() -> [String] { list.withLock { $0.map(\.message) } }

        func take() -> [String] {
            list.withLock { l in
                defer { l = [] }
                return l.map { "\($0.kind)/\($0.name) \($0.reason)" }
            }
        }
    }

    func make(_ clock: ManualClock, _ notices: Notices) -> EdgeState {
        var settings = EdgeSettings(host: "127.0.0.1", port: 80, region: "region-1")
        settings.outlier.baseEjectionTime = .seconds(5)
        let state = EdgeState(settings: settings, clock: clock, logger: Logger(label: "test"), notices: { n in
            notices.list.withLock { $0.append(n) }
        })
        let clusters = [
            EdgeClusterObject(name: "cluster-1", spec: ClusterSpec(locality: .init(region: "region-1"), ingresses: [.init(address: "127.0.0.11")])),
            EdgeClusterObject(name: "cluster-2", spec: ClusterSpec(locality: .init(region: "region-2"), ingresses: [.init(address: "127.0.0.12")])),
        ]
        let gateway = GatewaySpec(workloadSelector: .init(namespace: "edge"),
                                  http: [.init(name: "bookinfo", port: 80, hostname: Self.host, routing: .init(rules: [.init(route: .init(clusterDestination: .init()))]))])
        state.install(EdgeRouteTable(gateways: [("g", gateway)], clusters: clusters))
        return state
    }

    @Test func ejectionFailsOverToTheRemoteRegionAndItsEndBringsTrafficHome() {
        let clock = ManualClock()
        let notices = Notices()
        let state = make(clock, notices)
        #expect(notices.take() == [])
        for _ in 0..<2 { state.record(.connectFailure, endpoint: Self.e1, cluster: "cluster-1") }
        #expect(state.down.isEmpty)
        state.record(.connectFailure, endpoint: Self.e1, cluster: "cluster-1")
        #expect(state.down == [Self.e1])
        #expect(notices.take() == ["Cluster/cluster-1 IngressEjected", "Gateway/g LocalityFailover"])

        clock.advance(by: .milliseconds(4999))
        _ = state.tick()
        #expect(state.down == [Self.e1])
        clock.advance(by: .milliseconds(1))
        _ = state.tick()
        #expect(state.down.isEmpty)
        #expect(notices.take() == ["Cluster/cluster-1 IngressReturned", "Gateway/g LocalityReturned"])
    }

    @Test func aSuccessStillBreaksAStreakAndEveryChangeInRotationMovesTheGeneration() {
        let clock = ManualClock()
        let notices = Notices()
        let state = make(clock, notices)
        let g0 = state.generation.load(ordering: .relaxed)
        // Two failures, a success (which must reset the streak, not be skipped), two more: no ejection.
        for _ in 0..<2 { state.record(.connectFailure, endpoint: Self.e1, cluster: "cluster-1") }
        state.record(.success, endpoint: Self.e1, cluster: "cluster-1")
        for _ in 0..<2 { state.record(.connectFailure, endpoint: Self.e1, cluster: "cluster-1") }
        #expect(state.down.isEmpty)
        #expect(state.generation.load(ordering: .relaxed) == g0)
        // The third in a row ejects, and the per-loop copies must see it.
        state.record(.connectFailure, endpoint: Self.e1, cluster: "cluster-1")
        #expect(state.down == [Self.e1])
        let g1 = state.generation.load(ordering: .relaxed)
        #expect(g1 > g0)
        // Successes while no streak is open change nothing, the generation included.
        for _ in 0..<5 { state.record(.success, endpoint: Self.e2, cluster: "cluster-2") }
        #expect(state.generation.load(ordering: .relaxed) == g1)
        clock.advance(by: .seconds(5))
        _ = state.tick()
        #expect(state.down.isEmpty)
        #expect(state.generation.load(ordering: .relaxed) > g1)
    }

    @Test func anIngressFailingItsChecksStaysOutAfterItsEjectionEnds() {
        let clock = ManualClock()
        let notices = Notices()
        let state = make(clock, notices)
        // The checks due at once, with the route's hostname as Host.
        let due = state.tick()
        #expect(Set(due.map(\.0)) == [Self.e1, Self.e2])
        #expect(due.allSatisfy { $0.1 == Self.host })
        state.checked(Self.e1, passed: false, detail: "connection refused")
        #expect(state.down.isEmpty)
        clock.advance(by: .milliseconds(500))
        _ = state.tick()
        state.checked(Self.e1, passed: false, detail: "connection refused")
        #expect(state.down == [Self.e1])
        #expect(notices.take() == ["Cluster/cluster-1 IngressUnhealthy", "Gateway/g LocalityFailover"])

        // Also ejected by live traffic; the ejection ends, but the checks still fail: still out.
        for _ in 0..<3 { state.record(.reset, endpoint: Self.e1, cluster: "cluster-1") }
        _ = notices.take()
        clock.advance(by: .seconds(5))
        _ = state.tick()
        #expect(state.down == [Self.e1])
        #expect(notices.take() == [])
        // Ejected again, for 10 s this time; two passing checks end it early: back, and traffic goes home.
        for _ in 0..<3 { state.record(.reset, endpoint: Self.e1, cluster: "cluster-1") }
        #expect(notices.take() == ["Cluster/cluster-1 IngressEjected"])
        state.checked(Self.e1, passed: true, detail: "HTTP 200")
        clock.advance(by: .milliseconds(500))
        _ = state.tick()
        state.checked(Self.e1, passed: true, detail: "HTTP 200")
        #expect(state.down.isEmpty)
        #expect(notices.take() == ["Cluster/cluster-1 IngressReturned", "Gateway/g LocalityReturned"])
    }

    @Test func everythingDownIsReportedAsNoHealthyUpstream() throws {
        let clock = ManualClock()
        let notices = Notices()
        let state = make(clock, notices)
        for e in [Self.e1, Self.e2] {
            for _ in 0..<3 { state.record(.timeout, endpoint: e, cluster: e == Self.e1 ? "cluster-1" : "cluster-2") }
        }
        #expect(state.down == [Self.e1, Self.e2])
        let messages = notices.messages()
        try #require(messages.count == 4)
        #expect(notices.take() == ["Cluster/cluster-1 IngressEjected", "Gateway/g LocalityFailover",
                                   "Cluster/cluster-2 IngressEjected", "Gateway/g LocalityFailover"])
        // First the remote region takes over; then nothing is left, and the edge says what it does.
        #expect(messages[1].hasSuffix("no local cluster in region-1 has a healthy ingress; sharing traffic across remote regions"))
        #expect(messages[3].hasSuffix("no cluster has a healthy ingress; answering 503 no healthy upstream"))
    }
}
