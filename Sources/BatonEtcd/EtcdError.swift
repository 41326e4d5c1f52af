/// Why an etcd call failed. Every message names etcd and the endpoints it tried.
///
/// - `unavailable`: no endpoint took the request: each refused the connection, timed out before
///   the request was sent, or answered that it has no leader (the cluster has lost quorum, or
///   the member is cut off from it). Nothing was applied.
/// - `noQuorum`: as `unavailable`, with proof that the cluster cannot commit anything: every
///   member answered that it has no leader or refused the connection (nothing listens), and
///   the client has an endpoint for every member (`EtcdClient.refreshMembership()`).
/// - `outcomeUnknown`: a write was sent but no answer came (the connection broke, or etcd timed
///   out committing it). It may or may not be applied, now or once etcd recovers.
/// - `compacted`: the revision asked for is older than etcd keeps (`compactRevision`).
/// - `failed`: etcd answered with an error (`grpcCode` holds its gRPC status code).
/// - `invalidResponse`: etcd answered with something this client cannot read.
public struct EtcdError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let unavailable = Code(rawValue: "unavailable")
        public static let noQuorum = Code(rawValue: "noQuorum")
        public static let outcomeUnknown = Code(rawValue: "outcomeUnknown")
        public static let compacted = Code(rawValue: "compacted")
        public static let failed = Code(rawValue: "failed")
        public static let invalidResponse = Code(rawValue: "invalidResponse")
        public var description: String { rawValue }
    }

    public var code: Code
    public var message: String
    /// The gRPC status code etcd answered with, for `failed` (e.g. 5 not found, 11 out of range).
    public var grpcCode: Int?
    /// For `compacted`: the oldest revision etcd still keeps.
    public var compactRevision: Int64?

    public init(_ code: Code, _ message: String, grpcCode: Int? = nil, compactRevision: Int64? = nil) {
        self.code = code
        self.message = message
        self.grpcCode = grpcCode
        self.compactRevision = compactRevision
    }

    public var description: String { message }
}
