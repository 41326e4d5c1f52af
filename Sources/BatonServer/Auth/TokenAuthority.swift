import BatonAPI
import BatonStore
import Foundation
import Logging
import Synchronization

/// Who a request acts as.
public enum Identity: Sendable, Hashable, CustomStringConvertible {
    /// The cluster administrator: may do anything.
    case admin
    /// A node's agent: may read everything, write its own Node and EgressTunnel (and their
    /// status), and record events.
    case node(String)

    public var description: String {
        switch self {
        case .admin: "admin"
        case .node(let n): "node \"\(n)\""
        }
    }
}

/// Issues and checks bearer tokens.
///
/// The admin token is created at first start and written to `DATA_DIR/admin.token` (mode 0600).
/// Node tokens are kept in the store as `NodeToken` objects (not served by the resource API),
/// so every server replica that shares the store accepts them. Tokens are 256-bit random hex
/// strings, compared in constant time. They are stored as issued, as Kubernetes stores Secrets:
/// protect the data directory.
public final class TokenAuthority: Sendable {
    static let tokenKind = "NodeToken"
    static let tokenAPIVersion = "baton.io/v1"

    let adminToken: String
    let store: any ResourceStore
    /// Node tokens seen valid recently, so each request doesn't read the store.
    private let cache = Mutex<[String: (node: String, expires: ContinuousClock.Instant)]>([:])

    public init(adminToken: String, store: any ResourceStore) {
        self.adminToken = adminToken
        self.store = store
    }

    /// Reads `DATA_DIR/admin.token`, or creates it (0600) when absent.
    public static func loadOrCreateAdminToken(dataDir: String) throws -> String {
        let path = (dataDir as NSString).appendingPathComponent("admin.token")
        if let existing = try? String(contentsOfFile: path, encoding: .utf8) {
            let t = existing.trimmingCharacters(in: .whitespacesAndNewlines)
            if !t.isEmpty { return t }
        }
        let token = randomToken()
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: Data((token + "\n").utf8),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw APIError.internalError("cannot write \(path)")
        }
        return token
    }

    static let adminTokenKind = "AdminToken"
    static let adminTokenName = "admin"

    /// The cluster's admin token, kept in the store (an `AdminToken` object, not served by the
    /// API) so that every replica sharing the store accepts the same one: the first replica to
    /// start creates it (create-if-absent; a replica that loses the race reads the winner's).
    /// Each replica writes it to its own `DATA_DIR/admin.token` (0600) for the CLI, replacing a
    /// token left there from another cluster.
    public static func loadOrCreateClusterAdminToken(store: any ResourceStore, dataDir: String, logger: Logger) async throws -> String {
        let token: String
        var meta = ObjectMeta(name: adminTokenName)
        meta.labels = ["baton.io/token": "admin"]
        let object = Resource(apiVersion: tokenAPIVersion, kind: adminTokenKind, metadata: meta,
                              body: ["spec": ["token": .string(randomToken())]])
        do {
            token = try await store.create(object).spec?["token"]?.stringValue ?? ""
            logger.notice("created the cluster's admin token")
        } catch let error as APIError where error.code == 409 {
            let stored = try await store.get(kind: adminTokenKind, namespace: nil, name: adminTokenName)
            guard let existing = stored.spec?["token"]?.stringValue, !existing.isEmpty else {
                throw APIError.internalError("the stored AdminToken \"\(adminTokenName)\" has no spec.token")
            }
            token = existing
        }
        let path = (dataDir as NSString).appendingPathComponent("admin.token")
        let onDisk = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        if onDisk != token {
            if let onDisk, !onDisk.isEmpty { logger.notice("replacing \(path) with the cluster's admin token") }
            try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
            try? FileManager.default.removeItem(atPath: path)
            guard FileManager.default.createFile(atPath: path, contents: Data((token + "\n").utf8),
                                                 attributes: [.posixPermissions: 0o600]) else {
                throw APIError.internalError("cannot write \(path)")
            }
        }
        return token
    }

    public static func randomToken() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(format: "%016llx", g.next() as UInt64) }.joined()
    }

    /// The identity behind an `Authorization: Bearer` header value, or nil.
    public func authenticate(bearer token: String) async -> Identity? {
        if constantTimeEqual(token, adminToken) { return .admin }
        let now = ContinuousClock.now
        if let hit = cache.withLock({ $0[token] }), hit.expires > now { return .node(hit.node) }
        // Token objects are named by a digest of the token, so a lookup is one get.
        guard let object = try? await store.get(kind: Self.tokenKind, namespace: nil, name: Self.objectName(for: token)),
              let stored = object.spec?["token"]?.stringValue, constantTimeEqual(stored, token),
              let node = object.spec?["node"]?.stringValue else { return nil }
        cache.withLock { $0[token] = (node, now.advanced(by: .seconds(10))) }
        return .node(node)
    }

    /// Issues a new token for `node`. Earlier tokens of the node stay valid until revoked.
    public func issueNodeToken(node: String) async throws -> String {
        let token = Self.randomToken()
        var meta = ObjectMeta(name: Self.objectName(for: token))
        meta.labels = ["baton.io/node": node]
        let object = Resource(apiVersion: Self.tokenAPIVersion, kind: Self.tokenKind, metadata: meta,
                              body: ["spec": ["node": .string(node), "token": .string(token)]])
        _ = try await store.create(object)
        return token
    }

    /// Revokes every token of `node`; returns how many there were.
    public func revokeNodeTokens(node: String) async throws -> Int {
        let list = try await store.list(kind: Self.tokenKind, namespace: nil,
                                        selector: LabelSelector(matchLabels: ["baton.io/node": node]))
        for t in list.items {
            _ = try await store.delete(kind: Self.tokenKind, namespace: nil, name: t.name, expectedRevision: nil)
        }
        cache.withLock { c in c = c.filter { $0.value.node != node } }
        return list.items.count
    }

    /// A stable, non-reversible-enough name for a token object: FNV-1a over the token. Names
    /// only locate the object; the token itself is compared in full.
    static func objectName(for token: String) -> String {
        "tok-" + String(StableHash.fnv1a(token), radix: 16)
    }

    func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}

