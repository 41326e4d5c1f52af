import Metrics
import Synchronization

/// Per-cluster Prometheus counters (through swift-metrics; the executable bootstraps the
/// Prometheus backend): `baton_edge_requests_total{cluster,code}`, `baton_edge_errors_total{cluster,kind}`,
/// `baton_edge_ejections_total{cluster}` and `baton_edge_retries_total{cluster}`. A cluster of
/// `none` counts the requests no cluster could take.
final class EdgeMetrics: Sendable {
    private let counters = Mutex<[String: Counter]>([:])

    private func counter(_ label: String, _ dims: [(String, String)]) -> Counter {
        let key = label + dims.map { "|\($0.0)=\($0.1)" }.joined()
        return counters.withLock { c in
            if let hit = c[key] { return hit }
            let new = Counter(label: label, dimensions: dims)
            c[key] = new
            return new
        }
    }

    func requestCounter(cluster: String, status: Int) -> Counter {
        counter("baton_edge_requests_total", [("cluster", cluster), ("code", String(status))])
    }

    func error(cluster: String, kind: String) {
        counter("baton_edge_errors_total", [("cluster", cluster), ("kind", kind)]).increment()
    }

    func ejection(cluster: String) { counter("baton_edge_ejections_total", [("cluster", cluster)]).increment() }

    func retry(cluster: String) { counter("baton_edge_retries_total", [("cluster", cluster)]).increment() }
}
