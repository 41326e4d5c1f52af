import BatonAPI
import BatonVRRP
import Testing

/// Advertisements captured from keepalived 2.2.7 (Debian bookworm's `1:2.2.7-1+b2`) on a veth
/// pair between two network namespaces, with `tcpdump -i eth0 'ip proto 112 or ip6 proto 112'`
/// on the peer. Node a had eth0 at 10.77.0.1/24, fd77::1/64 and MAC 02:77:00:00:00:01 (so its
/// link-local, the IPv6 source, is fe80::77:ff:fe00:1); the peer was 10.77.0.2. keepalived ran as
/// `keepalived -n -l -D -P -f ka.conf -p PID -r VRRPPID` with these instances (all `state MASTER`,
/// `interface eth0`):
///
/// ```
/// V2_PASS       version 2  vrid 51  priority 150  advert_int 1    auth_type PASS auth_pass baton42
///                                                                 VIPs 10.77.0.100/24 10.77.0.101/24
/// V2_NOAUTH     version 2  vrid 57  priority 100  advert_int 2    VIP 10.77.0.130/24
/// V3_4          version 3  vrid 52  priority 120  advert_int 1    VIP 10.77.0.110/24
/// V3_4_FAST     version 3  vrid 53  priority 200  advert_int 0.5  VIPs 10.77.0.120/24 .121/24 .122/24
/// V3_4_UNICAST  version 3  vrid 56  priority 110  advert_int 1    unicast_src_ip 10.77.0.1
///                                                                 unicast_peer { 10.77.0.2 } VIP 10.77.0.140/24
/// V3_6          version 3  vrid 54  priority 130  advert_int 1    VIPs fd77::100/64 fd77::101/64
/// V3_6_FAST     version 3  vrid 55  priority 140  advert_int 0.5  VIP fd77::110/64
/// ```
///
/// and, in a second run, V3_4_UNICAST_OLD (vrid 58, priority 90, advert_int 1, the same unicast
/// peers, VIP 10.77.0.150/24) with `old_unicast_checksum`. The priority-0 adverts are what each
/// instance sent on SIGTERM. All had TTL or hop limit 255 and TOS 0xc0.
struct KeepalivedFixture: Sendable, CustomTestStringConvertible {
    var name: String
    var source: String
    var destination: String
    /// The VRRP message (the IP payload).
    var payload: String
    /// The whole IPv4 datagram as a raw socket delivers it (nil for IPv6).
    var ipv4Datagram: String?
    var version: VRRPVersion
    var vrid: UInt8
    var priority: UInt8
    var intervalCentiseconds: UInt16
    var addresses: [String]
    var password: String?
    /// The form the checksum was computed in.
    var checksumMode: VRRPChecksumMode

    var testDescription: String { name }

