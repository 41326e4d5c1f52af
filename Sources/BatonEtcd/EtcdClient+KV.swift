import AsyncHTTPClient
import BatonAPI
import Foundation
import NIOCore
import NIOFoundationCompat

/// One key as etcd returns it. Revisions are etcd's: `modRevision` is the revision of the
/// key's last write, `createRevision` that of its creation (0: the key does not exist).
public struct EtcdKeyValue: Sendable, Hashable {
    public var key: String
    public var value: Data
    public var createRevision: Int64
    public var modRevision: Int64
    public var version: Int64
    public var lease: Int64

    init(_ json: JSONValue) {
        key = EtcdJSON.string(json["key"]) ?? ""
        value = EtcdJSON.bytes(json["value"]) ?? Data()
        createRevision = EtcdJSON.int(json["create_revision"])
        modRevision = EtcdJSON.int(json["mod_revision"])
        version = EtcdJSON.int(json["version"])
        lease = EtcdJSON.int(json["lease"])
    }
}

/// A range read: the keys, and the store revision it was read at.
public struct EtcdRange: Sendable {
    public var revision: Int64
    /// The raft term of the member that served the read (etcd's response header). It grows with
    /// every election, so two reads with one term had one leader between them.
    public var raftTerm: Int64 = 0
    public var kvs: [EtcdKeyValue]
    /// More keys remain past `limit`.
    public var more: Bool
    public var count: Int64
}

/// A txn's outcome: whether the compares held, the revision after it, and the responses of
/// the branch that ran (each `{"response_range": ...}`, `{"response_put": ...}`, ...).
public struct EtcdTxnResult: Sendable {
    public var succeeded: Bool
    public var revision: Int64
    public var responses: [JSONValue]

    /// The key-values of the `index`th response when it was a range.
    public func rangeKVs(_ index: Int) -> [EtcdKeyValue] {
        guard index < responses.count else { return [] }
        return (responses[index]["response_range"]?["kvs"]?.arrayValue ?? []).map(EtcdKeyValue.init)
    }

    /// The previous key-values of the `index`th response when it was a delete with `prevKV`.
    public func deletedKVs(_ index: Int) -> [EtcdKeyValue] {
        guard index < responses.count else { return [] }
        return (responses[index]["response_delete_range"]?["prev_kvs"]?.arrayValue ?? []).map(EtcdKeyValue.init)
    }
}

/// Building blocks of a txn, as the gateway spells them.
public enum EtcdTxn {
    /// The key's create revision equals `revision` (0: the key does not exist).
    public static func createRevision(_ key: String, equals revision: Int64) -> JSONValue {
        ["key": .string(EtcdJSON.b64(key)), "target": "CREATE", "result": "EQUAL", "create_revision": .string(String(revision))]
    }

    /// The key's mod revision equals `revision`.
    public static func modRevision(_ key: String, equals revision: Int64) -> JSONValue {
        ["key": .string(EtcdJSON.b64(key)), "target": "MOD", "result": "EQUAL", "mod_revision": .string(String(revision))]
    }

    /// The key is attached to `lease`.
    public static func lease(_ key: String, equals lease: Int64) -> JSONValue {
        ["key": .string(EtcdJSON.b64(key)), "target": "LEASE", "result": "EQUAL", "lease": .string(String(lease))]
    }

    public static func put(_ key: String, _ value: Data, lease: Int64 = 0) -> JSONValue {
        var put: [String: JSONValue] = ["key": .string(EtcdJSON.b64(key)), "value": .string(value.base64EncodedString())]
        if lease != 0 { put["lease"] = .string(String(lease)) }
        return ["request_put": .object(put)]
    }

    public static func range(_ key: String) -> JSONValue {
        ["request_range": ["key": .string(EtcdJSON.b64(key))]]
    }

    public static func delete(_ key: String, prevKV: Bool = true) -> JSONValue {
        ["request_delete_range": ["key": .string(EtcdJSON.b64(key)), "prev_kv": .bool(prevKV)]]
    }
}

extension EtcdClient {
    /// Reads `key`, or every key in [key, rangeEnd) when `rangeEnd` is given, at `revision`
    /// (nil: the latest). Linearizable.
    public func range(_ key: String, rangeEnd: String? = nil, limit: Int = 0, revision: Int64? = nil,
                      countOnly: Bool = false, keysOnly: Bool = false, minModRevision: Int64? = nil) async throws -> EtcdRange {
        var body: [String: JSONValue] = ["key": .string(EtcdJSON.b64(key))]
        if let rangeEnd { body["range_end"] = .string(EtcdJSON.b64(rangeEnd)) }
        if limit > 0 { body["limit"] = .string(String(limit)) }
        if let revision, revision > 0 { body["revision"] = .string(String(revision)) }
        if countOnly { body["count_only"] = true }
        if keysOnly { body["keys_only"] = true }
        if let minModRevision, minModRevision > 0 { body["min_mod_revision"] = .string(String(minModRevision)) }
        let r = try await call("/v3/kv/range", .object(body), retry: .idempotent)
        return EtcdRange(revision: EtcdJSON.revision(r), raftTerm: EtcdJSON.int(r["header"]?["raft_term"]),
                         kvs: (r["kvs"]?.arrayValue ?? []).map(EtcdKeyValue.init),
                         more: r["more"]?.boolValue ?? false, count: EtcdJSON.int(r["count"]))
    }

