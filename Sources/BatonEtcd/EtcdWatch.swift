import BatonAPI
import Foundation

/// One change etcd reports on a watch.
public struct EtcdEvent: Sendable {
    public enum EventType: Sendable { case put, delete }
    public var type: EventType
    /// The key after the change; for a delete, only `key` and `modRevision` (the deletion's).
    public var kv: EtcdKeyValue
    /// The key before the change, when the watch asked for it (`prevKV`).
    public var prevKV: EtcdKeyValue?

    public var revision: Int64 { kv.modRevision }
}

/// A watch on a key range that survives the loss of the etcd member serving it: when its
/// stream breaks (the member died, lost its leader, or the connection dropped), it opens a new
/// one on the next endpoint from the revision after the last one it delivered, so every change
/// comes out once, in revision order.
///
/// Ends (throws) with `EtcdError.compacted` when the history it still needs has been compacted,
/// and with `unavailable` when no endpoint has served it for `outageLimit`. Read it from one task.
public final class EtcdWatch: @unchecked Sendable {
    public let client: EtcdClient
    public let key: String
    public let rangeEnd: String?
    public let prevKV: Bool
    public let outageLimit: Duration
    /// The newest revision delivered (before the first: the start revision minus one).
    public private(set) var lastRevision: Int64
    private var stream: EtcdStream?
    private var brokenSince: ContinuousClock.Instant?
    private var lastFailure = ""

    /// Watches [key, rangeEnd) (just `key` when nil) for changes after `revision`.
    public init(client: EtcdClient, key: String, rangeEnd: String?, after revision: Int64, prevKV: Bool = true,
                outageLimit: Duration = .seconds(10)) {
        self.client = client
        self.key = key
        self.rangeEnd = rangeEnd
        self.prevKV = prevKV
        self.outageLimit = outageLimit
        self.lastRevision = revision
    }

    /// Opens the first stream now, so that a compacted start revision or an unreachable etcd
    /// fails the caller at once rather than at the first `next()`.
    public func start() async throws {
        try await connect()
    }

    /// The next changes (at least one), in revision order.
    public func next() async throws -> [EtcdEvent] {
        while true {
            try Task.checkCancellation()
            if stream == nil {
                do {
                    try await connect()
                } catch let error as EtcdError where error.code == .unavailable {
                    lastFailure = error.message
                    if brokenSince == nil { brokenSince = .now }
                    if let since = brokenSince, ContinuousClock.now - since > outageLimit {
                        throw EtcdError(.unavailable, "the etcd watch on \(key) has been down for more than \(outageLimit): \(lastFailure)")
                    }
                    try await Task.sleep(for: .milliseconds(100))
                    continue
                }
            }
            guard let stream else { continue }
            let message: JSONValue?
            do {
                message = try await stream.next()
            } catch let error as EtcdError where error.code == .unavailable || error.code == .invalidResponse {
                broke(stream, error.message)
                continue
            }
            guard let message else {
                broke(stream, "etcd at \(stream.endpoint) ended the watch")
                continue
            }
            if message["canceled"]?.boolValue == true {
                let compacted = EtcdJSON.int(message["compact_revision"])
                if compacted > 0 {
                    throw Self.compacted(after: lastRevision, compactRevision: compacted)
                }
                broke(stream, "etcd at \(stream.endpoint) cancelled the watch: \(message["cancel_reason"]?.stringValue ?? "no reason given")")
                continue
            }
            brokenSince = nil
            let events = (message["events"]?.arrayValue ?? []).map { e in
                EtcdEvent(type: e["type"]?.stringValue == "DELETE" ? .delete : .put, kv: EtcdKeyValue(e["kv"] ?? [:]),
                          prevKV: e["prev_kv"].map(EtcdKeyValue.init))
            }.filter { $0.revision > lastRevision }
            if let last = events.last?.revision {
                lastRevision = last
                return events
            }
        }
    }

    /// Closes the stream (the watch can be read again: it reconnects).
    public func cancel() {
        stream = nil
    }

    private func broke(_ stream: EtcdStream, _ why: String) {
        self.stream = nil
        lastFailure = why
        if brokenSince == nil { brokenSince = .now }
        client.avoid(stream.endpoint)
        client.logger.info("etcd watch stream broke; resuming on the next endpoint",
                           metadata: ["key": "\(key)", "after": "\(lastRevision)", "reason": "\(why)"])
    }

    private func connect() async throws {
        var create: [String: JSONValue] = [
            "key": .string(EtcdJSON.b64(key)),
            "start_revision": .string(String(lastRevision + 1)),
            "prev_kv": .bool(prevKV),
        ]
        if let rangeEnd { create["range_end"] = .string(EtcdJSON.b64(rangeEnd)) }
        let stream = try await client.stream("/v3/watch", ["create_request": .object(create)])
        // The first message says whether the watch was created; a compacted start revision is
        // reported just after, as a cancellation, and `next()` throws then.
        guard let first = try await stream.next() else {
            throw EtcdError(.unavailable, "etcd at \(stream.endpoint) closed the watch before creating it")
        }
        if first["canceled"]?.boolValue == true {
            let compacted = EtcdJSON.int(first["compact_revision"])
            if compacted > 0 { throw Self.compacted(after: lastRevision, compactRevision: compacted) }
            throw EtcdError(.unavailable, "etcd at \(stream.endpoint) refused the watch: \(first["cancel_reason"]?.stringValue ?? "no reason given")")
        }
        self.stream = stream
    }

    static func compacted(after revision: Int64, compactRevision: Int64) -> EtcdError {
        EtcdError(.compacted, "etcd has compacted the history after revision \(revision) (it keeps revision \(compactRevision) and later)",
                  grpcCode: 11, compactRevision: compactRevision)
    }
}
