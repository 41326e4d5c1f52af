import BatonAPI
import BatonCore
import Logging

extension VRRPSpeaker {
    /// What the speaker adds to the host around its instances, and takes away again: the
    /// nftables table admitting VRRP, the virtual MAC interfaces, and the sysctls keepalived sets
    /// for them (each changed one is put back as it was). `setUp` before any socket opens;
    /// `tearDown` after every instance has left (its priority-0 advertisement sent and its
    /// addresses removed), also when `setUp` or the run failed half-way.
    struct Resources {
        let instances: [InstanceConfiguration]
        let virtualMACs: [String: VRRPVirtualMAC]
        let admit: VRRPAdmitRuleset?
        let host: any VRRPHost
        let logger: Logger
        /// The sysctls changed, with their values before, in the order changed.
        private var changed: [(path: String, value: String)] = []
        private var created: [VRRPVirtualMAC] = []
        private var tableApplied = false

        init(instances: [InstanceConfiguration], admitChain: String?, host: any VRRPHost, logger: Logger) {
            self.instances = instances
            virtualMACs = VRRPVirtualMAC.plan(instances)
            admit = admitChain.map { VRRPAdmitRuleset(chain: $0, instances: instances, virtualMACs: VRRPVirtualMAC.plan(instances)) }
            self.host = host
            self.logger = logger
        }

        mutating func setUp() throws {
            if let admit {
                try host.applyNftables(admit.applyScript)
                tableApplied = true
                logger.info("admitting VRRP", metadata: ["table": "\(VRRPAdmitRuleset.family) \(admit.table)", "chain": "\(admit.chain)"])
            }
            let vmacs = instances.compactMap { virtualMACs[$0.name] }
            let ipv4Parents = vmacs.filter { $0.family == .v4 }.map(\.parent)
            if !ipv4Parents.isEmpty {
                var current: [String: String] = [:]
                for name in host.ipv4ConfigurationNames() {
                    let path = "net/ipv4/conf/\(name)/rp_filter"
                    current[path] = host.readSysctl(path)
                }
                for (path, value) in VRRPVirtualMAC.rpFilterWrites(current: current) { try set(path, value) }
                for parent in Set(ipv4Parents).sorted() {
                    for (path, value) in VRRPVirtualMAC.parentSysctls(parent) { try set(path, value) }
                }
            }
            for vmac in vmacs {
                let linkLocal = vmac.family == .v6 ? InterfaceAddresses.source(family: .v6, interface: vmac.parent) : nil
                try host.addVirtualMAC(vmac, linkLocal: linkLocal)
                created.append(vmac)
                for (path, value) in vmac.sysctls { try host.writeSysctl(path, value) }
                logger.info("created the virtual MAC interface", metadata: ["interface": "\(vmac.name)", "mac": "\(vmac.addressText)", "parent": "\(vmac.parent)"])
            }
        }

        /// Undoes whatever `setUp` did, in reverse; logs what fails and goes on.
        mutating func tearDown() {
            for vmac in created.reversed() {
                do {
                    try host.removeVirtualMAC(vmac)
                    logger.info("removed the virtual MAC interface", metadata: ["interface": "\(vmac.name)"])
                } catch {
                    logger.error("cannot remove the virtual MAC interface", metadata: ["interface": "\(vmac.name)", "error": "\(error)"])
                }
            }
            created = []
            for (path, value) in changed.reversed() {
                do { try host.writeSysctl(path, value) } catch {
                    logger.error("cannot restore a sysctl", metadata: ["sysctl": "\(path)", "error": "\(error)"])
                }
            }
            changed = []
            if tableApplied, let admit {
                do {
                    try host.applyNftables(admit.deleteScript)
                    logger.info("removed the table admitting VRRP", metadata: ["table": "\(VRRPAdmitRuleset.family) \(admit.table)"])
                } catch {
                    logger.error("cannot remove the table admitting VRRP", metadata: ["table": "\(admit.table)", "error": "\(error)"])
                }
                tableApplied = false
            }
        }

        /// Sets a sysctl, remembering its value to put back.
        private mutating func set(_ path: String, _ value: String) throws {
            guard let before = host.readSysctl(path) else { return }
            guard before != value else { return }
            try host.writeSysctl(path, value)
            changed.append((path, before))
        }
    }
}