    /// Every key under `prefix`, read page by page at one revision.
    public func rangePrefix(_ prefix: String, pageSize: Int = 500) async throws -> EtcdRange {
        let end = EtcdJSON.prefixEnd(prefix)
        var page = try await range(prefix, rangeEnd: end, limit: pageSize)
        var all = page.kvs
        let revision = page.revision
        while page.more, let last = all.last {
            page = try await range(last.key + "\u{0}", rangeEnd: end, limit: pageSize, revision: revision)
            all += page.kvs
        }
        return EtcdRange(revision: revision, kvs: all, more: false, count: Int64(all.count))
    }

    /// Runs a txn: if every compare holds, `success`, else `failure`.
    public func txn(compare: [JSONValue], success: [JSONValue], failure: [JSONValue] = [], retry: Retry = .write) async throws -> EtcdTxnResult {
        let r = try await call("/v3/kv/txn", ["compare": .array(compare), "success": .array(success), "failure": .array(failure)],
                               retry: retry)
        return EtcdTxnResult(succeeded: r["succeeded"]?.boolValue ?? false, revision: EtcdJSON.revision(r),
                             responses: r["responses"]?.arrayValue ?? [])
    }

    /// Puts `value` at `key`; returns the revision of the write.
    @discardableResult
    public func put(_ key: String, _ value: Data, lease: Int64 = 0) async throws -> Int64 {
        var body: [String: JSONValue] = ["key": .string(EtcdJSON.b64(key)), "value": .string(value.base64EncodedString())]
        if lease != 0 { body["lease"] = .string(String(lease)) }
        return EtcdJSON.revision(try await call("/v3/kv/put", .object(body), retry: .write))
    }

    /// The current revision of the store.
    public func currentRevision() async throws -> Int64 {
        try await range("\u{0}", countOnly: true).revision
    }

    /// Discards history older than `revision` (etcd's compaction). Compacting to a revision at
    /// or below the last compaction is not an error.
    public func compact(revision: Int64) async throws {
        do {
            _ = try await call("/v3/kv/compaction", ["revision": .string(String(revision))], retry: .idempotent)
        } catch let error as EtcdError where error.code == .compacted {
            return
        }
    }
}

/// Encoding helpers for the gateway's JSON.
public enum EtcdJSON {
    public static func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

    /// The smallest key greater than every key that starts with `prefix`.
    public static func prefixEnd(_ prefix: String) -> String {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return String(decoding: bytes, as: UTF8.self)
            }
            bytes.removeLast()
        }
        return "\u{0}"
    }

    /// A 64-bit number, which the gateway writes as a string (and omits when 0).
    public static func int(_ value: JSONValue?) -> Int64 {
        guard let value else { return 0 }
        if let s = value.stringValue { return Int64(s) ?? 0 }
        return value.intValue ?? 0
    }

    public static func revision(_ response: JSONValue) -> Int64 { int(response["header"]?["revision"]) }

    /// One put on `http`, without `EtcdClient`'s failover: for benchmarks that drive etcd as a peer.
    public static func put(_ http: HTTPClient, _ base: String, key: String, value: String) async throws -> JSONValue {
        try await post(http, base + "/v3/kv/put", ["key": .string(b64(key)), "value": .string(b64(value))])
    }

    /// One call on `http` (GET when `body` is nil), without `EtcdClient`'s failover: for
    /// benchmarks that drive etcd as a peer.
    public static func post(_ http: HTTPClient, _ url: String, _ body: JSONValue?) async throws -> JSONValue {
        var request = HTTPClientRequest(url: url)
        if let body {
            request.method = .POST
            request.body = .bytes(ByteBuffer(data: body.jsonData()))
        }
        let response = try await http.execute(request, timeout: .seconds(60))
        let data = Data(buffer: try await response.body.collect(upTo: 512 << 20))
        guard response.status.code == 200 else {
            throw EtcdError(.failed, "etcd \(url): HTTP \(response.status.code) \(String(decoding: data.prefix(200), as: UTF8.self))")
        }
        return try JSONValue.parse(data)
    }

    static func bytes(_ value: JSONValue?) -> Data? {
        value?.stringValue.flatMap { Data(base64Encoded: $0) }
    }

    static func string(_ value: JSONValue?) -> String? {
        bytes(value).map { String(decoding: $0, as: UTF8.self) }
    }
}
