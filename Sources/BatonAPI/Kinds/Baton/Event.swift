/// A record of something that happened to an object: a decision, a failover step, a refusal.
/// Controllers and agents write them; `baton describe` and `baton events` read them back as a
/// timeline. Repeats of the same reason and message for the same object bump `count` and
/// `lastTimestamp` instead of adding records, as Kubernetes events do.
public struct EventRecord: Sendable, Hashable, Codable {
    public struct ObjectReference: Sendable, Hashable, Codable {
        public var apiVersion: String?
        public var kind: String
        public var name: String
        public var namespace: String?
        public var uid: String?
        public init(apiVersion: String? = nil, kind: String, name: String, namespace: String? = nil, uid: String? = nil) {
            self.apiVersion = apiVersion
            self.kind = kind
            self.name = name
            self.namespace = namespace
            self.uid = uid
        }
    }
    public struct Source: Sendable, Hashable, Codable {
        public var component: String?
        public var host: String?
        public init(component: String? = nil, host: String? = nil) { self.component = component; self.host = host }
    }

    public var involvedObject: ObjectReference
    public var reason: String
    public var message: String
    /// `Normal` or `Warning`.
    public var type: String
    public var source: Source?
    /// RFC 3339 with fractional seconds: a failover timeline needs milliseconds.
    public var firstTimestamp: String
    public var lastTimestamp: String
    public var count: Int64

    public init(involvedObject: ObjectReference, reason: String, message: String, type: String = "Normal",
                source: Source? = nil, firstTimestamp: String, lastTimestamp: String, count: Int64 = 1) {
        self.involvedObject = involvedObject
        self.reason = reason
        self.message = message
        self.type = type
        self.source = source
        self.firstTimestamp = firstTimestamp
        self.lastTimestamp = lastTimestamp
        self.count = count
    }
}

extension KindInfo {
    public static let event = KindInfo(
        group: "baton.io", version: "v1", kind: "Event", plural: "events", shortNames: ["ev"], namespaced: true,
        hasStatus: false,
        schema: .object([
            "involvedObject": .object([
                "apiVersion": .string(), "kind": .string(), "name": .string(), "namespace": .string(), "uid": .string(),
            ], required: ["kind", "name"]),
            "reason": .string("A short CamelCase word: HeartbeatTimeout, EIPMoved, BecameMaster."),
            "message": .string(),
            "type": .string(enum: ["Normal", "Warning"]),
            "source": .object(["component": .string(), "host": .string()]),
            "firstTimestamp": .string(format: "date-time"),
            "lastTimestamp": .string(format: "date-time"),
            "count": .integer(minimum: 1),
        ], required: ["involvedObject", "reason", "message"]),
        columns: [
            PrinterColumn("LAST SEEN", type: "date", jsonPath: ".lastTimestamp"),
            PrinterColumn("TYPE", jsonPath: ".type"),
            PrinterColumn("REASON", jsonPath: ".reason"),
            PrinterColumn("OBJECT", jsonPath: ".involvedObject.name"),
            PrinterColumn("MESSAGE", jsonPath: ".message"),
        ])
}
