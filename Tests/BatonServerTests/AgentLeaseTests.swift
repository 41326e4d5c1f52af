import BatonAPI
import BatonAgent
import BatonClient
import Foundation
import Logging
import Synchronization
import Testing

/// What an agent tells its data plane, in order, with the time of each call.
final class OrderLog: EgressDataplane {
    enum Entry: Sendable, Equatable {
        case renew(Duration), announce(Set<String>), withdraw(Set<String>), settle
    }
    let entries = Mutex<[(ContinuousClock.Instant, Entry)]>([])

    func record(_ e: Entry) { entries.withLock { $0.append((ContinuousClock.now, e)) } }
    func announce(_ eips: Set<String>) async throws { record(.announce(eips)) }
    func withdraw(_ eips: Set<String>) async throws { record(.withdraw(eips)) }
    func renew(for remaining: Duration) async throws { record(.renew(remaining)) }
    func settle() async throws { record(.settle) }
    var all: [(ContinuousClock.Instant, Entry)] { entries.withLock { $0 } }
}

/// The kernel lease an agent hands its data plane (`renew`): in place before each announce,
/// renewed on acknowledged heartbeats, and never running past the agent's own fence.
@Suite(.serialized, .enabled(if: BatonBinary.path != nil, "baton binary not built: run `swift build` before `swift test`"))
struct AgentLeaseTests: EgressProcessSuite {
    @Test func theLeaseComesBeforeTheAnnouncementAndEndsNoLaterThanTheFence() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ServerProcess(dataDir: dir)
        defer { server.kill() }
        let log = OrderLog()
        let options = EgressAgent.Options(node: "node1", labels: ["egress": "true"], addresses: ["10.0.0.11"])
        let agent = try EgressAgent(client: server.client, options: options, dataplane: log,
                                    logger: Logger(label: "test.agent", factory: { _ in SwiftLogNoOpLogHandler() }))
        let running = Task { try? await agent.run() }
        defer { running.cancel() }

        let applied = try BatonBinary.run(["apply", "-f", "-"], env: server.env, stdin: Self.gateway + "\n---\n" + Self.policy(0))
        #expect(applied.status == 0, "\(applied.err)")
        _ = try await waitFor("the EIP announced and a few renewals") { () -> Bool? in
            let entries = log.all.map(\.1)
            guard let first = entries.firstIndex(of: .announce(["10.6.1.55"])) else { return nil }
            return entries[first...].filter { if case .renew = $0 { true } else { false } }.count >= 4 ? true : nil
        }
        let entries = log.all.map(\.1)
        let first = try #require(entries.firstIndex(of: .announce(["10.6.1.55"])))
        // The lease is in place before the EIP is bound (its gratuitous ARP must pass the fence).
        guard first > 0, case .renew(let lease) = entries[first - 1] else {
            Issue.record("no renew right before the announcement: \(entries)")
            return
        }
        // Deadline = last acknowledged send + eipEvictionTimeout (0.7 s) - margin (0.1 s).
        #expect(lease > .zero && lease <= .milliseconds(600))
        #expect(entries.filter { $0 == .settle }.count == 1, "settle once: \(entries)")

        // The server dies: renewals stop, the agent fences, and no lease it gave ran past that.
        // (A machine loaded enough to hold back an acknowledgement past the deadline may have
        // fenced the agent earlier too, before it announced again: the fence that counts is
        // the one after the kill.)
        let killedAt = ContinuousClock.now
        server.kill()
        let fencedAt = try await waitFor("the fence") { () -> ContinuousClock.Instant? in
            log.all.first { if case .withdraw = $0.1 { $0.0 >= killedAt } else { false } }?.0
        }
        let renewals = log.all.compactMap { t, e -> ContinuousClock.Instant? in
            if case .renew(let d) = e { t + d } else { nil }
        }
        let latest = try #require(renewals.max())
        // The withdrawal is stamped after the agent noticed its deadline; the lease is computed
        // from the same deadline, so it may only end earlier.
        #expect(latest <= fencedAt, "a kernel lease outlived the agent's fence by \(latest - fencedAt)")
    }
}
