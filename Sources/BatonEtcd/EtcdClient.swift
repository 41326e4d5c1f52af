import AsyncHTTPClient
import BatonAPI
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOPosix
import Synchronization

/// A client for etcd v3 through its JSON gateway: every call is `POST /v3/...` with a JSON body,
/// keys and values base64-encoded, 64-bit numbers as decimal strings; watches and lease
/// keep-alives stream back newline-delimited JSON.
///
/// Why the gateway rather than gRPC: talking gRPC would mean generating Swift code from etcd's
/// protobuf files (protoc, plugins and grpc-swift, none of which Baton depends on), while the
/// gateway needs nothing but the HTTP client Baton already uses. Debian's etcd-server 3.4 serves
/// the gateway on the client port under `/v3/` (3.4 made `/v3` its stable path; `/v3beta` is
/// gone), and everything Baton needs (range, put, txn, delete, compaction, watch, leases,
/// status) is there. What it costs: one HTTP/1.1 connection per open stream (a watch or a
/// keep-alive), which is why `EtcdStore` shares one etcd watch among all its watchers.
///
/// Endpoints and failover: calls go to the endpoint that last answered. When it refuses the
/// connection, does not accept it within `connectTimeout`, or says it has no leader, the call
/// goes to the next endpoint, and the one that answers is remembered. A read also moves on
/// when an endpoint times out; a write that was sent and not answered is not sent again (it
/// may have been applied) and fails with `outcomeUnknown`.
///
/// Every request carries gRPC metadata `hasleader: true`, so a member that has lost its leader
/// answers at once ("etcdserver: no leader") instead of holding the request until etcd's own
/// timeout; that is what lets a write fail fast, and clearly, when the cluster has lost quorum.
///
/// Call `shutdown()` when done: it ends every open stream.
public final class EtcdClient: Sendable {
    public struct Configuration: Sendable {
        /// How long to wait for a TCP connection to an endpoint before trying the next one.
        /// Defaults to 1 s.
        public var connectTimeout: Duration = .seconds(1)
        /// How long one endpoint may take to answer a call (streams: to accept it). Defaults to 5 s,
        /// etcdctl's own command timeout.
        public var requestTimeout: Duration = .seconds(5)

        public init() {}
    }

    /// Whether a call may be sent again, to another endpoint, when an answer does not come.
    public enum Retry: Sendable {
        /// Reads, lease keep-alives, revokes: sending twice does no harm.
        case idempotent
        /// Writes: sent again only when the endpoint surely did not take it.
        case write
    }

    /// The client URLs, `http://host:port`, in the order given.
    public let endpoints: [String]
    public let configuration: Configuration
    let http: HTTPClient
    let logger: Logger
    private let preferred = Atomic<Int>(0)
    /// The cluster's member count at the last `refreshMembership()` (0: not known yet).
    private let members = Atomic<Int>(0)

    /// - Throws: `EtcdError.failed` naming the endpoint when one is not an `http://host:port` URL
    ///   (TLS is not supported), or when there is none.
    public init(endpoints: [String], configuration: Configuration = Configuration(),
                logger: Logger = Logger(label: "baton.etcd", factory: { _ in SwiftLogNoOpLogHandler() })) throws(EtcdError) {
        guard !endpoints.isEmpty else { throw EtcdError(.failed, "etcd: no endpoints given") }
        var normalized: [String] = []
        for endpoint in endpoints {
            normalized.append(try Self.normalize(endpoint))
        }
        self.endpoints = normalized
        self.configuration = configuration
        self.logger = logger
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .nanoseconds(Int64(Self.nanoseconds(configuration.connectTimeout))), read: nil)
        // Fail a refused connection at once, so the call can move on to the next endpoint.
        config.connectionPool.retryConnectionEstablishment = false
        config.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        config.decompression = .disabled
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    deinit {
        // A client dropped without `shutdown()` still releases its connections.
        http.shutdown { _ in }
    }

    /// Ends every open stream and refuses later calls.
    public func shutdown() async {
        try? await http.shutdown()
    }

    /// `host:port` or `http://host:port` → `http://host:port`.
    static func normalize(_ endpoint: String) throws(EtcdError) -> String {
        var url = endpoint.trimmingCharacters(in: .whitespaces)
        if url.hasPrefix("https://") {
            throw EtcdError(.failed, "etcd endpoint \(endpoint): TLS (https) is not supported; use http://host:port")
        }
        if !url.hasPrefix("http://") { url = "http://" + url }
        while url.hasSuffix("/") { url.removeLast() }
        let authority = url.dropFirst("http://".count)
        guard let colon = authority.lastIndex(of: ":"), !authority[..<colon].isEmpty,
              let port = Int(authority[authority.index(after: colon)...]), (1...65535).contains(port),
              !authority.contains("/") else {
            throw EtcdError(.failed, "etcd endpoint \"\(endpoint)\" is not host:port (for example 10.0.0.1:2379)")
        }
        return url
    }

