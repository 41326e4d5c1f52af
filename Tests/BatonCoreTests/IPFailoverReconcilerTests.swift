import BatonAPI
import BatonCore
import BatonTesting
import Testing

/// The agent's managed mode, decided step by step: which IPFailovers apply to the node, and
/// what to start, restart and stop as the node and the IPFailovers change.
@Suite("IPFailoverReconciler")
struct IPFailoverReconcilerTests {
    typealias R = IPFailoverReconciler

    static func ipf(_ name: String, vips: String = "10.0.0.1", selector: [String: String]? = ["ipfailover": "web"],
                    replicas: Int64? = nil, offset: Int64? = nil, uid: String? = nil, generation: Int64 = 1) -> R.Desired {
        var spec = IPFailoverSpec(virtualIPs: vips)
        spec.nodeSelector = selector.map { LabelSelector(matchLabels: $0) }
        spec.replicas = replicas
        spec.vrrpIDOffset = offset
        return R.Desired(name: name, uid: uid ?? "uid-\(name)", generation: generation, spec: spec)
    }

    static let web = ["ipfailover": "web", "zone": "a"]

    @Test("selection: the node selector (absent: every node) and replicas 0", arguments: [
        (["ipfailover": "web"], Int64?.none, ["ipfailover": "web"], true),
        (["ipfailover": "web"], nil, ["ipfailover": "db"], false),
        (["ipfailover": "web"], nil, [:], false),
        (nil, nil, [:], true),
        (nil, 0, ["ipfailover": "web"], false),
        (["ipfailover": "web"], 5, ["ipfailover": "web", "other": "x"], true),
    ] as [([String: String]?, Int64?, [String: String], Bool)])
    func selection(selector: [String: String]?, replicas: Int64?, labels: [String: String], applies: Bool) {
        #expect(R.applies(Self.ipf("a", selector: selector, replicas: replicas).spec, to: labels) == applies)
    }

    @Test("matchExpressions select too")
    func expressions() {
        var d = Self.ipf("a", selector: nil)
        d.spec.nodeSelector = LabelSelector(matchExpressions: [.init(key: "zone", operator: "In", values: ["a", "b"])])
        #expect(R.applies(d.spec, to: ["zone": "b"]))
        #expect(!R.applies(d.spec, to: ["zone": "c"]))
    }

    @Test("nothing is decided until both the node and the IPFailovers have been read")
    func waitsForBoth() {
        var r = R()
        #expect(r.handle(.listed([Self.ipf("a")]), now: .zero).isEmpty)
        #expect(r.handle(.changed(Self.ipf("b")), now: .zero).isEmpty)
        #expect(!r.isDeciding && r.applying.isEmpty)
        #expect(r.handle(.nodeObserved(labels: Self.web), now: .zero) == [.start(Self.ipf("a")), .start(Self.ipf("b"))])
        #expect(r.isDeciding && r.applying == ["a", "b"])

        var other = R()
        #expect(other.handle(.nodeObserved(labels: Self.web), now: .zero).isEmpty)
        #expect(other.handle(.listed([Self.ipf("a"), Self.ipf("c", selector: ["ipfailover": "db"])]), now: .zero) == [.start(Self.ipf("a"))])
        #expect(other.running.keys.sorted() == ["a"])
    }

    @Test("created, edited, deleted: start, restart, stop; metadata-only changes do nothing")
    func lifecycle() {
        var r = R()
        _ = r.handle(.nodeObserved(labels: Self.web), now: .zero)
        #expect(r.handle(.listed([]), now: .zero).isEmpty)
        #expect(r.handle(.changed(Self.ipf("a")), now: .zero) == [.start(Self.ipf("a"))])
        // The same spec again (a status write by another node, a label on the IPFailover).
        #expect(r.handle(.changed(Self.ipf("a")), now: .zero).isEmpty)
        let edited = Self.ipf("a", offset: 20, generation: 2)
        #expect(r.handle(.changed(edited), now: .zero) == [.restart(edited)])
        #expect(r.running["a"] == edited)
        // Deleted and created again under the same name with the same spec: a new object.
        let again = Self.ipf("a", offset: 20, uid: "uid-a2")
        #expect(r.handle(.changed(again), now: .zero) == [.restart(again)])
        #expect(r.handle(.deleted(name: "a"), now: .zero) == [.stop(name: "a", reason: .deleted)])
        #expect(r.running.isEmpty)
        #expect(r.handle(.deleted(name: "a"), now: .zero).isEmpty)
    }

