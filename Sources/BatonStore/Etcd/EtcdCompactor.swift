import BatonEtcd
import Logging

/// Keeps etcd's history short, as kube-apiserver does for its etcd: every `interval` it compacts
/// to the revision it saw one interval before, so a watch can still resume from anything
/// written in the last `interval` (and an older one gets 410 and lists again). Heartbeats make
/// the history grow fast (a revision per batch), so without compaction etcd's database would
/// fill up. Run it on one replica, the leader. etcd compacts every key, not only Baton's.
public struct EtcdCompactor: Sendable {
    public let client: EtcdClient
    public let interval: Duration
    let logger: Logger

    public init(client: EtcdClient, interval: Duration = .seconds(60), logger: Logger) {
        self.client = client
        self.interval = interval
        self.logger = logger
    }

    /// Compacts every `interval` until cancelled. Failures are logged and retried next time.
    public func run() async {
        var seen: Int64?
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            if let seen, seen > 1 {
                do {
                    try await client.compact(revision: seen)
                    logger.info("compacted etcd's history", metadata: ["revision": "\(seen)"])
                } catch {
                    logger.warning("compacting etcd's history failed", metadata: ["revision": "\(seen)", "error": "\(error)"])
                }
            }
            seen = try? await client.currentRevision()
        }
    }
}
