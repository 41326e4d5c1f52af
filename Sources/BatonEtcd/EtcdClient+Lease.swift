import BatonAPI

/// An etcd lease: keys attached to it are deleted when it expires or is revoked. etcd's own
/// clock (the leader's) runs the TTL, in whole seconds, and etcd raises a TTL below its minimum
/// (1.5 × the election timeout) to that minimum.
public struct EtcdLease: Sendable, Hashable {
    public var id: Int64
    /// The TTL etcd granted, in seconds.
    public var ttl: Int64
}

extension EtcdClient {
    /// Grants a lease of `ttl` seconds.
    public func grantLease(ttl: Int64) async throws -> EtcdLease {
        let r = try await call("/v3/lease/grant", ["TTL": .string(String(ttl))], retry: .write)
        let id = EtcdJSON.int(r["ID"])
        guard id != 0 else {
            throw EtcdError(.invalidResponse, "etcd granted no lease: \(r["error"]?.stringValue ?? r.jsonString())")
        }
        return EtcdLease(id: id, ttl: EtcdJSON.int(r["TTL"]))
    }

    /// Renews `lease` once; returns the TTL it now has, 0 when it has expired or been revoked.
    /// A keep-alive is answered by etcd's leader without a raft write.
    public func keepAlive(_ lease: Int64) async throws -> Int64 {
        let stream = try await stream("/v3/lease/keepalive", ["ID": .string(String(lease))])
        guard let result = try await stream.next() else {
            throw EtcdError(.unavailable, "etcd at \(stream.endpoint) closed the keep-alive of lease \(lease) without an answer")
        }
        // The gateway ends the stream once the request body has ended; read to the end so the
        // connection can be used again.
        while try await stream.next() != nil {}
        return EtcdJSON.int(result["TTL"])
    }

    /// Revokes `lease`, deleting its keys. A lease that is already gone is not an error.
    public func revokeLease(_ lease: Int64) async throws {
        do {
            _ = try await call("/v3/lease/revoke", ["ID": .string(String(lease))], retry: .idempotent)
        } catch let error as EtcdError where error.grpcCode == 5 {
            return  // "requested lease not found"
        }
    }
}
