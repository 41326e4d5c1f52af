import ArgumentParser
import BatonAgent
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `baton lab watch` and `baton lab send`: the two sides of a failover measurement. Both log
/// CLOCK_MONOTONIC nanoseconds, as `baton lab echo` does, so their logs merge.
extension LabCommand {
    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Log ARP for an EIP and UDP frames to the echo port seen on one interface, until killed (root).",
            discussion: """
                Lines: NANOS arp reply|garp|request SENDER_MAC, and NANOS udp SOURCE_MAC SOURCE_IP \
                (CLOCK_MONOTONIC nanoseconds). Frames the interface sent itself are not logged.
                """,
            shouldDisplay: false)
        @Option(help: "The interface to watch, in this namespace.") var interface: String
        @Option(help: "The EIP (IPv4) whose ARP traffic to log and probe for.") var eip: String
        @Option(name: .customLong("udp-port"), help: "The echo service's UDP port.") var udpPort = Lab.echoPort
        @Option(name: .customLong("probe-ms"), help: "Broadcast \"who-has EIP\" every this many milliseconds; 0 disables probing.")
        var probeMs = 10

        func validate() throws {
            guard !interface.isEmpty, interface.utf8.count < Int(IFNAMSIZ) else {
                throw ValidationError("--interface: \"\(interface)\" is not an interface name")
            }
            guard if_nametoindex(interface) != 0 else { throw ValidationError("--interface: no interface \(interface) in this namespace") }
            guard isIPv4(eip) else { throw ValidationError("--eip: \"\(eip)\" is not an IPv4 address") }
            guard (1...65535).contains(udpPort) else { throw ValidationError("--udp-port: \(udpPort) is not between 1 and 65535") }
            guard (0...60_000).contains(probeMs) else { throw ValidationError("--probe-ms: \(probeMs) is not between 0 and 60000") }
        }

        func run() throws {
            try LabWire.watch(interface: interface, eip: eip, udpPort: UInt16(udpPort), probeInterval: probeMs == 0 ? nil : .milliseconds(probeMs))
        }
    }

    struct Send: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send numbered UDP datagrams to an echo service from one socket and print, per datagram, when it was sent and answered and the source the echo saw.",
            discussion: """
                Lines, in SEQ order once the run is over: SEQ SENT_NANOS RECV_NANOS SOURCE, or \
                SEQ SENT_NANOS - - when no answer came (CLOCK_MONOTONIC nanoseconds).
                """,
            shouldDisplay: false)
        @Option(help: "The echo service, HOST:PORT (IPv4).") var to = "\(Lab.externalAddress):\(Lab.echoPort)"
        @Option(name: .customLong("interval-ms"), help: "Milliseconds between datagrams.") var intervalMs = 10
        @Option(name: .customLong("duration-ms"), help: "How long to send, in milliseconds.") var durationMs = 5000

        func validate() throws {
            _ = try target()
            guard (1...60_000).contains(intervalMs) else { throw ValidationError("--interval-ms: \(intervalMs) is not between 1 and 60000") }
            guard durationMs >= intervalMs else { throw ValidationError("--duration-ms: \(durationMs) is shorter than --interval-ms \(intervalMs)") }
            guard durationMs / intervalMs <= 10_000_000 else {
                throw ValidationError("--duration-ms: \(durationMs) at --interval-ms \(intervalMs) is more than 10000000 datagrams")
            }
        }

        func target() throws -> (host: String, port: UInt16) {
            guard let colon = to.lastIndex(of: ":"), isIPv4(String(to[..<colon])),
                  let port = UInt16(to[to.index(after: colon)...]), port != 0 else {
                throw ValidationError("--to: \"\(to)\" is not IPV4:PORT")
            }
            return (String(to[..<colon]), port)
        }

        func run() throws {
            let (host, port) = try target()
            try LabSender.run(host: host, port: port, interval: .milliseconds(intervalMs), duration: .milliseconds(durationMs))
        }
    }
}

private func isIPv4(_ text: String) -> Bool {
    var address = in_addr()
    return inet_pton(AF_INET, text, &address) == 1
}
