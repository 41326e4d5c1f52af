import BatonAPI
import BatonClient
import Foundation

/// What the egress process suites (failover, move, fencing) share: the gateway and policy
/// manifests, reading the placement, and waiting with a deadline.
protocol EgressProcessSuite {}

extension EgressProcessSuite {
    static var gateway: String {
        """
        apiVersion: egressgateway.spidernet.io/v1beta1
        kind: EgressGateway
        metadata:
          name: egw1
        spec:
          ippools:
            ipv4:
              - 10.6.1.55-10.6.1.60
            ipv4DefaultEIP: 10.6.1.56
          nodeSelector:
            selector:
              matchLabels:
                egress: "true"
        """
    }

    /// Policy `policyI` with the explicit EIP 10.6.1.(55+I).
    static func policy(_ i: Int) -> String {
        """
        apiVersion: egressgateway.spidernet.io/v1beta1
        kind: EgressPolicy
        metadata:
          name: policy\(i)
          namespace: default
        spec:
          egressGatewayName: egw1
          egressIP:
            ipv4: 10.6.1.5\(5 + i)
          appliedTo:
            podSubnet:
              - 10.244.\(i).0/24
        """
    }

    /// policy name → node, from the policies' status.
    func placement(_ client: BatonClient) async throws -> [String: String] {
        var out: [String: String] = [:]
        for p in try await client.list(.egressPolicy, namespace: nil).items {
            if let node = p.status?["node"]?.stringValue { out[p.name] = node }
        }
        return out
    }

    /// Polls `body` every 20 ms until it returns a value; fails after `timeout`.
    func waitFor<T>(_ what: String, timeout: Duration = .seconds(20), _ body: () async throws -> T?) async throws -> T {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if let v = try await body() { return v }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw APIError.unavailable("timed out waiting for \(what)")
    }
}