    static let all: [KeepalivedFixture] = [
        .init(name: "v2 PASS multicast", source: "10.77.0.1", destination: "224.0.0.18",
              payload: "213396020101bb600a4d00640a4d00656261746f6e343200",
              ipv4Datagram: "45c0002c00010000ff70d0400a4d0001e0000012213396020101bb600a4d00640a4d00656261746f6e343200",
              version: .v2, vrid: 51, priority: 150, intervalCentiseconds: 100,
              addresses: ["10.77.0.100", "10.77.0.101"], password: "baton42", checksumMode: .vrrpOnly),
        .init(name: "v2 PASS priority 0 on shutdown", source: "10.77.0.1", destination: "224.0.0.18",
              payload: "21330002010151610a4d00640a4d00656261746f6e343200",
              ipv4Datagram: "45c0002c000b0000ff70d0360a4d0001e000001221330002010151610a4d00640a4d00656261746f6e343200",
              version: .v2, vrid: 51, priority: 0, intervalCentiseconds: 100,
              addresses: ["10.77.0.100", "10.77.0.101"], password: "baton42", checksumMode: .vrrpOnly),
        .init(name: "v2 no auth, advert_int 2", source: "10.77.0.1", destination: "224.0.0.18",
              payload: "2139640100026ff40a4d00820000000000000000",
              ipv4Datagram: "45c0002800010000ff70d0440a4d0001e00000122139640100026ff40a4d00820000000000000000",
              version: .v2, vrid: 57, priority: 100, intervalCentiseconds: 200,
              addresses: ["10.77.0.130"], password: nil, checksumMode: .vrrpOnly),
        .init(name: "v2 no auth priority 0", source: "10.77.0.1", destination: "224.0.0.18",
              payload: "213900010002d3f40a4d00820000000000000000",
              ipv4Datagram: "45c0002800040000ff70d0410a4d0001e0000012213900010002d3f40a4d00820000000000000000",
              version: .v2, vrid: 57, priority: 0, intervalCentiseconds: 200,
              addresses: ["10.77.0.130"], password: nil, checksumMode: .vrrpOnly),
        .init(name: "v3 IPv4 multicast", source: "10.77.0.1", destination: "224.0.0.18",
              payload: "31347801006460ce0a4d006e",
              ipv4Datagram: "45c0002000010000ff70d04c0a4d0001e000001231347801006460ce0a4d006e",
              version: .v3, vrid: 52, priority: 120, intervalCentiseconds: 100,
              addresses: ["10.77.0.110"], password: nil, checksumMode: .withPseudoHeader),
        .init(name: "v3 IPv4 multicast priority 0", source: "10.77.0.1", destination: "224.0.0.18",
              payload: "313400010064d8ce0a4d006e",
              ipv4Datagram: "45c00020000a0000ff70d0430a4d0001e0000012313400010064d8ce0a4d006e",
              version: .v3, vrid: 52, priority: 0, intervalCentiseconds: 100,
              addresses: ["10.77.0.110"], password: nil, checksumMode: .withPseudoHeader),
        .init(name: "v3 IPv4 advert_int 0.5, three VIPs", source: "10.77.0.1", destination: "224.0.0.18",
              payload: "3135c8030032fb5d0a4d00780a4d00790a4d007a",
              ipv4Datagram: "45c0002800010000ff70d0440a4d0001e00000123135c8030032fb5d0a4d00780a4d00790a4d007a",
              version: .v3, vrid: 53, priority: 200, intervalCentiseconds: 50,
              addresses: ["10.77.0.120", "10.77.0.121", "10.77.0.122"], password: nil, checksumMode: .withPseudoHeader),
        .init(name: "v3 IPv4 advert_int 0.5 priority 0", source: "10.77.0.1", destination: "224.0.0.18",
              payload: "313500030032c35e0a4d00780a4d00790a4d007a",
              ipv4Datagram: "45c0002800170000ff70d02e0a4d0001e0000012313500030032c35e0a4d00780a4d00790a4d007a",
              version: .v3, vrid: 53, priority: 0, intervalCentiseconds: 50,
              addresses: ["10.77.0.120", "10.77.0.121", "10.77.0.122"], password: nil, checksumMode: .withPseudoHeader),
        .init(name: "v3 IPv4 unicast", source: "10.77.0.1", destination: "10.77.0.2",
              payload: "31386e01006440700a4d008c",
              ipv4Datagram: "45c0002000010000ff70a6100a4d00010a4d000231386e01006440700a4d008c",
              version: .v3, vrid: 56, priority: 110, intervalCentiseconds: 100,
              addresses: ["10.77.0.140"], password: nil, checksumMode: .withPseudoHeader),
        .init(name: "v3 IPv4 unicast priority 0", source: "10.77.0.1", destination: "10.77.0.2",
              payload: "313800010064ae700a4d008c",
              ipv4Datagram: "45c00020000a0000ff70a6070a4d00010a4d0002313800010064ae700a4d008c",
              version: .v3, vrid: 56, priority: 0, intervalCentiseconds: 100,
              addresses: ["10.77.0.140"], password: nil, checksumMode: .withPseudoHeader),
        .init(name: "v3 IPv4 unicast old_unicast_checksum", source: "10.77.0.1", destination: "10.77.0.2",
              payload: "313a5a0100647ea00a4d0096",
              ipv4Datagram: "45c0002000010000ff70a6100a4d00010a4d0002313a5a0100647ea00a4d0096",
              version: .v3, vrid: 58, priority: 90, intervalCentiseconds: 100,
              addresses: ["10.77.0.150"], password: nil, checksumMode: .pseudoHeaderWithGroupDestination),
        .init(name: "v3 IPv4 unicast old_unicast_checksum priority 0", source: "10.77.0.1", destination: "10.77.0.2",
              payload: "313a00010064d8a00a4d0096",
              ipv4Datagram: "45c0002000050000ff70a60c0a4d00010a4d0002313a00010064d8a00a4d0096",
              version: .v3, vrid: 58, priority: 0, intervalCentiseconds: 100,
              addresses: ["10.77.0.150"], password: nil, checksumMode: .pseudoHeaderWithGroupDestination),
        .init(name: "v3 IPv6 two VIPs", source: "fe80::77:ff:fe00:1", destination: "ff02::12",
              payload: "31368202006451ccfd770000000000000000000000000100fd770000000000000000000000000101",
              ipv4Datagram: nil,
              version: .v3, vrid: 54, priority: 130, intervalCentiseconds: 100,
              addresses: ["fd77::100", "fd77::101"], password: nil, checksumMode: .withPseudoHeader),
        .init(name: "v3 IPv6 two VIPs priority 0", source: "fe80::77:ff:fe00:1", destination: "ff02::12",
              payload: "313600020064d3ccfd770000000000000000000000000100fd770000000000000000000000000101",
              ipv4Datagram: nil,
              version: .v3, vrid: 54, priority: 0, intervalCentiseconds: 100,
              addresses: ["fd77::100", "fd77::101"], password: nil, checksumMode: .withPseudoHeader),
        .init(name: "v3 IPv6 advert_int 0.5", source: "fe80::77:ff:fe00:1", destination: "ff02::12",
              payload: "31378c0100324677fd770000000000000000000000000110",
              ipv4Datagram: nil,
              version: .v3, vrid: 55, priority: 140, intervalCentiseconds: 50,
              addresses: ["fd77::110"], password: nil, checksumMode: .withPseudoHeader),
        .init(name: "v3 IPv6 advert_int 0.5 priority 0", source: "fe80::77:ff:fe00:1", destination: "ff02::12",
              payload: "313700010032d277fd770000000000000000000000000110",
              ipv4Datagram: nil,
              version: .v3, vrid: 55, priority: 0, intervalCentiseconds: 50,
              addresses: ["fd77::110"], password: nil, checksumMode: .withPseudoHeader),
    ]
}

/// Bytes from hex text; traps on bad hex (test fixtures only).
func bytes(_ hex: String) -> [UInt8] {
    let chars = Array(hex.utf8)
    precondition(chars.count % 2 == 0, "odd hex length")
    return stride(from: 0, to: chars.count, by: 2).map { UInt8(String(decoding: chars[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined()
}

func ip(_ text: String) -> IPAddress { IPAddress(text)! }
