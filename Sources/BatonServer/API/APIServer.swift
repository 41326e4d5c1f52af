import BatonAPI
import BatonStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus

/// The HTTP API: Kubernetes-shaped resource paths over a `ResourceStore`, bearer-token auth,
/// strict admission, watches as newline-delimited JSON, health, metrics and the OpenAPI document.
///
/// Every write goes: parse → admission (schema, then the kind's rules, with the stored objects
/// the rules need) → store. A refused object leaves the store as it was.
public struct APIServer: Sendable {
    public let store: any ResourceStore
    public let tokens: TokenAuthority
    /// Where agents' heartbeats are recorded (nil: heartbeats are refused with 503).
    public let heartbeats: (any HeartbeatLog)?
    let logger: Logger
    let metrics: PrometheusCollectorRegistry
    let admissionLock = AsyncLock()
    /// EgressTunnels known to exist, for heartbeats (see `heartbeat`).
    let knownTunnels = ExistenceCache(ttl: .seconds(1))
    let requestMetrics = RequestMetrics()
    /// Largest request body accepted, as the Kubernetes API server limits it.
    public var maxBodyBytes = 3 * 1024 * 1024
    /// `feature.holdEIPsWithoutQuorum`: whether a heartbeat the store cannot record because it
    /// has provably lost quorum is answered 503 `StoreWithoutQuorum` (agents keep their EIPs)
    /// rather than a plain 503 (agents fence as for any unanswered heartbeat).
    public var holdEIPsWithoutQuorum = true
    /// Whether the server should report ready (the store answers).
    let ready: @Sendable () async -> Bool

    public init(store: any ResourceStore, tokens: TokenAuthority, metrics: PrometheusCollectorRegistry,
                logger: Logger, heartbeats: (any HeartbeatLog)? = nil, ready: @escaping @Sendable () async -> Bool = { true }) {
        self.store = store
        self.heartbeats = heartbeats
        self.tokens = tokens
        self.metrics = metrics
        self.logger = logger
        self.ready = ready
    }

    /// The Hummingbird responder for this API.
    public var responder: CallbackResponder<BasicRequestContext> {
        CallbackResponder { request, context in
            await self.respond(to: request, context: context)
        }
    }