    /// The endpoint calls go to first.
    public var preferredEndpoint: String { endpoints[preferred.load(ordering: .relaxed) % endpoints.count] }

    /// Calls `refreshMembership()` every `interval` until cancelled (members come and go).
    public func maintainMembership(every interval: Duration) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            if Task.isCancelled { return }
            _ = try? await refreshMembership()
        }
    }

    // MARK: - Calls

    /// `POST path` with `body`, on the preferred endpoint and then the others, as `retry` allows.
    /// Returns the answer's JSON.
    public func call(_ path: String, _ body: JSONValue, retry: Retry) async throws -> JSONValue {
        let start = preferred.load(ordering: .relaxed)
        var tried: [String] = []
        // Whether every member so far answered that it has no leader or refused the connection
        // outright (no process listening): together, proof that no member can commit anything.
        var everyMemberDown = true
        for attempt in 0..<endpoints.count {
            try Task.checkCancellation()
            let index = (start + attempt) % endpoints.count
            let endpoint = endpoints[index]
            switch await send(endpoint, path, body) {
            case .answered(let json):
                if attempt > 0 {
                    preferred.store(index, ordering: .relaxed)
                    logger.info("etcd endpoint changed", metadata: ["endpoint": "\(endpoint)", "after": "\(tried.joined(separator: "; "))"])
                }
                return json
            case .refused(let error):
                if let error { throw error }
                try Task.checkCancellation()
                everyMemberDown = false
                tried.append("\(endpoint): connection not accepted within \(configuration.connectTimeout)")
            case .notListening:
                tried.append("\(endpoint): connection refused")
            case .noLeader(let message):
                tried.append("\(endpoint): \(message)")
            case .busy(let message):
                everyMemberDown = false
                tried.append("\(endpoint): \(message)")
            case .noAnswer(let why):
                try Task.checkCancellation()
                guard case .idempotent = retry else {
                    throw EtcdError(.outcomeUnknown, "etcd at \(endpoint) did not confirm the write (\(why)); it may or may not have been applied")
                }
                everyMemberDown = false
                tried.append("\(endpoint): \(why)")
            }
        }
        let known = members.load(ordering: .relaxed)
        throw Self.unavailable(tried, quorumLost: everyMemberDown && known > 0 && endpoints.count >= known)
    }

    /// - Parameter quorumLost: every member of the cluster answered that it has no leader or
    ///   refused the connection (`EtcdError.Code.noQuorum`).
    static func unavailable(_ tried: [String], quorumLost: Bool = false) -> EtcdError {
        if quorumLost {
            return EtcdError(.noQuorum, "etcd is unavailable (the cluster has lost quorum: no member has a leader or accepts connections): \(tried.joined(separator: "; "))")
        }
        let quorum = tried.contains { $0.contains("no leader") } ? " (has the cluster lost quorum?)" : ""
        return EtcdError(.unavailable, "etcd is unavailable\(quorum): \(tried.joined(separator: "; "))")
    }

    /// How many members the cluster had when `refreshMembership()` last worked (0: never).
    public var knownMemberCount: Int { members.load(ordering: .relaxed) }

    /// Reads the cluster's member list (`/v3/cluster/member/list`) and remembers how many
    /// members it has. A failed call is proof of a lost quorum (`EtcdError.Code.noQuorum`) only
    /// when the client knows the member count and has an endpoint for every member: a member
    /// the client cannot ask might be leading a majority. Returns the count.
    @discardableResult
    public func refreshMembership() async throws -> Int {
        let r = try await call("/v3/cluster/member/list", [:], retry: .idempotent)
        let count = r["members"]?.arrayValue?.count ?? 0
        guard count > 0 else { throw EtcdError(.invalidResponse, "etcd answered the member list with no members") }
        if count > endpoints.count, members.load(ordering: .relaxed) != count {
            logger.warning("etcd has more members than endpoints given; a lost quorum cannot be told from a partition",
                           metadata: ["members": "\(count)", "endpoints": "\(endpoints.count)"])
        }
        members.store(count, ordering: .relaxed)
        return count
    }

    /// Opens a stream (`/v3/watch`, `/v3/lease/keepalive`) on the first endpoint that accepts
    /// it and returns its lines. The request is sent again to the next endpoint whenever the
    /// last one did not answer: opening a stream changes nothing in etcd.
    public func stream(_ path: String, _ body: JSONValue) async throws -> EtcdStream {
        let start = preferred.load(ordering: .relaxed)
        var tried: [String] = []
        for attempt in 0..<endpoints.count {
            try Task.checkCancellation()
            let index = (start + attempt) % endpoints.count
            let endpoint = endpoints[index]
            do {
                let response = try await http.execute(request(endpoint, path, body), deadline: .now() + timeAmount(configuration.requestTimeout))
                guard response.status == .ok else {
                    let data = try await Self.collect(response.body)
                    let (message, grpc) = Self.errorMessage(data, status: response.status.code)
                    if grpc == 14 || response.status.code == 503 {
                        tried.append("\(endpoint): \(message)")
                        continue
                    }
                    throw EtcdError(.failed, "etcd at \(endpoint) refused \(path): \(message)", grpcCode: grpc)
                }
                if attempt > 0 { preferred.store(index, ordering: .relaxed) }
                return EtcdStream(endpoint: endpoint, body: response.body)
            } catch let error as EtcdError {
                throw error
            } catch {
                try Task.checkCancellation()
                tried.append("\(endpoint): \(Self.describe(error))")
            }
        }
        throw Self.unavailable(tried)
    }

    /// Moves the preferred endpoint past `endpoint` (a stream on it broke), unless another call
    /// already moved it.
    public func avoid(_ endpoint: String) {
        guard let index = endpoints.firstIndex(of: endpoint) else { return }
        _ = preferred.compareExchange(expected: index, desired: (index + 1) % endpoints.count, ordering: .relaxed)
    }

    /// Asks one endpoint for its status (`/v3/maintenance/status`): its version and whether it
    /// has a leader. Never fails over.
    public func status(of endpoint: String) async throws -> JSONValue {
        switch await send(endpoint, "/v3/maintenance/status", [:]) {
        case .answered(let json): return json
        case .refused(let error): throw error ?? EtcdError(.unavailable, "etcd at \(endpoint): connection not accepted")
        case .notListening: throw EtcdError(.unavailable, "etcd at \(endpoint): connection refused")
        case .noLeader(let message), .busy(let message): throw EtcdError(.unavailable, "etcd at \(endpoint): \(message)")
        case .noAnswer(let why): throw EtcdError(.unavailable, "etcd at \(endpoint): \(why)")
        }
    }

    // MARK: - One request

    private enum Outcome {
        case answered(JSONValue)
        /// Not sent (nil: the connection was not accepted in time, or the host is unreachable),
        /// or etcd answered with an error that ends the call.
        case refused(EtcdError?)
        /// Not sent: the host answered that nothing listens on the port (ECONNREFUSED), so no
        /// etcd member runs there.
        case notListening
        /// The member has no leader: nothing was applied; another member may have one.
        case noLeader(String)
        /// The member is overloaded ("too many requests"): nothing was applied.
        case busy(String)
        /// Sent, and no answer came.
        case noAnswer(String)
    }

    private func send(_ endpoint: String, _ path: String, _ body: JSONValue) async -> Outcome {
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request(endpoint, path, body), deadline: .now() + timeAmount(configuration.requestTimeout))
        } catch {
            if Self.connectionRefused(error) { return .notListening }
            if Self.notSent(error) { return .refused(nil) }
            return .noAnswer(Self.describe(error))
        }
        let data: Data
        do {
            data = try await Self.collect(response.body)
        } catch {
            return .noAnswer(Self.describe(error))
        }
        guard response.status == .ok else {
            let (message, grpc) = Self.errorMessage(data, status: response.status.code)
            if message.contains("no leader") { return .noLeader(message) }
            if message.contains("too many requests") { return .busy(message) }
            if grpc == 14 || grpc == 4 || (grpc == 2 && message.contains("deadline")) || response.status.code == 503 {
                return .noAnswer(message)  // "request timed out", "leader changed": maybe applied
            }
            if grpc == 11, message.contains("compacted") {
                return .refused(EtcdError(.compacted, "etcd at \(endpoint): \(message)", grpcCode: grpc))
            }
            return .refused(EtcdError(.failed, "etcd at \(endpoint) refused \(path): \(message)", grpcCode: grpc))
        }
        do {
            return .answered(try JSONValue.parse(data))
        } catch {
            return .refused(EtcdError(.invalidResponse, "etcd at \(endpoint) answered \(path) with JSON this client cannot read: \(error)"))
        }
    }

    private func request(_ endpoint: String, _ path: String, _ body: JSONValue) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: endpoint + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        // gRPC metadata through the gateway: fail at once on a member without a leader.
        request.headers.add(name: "Grpc-Metadata-hasleader", value: "true")
        request.body = .bytes(ByteBuffer(data: body.jsonData()))
        return request
    }

    static func collect(_ body: HTTPClientResponse.Body) async throws -> Data {
        Data(buffer: try await body.collect(upTo: 1 << 30))
    }

    /// etcd's error answer: `{"error": "...", "message": "...", "code": 14}`.
    static func errorMessage(_ data: Data, status: UInt) -> (String, Int?) {
        if let json = try? JSONValue.parse(data) {
            let error = json["error"]
            if let message = json["message"]?.stringValue ?? error?.stringValue {
                return (message, json["code"]?.intValue.map(Int.init))
            }
            if let message = error?["message"]?.stringValue {
                return (message, error?["grpc_code"]?.intValue.map(Int.init))
            }
        }
        return ("HTTP \(status): \(String(decoding: data.prefix(200), as: UTF8.self))", nil)
    }

    /// Whether `error` means the request never left this process (the connection was refused or
    /// not accepted in time), so that another endpoint may take it.
    static func notSent(_ error: any Error) -> Bool {
        if let e = error as? HTTPClientError, e == .connectTimeout { return true }
        if error is NIOConnectionError { return true }
        if let e = error as? IOError, [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL].contains(e.errnoCode) { return true }
        if let e = error as? ChannelError, case .connectTimeout = e { return true }
        return false
    }

    /// Whether `error` is ECONNREFUSED on every address tried: the host is up and nothing
    /// listens on the port.
    static func connectionRefused(_ error: any Error) -> Bool {
        if let e = error as? IOError { return e.errnoCode == ECONNREFUSED }
        if let e = error as? NIOConnectionError {
            return !e.connectionErrors.isEmpty && e.connectionErrors.allSatisfy { connectionRefused($0.error) }
        }
        return false
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? HTTPClientError {
            if e == .deadlineExceeded { return "no answer in time" }
            if e == .remoteConnectionClosed { return "the connection closed" }
            if e == .connectTimeout { return "connection not accepted in time" }
        }
        if error is NIOConnectionError { return "connection refused" }
        if let e = error as? IOError { return e.description }
        return "\(error)"
    }

    func timeAmount(_ d: Duration) -> TimeAmount { .nanoseconds(Int64(Self.nanoseconds(d))) }

    static func nanoseconds(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9
    }
}

