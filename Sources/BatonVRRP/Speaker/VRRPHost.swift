import BatonAPI
import BatonCore
import BatonDataplane
import Foundation

/// What a VRRP speaker does to its host, apart from the advertisements: the virtual addresses,
/// their announcement, and the notify script. A protocol so that tests can record instead.
public protocol VRRPHost: Sendable {
    /// Adds the addresses to `interface` (idempotent: an address already there is kept).
    func addAddresses(_ addresses: [VirtualAddress], interface: String) throws
    /// Removes the addresses from `interface` (idempotent: a missing address is no error).
    func removeAddresses(_ addresses: [VirtualAddress], interface: String) throws
    /// One gratuitous ARP (IPv4) or unsolicited NA (IPv6) per address.
    func announce(_ addresses: [VirtualAddress], interface: String) throws
    /// Runs the notify script to completion with keepalived's arguments.
    func notify(script: String, arguments: [String]) async throws

    /// Creates the virtual MAC interface and brings it up (`VRRPVirtualMAC.addCommands`). A
    /// macvlan of that name on the same parent (left by a killed speaker) is replaced; any other
    /// interface of that name is an error.
    func addVirtualMAC(_ vmac: VRRPVirtualMAC, linkLocal: IPAddress?) throws
    /// Deletes the virtual MAC interface, and the addresses on it (idempotent).
    func removeVirtualMAC(_ vmac: VRRPVirtualMAC) throws
    /// A sysctl's value (`path` under /proc/sys, e.g. `net/ipv4/conf/eth0/arp_ignore`); nil
    /// when there is no such sysctl.
    func readSysctl(_ path: String) -> String?
    func writeSysctl(_ path: String, _ value: String) throws
    /// The interfaces `net/ipv4/conf` has an entry for (`all` and `default` included).
    func ipv4ConfigurationNames() -> [String]
    /// Runs an nftables script as one transaction (`nft -f -`).
    func applyNftables(_ script: String) throws
    /// The IPv4 and IPv6 addresses on `interface` now, whatever their label (none when it
    /// does not exist).
    func addresses(interface: String) -> [IPAddress]
}

/// The host on Linux: the virtual addresses over rtnetlink (as `ip address replace|del` would
/// change them, without the fork), gratuitous ARP on an `AF_PACKET` socket, unsolicited NA on a
/// raw ICMPv6 socket, and the notify script as a child process.
public struct LinuxVRRPHost: VRRPHost {
    public init() {}

    /// `IF:vrrp`; nil when that is longer than the 15 characters a label may have (a label
    /// must start with the interface's name, so it cannot be shortened).
    static func label(_ interface: String) -> String? {
        let label = interface + ":vrrp"
        return label.utf8.count <= 15 ? label : nil
    }

    /// What adds the addresses, as `ip address replace ADDR/PREFIX dev IF label IF:vrrp` for IPv4
    /// (so `ip addr` shows who added them) and `... nodad` for IPv6 (a VIP moving between routers
    /// must not wait for duplicate address detection), sent over rtnetlink without forking `ip`.
    public static func addRequests(_ addresses: [VirtualAddress], interface: String) -> [NetlinkAddress.Request] {
        addresses.map { vip in
            NetlinkAddress.Request(.replace, vip.address, prefixLength: vip.prefixLength,
                                   label: vip.address.family == .v4 ? label(interface) : nil, noDAD: vip.address.family == .v6)
        }
    }

    /// What removes them, as `ip address del ADDR/PREFIX dev IF`.
    public static func removeRequests(_ addresses: [VirtualAddress]) -> [NetlinkAddress.Request] {
        addresses.map { NetlinkAddress.Request(.delete, $0.address, prefixLength: $0.prefixLength) }
    }

    public func addAddresses(_ addresses: [VirtualAddress], interface: String) throws {
        try NetlinkAddress.apply(Self.addRequests(addresses, interface: interface), interface: interface)
    }

    public func removeAddresses(_ addresses: [VirtualAddress], interface: String) throws {
        // An address already gone is no error; nor is the interface (a virtual MAC removed).
        guard if_nametoindex(interface) != 0 else { return }
        try NetlinkAddress.apply(Self.removeRequests(addresses), interface: interface)
    }

    public func announce(_ addresses: [VirtualAddress], interface: String) throws {
        for vip in addresses {
            switch vip.address.family {
            case .v4: try GratuitousARP.send(vip.address, interface: interface)
            case .v6: try UnsolicitedNeighborAdvertisement.send(vip.address, interface: interface)
            }
        }
    }

    public func addVirtualMAC(_ vmac: VRRPVirtualMAC, linkLocal: IPAddress?) throws {
        if let existing = try? Command.run("ip", ["-d", "-j", "link", "show", "dev", vmac.name]) {
            let links = (try? JSONSerialization.jsonObject(with: Data(existing.utf8))) as? [[String: Any]]
            let link = links?.first
            let kind = (link?["linkinfo"] as? [String: Any])?["info_kind"] as? String
            guard kind == "macvlan", link?["link"] as? String == vmac.parent else {
                throw DataplaneCommandError("interface \(vmac.name) exists and is not a macvlan on \(vmac.parent): cannot use it as the virtual MAC interface")
            }
            _ = try Command.run("ip", ["link", "del", "dev", vmac.name])
        }
        _ = try Command.run("ip", ["-batch", "-"], input: vmac.addCommands(linkLocal: linkLocal).joined(separator: "\n") + "\n")
    }

    public func removeVirtualMAC(_ vmac: VRRPVirtualMAC) throws {
        guard (try? Command.run("ip", ["link", "show", "dev", vmac.name])) != nil else { return }
        _ = try Command.run("ip", ["link", "del", "dev", vmac.name])
    }

    public func readSysctl(_ path: String) -> String? {
        (try? String(contentsOfFile: "/proc/sys/" + path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public func writeSysctl(_ path: String, _ value: String) throws {
        do { try (value + "\n").write(toFile: "/proc/sys/" + path, atomically: false, encoding: .utf8) } catch {
            throw DataplaneCommandError("cannot set \(path.replacingOccurrences(of: "/", with: ".")) to \(value): \(error.localizedDescription)")
        }
    }

    public func ipv4ConfigurationNames() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/sys/net/ipv4/conf")) ?? []
    }

    public func addresses(interface: String) -> [IPAddress] {
        InterfaceAddresses.all(interface: interface, includingLabels: true)
    }

    public func applyNftables(_ script: String) throws {
        _ = try Command.run("nft", ["-f", "-"], input: script)
    }

    /// Runs the script as a check script runs (`VRRPScriptRun`: its own process group, the normal
    /// scheduler, output to /dev/null as keepalived's), waited for on a thread of its own.
    public func notify(script: String, arguments: [String]) async throws {
        let run = VRRPScriptRun(arguments: [script] + arguments)
        let outcome: VRRPHealthMonitor.Outcome = await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: run.run()) }.start()
        }
        if case .failure(let why) = outcome {
            throw DataplaneCommandError("notify script \(script) \(arguments.joined(separator: " ")): \(why)")
        }
    }
}
