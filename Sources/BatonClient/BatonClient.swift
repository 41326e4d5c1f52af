import AsyncHTTPClient
import BatonAPI
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// A client of Baton's HTTP API, used by the CLI and the agents. It speaks HTTP only.
public struct BatonClient: Sendable {
    public var server: String
    public var token: String?
    let http: HTTPClient
    public var timeout: TimeAmount = .seconds(30)

    public init(server: String, token: String?, http: HTTPClient = .shared) {
        var s = server
        while s.hasSuffix("/") { s.removeLast() }
        if !s.contains("://") { s = "http://" + s }
        self.server = s
        self.token = token
        self.http = http
    }

    /// A raw answer: status, headers and body.
    public struct Reply: Sendable {
        public var status: Int
        public var headers: HTTPHeaders
        public var body: Data
        public var json: JSONValue? { try? JSONValue.parse(body) }
    }

    /// Sends one request. Transport failures become a 503-shaped APIError naming the server.
    public func send(_ method: HTTPMethod, _ path: String, query: [String: String] = [:], body: Data? = nil,
                     contentType: String = "application/json") async throws -> Reply {
        var request = HTTPClientRequest(url: url(path, query))
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(data: body))
        }
        do {
            let response = try await http.execute(request, timeout: timeout)
            let buffer = try await response.body.collect(upTo: 256 * 1024 * 1024)
            return Reply(status: Int(response.status.code), headers: response.headers, body: Data(buffer: buffer))
        } catch let e as APIError {
            throw e
        } catch {
            throw APIError.unavailable("cannot reach the Baton server at \(server): \(error)")
        }
    }

    func url(_ path: String, _ query: [String: String]) -> String {
        var s = server + path
        if !query.isEmpty {
            var allowed = CharacterSet.urlQueryAllowed
            allowed.remove(charactersIn: "&=+,;")
            s += "?" + query.keys.sorted().map { k in
                "\(k)=\(query[k]!.addingPercentEncoding(withAllowedCharacters: allowed) ?? query[k]!)"
            }.joined(separator: "&")
        }
        return s
    }

    /// Sends a request and decodes a JSON answer, turning a Status body into an APIError.
    public func call(_ method: HTTPMethod, _ path: String, query: [String: String] = [:], body: JSONValue? = nil,
                     contentType: String = "application/json") async throws -> JSONValue {
        let reply = try await send(method, path, query: query, body: body.map { $0.jsonData() }, contentType: contentType)
        return try Self.decode(reply)
    }

    public static func decode(_ reply: Reply) throws -> JSONValue {
        guard let json = reply.json else {
            if reply.status >= 400 {
                throw APIError(code: reply.status, reason: .init(rawValue: "HTTP\(reply.status)"),
                               message: String(decoding: reply.body, as: UTF8.self))
            }
            throw APIError.internalError("the server sent a body that is not JSON")
        }
        if reply.status >= 400 {
            throw APIError(status: json, httpCode: reply.status)
                ?? APIError(code: reply.status, reason: .init(rawValue: "HTTP\(reply.status)"), message: json.jsonString())
        }
        return json
    }

    // MARK: Resources

    public func get(_ kind: KindInfo, name: String, namespace: String?) async throws -> Resource {
        try Resource(json: try await call(.GET, kind.objectPath(name: name, namespace: namespace)))
    }

    /// Lists objects; `namespace` nil lists every namespace.
    public func list(_ kind: KindInfo, namespace: String?, labelSelector: String? = nil,
                     fieldSelector: String? = nil) async throws -> (items: [Resource], revision: String) {
        var q: [String: String] = [:]
        if let labelSelector { q["labelSelector"] = labelSelector }
        if let fieldSelector { q["fieldSelector"] = fieldSelector }
        let json = try await call(.GET, kind.collectionPath(namespace: namespace), query: q)
        let items = try (json["items"]?.arrayValue ?? []).map { v throws(APIError) in try Resource(json: v) }
        return (items, json["metadata"]?["resourceVersion"]?.stringValue ?? "0")
    }

    /// What an apply did.
    public enum ApplyOutcome: String, Sendable { case created, configured, unchanged }

    /// Create-or-update of a whole object (PATCH with the apply content type).
    public func apply(_ object: JSONValue, kind: KindInfo, name: String, namespace: String?,
                      dryRun: Bool = false) async throws -> (Resource, ApplyOutcome) {
        let reply = try await send(.PATCH, kind.objectPath(name: name, namespace: namespace),
                                   query: dryRun ? ["dryRun": "All"] : [:], body: object.jsonData(),
                                   contentType: "application/apply-patch+json")
        let json = try Self.decode(reply)
        let outcome = reply.headers.first(name: "X-Baton-Apply-Result").flatMap(ApplyOutcome.init(rawValue:))
            ?? (reply.status == 201 ? .created : .configured)
        return (try Resource(json: json), outcome)
    }

    public func create(_ object: Resource) async throws -> Resource {
        guard let kind = KindRegistry.find(apiVersion: object.apiVersion, kind: object.kind) else {
            throw APIError.badRequest("unknown kind \(object.apiVersion) \(object.kind)")
        }
        return try Resource(json: try await call(.POST, kind.collectionPath(namespace: object.namespace), body: object.json))
    }

    /// Records an Event named `name` in `namespace` (agents and the edge report what they did).
    @discardableResult
    public func createEvent(_ record: EventRecord, name: String, namespace: String) async throws -> Resource {
        guard case .object(let body) = try JSONValue(encoding: record) else {
            throw APIError.badRequest("event \(name) does not encode as an object")
        }
        return try await create(Resource(apiVersion: KindInfo.event.apiVersion, kind: "Event",
                                         metadata: ObjectMeta(name: name, namespace: namespace), body: body))
    }

    public func update(_ object: Resource) async throws -> Resource {
        guard let kind = KindRegistry.find(apiVersion: object.apiVersion, kind: object.kind) else {
            throw APIError.badRequest("unknown kind \(object.apiVersion) \(object.kind)")
        }
        return try Resource(json: try await call(.PUT, kind.objectPath(name: object.name, namespace: object.namespace), body: object.json))
    }

    public func updateStatus(_ object: Resource) async throws -> Resource {
        guard let kind = KindRegistry.find(apiVersion: object.apiVersion, kind: object.kind) else {
            throw APIError.badRequest("unknown kind \(object.apiVersion) \(object.kind)")
        }
        return try Resource(json: try await call(.PUT, kind.objectPath(name: object.name, namespace: object.namespace) + "/status",
                                                 body: object.json))
    }

    /// Merges `status` into the stored status (RFC 7386): only the given fields change.
    public func mergeStatus(_ kind: KindInfo, name: String, namespace: String?, status: JSONValue) async throws -> Resource {
        try Resource(json: try await call(.PATCH, kind.objectPath(name: name, namespace: namespace) + "/status",
                                          body: ["status": status], contentType: "application/merge-patch+json"))
    }

    /// Sends a node's heartbeat (`POST .../egresstunnels/NODE/heartbeat`), with the agent's wall
    /// clock for display. Returns once the server has recorded it; 404 when the tunnel is gone.
    public func heartbeat(node: String, agentTime: String?) async throws {
        let body: JSONValue = agentTime.map { ["time": .string($0)] } ?? [:]
        let reply = try await send(.POST, KindInfo.egressTunnel.objectPath(name: node, namespace: nil) + "/heartbeat",
                                   body: body.jsonData())
        if reply.status >= 400 { _ = try Self.decode(reply) }
    }

    public func delete(_ kind: KindInfo, name: String, namespace: String?) async throws -> Resource {
        try Resource(json: try await call(.DELETE, kind.objectPath(name: name, namespace: namespace)))
    }

    /// What `moveEIP` did: the EIP moved `from` one node `to` another, or was already there (`moved` false).
    public struct EIPMove: Sendable, Hashable {
        public var gateway: String
        public var eip: String
        public var from: String
        public var to: String
        public var moved: Bool
        /// The policies that moved with it, as `namespace/name` (cluster policies: `name`).
        public var policies: [String]
    }

    /// Moves one EIP of an EgressGateway (and every policy sharing it) to `node` by hand, as
    /// `egctl vip move` does. Admin only; refusals are APIErrors whose message names the value.
    public func moveEIP(gateway: String, eip: String, to node: String) async throws -> EIPMove {
        let reply = try await call(.POST, KindInfo.egressGateway.objectPath(name: gateway, namespace: nil) + "/move",
                                   body: ["eip": .string(eip), "node": .string(node)])
        return EIPMove(gateway: reply["gateway"]?.stringValue ?? gateway, eip: reply["eip"]?.stringValue ?? eip,
                       from: reply["from"]?.stringValue ?? "", to: reply["to"]?.stringValue ?? node,
                       moved: reply["moved"]?.boolValue ?? false,
                       policies: (reply["policies"]?.arrayValue ?? []).map { p in
                           let name = p["name"]?.stringValue ?? ""
                           return p["namespace"]?.stringValue.map { "\($0)/\(name)" } ?? name
                       })
    }

    /// One watch event as the API streams it.
    public struct Event: Sendable {
        public var type: String
        public var object: Resource
    }

    /// Streams changes: from `resourceVersion` when given, else the current objects as ADDED
    /// and then changes. The stream ends when the server closes it; an ERROR line (410) throws.
    public func watch(_ kind: KindInfo, namespace: String?, resourceVersion: String? = nil,
                      labelSelector: String? = nil, fieldSelector: String? = nil) async throws -> AsyncThrowingStream<Event, any Error> {
        var q = ["watch": "true"]
        if let resourceVersion { q["resourceVersion"] = resourceVersion }
        if let labelSelector { q["labelSelector"] = labelSelector }
        if let fieldSelector { q["fieldSelector"] = fieldSelector }
        var request = HTTPClientRequest(url: url(kind.collectionPath(namespace: namespace), q))
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, deadline: .distantFuture)
        } catch {
            throw APIError.unavailable("cannot reach the Baton server at \(server): \(error)")
        }
        if response.status.code >= 400 {
            let body = try await response.body.collect(upTo: 1 << 20)
            _ = try Self.decode(Reply(status: Int(response.status.code), headers: response.headers, body: Data(buffer: body)))
            throw APIError.internalError("the server refused the watch with HTTP \(response.status.code)")
        }
        return AsyncThrowingStream { continuation in
            let task = Task {
                var pending = Data()
                do {
                    for try await chunk in response.body {
                        pending.append(contentsOf: chunk.readableBytesView)
                        while let nl = pending.firstIndex(of: 0x0A) {
                            let line = pending[pending.startIndex..<nl]
                            pending = Data(pending[pending.index(after: nl)...])
                            if line.isEmpty { continue }
                            let json = try JSONValue.parse(Data(line))
                            let type = json["type"]?.stringValue ?? ""
                            if type == "ERROR" {
                                throw APIError(status: json["object"] ?? .null, httpCode: 410) ?? APIError.gone("watch ended")
                            }
                            continuation.yield(Event(type: type, object: try Resource(json: json["object"] ?? .null)))
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

extension BatonClient {
    /// The same server and token over a connection pool of its own, and how to close it. An
    /// agent part that holds long watches uses one, so that its watches cannot take the
    /// connections the heartbeats need; the heartbeats use one too. A pool opens at most
    /// `connections` connections to one server (8 by default, as the shared pool).
    public func withOwnConnections(connections: Int = 8) -> (client: BatonClient, shutdown: @Sendable () async -> Void) {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(1, connections)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        var c = BatonClient(server: server, token: token, http: http)
        c.timeout = timeout
        return (c, { try? await http.shutdown() })
    }
}