/// The lines of one etcd stream (watch, keep-alive), each one JSON message. Not shareable:
/// one task reads it.
public final class EtcdStream: @unchecked Sendable {
    /// The endpoint serving the stream.
    public let endpoint: String
    private var iterator: HTTPClientResponse.Body.AsyncIterator
    private var buffer: [UInt8] = []
    private var start = 0

    init(endpoint: String, body: HTTPClientResponse.Body) {
        self.endpoint = endpoint
        self.iterator = body.makeAsyncIterator()
    }

    /// The next message's `result`, nil when the stream ended. Throws `EtcdError` when etcd sent
    /// an error instead, or `unavailable` when the connection broke.
    public func next() async throws -> JSONValue? {
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[start..<newline]
                start = newline + 1
                if start > 1 << 16 {
                    buffer.removeFirst(start)
                    start = 0
                }
                if line.allSatisfy({ $0 == 32 || $0 == 13 }) { continue }
                let json: JSONValue
                do {
                    json = try JSONValue.parse(Data(line))
                } catch {
                    throw EtcdError(.invalidResponse, "etcd at \(endpoint) streamed a line this client cannot read: \(error)")
                }
                if let result = json["result"] { return result }
                if let error = json["error"] {
                    let message = error["message"]?.stringValue ?? error.stringValue ?? "\(error)"
                    let code = (error["grpc_code"]?.intValue ?? json["code"]?.intValue).map(Int.init)
                    throw EtcdError(code == 14 ? .unavailable : .failed, "etcd at \(endpoint): \(message)", grpcCode: code)
                }
                throw EtcdError(.invalidResponse, "etcd at \(endpoint) streamed a message with neither result nor error")
            }
            let chunk: ByteBuffer?
            do {
                chunk = try await iterator.next()
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                if Task.isCancelled { throw CancellationError() }
                throw EtcdError(.unavailable, "etcd at \(endpoint): the stream broke (\(EtcdClient.describe(error)))")
            }
            guard let chunk else {
                if Task.isCancelled { throw CancellationError() }
                return nil
            }
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            buffer.append(contentsOf: chunk.readableBytesView)
        }
    }
}
