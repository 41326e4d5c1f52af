import BatonAPI
import Foundation

/// The CLI's commands, as library functions: the executable only parses arguments and calls
/// these. Each returns the process exit status and writes to the given streams.
public struct CLI: Sendable {
    public var connection: Connection
    public var out: @Sendable (String) -> Void
    public var err: @Sendable (String) -> Void

    public init(connection: Connection,
                out: @escaping @Sendable (String) -> Void = { FileHandle.standardOutput.write(Data(($0 + "\n").utf8)) },
                err: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
        self.connection = connection
        self.out = out
        self.err = err
    }

    var client: BatonClient { connection.client }

    /// A kind from what the user typed, or an error in kubectl's words.
    public static func kind(_ name: String) throws -> KindInfo {
        guard let k = KindRegistry.lookup(name) else {
            throw APIError.notFound("the server doesn't have a resource type \"\(name)\"")
        }
        return k
    }

    func report(_ error: any Error, context: String? = nil) {
        if let e = error as? APIError {
            let prefix = e.code == 503 ? "error" : "Error from server (\(e.reason.rawValue))"
            err("\(prefix): \(context.map { "\($0): " } ?? "")\(e.message)")
        } else {
            err("error: \(context.map { "\($0): " } ?? "")\(error)")
        }
    }

    // MARK: apply

    /// A manifest document, where it came from, and where it goes.
    struct Document {
        var source: String
        var json: JSONValue
        var kind: KindInfo
        var name: String
        var namespace: String?
        var display: String { "\(kind.singular).\(kind.group)/\(name)" }
    }

