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

/// The host on Linux: one batched `ip -batch -` per change, gratuitous ARP on an `AF_PACKET`
/// socket, unsolicited NA on a raw ICMPv6 socket, and the notify script as a child process.
public struct LinuxVRRPHost: VRRPHost {
    public init() {}

    /// The `ip -batch` lines that add the addresses: IPv4 with the label `IF:vrrp` (so `ip addr`
    /// shows who added them), IPv6 with `nodad` (a VIP moving between routers must not wait
    /// for duplicate address detection).
    public static func addCommands(_ addresses: [VirtualAddress], interface: String) -> [String] {
        addresses.map { vip in
            switch (vip.address.family, label(interface)) {
            case (.v4, let label?): "address replace \(vip) dev \(interface) label \(label)"
            case (.v4, nil): "address replace \(vip) dev \(interface)"
            case (.v6, _): "address replace \(vip) dev \(interface) nodad"
            }
        }
    }

    public static func removeCommands(_ addresses: [VirtualAddress], interface: String) -> [String] {
        addresses.map { "address del \($0) dev \(interface)" }
    }

    /// `IF:vrrp`; nil when that is longer than the 15 characters a label may have (a label
    /// must start with the interface's name, so it cannot be shortened).
    static func label(_ interface: String) -> String? {
        let label = interface + ":vrrp"
        return label.utf8.count <= 15 ? label : nil
    }

    public func addAddresses(_ addresses: [VirtualAddress], interface: String) throws {
        guard !addresses.isEmpty else { return }
        _ = try Command.run("ip", ["-batch", "-"], input: Self.addCommands(addresses, interface: interface).joined(separator: "\n") + "\n")
    }

    public func removeAddresses(_ addresses: [VirtualAddress], interface: String) throws {
        guard !addresses.isEmpty else { return }
        // -force: go on past an address that is already gone; only other failures matter.
        do {
            _ = try Command.run("ip", ["-force", "-batch", "-"], input: Self.removeCommands(addresses, interface: interface).joined(separator: "\n") + "\n")
        } catch let error as DataplaneCommandError {
            let lines = error.description.split(separator: "\n").filter {
                !$0.contains("Cannot assign requested address") && !$0.contains("Command failed") && !$0.contains("failed (exit")
            }
            if !lines.isEmpty { throw error }
        }
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

    public func notify(script: String, arguments: [String]) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: DataplaneCommandError("cannot run notify script \(script): \(error)"))
            }
        }
        if status != 0 { throw DataplaneCommandError("notify script \(script) \(arguments.joined(separator: " ")) exited with \(status)") }
    }
}
