import Metrics
import Synchronization

/// The API's request counter and latency timer, one handle per label set, made once: asking the
/// metrics factory for a handle on every request costs more than the request's own work on the
/// hottest path (heartbeats).
final class RequestMetrics: Sendable {
    private struct Key: Hashable {
        var verb: String
        var resource: String
        var code: Int
    }

    private let counters = Mutex<[Key: Counter]>([:])
    private let timers = Mutex<[String: Metrics.Timer]>([:])

    func record(verb: String, resource: String, code: Int, duration: Duration?) {
        let key = Key(verb: verb, resource: resource, code: code)
        let counter = counters.withLock { c in
            if let hit = c[key] { return hit }
            let made = Counter(label: "baton_api_requests_total",
                               dimensions: [("verb", verb), ("resource", resource), ("code", String(code))])
            c[key] = made
            return made
        }
        counter.increment()
        guard let duration else { return }
        let timer = timers.withLock { t in
            if let hit = t[verb] { return hit }
            let made = Metrics.Timer(label: "baton_api_request_duration_seconds", dimensions: [("verb", verb)])
            t[verb] = made
            return made
        }
        timer.record(duration: duration)
    }
}