    /// Reads FILE, DIR (its *.yaml, *.yml and *.json, in name order) or `-` (stdin).
    static func readSources(_ paths: [String]) throws -> [(String, String)] {
        var out: [(String, String)] = []
        for p in paths {
            if p == "-" {
                let data = FileHandle.standardInput.readDataToEndOfFile()
                out.append(("STDIN", String(decoding: data, as: UTF8.self)))
                continue
            }
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else {
                throw APIError.notFound("the path \"\(p)\" does not exist")
            }
            if isDir.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: p).sorted()
                    .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") }
                for n in names {
                    let f = (p as NSString).appendingPathComponent(n)
                    out.append((f, try String(contentsOfFile: f, encoding: .utf8)))
                }
            } else {
                out.append((p, try String(contentsOfFile: p, encoding: .utf8)))
            }
        }
        return out
    }

    func documents(_ paths: [String], namespace: String?) throws -> [Document] {
        var docs: [Document] = []
        for (source, text) in try Self.readSources(paths) {
            let parsed: [JSONValue]
            do { parsed = try Manifest.parseDocuments(text) } catch {
                throw APIError.badRequest("error parsing \(source): \(error.message)")
            }
            for json in parsed {
                guard let apiVersion = json["apiVersion"]?.stringValue, let kindName = json["kind"]?.stringValue else {
                    throw APIError.badRequest("error validating \"\(source)\": apiVersion and kind must be set in every object")
                }
                guard let kind = KindRegistry.find(apiVersion: apiVersion, kind: kindName) else {
                    throw APIError.badRequest("error validating \"\(source)\": no kind \"\(kindName)\" is served for version \"\(apiVersion)\"")
                }
                guard let name = json["metadata"]?["name"]?.stringValue, !name.isEmpty else {
                    throw APIError.badRequest("error validating \"\(source)\": \(kindName): metadata.name: Required value")
                }
                var ns: String? = nil
                if kind.namespaced {
                    ns = json["metadata"]?["namespace"]?.stringValue ?? namespace ?? "default"
                    if let namespace, let own = json["metadata"]?["namespace"]?.stringValue, own != namespace {
                        throw APIError.badRequest("error validating \"\(source)\": the namespace of \(kindName) \"\(name)\" (\(own)) does not match the namespace given with -n (\(namespace))")
                    }
                }
                docs.append(Document(source: source, json: json, kind: kind, name: name, namespace: ns))
            }
        }
        return docs
    }

    /// `baton apply -f FILE|DIR|-`. The server admits every document (each against the stored
    /// objects and the documents before it) before writing any; if one is refused, nothing is applied.
    public func apply(paths: [String], namespace: String?, dryRun: Bool = false) async -> Int32 {
        let docs: [Document]
        do { docs = try documents(paths, namespace: namespace) } catch { report(error); return 1 }
        if docs.isEmpty { err("error: no objects passed to apply"); return 1 }
        var items: [JSONValue] = []
        for d in docs {
            var json = d.json
            if d.kind.namespaced, let ns = d.namespace { json["metadata"]?["namespace"] = .string(ns) }
            items.append(json)
        }
        let reply: BatonClient.Reply
        do {
            reply = try await client.send(.POST, "/apply", query: dryRun ? ["dryRun": "All"] : [:],
                                          body: JSONValue.object(["items": .array(items)]).jsonData())
        } catch { report(error); return 1 }
        guard let result = reply.json, result["kind"] == "ApplyResult" else {
            do { _ = try BatonClient.decode(reply) } catch { report(error); return 1 }
            err("error: unexpected answer from the server (HTTP \(reply.status))")
            return 1
        }
        if let refused = result["refused"]?.arrayValue {
            for r in refused {
                let i = Int(r["index"]?.intValue ?? 0)
                let source = i < docs.count ? docs[i].source : "?"
                let e = APIError(status: r["status"] ?? .null, httpCode: 422) ?? APIError.invalid(kind: "", name: "", causes: [])
                report(e, context: "error when applying \"\(source)\"")
            }
            err("nothing was applied")
            return 1
        }
        for r in result["items"]?.arrayValue ?? [] {
            let i = Int(r["index"]?.intValue ?? 0)
            guard i < docs.count else { continue }
            for w in r["warnings"]?.arrayValue ?? [] { err("Warning: \(w.stringValue ?? "")") }
            let outcome = r["outcome"]?.stringValue ?? "configured"
            out("\(docs[i].display) \(dryRun ? "configured (dry run)" : outcome)")
        }
        return 0
    }

    // MARK: get

    public enum OutputFormat: String, Sendable { case table = "", wide, yaml, json, name }

    public func get(kindName: String, names: [String], namespace: String?, allNamespaces: Bool,
                    output: OutputFormat, selector: String?, watch: Bool) async -> Int32 {
        do {
            let kind = try Self.kind(kindName)
            let ns: String? = kind.namespaced ? (allNamespaces ? nil : (namespace ?? "default")) : nil
            var objects: [Resource] = []
            var revision = "0"
            if names.isEmpty {
                (objects, revision) = try await client.list(kind, namespace: ns, labelSelector: selector)
            } else {
                for n in names { objects.append(try await client.get(kind, name: n, namespace: ns ?? (kind.namespaced ? "default" : nil))) }
                revision = objects.map(\.metadata.revision).max().map(String.init) ?? "0"
            }
            let table = Table(kind: kind, wide: output == .wide, withNamespace: kind.namespaced && allNamespaces)
            var widths = table.widths(objects.map(table.row))
            switch output {
            case .table, .wide:
                if objects.isEmpty && !watch {
                    err(kind.namespaced && !allNamespaces ? "No resources found in \(ns ?? "default") namespace." : "No resources found")
                } else if !objects.isEmpty {
                    out(table.render(objects).split(separator: "\n").map { line in String(line) }.joined(separator: "\n"))
                } else {
                    out(Table.format(table.header, widths: widths))
                }
            case .yaml:
                if names.count == 1 && !watch { out(objects[0].json.yamlString()) }
                else if !watch { out(listJSON(kind, objects, revision).yamlString()) }
                else { for o in objects { out("---\n" + o.json.yamlString()) } }
            case .json:
                if names.count == 1 && !watch { out(objects[0].json.jsonString(pretty: true)) }
                else if !watch { out(listJSON(kind, objects, revision).jsonString(pretty: true)) }
                else { for o in objects { out(o.json.jsonString()) } }
            case .name:
                for o in objects { out("\(kind.singular).\(kind.group)/\(o.name)") }
            }
            guard watch else { return 0 }
            let stream = try await client.watch(kind, namespace: ns, resourceVersion: revision, labelSelector: selector)
            for try await event in stream {
                if !names.isEmpty && !names.contains(event.object.name) { continue }
                switch output {
                case .table, .wide:
                    let row = table.row(event.object)
                    widths = zip(widths, row).map { max($0, $1.count) }
                    out(Table.format(row, widths: widths))
                case .yaml: out("---\n" + event.object.json.yamlString())
                case .json: out(event.object.json.jsonString())
                case .name: out("\(kind.singular).\(kind.group)/\(event.object.name)")
                }
            }
            return 0
        } catch {
            report(error)
            return 1
        }
    }

    func listJSON(_ kind: KindInfo, _ objects: [Resource], _ revision: String) -> JSONValue {
        ["apiVersion": "v1", "kind": "List", "metadata": ["resourceVersion": .string(revision)],
         "items": .array(objects.map(\.json))]
    }

    // MARK: delete

    public func delete(kindName: String?, names: [String], files: [String], namespace: String?) async -> Int32 {
        var targets: [(KindInfo, String, String?)] = []
        do {
            if !files.isEmpty {
                for d in try documents(files, namespace: namespace) { targets.append((d.kind, d.name, d.namespace)) }
            } else {
                guard let kindName else { err("error: you must name a kind and names, or give -f FILE"); return 1 }
                let kind = try Self.kind(kindName)
                if names.isEmpty { err("error: resource(s) were provided, but no name was specified"); return 1 }
                for n in names { targets.append((kind, n, kind.namespaced ? (namespace ?? "default") : nil)) }
            }
        } catch { report(error); return 1 }
        var status: Int32 = 0
        for (kind, name, ns) in targets {
            do {
                _ = try await client.delete(kind, name: name, namespace: ns)
                out("\(kind.singular).\(kind.group) \"\(name)\" deleted")
            } catch {
                report(error)
                status = 1
            }
        }
        return status
    }

    // MARK: label

    /// `baton label KIND NAME k=v k2- [--overwrite]`.
    public func label(kindName: String, name: String, changes: [String], namespace: String?, overwrite: Bool) async -> Int32 {
        do {
            let kind = try Self.kind(kindName)
            var set: [String: String] = [:]
            var remove: [String] = []
            for c in changes {
                if c.hasSuffix("-") && !c.contains("=") { remove.append(String(c.dropLast())); continue }
                guard let eq = c.firstIndex(of: "=") else {
                    err("error: invalid label \"\(c)\": expected KEY=VALUE or KEY-"); return 1
                }
                let k = String(c[..<eq]), v = String(c[c.index(after: eq)...])
                if let e = Admission.validateLabel(key: k, value: v, field: "metadata.labels").first {
                    err("error: \(e.description)"); return 1
                }
                set[k] = v
            }
            if set.isEmpty && remove.isEmpty { err("error: at least one label update is required"); return 1 }
            let ns = kind.namespaced ? (namespace ?? "default") : nil
            for _ in 0..<10 {
                var object = try await client.get(kind, name: name, namespace: ns)
                var labels = object.metadata.labels ?? [:]
                for (k, v) in set {
                    if let old = labels[k], old != v, !overwrite {
                        err("error: '\(k)' already has a value (\(old)), and --overwrite is false"); return 1
                    }
                    labels[k] = v
                }
                for k in remove { labels[k] = nil }
                object.metadata.labels = labels.isEmpty ? nil : labels
                do {
                    _ = try await client.update(object)
                    out("\(kind.singular).\(kind.group)/\(name) labeled")
                    return 0
                } catch let e as APIError where e.code == 409 {
                    continue
                }
            }
            err("error: \(kind.kind) \"\(name)\" kept changing; try again")
            return 1
        } catch {
            report(error)
            return 1
        }
    }

    // MARK: describe and events

    public func describe(kindName: String, name: String, namespace: String?) async -> Int32 {
        do {
            let kind = try Self.kind(kindName)
            let ns = kind.namespaced ? (namespace ?? "default") : nil
            let object = try await client.get(kind, name: name, namespace: ns)
            var lines: [String] = []
            func field(_ k: String, _ v: String) { lines.append((k + ":").padding(toLength: 14, withPad: " ", startingAt: 0) + v) }
            field("Name", object.name)
            field("Namespace", object.namespace ?? "")
            let labels = (object.metadata.labels ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            field("Labels", labels.isEmpty ? "<none>" : labels.joined(separator: "\n              "))
            let ann = (object.metadata.annotations ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
            field("Annotations", ann.isEmpty ? "<none>" : ann.joined(separator: "\n              "))
            field("API Version", object.apiVersion)
            field("Kind", object.kind)
            lines.append("Metadata:")
            lines.append("  Creation Timestamp:  \(object.metadata.creationTimestamp ?? "")")
            lines.append("  Generation:          \(object.metadata.generation ?? 0)")
            lines.append("  Resource Version:    \(object.metadata.resourceVersion ?? "")")
            lines.append("  UID:                 \(object.metadata.uid ?? "")")
            for key in object.body.keys.sorted(by: { Self.bodyOrder($0) < Self.bodyOrder($1) }) {
                let v = object.body[key]!
                lines.append("\(key.prefix(1).uppercased() + key.dropFirst()):")
                if case .object(let o) = v, o.isEmpty { continue }
                if case .object = v {
                    lines.append(contentsOf: v.yamlString().split(separator: "\n", omittingEmptySubsequences: false)
                        .filter { !$0.isEmpty }.map { "  " + $0 })
                } else { lines[lines.count - 1] += "  " + JSONPath.scalarText(v) }
            }
            lines.append("Events:" + (try await eventTable(kind: kind, object: object).map { "\n" + $0 } ?? "  <none>"))
            out(lines.joined(separator: "\n"))
            return 0
        } catch {
            report(error)
            return 1
        }
    }

    static func bodyOrder(_ key: String) -> Int { key == "spec" ? 0 : key == "status" ? 1 : 2 }

    func eventTable(kind: KindInfo, object: Resource) async throws -> String? {
        var selector = "involvedObject.kind=\(object.kind),involvedObject.name=\(object.name)"
        if let ns = object.namespace { selector += ",involvedObject.namespace=\(ns)" }
        let events = try await client.list(.event, namespace: nil, fieldSelector: selector).items
            .sorted { ($0.body["lastTimestamp"]?.stringValue ?? "") < ($1.body["lastTimestamp"]?.stringValue ?? "") }
        if events.isEmpty { return nil }
        let now = Date()
        let rows = events.map { e -> [String] in
            let last = e.body["lastTimestamp"]?.stringValue.flatMap(Timestamp.parse)
            let count = e.body["count"]?.intValue ?? 1
            let age = last.map { Table.age(now.timeIntervalSince($0)) } ?? "<unknown>"
            return [e.body["type"]?.stringValue ?? "Normal", e.body["reason"]?.stringValue ?? "",
                    count > 1 ? "\(age) (x\(count))" : age,
                    e.body["source"]?["component"]?.stringValue ?? "", e.body["message"]?.stringValue ?? ""]
        }
        let header = ["Type", "Reason", "Age", "From", "Message"]
        let dashes = header.map { String(repeating: "-", count: $0.count) }
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        return ([header, dashes] + rows).map { "  " + Table.format($0, widths: widths.map { $0 - 1 }) }.joined(separator: "\n")
    }

    /// `baton events`: every event, oldest first, as a timeline with millisecond timestamps.
    public func events(namespace: String?, allNamespaces: Bool, forObject: String?, watch: Bool) async -> Int32 {
        do {
            var selector: String? = nil
            if let forObject {
                let parts = forObject.split(separator: "/", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { err("error: --for takes KIND/NAME"); return 1 }
                let kind = try Self.kind(parts[0])
                selector = "involvedObject.kind=\(kind.kind),involvedObject.name=\(parts[1])"
            }
            let ns = allNamespaces ? nil : namespace
            let (items, revision) = try await client.list(.event, namespace: ns, fieldSelector: selector)
            let sorted = items.sorted { ($0.body["lastTimestamp"]?.stringValue ?? "") < ($1.body["lastTimestamp"]?.stringValue ?? "") }
            let header = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"]
            func row(_ e: Resource) -> [String] {
                let ref = e.body["involvedObject"]
                return [e.body["lastTimestamp"]?.stringValue ?? "", e.body["type"]?.stringValue ?? "",
                        e.body["reason"]?.stringValue ?? "",
                        "\((ref?["kind"]?.stringValue ?? "").lowercased())/\(ref?["name"]?.stringValue ?? "")",
                        String(e.body["count"]?.intValue ?? 1), e.body["message"]?.stringValue ?? ""]
            }
            let rows = sorted.map(row)
            var widths = header.map(\.count)
            for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
            if rows.isEmpty && !watch { err("No events found."); return 0 }
            out(([header] + rows).map { Table.format($0, widths: widths) }.joined(separator: "\n"))
            guard watch else { return 0 }
            for try await e in try await client.watch(.event, namespace: ns, resourceVersion: revision) {
                if let selector, !selector.split(separator: ",").allSatisfy({ term in
                    let kv = term.split(separator: "=", maxSplits: 1).map(String.init)
                    return JSONPath.text("." + kv[0], in: e.object.json) == kv[1]
                }) { continue }
                out(Table.format(row(e.object), widths: widths))
            }
            return 0
        } catch {
            report(error)
            return 1
        }
    }

    // MARK: tokens

    public func createNodeToken(node: String) async -> Int32 {
        do {
            let reply = try await client.call(.POST, KindInfo.node.objectPath(name: node, namespace: nil) + "/token")
            out(reply["token"]?.stringValue ?? "")
            return 0
        } catch {
            report(error)
            return 1
        }
    }
}
