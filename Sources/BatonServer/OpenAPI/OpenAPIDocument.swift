import BatonAPI

/// The OpenAPI 3 document of every path and schema, generated from the kind registry. It is
/// served at `/openapi.json` and committed as `openapi.json` (a test keeps the two equal).
public enum OpenAPIDocument {
    public static let document: JSONValue = build()

    static func ref(_ name: String) -> JSONValue { ["$ref": .string("#/components/schemas/\(name)")] }

    static func build() -> JSONValue {
        var schemas: [String: JSONValue] = [
            "ObjectMeta": KindInfo.metadataSchema.openAPI,
            "Status": [
                "type": "object",
                "description": "A failure, as a Kubernetes Status. `details.causes` names each refused field.",
                "properties": [
                    "kind": ["type": "string"], "apiVersion": ["type": "string"], "status": ["type": "string"],
                    "message": ["type": "string"], "reason": ["type": "string"], "code": ["type": "integer"],
                    "details": ["type": "object", "properties": [
                        "name": ["type": "string"], "kind": ["type": "string"],
                        "causes": ["type": "array", "items": ["type": "object", "properties": [
                            "reason": ["type": "string"], "field": ["type": "string"], "message": ["type": "string"],
                        ]]],
                    ]],
                ],
            ],
            "WatchEvent": [
                "type": "object",
                "description": "One line of a watch stream.",
                "properties": ["type": ["type": "string", "enum": ["ADDED", "MODIFIED", "DELETED", "ERROR"]],
                               "object": ["type": "object"]],
            ],
        ]
        var paths: [String: JSONValue] = [:]
        let errors: JSONValue = [
            "400": ["description": "Malformed request or body", "content": ["application/json": ["schema": ref("Status")]]],
            "401": ["description": "Missing or invalid bearer token", "content": ["application/json": ["schema": ref("Status")]]],
            "403": ["description": "The token may not do this", "content": ["application/json": ["schema": ref("Status")]]],
            "404": ["description": "Not found", "content": ["application/json": ["schema": ref("Status")]]],
            "409": ["description": "Already exists, or stale resourceVersion", "content": ["application/json": ["schema": ref("Status")]]],
            "422": ["description": "Refused by validation; the causes name the fields", "content": ["application/json": ["schema": ref("Status")]]],
        ]
        for k in KindRegistry.all {
            var body = k.schema.openAPI
            if case .object(var o) = body {
                var props = o["properties"]?.objectValue ?? [:]
                props["apiVersion"] = ["type": "string", "enum": [.string(k.apiVersion)]]
                props["kind"] = ["type": "string", "enum": [.string(k.kind)]]
                props["metadata"] = ref("ObjectMeta")
                o["properties"] = .object(props)
                o["x-kubernetes-group-version-kind"] = [["group": .string(k.group), "version": .string(k.version), "kind": .string(k.kind)]]
                o["description"] = .string("\(k.kind) (\(k.apiVersion)); short names: \(k.shortNames.joined(separator: ", ")); \(k.namespaced ? "namespaced" : "cluster-scoped").")
                body = .object(o)
            }
            schemas[k.kind] = body
            schemas[k.kind + "List"] = ["type": "object", "properties": [
                "apiVersion": ["type": "string"], "kind": ["type": "string"],
                "metadata": ["type": "object", "properties": ["resourceVersion": ["type": "string"]]],
                "items": ["type": "array", "items": ref(k.kind)],
            ]]
            let one: JSONValue = ["content": ["application/json": ["schema": ref(k.kind)]]]
            let nsParam: JSONValue = ["name": "namespace", "in": "path", "required": true, "schema": ["type": "string"]]
            let nameParam: JSONValue = ["name": "name", "in": "path", "required": true, "schema": ["type": "string"]]
            let listParams: JSONValue = [
                ["name": "labelSelector", "in": "query", "schema": ["type": "string"]],
                ["name": "fieldSelector", "in": "query", "schema": ["type": "string"]],
                ["name": "watch", "in": "query", "schema": ["type": "boolean"],
                 "description": "Stream newline-delimited WatchEvents instead of a list."],
                ["name": "resourceVersion", "in": "query", "schema": ["type": "string"],
                 "description": "With watch: stream every change after this revision."],
                ["name": "timeoutSeconds", "in": "query", "schema": ["type": "number"]],
            ]
            let dry: JSONValue = ["name": "dryRun", "in": "query", "schema": ["type": "string"],
                                  "description": "`All`: validate and answer, store nothing."]
            func op(_ summary: String, _ params: [JSONValue], body: Bool, ok: String, okBody: JSONValue) -> JSONValue {
                var o: [String: JSONValue] = ["summary": .string(summary), "tags": [.string(k.kind)],
                                              "parameters": .array(params)]
                if body {
                    o["requestBody"] = ["required": true, "content": [
                        "application/json": ["schema": ref(k.kind)], "application/yaml": ["schema": ref(k.kind)],
                    ]]
                }
                var responses = errors.objectValue!
                responses[ok] = okBody
                o["responses"] = .object(responses)
                return .object(o)
            }
            var scopes: [[JSONValue]] = [[]]
            if k.namespaced { scopes.append([nsParam]) }
            for scope in scopes {
                let ns: String? = scope.isEmpty ? nil : "{namespace}"
                let listOK: JSONValue = ["description": "The list, or a watch stream",
                                         "content": ["application/json": ["schema": ref(k.kind + "List")]]]
                var coll: [String: JSONValue] = [
                    "get": op("List or watch \(k.plural)\(ns == nil && k.namespaced ? " in every namespace" : "")",
                              scope + listParams.arrayValue!, body: false, ok: "200", okBody: listOK),
                ]
                if ns != nil || !k.namespaced {
                    coll["post"] = op("Create a \(k.kind)", scope + [dry], body: true, ok: "201",
                                      okBody: one.merging(["description": "Created"]))
                }
                paths[k.collectionPath(namespace: ns)] = .object(coll)
                if ns == nil && k.namespaced { continue }
                let params = scope + [nameParam]
                paths[k.objectPath(name: "{name}", namespace: ns)] = [
                    "get": op("Read a \(k.kind)", params, body: false, ok: "200", okBody: one.merging(["description": "The object"])),
                    "put": op("Replace a \(k.kind) (status is kept; metadata.resourceVersion, when set, must be current)",
                              params + [dry], body: true, ok: "200", okBody: one.merging(["description": "Replaced"])),
                    "patch": op("Apply a \(k.kind): create it, or replace its spec, labels and annotations",
                                params + [dry], body: true, ok: "200", okBody: one.merging(["description": "Applied; X-Baton-Apply-Result says created, configured or unchanged"])),
                    "delete": op("Delete a \(k.kind)", params + [["name": "resourceVersion", "in": "query", "schema": ["type": "string"]]],
                                 body: false, ok: "200", okBody: one.merging(["description": "The deleted object"])),
                ]
                if k.hasStatus {
                    paths[k.objectPath(name: "{name}", namespace: ns) + "/status"] = [
                        "get": op("Read a \(k.kind)'s status", params, body: false, ok: "200", okBody: one.merging(["description": "The object"])),
                        "put": op("Replace a \(k.kind)'s status", params + [dry], body: true, ok: "200", okBody: one.merging(["description": "Updated"])),
                    ]
                }
            }
            if k.kind == "Node" {
                paths[k.objectPath(name: "{name}", namespace: nil) + "/token"] = [
                    "post": [
                        "summary": "Issue an agent token for a node (admin only)", "tags": ["Node"],
                        "parameters": [nameParam],
                        "responses": ["201": ["description": "The token: {\"node\": NAME, \"token\": TOKEN}"]],
                    ],
                ]
            }
        }
        let plain: JSONValue = ["200": ["description": "ok", "content": ["text/plain": ["schema": ["type": "string"]]]]]
        paths["/healthz"] = ["get": ["summary": "Liveness (no token needed)", "responses": plain]]
        paths["/readyz"] = ["get": ["summary": "Readiness: the store answers (no token needed)", "responses": plain]]
        paths["/metrics"] = ["get": ["summary": "Prometheus metrics (no token needed)", "responses": plain]]
        paths["/openapi.json"] = ["get": ["summary": "This document (no token needed)",
                                          "responses": ["200": ["description": "OpenAPI 3.0 document"]]]]
        paths["/apis"] = ["get": ["summary": "API groups", "responses": ["200": ["description": "APIGroupList"]]]]
        paths["/apply"] = ["post": [
            "summary": "Apply several objects at once (what `baton apply -f` sends): each is admitted against the stored objects and the items before it; if any is refused, none is written",
            "parameters": [["name": "dryRun", "in": "query", "schema": ["type": "string"]]],
            "requestBody": ["required": true, "content": ["application/json": ["schema": [
                "type": "object", "properties": ["items": ["type": "array", "items": ["type": "object"]]],
            ]]]],
            "responses": [
                "200": ["description": "ApplyResult: items[].{index, outcome (created|configured|unchanged|validated), object}"],
                "422": ["description": "ApplyResult: refused[].{index, status}; nothing was written"],
            ],
        ]]
        return [
            "openapi": "3.0.3",
            "info": ["title": "Baton API", "version": "v1",
                     "description": "Kubernetes-shaped API for egress IPs, virtual IPs, static routes and edge routes. Authenticate with `Authorization: Bearer TOKEN`."],
            "components": ["schemas": .object(schemas),
                           "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer"]]],
            "security": [["bearer": []]],
            "paths": .object(paths),
        ]
    }
}

extension JSONValue {
    func merging(_ other: [String: JSONValue]) -> JSONValue {
        guard case .object(var o) = self else { return self }
        for (k, v) in other { o[k] = v }
        return .object(o)
    }
}
