import BatonAPI
import BatonClient
import Foundation
import Logging
import Synchronization

/// Writes this node's entry of each IPFailover's `status.nodes`, latest value wins: a merge
/// patch `{"status": {"nodes": {"NODE": ENTRY}}}` (or `null` to remove it), which the node's
/// token may write and which no other writer contends for. Cheap by construction: one write per
/// change of an entry, and changes that come while a write is under way are folded into the
/// next one. A write that fails is tried again after `retryAfter`; an IPFailover that is gone
/// (404) is forgotten.
final class IPFailoverStatusReporter: Sendable {
    let client: BatonClient
    let node: String
    let logger: Logger
    let retryAfter: Duration
    /// Entries waiting to be written: nil removes the node's entry.
    private let pending = Mutex<[String: IPFailoverStatus.NodeState?]>([:])
    private let wake: AsyncStream<Void>
    private let wakeIn: AsyncStream<Void>.Continuation

    init(client: BatonClient, node: String, logger: Logger, retryAfter: Duration = .milliseconds(500)) {
        self.client = client
        self.node = node
        self.logger = logger
        self.retryAfter = retryAfter
        (wake, wakeIn) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues this node's entry of IPFailover `name` (nil: remove it).
    func set(_ name: String, _ entry: IPFailoverStatus.NodeState?) {
        pending.withLock { $0[name] = .some(entry) }
        wakeIn.yield()
    }

    /// Drops what is queued for `name` (the IPFailover is gone: there is nothing to write to).
    func forget(_ name: String) {
        _ = pending.withLock { $0.removeValue(forKey: name) }
    }

    /// Writes until `finish()`, then once more what is still queued (2 s at most per write).
    func run() async {
        for await _ in wake {
            await flush()
        }
        await flush(retrying: false)
    }

    func finish() { wakeIn.finish() }

    /// The merge patch's `status` for an entry: every field present (null when absent), so the
    /// patch replaces the stored entry instead of merging into it.
    static func patch(node: String, _ entry: IPFailoverStatus.NodeState?) -> JSONValue {
        guard let entry, case .object(var fields)? = try? JSONValue(encoding: entry) else {
            return ["nodes": .object([node: .null])]
        }
        for key in ["observedGeneration", "instances", "lastTransitionTime", "message"] where fields[key] == nil {
            fields[key] = .null
        }
        return ["nodes": .object([node: .object(fields)])]
    }

    private func flush(retrying: Bool = true) async {
        let batch = pending.withLock { p in defer { p = [:] }; return p }
        var failed: [String: IPFailoverStatus.NodeState?] = [:]
        var client = self.client
        // The last flush, at shutdown, must not hold the agent up if the server is away.
        if !retrying { client.timeout = .seconds(2) }
        for (name, entry) in batch.sorted(by: { $0.key < $1.key }) {
            do {
                _ = try await client.mergeStatus(.ipFailover, name: name, namespace: nil, status: Self.patch(node: node, entry))
            } catch let e as APIError where e.code == 404 {
                continue
            } catch {
                logger.debug("cannot write the IPFailover's status yet", metadata: ["ipfailover": "\(name)", "error": "\(error)"])
                failed[name] = entry
            }
        }
        guard retrying, !failed.isEmpty else { return }
        // Keep what failed unless a newer value came meanwhile, and come back later.
        pending.withLock { p in for (name, entry) in failed where p[name] == nil { p[name] = .some(entry) } }
        try? await Task.sleep(for: retryAfter)
        wakeIn.yield()
    }
}
