import BatonCore

/// How one `baton edge` process runs: where it listens, which region it is in, and the proxy's
/// limits. Every duration is wall time on the edge's own clock.
public struct EdgeSettings: Sendable {
    public var host: String
    public var port: Int
    /// The edge's own region (`--region`): clusters with this `spec.locality.region` are local.
    public var region: String
    /// The workload namespace and labels Gateways' `workloadSelector` must match.
    public var namespace: String
    public var labels: [String: String]
    /// Event loops (threads) serving connections; each has its own upstream pools.
    public var eventLoops: Int = 1
    /// Whether a request that is only its head (most GETs) goes to its ingress at once, or waits
    /// for the end of the loop's tick, as small whole responses do. Nil: at once with more than one
    /// event loop, at the tick's end with one; that is what measured faster for each on
    /// `baton lab bench edge` (see docs/edge-gateway.md, "The proxy").
    public var requestFlush: Bool?
    var requestsFlushAtOnce: Bool { requestFlush ?? (eventLoops > 1) }
    /// A request head over this many bytes (request line and headers) gets 431.
    public var maxHeaderBytes: Int = 32 * 1024
    /// From accepting a connection, or from the end of the previous response on a kept-alive one,
    /// the whole next request head must arrive within this time, or the connection is cut (408
    /// if part of a head came). A slow client cannot pin a connection longer.
    public var requestHeadTimeout: Duration = .seconds(10)
    /// Connecting to an ingress. A SYN lost to a cut link is retransmitted after 1 s: half of
    /// that is enough to tell, and short enough to fail over within a second.
    public var connectTimeout: Duration = .milliseconds(500)
    /// From the request's end to the ingress's response head; the proxy answers 504 and counts
    /// the timeout against the ingress.
    public var responseTimeout: Duration = .seconds(15)
    /// While a request body or a response streams, the longest no byte may move either way
    /// (client to edge, edge to ingress, and back). A client that stops sending its body gets 408;
    /// an ingress that stops taking the body gets 504 and the timeout counts against it; a
    /// response that stalls (the ingress stops sending, or the client stops reading) is cut.
    /// Neither side can pin the other's connection longer (HAProxy's `timeout client` and
    /// `timeout server`, Envoy's stream idle timeout).
    public var idleTimeout: Duration = .seconds(60)
    /// Idle upstream connections kept per ingress and event loop.
    public var maxIdlePerEndpoint: Int = 64
    /// How long a SIGTERM waits for in-flight requests before closing what is left.
    public var drainTimeout: Duration = .seconds(30)
    public var outlier = OutlierDetector.Settings()
    /// Every 300 ms, 250 ms timeout, 2 failures out, 2 passes back: a cut link (which neither
    /// refuses nor resets) leaves rotation within about 0.8 s.
    public var activeCheck: ActiveHealthCheck.Settings = {
        var s = ActiveHealthCheck.Settings()
        s.interval = .milliseconds(300)
        s.timeout = .milliseconds(250)
        return s
    }()
    /// Active checks on (the default); off leaves detection to live traffic only.
    public var activeChecks: Bool = true
    public var retry = EdgeRetryPolicy()
    /// Where access log lines go: nil for nowhere.
    public var accessLog: AccessLog?

    public init(host: String, port: Int, region: String, namespace: String = "edge", labels: [String: String] = [:]) {
        self.host = host
        self.port = port
        self.region = region
        self.namespace = namespace
        self.labels = labels
    }
}
