import BatonAPI

/// `/apis` and `/apis/GROUP/VERSION`, in the shapes `kubectl api-resources` reads.
enum Discovery {
    static let groups: JSONValue = {
        var byGroup: [String: [String]] = [:]
        for k in KindRegistry.all where !k.group.isEmpty { byGroup[k.group, default: []].append(k.version) }
        let groups = byGroup.keys.sorted().map { g -> JSONValue in
            let versions = Array(Set(byGroup[g]!)).sorted()
            return [
                "name": .string(g),
                "versions": .array(versions.map { ["groupVersion": .string("\(g)/\($0)"), "version": .string($0)] }),
                "preferredVersion": ["groupVersion": .string("\(g)/\(versions[0])"), "version": .string(versions[0])],
            ]
        }
        return ["kind": "APIGroupList", "apiVersion": "v1", "groups": .array(groups)]
    }()

    static func resources(path: String) -> JSONValue? {
        let parts = path.split(separator: "/").map(String.init)
        guard parts.count == 3, parts[0] == "apis" else { return nil }
        let kinds = KindRegistry.all.filter { $0.group == parts[1] && $0.version == parts[2] }
        guard !kinds.isEmpty else { return nil }
        var resources: [JSONValue] = []
        for k in kinds {
            var verbs: [JSONValue] = ["get", "list", "watch", "create", "update", "patch", "delete"]
            if k.kind == "Node" { verbs.append("token") }
            resources.append([
                "name": .string(k.plural), "singularName": .string(k.singular), "kind": .string(k.kind),
                "namespaced": .bool(k.namespaced), "shortNames": .array(k.shortNames.map(JSONValue.string)),
                "verbs": .array(verbs),
            ])
            if k.hasStatus {
                resources.append(["name": .string("\(k.plural)/status"), "singularName": "", "kind": .string(k.kind),
                                  "namespaced": .bool(k.namespaced), "verbs": ["get", "update", "patch"]])
            }
        }
        return ["kind": "APIResourceList", "apiVersion": "v1", "groupVersion": .string("\(parts[1])/\(parts[2])"),
                "resources": .array(resources)]
    }
}