    /// Builds the application that serves the API on `host:port`.
    public func application(host: String, port: Int, onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in })
        -> Application<CallbackResponder<BasicRequestContext>> {
        Application(responder: responder,
                    configuration: .init(address: .hostname(host, port: port), serverName: "baton"),
                    onServerRunning: onServerRunning, logger: logger)
    }

    // MARK: Dispatch

    func respond(to request: Request, context: BasicRequestContext) async -> Response {
        let started = ContinuousClock.now
        var verb = request.method.rawValue.lowercased()
        var resource = "-"
        let response: Response
        do {
            let path = request.uri.path
            switch path {
            case "/healthz", "/livez":
                response = text("ok")
            case "/readyz":
                response = await ready() ? text("ok") : try { throw APIError.unavailable("the store is not answering") }()
            case "/metrics":
                response = Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                                    body: .init(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
            case "/openapi.json", "/openapi/v3", "/openapi/v2":
                response = json(.ok, OpenAPIDocument.document)
            default:
                let identity = try await authenticate(request)
                if path == "/apply" {
                    guard request.method == .post else { throw APIError(code: 405, reason: .methodNotAllowed, message: "POST /apply only") }
                    var req = request
                    verb = "apply"
                    response = try await applyBatch(&req, identity: identity)
                } else if path == "/apis" || path == "/apis/" {
                    response = json(.ok, Discovery.groups)
                } else if let r = Discovery.resources(path: path) {
                    response = json(.ok, r)
                } else if let route = try APIRoute.parse(path) {
                    resource = route.kind.plural
                    var req = request
                    let (v, r) = try await handle(route, request: &req, identity: identity)
                    verb = v
                    response = r
                } else {
                    throw APIError.notFound("the server could not find the requested resource: \(path)")
                }
            }
        } catch let error as APIError {
            response = json(HTTPResponse.Status(code: error.code), error.status)
        } catch {
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            let e = APIError.internalError("internal error: \(error)")
            response = json(.internalServerError, e.status)
        }
        requestMetrics.record(verb: verb, resource: resource, code: response.status.code,
                              duration: verb == "watch" ? nil : ContinuousClock.now - started)
        return response
    }

    func authenticate(_ request: Request) async throws(APIError) -> Identity {
        guard let header = request.headers[.authorization] else { throw APIError.unauthorized() }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw APIError.unauthorized("Unauthorized: expected \"Authorization: Bearer TOKEN\"")
        }
        guard let identity = await tokens.authenticate(bearer: String(parts[1]).trimmingCharacters(in: .whitespaces)) else {
            throw APIError.unauthorized("Unauthorized: the bearer token is not valid")
        }
        return identity
    }

    /// Serves one resource URL; returns the verb (for metrics) and the response.
    func handle(_ route: APIRoute, request: inout Request, identity: Identity) async throws -> (String, Response) {
        let query = Dictionary(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, uniquingKeysWith: { a, _ in a })
        let dryRun = query["dryRun"].map { !$0.isEmpty } ?? false
        switch (request.method, route.name, route.subresource) {
        case (.post, let name?, "heartbeat"):
            return ("heartbeat", try await heartbeat(route, name: name, request: &request, identity: identity))
        case (.get, nil, nil):
            if query["watch"].map({ $0 == "true" || $0 == "1" }) ?? false {
                try authorize(identity, .watch, route, name: nil)
                return ("watch", try await watch(route, query: query))
            }
            try authorize(identity, .list, route, name: nil)
            return ("list", try await list(route, query: query))
        case (.get, let name?, nil), (.get, let name?, "status"):
            try authorize(identity, .get, route, name: name)
            let object = try await store.get(kind: route.kind.kind, namespace: route.namespace, name: name)
            return ("get", json(.ok, object.json))
        case (.post, nil, nil):
            let body = try await readDocument(&request)
            let admitted = try Admission.decode(body)
            let object = try place(admitted, route: route, name: nil)
            try authorize(identity, .create, route, name: object.name)
            let created = try await write(admitted, object: object, dryRun: dryRun) { old in
                if old != nil { throw APIError.alreadyExists(kind: route.kind.kind, name: object.name) }
                return try await store.create(object)
            }
            return ("create", json(.created, created.object.json, warnings: admitted.warnings))
        case (.put, let name?, nil):
            let body = try await readDocument(&request)
            let admitted = try Admission.decode(body)
            let object = try place(admitted, route: route, name: name)
            try authorize(identity, .update, route, name: name)
            let updated = try await write(admitted, object: object, dryRun: dryRun) { old in
                guard old != nil else { throw APIError.notFound(kind: route.kind.kind, name: name) }
                return try await store.update(object)
            }
            return ("update", json(.ok, updated.object.json, warnings: admitted.warnings))
        case (.patch, let name?, nil):
            // Apply: create-or-update with the whole object, as `kubectl apply --server-side --force-conflicts`.
            let body = try await readDocument(&request)
            let admitted = try Admission.decode(body)
            var placed = try place(admitted, route: route, name: name)
            placed.metadata.resourceVersion = nil
            let object = placed
            try authorize(identity, .patch, route, name: name)
            let result = try await write(admitted, object: object, dryRun: dryRun) { old in
                if old == nil { return try await store.create(object) }
                return try await store.update(object)
            }
            var r = json(result.old == nil ? .created : .ok, result.object.json, warnings: admitted.warnings)
            let outcome = result.old == nil ? "created" : (result.old?.metadata.resourceVersion == result.object.metadata.resourceVersion ? "unchanged" : "configured")
            r.headers[HTTPField.Name("X-Baton-Apply-Result")!] = outcome
            return ("apply", r)
        case (.patch, let name?, "status") where (request.headers[.contentType] ?? "").contains("merge-patch"):
            // RFC 7386 merge patch of `status`: each writer (agent, controller) sends only the
            // fields it owns, and the server merges onto the latest stored status.
            guard route.kind.hasStatus else { throw APIError.notFound("\(route.kind.plural) have no status subresource") }
            let body = try await readDocument(&request)
            guard case .object(let patch) = body, Set(patch.keys).isSubset(of: ["status", "apiVersion", "kind", "metadata"]) else {
                throw APIError.badRequest("a status merge patch is an object with a \"status\" member only")
            }
            if let reason = Authorizer.checkStatusPatch(identity, kind: route.kind, name: name, patch: patch) {
                throw APIError.forbidden(reason)
            }
            for _ in 0..<10 {
                var object = try await store.get(kind: route.kind.kind, namespace: route.namespace, name: name)
                object.status = JSONValue.mergePatch(object.status ?? .object([:]), patch["status"] ?? .null)
                try Admission.validateStatus(object, kind: route.kind)
                if dryRun { return ("status", json(.ok, object.json)) }
                do {
                    return ("status", json(.ok, try await store.updateStatus(object).json))
                } catch let e as APIError where e.code == 409 {
                    continue
                }
            }
            throw APIError.conflict(kind: route.kind.kind, name: name, "the status kept changing; try again")
        case (.put, let name?, "status"), (.patch, let name?, "status"):
            guard route.kind.hasStatus else { throw APIError.notFound("\(route.kind.plural) have no status subresource") }
            try authorize(identity, .update, route, name: name)
            let body = try await readDocument(&request)
            var object = try Resource(json: body)
            guard object.kind == route.kind.kind, object.apiVersion == route.kind.apiVersion else {
                throw APIError.badRequest("the body is a \(object.apiVersion) \(object.kind), but the URL is for \(route.kind.apiVersion) \(route.kind.kind)")
            }
            guard object.name == name else {
                throw APIError.badRequest("metadata.name \"\(object.name)\" does not match the name in the URL \"\(name)\"")
            }
            object.metadata.namespace = route.kind.namespaced ? route.namespace : nil
            try Admission.validateStatus(object, kind: route.kind)
            if dryRun { return ("status", json(.ok, object.json)) }
            let updated = try await store.updateStatus(object)
            return ("status", json(.ok, updated.json))
        case (.delete, let name?, nil):
            try authorize(identity, .delete, route, name: name)
            let rv = query["resourceVersion"].flatMap { Int64($0) }
            if dryRun {
                let object = try await store.get(kind: route.kind.kind, namespace: route.namespace, name: name)
                return ("delete", json(.ok, object.json))
            }
            let deleted = try await store.delete(kind: route.kind.kind, namespace: route.namespace, name: name, expectedRevision: rv)
            if route.kind.kind == "EgressTunnel" { knownTunnels.forget(name) }
            return ("delete", json(.ok, deleted.json))
        case (.post, let name?, "token") where route.kind.kind == "Node":
            guard identity == .admin else { throw APIError.forbidden("only the admin may issue node tokens") }
            try Admission.validateName(name, field: "name").first.map { throw APIError.invalid(kind: "Node", name: name, causes: [$0]) }
            let token = try await tokens.issueNodeToken(node: name)
            return ("create", json(.created, ["kind": "NodeToken", "node": .string(name), "token": .string(token)]))
        case (.post, let name?, "move") where route.kind.kind == "EgressGateway":
            return ("move", try await moveEIP(gateway: name, request: &request, identity: identity))
        default:
            throw APIError(code: 405, reason: .methodNotAllowed,
                           message: "\(request.method.rawValue) is not supported on \(request.uri.path)")
        }
    }

    func authorize(_ identity: Identity, _ verb: Authorizer.Verb, _ route: APIRoute, name: String?) throws(APIError) {
        if let reason = Authorizer.check(identity, verb: verb, kind: route.kind, name: name) {
            throw APIError.forbidden(reason)
        }
    }

    /// Checks that the document belongs at this URL and fills the namespace from it.
    func place(_ admitted: Admission.Admitted, route: APIRoute, name: String?) throws(APIError) -> Resource {
        var object = admitted.object
        guard admitted.kind.kind == route.kind.kind, admitted.kind.apiVersion == route.kind.apiVersion else {
            throw APIError.badRequest("the body is a \(object.apiVersion) \(object.kind), but the URL is for \(route.kind.apiVersion) \(route.kind.kind)")
        }
        if let name, object.metadata.name != name {
            if object.metadata.name.isEmpty { object.metadata.name = name } else {
                throw APIError.badRequest("metadata.name \"\(object.metadata.name)\" does not match the name in the URL \"\(name)\"")
            }
        }
        if route.kind.namespaced {
            let ns = object.metadata.namespace ?? ""
            let pathNS = route.namespace ?? ""
            if ns.isEmpty { object.metadata.namespace = pathNS.isEmpty ? "default" : pathNS }
            else if !pathNS.isEmpty && ns != pathNS {
                throw APIError.badRequest("metadata.namespace \"\(ns)\" does not match the namespace in the URL \"\(pathNS)\"")
            }
        } else {
            object.metadata.namespace = nil
        }
        return object
    }

    /// Kinds whose writes a cross-object rule reads or guards: they are admitted under the lock.
    static let crossCheckedKinds: Set<String> = Set(KindRegistry.all.flatMap { k in
        k.relatedKinds.isEmpty ? [] : [k.kind] + k.relatedKinds
    })

    struct WriteResult: Sendable {
        var object: Resource
        var old: Resource?
    }

    /// Validates `object` against the stored state and performs `perform` (given the stored
    /// object, if any). Kinds with cross-object rules are checked and written under one lock.
    func write(_ admitted: Admission.Admitted, object: Resource, dryRun: Bool,
               perform: @escaping @Sendable (Resource?) async throws -> Resource) async throws -> WriteResult {
        let kind = admitted.kind
        let body: @Sendable () async throws -> WriteResult = {
            let old = try? await store.get(kind: kind.kind, namespace: object.namespace, name: object.name)
            var context = ValidationContext()
            for related in kind.relatedKinds {
                context.objects[related] = try await store.list(kind: related, namespace: nil, selector: nil).items
            }
            try Admission.validate(Admission.Admitted(kind: kind, object: object, warnings: admitted.warnings),
                                   old: old, context: context)
            if dryRun { return WriteResult(object: object, old: old) }
            return WriteResult(object: try await perform(old), old: old)
        }
        if !Self.crossCheckedKinds.contains(kind.kind) {
            return try await body()
        }
        return try await admissionLock.withLock(body)
    }

    // MARK: Batch apply

    /// `POST /apply[?dryRun=All]` with `{"items": [object, ...]}`: what `baton apply -f` sends.
    /// Every item is admitted first, each against the stored objects *and the items before it*
    /// (so a policy may name a gateway from the same file); if any is refused, nothing is
    /// written and the answer lists every refusal by item index. Otherwise each item is created
    /// or updated in order, under the admission lock.
    func applyBatch(_ request: inout Request, identity: Identity) async throws -> Response {
        let body = try await readDocument(&request)
        guard let items = body["items"]?.arrayValue else {
            throw APIError.badRequest("POST /apply takes {\"items\": [object, ...]}")
        }
        let dryRun = request.uri.queryParameters["dryRun"].map { !$0.isEmpty } ?? false
        return try await admissionLock.withLock {
            struct Plan { var kind: KindInfo; var object: Resource; var old: Resource?; var warnings: [String] }
            var plans: [Plan] = []
            var refused: [JSONValue] = []
            // The objects that cross-object rules read: listed once per batch (not once per item; a
            // gateway's status can be large), with the items admitted so far laid over them.
            var related = RelatedObjects()
            for (index, item) in items.enumerated() {
                do {
                    let admitted = try Admission.decode(item)
                    let kind = admitted.kind
                    let route = APIRoute(kind: kind, namespace: kind.namespaced ? (admitted.object.namespace ?? "default") : nil,
                                         name: nil, subresource: nil)
                    var object = try place(admitted, route: route, name: nil)
                    object.metadata.resourceVersion = nil
                    try authorize(identity, .patch, route, name: object.name)
                    let old = try? await store.get(kind: kind.kind, namespace: object.namespace, name: object.name)
                    var context = ValidationContext()
                    for kind in kind.relatedKinds {
                        context.objects[kind] = try await related.objects(kind, store: store)
                    }
                    try Admission.validate(Admission.Admitted(kind: kind, object: object, warnings: admitted.warnings),
                                           old: old ?? related.admitted(like: object), context: context)
                    related.lay(object)
                    plans.append(Plan(kind: kind, object: object, old: old, warnings: admitted.warnings))
                } catch let e as APIError {
                    refused.append(["index": .int(Int64(index)), "status": e.status])
                }
            }
            if !refused.isEmpty {
                return json(.unprocessableContent, ["kind": "ApplyResult", "applied": false, "refused": .array(refused)])
            }
            var results: [JSONValue] = []
            for (index, plan) in plans.enumerated() {
                if dryRun {
                    results.append(["index": .int(Int64(index)), "outcome": "validated", "object": plan.object.json]); continue
                }
                let stored = plan.old == nil ? try await store.create(plan.object) : try await store.update(plan.object)
                let outcome = plan.old == nil ? "created"
                    : (plan.old?.metadata.resourceVersion == stored.metadata.resourceVersion ? "unchanged" : "configured")
                results.append(["index": .int(Int64(index)), "outcome": .string(outcome), "object": stored.json,
                                "warnings": .array(plan.warnings.map(JSONValue.string))])
            }
            return json(.ok, ["kind": "ApplyResult", "applied": .bool(!dryRun), "items": .array(results)])
        }
    }

    /// Stored objects of the kinds a batch's cross-object rules read, each kind listed once, in
    /// store order, with the batch's earlier items replacing or following them.
    struct RelatedObjects {
        private var items: [String: [Resource]] = [:]
        private var index: [String: [String: Int]] = [:]
        /// Every item laid so far, by kind, in order: laid over a kind when it is first listed.
        private var laid: [String: [Resource]] = [:]

        static func key(_ r: Resource) -> String { "\(r.namespace ?? "")/\(r.name)" }

        mutating func objects(_ kind: String, store: any ResourceStore) async throws -> [Resource] {
            if let listed = items[kind] { return listed }
            let listed = try await store.list(kind: kind, namespace: nil, selector: nil).items
            items[kind] = listed
            index[kind] = Dictionary(listed.enumerated().map { (Self.key($1), $0) }, uniquingKeysWith: { _, b in b })
            for object in laid[kind] ?? [] { overlay(object) }
            return items[kind]!
        }

        /// The latest item of the batch with `object`'s kind and name, if any was admitted.
        func admitted(like object: Resource) -> Resource? {
            let key = Self.key(object)
            return laid[object.kind]?.last { Self.key($0) == key }
        }

        /// Lays an admitted item over the stored objects of its kind.
        mutating func lay(_ object: Resource) {
            laid[object.kind, default: []].append(object)
            if items[object.kind] != nil { overlay(object) }
        }

        private mutating func overlay(_ object: Resource) {
            let key = Self.key(object)
            if let at = index[object.kind]?[key] {
                items[object.kind]![at] = object
            } else {
                index[object.kind]![key] = items[object.kind]!.count
                items[object.kind]!.append(object)
            }
        }
    }

    // MARK: Reads

    func selector(_ query: [String: String]) throws(APIError) -> LabelSelector? {
        guard let s = query["labelSelector"], !s.isEmpty else { return nil }
        return try LabelSelector.parse(String(s))
    }

    /// Field selectors on `involvedObject.*` (for events) and `metadata.name`/`metadata.namespace`.
    func fieldFilter(_ query: [String: String]) throws(APIError) -> @Sendable (Resource) -> Bool {
        let filter = try memoizedFieldFilter(query)
        return { filter($0, nil) }
    }

    /// `fieldFilter`, reading each path's values through `memo` when given: a watch event that
    /// a thousand watchers filter by the same path is read once.
    func memoizedFieldFilter(_ query: [String: String]) throws(APIError) -> @Sendable (Resource, SelectionMemo?) -> Bool {
        guard let s = query["fieldSelector"], !s.isEmpty else { return { _, _ in true } }
        var parsed: [(path: String, value: String, equal: Bool)] = []
        for term in s.split(separator: ",") {
            if let r = term.range(of: "!=") {
                parsed.append((String(term[..<r.lowerBound]), String(term[r.upperBound...]), false))
            } else if let r = term.range(of: "==") ?? term.range(of: "=") {
                parsed.append((String(term[..<r.lowerBound]), String(term[r.upperBound...]), true))
            } else {
                throw APIError.badRequest("invalid field selector term \"\(term)\": expected FIELD=VALUE")
            }
        }
        let terms = parsed
        return { object, memo in
            // Paths under spec/status are read from the body; others need the whole object.
            var whole: JSONValue?
            return terms.allSatisfy { t in
                let select = { () -> [String] in
                    let top = t.path.split(separator: ".", maxSplits: 1).first.map(String.init) ?? ""
                    let root: JSONValue
                    if top == "spec" || top == "status", let part = object.body[top] {
                        root = .object([top: part])
                    } else {
                        if whole == nil { whole = object.json }
                        root = whole!
                    }
                    return JSONPath.select("." + t.path, in: root).map(JSONPath.scalarText)
                }
                // A path through `[*]` selects several values: `=` holds when any equals the value.
                let values = memo.map { $0.values(at: t.path, select) } ?? select()
                let found = values.isEmpty ? t.value.isEmpty : values.contains(t.value)
                return found == t.equal
            }
        }
    }

    func list(_ route: APIRoute, query: [String: String]) async throws -> Response {
        let result = try await store.list(kind: route.kind.kind, namespace: route.namespace, selector: try selector(query))
        let filter = try fieldFilter(query)
        let items = result.items.filter(filter)
        return json(.ok, [
            "apiVersion": .string(route.kind.apiVersion), "kind": .string(route.kind.kind + "List"),
            "metadata": ["resourceVersion": .string(String(result.revision))],
            "items": .array(items.map(\.json)),
        ])
    }

    /// `?watch=true[&resourceVersion=N]`: newline-delimited `{"type":…,"object":…}`. Without a
    /// resourceVersion (or with "0"), the current objects come first as ADDED, then changes.
    func watch(_ route: APIRoute, query: [String: String]) async throws -> Response {
        let selector = try selector(query)
        let memoizedFilter = try memoizedFieldFilter(query)
        let filter: @Sendable (Resource) -> Bool = { memoizedFilter($0, nil) }
        var initial: [Resource] = []
        let since: Int64
        if let rv = query["resourceVersion"], !rv.isEmpty, rv != "0" {
            guard let n = Int64(rv), n >= 0 else { throw APIError.badRequest("resourceVersion \"\(rv)\" is not a number") }
            since = n
        } else {
            let list = try await store.list(kind: route.kind.kind, namespace: route.namespace, selector: selector)
            initial = list.items.filter(filter)
            since = list.revision
        }
        // Open the stream before answering, so a compacted revision is a 410, not a broken body.
        let stream = try await store.watch(kind: route.kind.kind, namespace: route.namespace, since: since)
        let timeout = query["timeoutSeconds"].flatMap { Double($0) }
        let initialObjects = initial
        let logger = self.logger
        let filtering = selector != nil || query["fieldSelector"].map { !$0.isEmpty } ?? false
        let body = ResponseBody { writer in
            for object in initialObjects {
                try await writer.write(Self.watchLine("ADDED", object))
            }
            let deadline = timeout.map { ContinuousClock.now.advanced(by: .milliseconds(Int64($0 * 1000))) }
            do {
                let (events, forward) = AsyncThrowingStream<WatchEvent, any Error>.makeStream()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        do {
                            for try await event in stream { forward.yield(event) }
                            forward.finish()
                        } catch { forward.finish(throwing: error) }
                    }
                    if let deadline {
                        group.addTask {
                            try await Task.sleep(until: deadline, clock: .continuous)
                            forward.finish()
                        }
                    }
                    // As Kubernetes' watch cache does: an object that starts matching the selectors
                    // arrives as ADDED, and one that stops matching as DELETED, so a watcher's view
                    // stays exactly the matching set. `matching` holds what this watcher has.
                    var matching = Set(initialObjects.map { ObjectKey($0) })
                    var known = matching
                    for try await event in events {
                        if filtering {
                            let key = ObjectKey(event.object)
                            let matches = event.type != .deleted && (selector?.matches(event.object.labels) ?? true)
                                && memoizedFilter(event.object, event.selections)
                            let had = matching.contains(key)
                            let unknown = !known.contains(key)  // a watch from a revision: maybe sent before
                            known.insert(key)
                            if matches {
                                matching.insert(key)
                                if !had && event.type == .modified {
                                    try await writer.write(Self.watchLine("ADDED", event.object))
                                    continue
                                }
                            } else {
                                matching.remove(key)
                                if had || (unknown && event.type != .added) {
                                    try await writer.write(Self.watchLine("DELETED", event.object))
                                }
                                continue
                            }
                        }
                        // Encoded once per event, however many watchers it goes to.
                        try await writer.write(ByteBuffer(bytes: event.encoding.bytes {
                            [UInt8](Self.watchLine(event.type.rawValue, event.object).readableBytesView)
                        }))
                    }
                    group.cancelAll()
                }
            } catch let e as APIError {
                // The watch fell behind or its revision was compacted: tell the client to re-list.
                try await writer.write(ByteBuffer(data: JSONValue.object(["type": "ERROR", "object": e.status]).jsonData() + Data("\n".utf8)))
            } catch is CancellationError {
            } catch {
                logger.debug("watch ended", metadata: ["error": "\(error)"])
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-cache"], body: body)
    }

    /// An object's identity in a watcher's view.
    struct ObjectKey: Hashable {
        var namespace: String
        var name: String
        init(_ r: Resource) { namespace = r.namespace ?? ""; name = r.name }
    }

    static func watchLine(_ type: String, _ object: Resource) -> ByteBuffer {
        var data = JSONValue.object(["type": .string(type), "object": object.json]).jsonData()
        data.append(0x0A)
        return ByteBuffer(data: data)
    }

    // MARK: Bodies

    /// Reads one JSON or YAML document from the body (413 past the limit, 400 when not one document).
    func readDocument(_ request: inout Request) async throws -> JSONValue {
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maxBodyBytes)
        } catch {
            throw APIError(code: 413, reason: .tooLarge, message: "the request body is larger than \(maxBodyBytes) bytes")
        }
        let data = Data(buffer: buffer)
        if data.isEmpty { throw APIError.badRequest("the request body is empty: send one JSON or YAML object") }
        let contentType = request.headers[.contentType] ?? "application/json"
        if contentType.contains("json") && !contentType.contains("yaml") {
            do { return try JSONValue.parse(data) } catch {
                throw APIError.badRequest("the body is not valid JSON: \(Self.describe(error))")
            }
        }
        guard let text = String(data: data, encoding: .utf8) else { throw APIError.badRequest("the body is not UTF-8 text") }
        let docs = try Manifest.parseDocuments(text)
        guard docs.count == 1 else {
            throw APIError.badRequest("the body must hold exactly one object, found \(docs.count)")
        }
        return docs[0]
    }

    static func describe(_ error: any Error) -> String {
        if let d = error as? DecodingError, case .dataCorrupted(let c) = d {
            return (c.underlyingError.map { "\($0)" } ?? c.debugDescription)
        }
        return "\(error)"
    }

    func json(_ status: HTTPResponse.Status, _ value: JSONValue, warnings: [String] = []) -> Response {
        var data = value.jsonData()
        data.append(0x0A)
        var headers: HTTPFields = [.contentType: "application/json"]
        for w in warnings { headers.append(HTTPField(name: HTTPField.Name("Warning")!, value: "299 - \"\(w)\"")) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(data: data)))
    }

    func text(_ s: String) -> Response {
        Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: s)))
    }
}

