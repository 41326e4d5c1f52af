import AsyncHTTPClient
import BatonCore
import NIOCore

/// Sends the active health checks `EdgeState.tick` asks for: `GET <path>` to the ingress with
/// the route's hostname as `Host`, within the check timeout. A status below 500 passes.
struct ActiveChecker: Sendable {
    /// The checks' User-Agent: ingresses (and the benches' tombstones) tell checks from traffic by it.
    static let userAgent = "baton-edge-healthcheck"

    let state: EdgeState
    let client: HTTPClient

    init(state: EdgeState, client: HTTPClient = .shared) {
        self.state = state
        self.client = client
    }

    func check(_ e: EdgeEndpoint, hostname: String) async {
        let settings = state.settings.activeCheck
        var request = HTTPClientRequest(url: "http://\(e.key)\(settings.path)")
        request.headers.replaceOrAdd(name: "Host", value: hostname)
        request.headers.add(name: "User-Agent", value: Self.userAgent)
        let passed: Bool
        let detail: String
        do {
            let response = try await client.execute(request, timeout: TimeAmount(settings.timeout))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            passed = response.status.code < 500
            detail = "HTTP \(response.status.code)"
        } catch {
            passed = false
            detail = "\(error)"
        }
        state.checked(e, passed: passed, detail: detail)
    }
}
