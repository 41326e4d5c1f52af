import BatonAPI

/// A parsed resource URL: `/apis/GROUP/VERSION/[namespaces/NS/]PLURAL[/NAME[/SUBRESOURCE]]`.
struct APIRoute: Sendable {
    var kind: KindInfo
    var namespace: String?
    var name: String?
    var subresource: String?

    /// Parses `path`; nil when it is not a resource URL. Throws 404 for an unknown resource.
    static func parse(_ path: String) throws(APIError) -> APIRoute? {
        var parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let group: String
        let version: String
        if parts.first == "apis", parts.count >= 4 {
            group = parts[1]; version = parts[2]; parts.removeFirst(3)
        } else if parts.first == "api", parts.count >= 3 {
            group = ""; version = parts[1]; parts.removeFirst(2)
        } else {
            return nil
        }
        var namespace: String?
        if parts.count >= 3, parts[0] == "namespaces" {
            namespace = parts[1]
            parts.removeFirst(2)
        }
        guard let plural = parts.first else { return nil }
        guard let kind = KindRegistry.find(group: group, version: version, plural: plural) else {
            throw APIError.notFound("the server could not find the requested resource: \(group.isEmpty ? "" : group + "/")\(version) \(plural)")
        }
        if namespace != nil && !kind.namespaced {
            throw APIError.notFound("\(kind.plural) are cluster-scoped: use \(kind.collectionPath(namespace: nil))")
        }
        guard parts.count <= 3 else { throw APIError.notFound("the server could not find the requested resource: \(path)") }
        return APIRoute(kind: kind, namespace: namespace, name: parts.count > 1 ? parts[1] : nil,
                        subresource: parts.count > 2 ? parts[2] : nil)
    }
}