/// What each identity may do.
public enum Authorizer {
    public enum Verb: String, Sendable { case get, list, watch, create, update, patch, delete }

    /// nil when allowed; otherwise the reason for a 403.
    public static func check(_ identity: Identity, verb: Verb, kind: KindInfo, name: String?) -> String? {
        guard case .node(let node) = identity else { return nil }
        switch verb {
        case .get, .list, .watch:
            return nil
        default:
            if kind.kind == "Event" { return nil }
            if (kind.kind == "Node" || kind.kind == "EgressTunnel"), let name, name == node, verb != .delete || kind.kind == "EgressTunnel" {
                return nil
            }
            let target = name.map { "\(kind.plural) \"\($0)\"" } ?? kind.plural
            return "\(target) is forbidden: node \"\(node)\" cannot \(verb.rawValue) it: a node's token may only write its own Node and EgressTunnel, its own entry of an IPFailover's or a StaticRoute's status.nodes, and events"
        }
    }

    /// `check` for a merge patch of an object's status. Besides what `check` allows, a node's
    /// token may patch its own entry of an IPFailover's or a StaticRoute's `status.nodes`
    /// (`{"status": {"nodes": {"NODE": …}}}`, where its agent reports its VRRP instances or its
    /// routes), and nothing else of it.
    public static func checkStatusPatch(_ identity: Identity, kind: KindInfo, name: String, patch: [String: JSONValue]) -> String? {
        if case .node(let node) = identity, kind.kind == "IPFailover" || kind.kind == "StaticRoute",
           case .object(let status)? = patch["status"], status.count == 1,
           case .object(let nodes)? = status["nodes"], nodes.count == 1, nodes.keys.first == node {
            return nil
        }
        return check(identity, verb: .update, kind: kind, name: name)
    }
}