    @Test("an IPFailover whose selector does not match is never started; a selector edit starts or stops it")
    func selectorEdits() {
        var r = R()
        _ = r.handle(.nodeObserved(labels: Self.web), now: .zero)
        #expect(r.handle(.listed([Self.ipf("db", selector: ["ipfailover": "db"])]), now: .zero).isEmpty)
        let matching = Self.ipf("db", selector: ["zone": "a"], generation: 2)
        #expect(r.handle(.changed(matching), now: .zero) == [.start(matching)])
        #expect(r.handle(.changed(Self.ipf("db", selector: ["zone": "b"], generation: 3)), now: .zero)
                == [.stop(name: "db", reason: .notSelected)])
        #expect(r.handle(.changed(Self.ipf("db", selector: ["zone": "a"], replicas: 0, generation: 4)), now: .zero).isEmpty)
    }

    @Test("the node's labels change: IPFailovers start and stop with them")
    func nodeLabels() {
        var r = R()
        _ = r.handle(.listed([Self.ipf("web"), Self.ipf("db", selector: ["ipfailover": "db"]), Self.ipf("all", selector: nil)]), now: .zero)
        #expect(r.handle(.nodeObserved(labels: Self.web), now: .zero) == [.start(Self.ipf("all", selector: nil)), .start(Self.ipf("web"))])
        // The operator relabels the node from web to db.
        #expect(r.handle(.nodeObserved(labels: ["ipfailover": "db"]), now: .zero)
                == [.stop(name: "web", reason: .notSelected), .start(Self.ipf("db", selector: ["ipfailover": "db"]))])
        #expect(r.handle(.nodeObserved(labels: ["ipfailover": "db"]), now: .zero).isEmpty)
        // The Node is deleted: nothing applies.
        #expect(r.handle(.nodeObserved(labels: nil), now: .zero)
                == [.stop(name: "all", reason: .nodeGone), .stop(name: "db", reason: .nodeGone)])
    }

    @Test("scaling to zero stops it, scaling back starts it")
    func replicasZero() {
        var r = R()
        _ = r.handle(.nodeObserved(labels: Self.web), now: .zero)
        _ = r.handle(.listed([Self.ipf("a")]), now: .zero)
        #expect(r.handle(.changed(Self.ipf("a", replicas: 0)), now: .zero) == [.stop(name: "a", reason: .scaledToZero)])
        #expect(r.handle(.changed(Self.ipf("a", replicas: 3)), now: .zero) == [.start(Self.ipf("a", replicas: 3))])
    }

    @Test("stops come before restarts and starts, so freed VRIDs and VIPs are free first")
    func order() {
        var r = R()
        _ = r.handle(.nodeObserved(labels: Self.web), now: .zero)
        _ = r.handle(.listed([Self.ipf("b", vips: "10.0.0.2"), Self.ipf("c", vips: "10.0.0.3")]), now: .zero)
        // A relist after a broken watch: b deleted, c edited, a new.
        let a = Self.ipf("a", vips: "10.0.0.2"), c = Self.ipf("c", vips: "10.0.0.3", offset: 40)
        #expect(r.handle(.listed([a, c]), now: .zero) == [.stop(name: "b", reason: .deleted), .restart(c), .start(a)])
    }

    @Test("a failed speaker is retried after a delay that doubles up to the maximum, at once when its spec changes")
    func retries() {
        let clock = ManualClock()
        var r = R(retryDelay: .seconds(1), maxRetryDelay: .seconds(3))
        _ = r.handle(.nodeObserved(labels: Self.web), now: clock.now)
        _ = r.handle(.listed([Self.ipf("a")]), now: clock.now)
        #expect(r.handle(.speakerFailed(name: "a"), now: clock.now).isEmpty)
        #expect(r.running.isEmpty && r.applying == ["a"])
        #expect(r.nextDeadline == clock.now + .seconds(1))
        clock.advance(by: .milliseconds(999))
        #expect(r.handle(.timerFired, now: clock.now).isEmpty)
        clock.advance(by: .milliseconds(1))
        #expect(r.handle(.timerFired, now: clock.now) == [.start(Self.ipf("a"))])
        #expect(r.nextDeadline == nil)
        // Fails again: 2 s, then 3 s (the maximum), then 3 s.
        for delay in [2, 3, 3] {
            _ = r.handle(.speakerFailed(name: "a"), now: clock.now)
            #expect(r.nextDeadline == clock.now + .seconds(delay))
            clock.advance(by: .seconds(delay))
            #expect(r.handle(.timerFired, now: clock.now) == [.start(Self.ipf("a"))])
        }
        // An edit while it waits starts it at once, and the delay starts over.
        _ = r.handle(.speakerFailed(name: "a"), now: clock.now)
        let edited = Self.ipf("a", offset: 30, generation: 2)
        #expect(r.handle(.changed(edited), now: clock.now) == [.start(edited)])
        _ = r.handle(.speakerFailed(name: "a"), now: clock.now)
        #expect(r.nextDeadline == clock.now + .seconds(1))
        // Deleted while it waits: a stop (the caller clears its status), and no retry.
        #expect(r.handle(.deleted(name: "a"), now: clock.now) == [.stop(name: "a", reason: .deleted)])
        #expect(r.nextDeadline == nil)
        clock.advance(by: .seconds(5))
        #expect(r.handle(.timerFired, now: clock.now).isEmpty)
        // A failure report for something not running changes nothing.
        #expect(r.handle(.speakerFailed(name: "zzz"), now: clock.now).isEmpty)
    }

    @Test("shutdown stops everything, failed ones included, and then decides nothing")
    func shutdown() {
        var r = R()
        _ = r.handle(.nodeObserved(labels: Self.web), now: .zero)
        _ = r.handle(.listed([Self.ipf("a"), Self.ipf("b", vips: "10.0.0.2")]), now: .zero)
        _ = r.handle(.speakerFailed(name: "b"), now: .zero)
        #expect(r.handle(.shutdown, now: .zero) == [.stop(name: "a", reason: .shutdown), .stop(name: "b", reason: .shutdown)])
        #expect(r.handle(.changed(Self.ipf("c", vips: "10.0.0.3")), now: .zero).isEmpty)
        #expect(r.nextDeadline == nil)
    }
}
