import BatonAPI
import BatonDataplane
import BatonCore
@testable import BatonVRRP
import Testing

/// The speaker's pieces that need no socket: virtual address syntax, the address changes,
/// the unsolicited NA's bytes, control-message framing, and the configuration's refusals.
struct VRRPSpeakerPartsTests {
    @Test(arguments: [
        ("192.168.1.10", "192.168.1.10/32"),
        ("192.168.1.10/24", "192.168.1.10/24"),
        ("fd00::10", "fd00::10/128"),
        ("fd00::10/64", "fd00::10/64"),
    ])
    func virtualAddressesKeepTheirHostBits(_ text: String, _ expected: String) throws {
        #expect(try #require(VirtualAddress(text)).description == expected)
    }

    @Test(arguments: ["", "192.168.1.10/", "192.168.1.10/33", "fd00::1/129", "10.0.0.1/2/3", "host/24", "10.0.0.1/-1"])
    func virtualAddressesThatDoNotParse(_ text: String) {
        #expect(VirtualAddress(text) == nil)
    }

    @Test func addressesChangeWithALabelForIPv4AndNoDADForIPv6() {
        let vips = [VirtualAddress("192.168.1.10/24")!, VirtualAddress("fd00::10/64")!]
        let v4 = IPAddress("192.168.1.10")!, v6 = IPAddress("fd00::10")!
        #expect(LinuxVRRPHost.addRequests(vips, interface: "eth0") == [
            NetlinkAddress.Request(.replace, v4, prefixLength: 24, label: "eth0:vrrp"),
            NetlinkAddress.Request(.replace, v6, prefixLength: 64, noDAD: true),
        ])
        #expect(LinuxVRRPHost.removeRequests(vips) == [
            NetlinkAddress.Request(.delete, v4, prefixLength: 24), NetlinkAddress.Request(.delete, v6, prefixLength: 64),
        ])
        #expect(LinuxVRRPHost.label("enp0s31f6.1234") == nil)
        #expect(LinuxVRRPHost.addRequests([vips[0]], interface: "enp0s31f6.1234") == [NetlinkAddress.Request(.replace, v4, prefixLength: 24)])
    }

    @Test func unsolicitedNeighborAdvertisementHasTheOverrideFlagAndTheTargetsMAC() throws {
        let target = try #require(IPAddress("fd00::10"))
        let bytes = UnsolicitedNeighborAdvertisement.message(target: target, mac: [0x02, 0, 0, 0, 0, 0x01])
        #expect(bytes.count == 32)
        #expect(Array(bytes[0..<8]) == [136, 0, 0, 0, 0x20, 0, 0, 0])
        #expect(Array(bytes[8..<24]) == target.wireBytes)
        #expect(Array(bytes[24..<32]) == [2, 1, 0x02, 0, 0, 0, 0, 0x01])
    }

    @Test func controlMessagesRoundTrip() {
        var info: (UInt32, UInt32, UInt32) = (7, 0x0A00_0001, 0)
        let bytes = ControlMessage.encode(level: 0, type: 8, info)
        #expect(bytes.count == ControlMessage.headerSize + 16)
        let decoded = ControlMessage.decode(bytes[...])
        #expect(decoded.count == 1)
        #expect(decoded.first?.level == 0 && decoded.first?.type == 8)
        #expect(decoded.first?.data.count == 12)
        info.0 = 0
        _ = info
    }

    static let base = VRRPSpeaker.InstanceConfiguration(name: "VI_1", version: .v2, vrid: 1, interface: "eth0",
                                                        virtualAddresses: [VirtualAddress("10.0.0.10/24")!])

    static func changed(_ change: (inout VRRPSpeaker.InstanceConfiguration) -> Void) -> VRRPSpeaker.InstanceConfiguration {
        var configuration = base
        change(&configuration)
        return configuration
    }

    static let refusals: [(VRRPSpeaker.InstanceConfiguration, String)] = [
        (changed { $0.virtualAddresses = [] }, "virtualAddresses must name at least one address"),
        (changed { $0.virtualAddresses.append(VirtualAddress("fd00::1")!) }, "virtual address fd00::1 is not of the same family as 10.0.0.10"),
        (changed { $0.virtualAddresses = [VirtualAddress("fd00::1")!] }, "virtual address fd00::1 is IPv6, but VRRPv2 is IPv4 only"),
        (changed { $0.unicastPeers = [IPAddress("fd00::2")!] }, "unicast peer fd00::2 is not of the virtual addresses' family"),
        (changed { $0.version = .v3; $0.authPassword = VRRPPassword("pw") }, "authPassword needs VRRPv2; VRRPv3 has no authentication"),
        (changed { $0.interface = "an-interface-name-too-long" }, "interface \"an-interface-name-too-long\" is not an interface name"),
        (changed { $0.name = "" }, "name must not be empty"),
    ]

    @Test(arguments: refusals)
    func instanceConfigurationRefusals(_ configuration: VRRPSpeaker.InstanceConfiguration, _ message: String) {
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
        do { try configuration.validate() } catch { #expect(error.message == message) }
    }

    /// keepalived 2.2.7's `notify_script_exec`: `INSTANCE NAME STATE PRIORITY`.
    @Test(arguments: VRRPInstance.NotifyState.allCases)
    func notifyArgumentsAreKeepalivedsFour(_ state: VRRPInstance.NotifyState) {
        #expect(VRRPInstanceRunner.NotifyCall(state: state, priority: 150).arguments(name: "VI_51") == ["INSTANCE", "VI_51", state.rawValue, "150"])
    }

    @Test func advertIntervalInCentiseconds() {
        var configuration = Self.base
        configuration.advertInterval = .milliseconds(350)
        #expect(configuration.advertIntervalCentiseconds == 35)
        configuration.advertInterval = .seconds(3)
        #expect(configuration.advertIntervalCentiseconds == 300)
    }
}
