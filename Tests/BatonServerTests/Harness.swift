import BatonAPI
import BatonServer
import BatonStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Prometheus

/// An API server over an in-memory store, with the admin token "admin-token".
struct Harness {
    let store: SQLiteStore
    let api: APIServer
    let heartbeats: SQLiteHeartbeatLog
    static let admin = "admin-token"

    init() throws {
        store = try SQLiteStore.inMemory()
        heartbeats = try SQLiteHeartbeatLog.inMemory()
        api = APIServer(store: store, tokens: TokenAuthority(adminToken: Self.admin, store: store),
                        metrics: PrometheusCollectorRegistry(), logger: Logger(label: "test"), heartbeats: heartbeats)
    }

    var app: Application<CallbackResponder<BasicRequestContext>> {
        Application(responder: api.responder, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }
}

extension TestClientProtocol {
    /// Sends a request with a bearer token (admin by default) and a JSON or YAML body.
    func send(_ method: HTTPRequest.Method, _ uri: String, token: String? = Harness.admin, json: JSONValue? = nil,
              yaml: String? = nil, contentType: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let token { headers[.authorization] = "Bearer \(token)" }
        var body: ByteBuffer?
        if let json {
            body = ByteBuffer(data: json.jsonData())
            headers[.contentType] = contentType ?? "application/json"
        } else if let yaml {
            body = ByteBuffer(string: yaml)
            headers[.contentType] = contentType ?? "application/yaml"
        }
        return try await execute(uri: uri, method: method, headers: headers, body: body)
    }
}

extension TestResponse {
    var json: JSONValue? { try? JSONValue.parse(Data(buffer: body)) }
    var text: String { String(buffer: body) }
}

/// Paths to a kind's collection and objects.
func path(_ kind: KindInfo, _ name: String? = nil, namespace: String? = nil) -> String {
    name.map { kind.objectPath(name: $0, namespace: namespace) } ?? kind.collectionPath(namespace: namespace)
}
