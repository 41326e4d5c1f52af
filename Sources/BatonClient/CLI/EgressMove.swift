import BatonAPI

extension CLI {
    // MARK: egw move

    /// `baton egw move GATEWAY --eip IP --to NODE`: one line on success, the server's refusal on
    /// stderr (exit 1) otherwise.
    public func moveEIP(gateway: String, eip: String, to node: String) async -> Int32 {
        do {
            let m = try await client.moveEIP(gateway: gateway, eip: eip, to: node)
            out(m.moved ? "EIP \(m.eip) of EgressGateway \(m.gateway) moved from \(m.from) to \(m.to)"
                        : "EIP \(m.eip) of EgressGateway \(m.gateway) is already on \(m.to)")
            return 0
        } catch {
            report(error)
            return 1
        }
    }
}
