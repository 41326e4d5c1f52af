import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One frame `baton lab bench vrrp` saw on the backup's port of the LAN bridge, with the
/// kernel's receive timestamp (`SO_TIMESTAMPNS`, CLOCK_REALTIME nanoseconds): a VRRP
/// advertisement or an ARP for the VIP, going to the backup (sent by someone else: the master)
/// or coming from it.
public struct VRRPWireFrame: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A VRRP advertisement for `vrid` at `priority`, from IP `source`.
        case advertisement(vrid: UInt8, priority: UInt8, source: String)
        /// An ARP (request or reply) whose sender IP is `sender`.
        case arp(sender: String)
    }

    public var nanos: Int64
    /// True: the bridge sent it to the backup (it came from elsewhere); false: the backup sent it.
    public var toBackup: Bool
    public var kind: Kind

    public init(nanos: Int64, toBackup: Bool, kind: Kind) {
        self.nanos = nanos
        self.toBackup = toBackup
        self.kind = kind
    }

    /// Reads an Ethernet frame: IPv4 VRRP (protocol 112) or ARP; nil for anything else.
    public static func parse(_ frame: ArraySlice<UInt8>, nanos: Int64, toBackup: Bool) -> VRRPWireFrame? {
        let f = Array(frame)
        guard f.count >= 14 else { return nil }
        let type = UInt16(f[12]) << 8 | UInt16(f[13])
        func ipv4(_ at: Int) -> String { "\(f[at]).\(f[at + 1]).\(f[at + 2]).\(f[at + 3])" }
        switch type {
        case 0x0800:
            guard f.count >= 34, f[14] >> 4 == 4, f[23] == 112 else { return nil }
            let vrrp = 14 + Int(f[14] & 0x0f) * 4
            guard f.count >= vrrp + 3 else { return nil }
            return VRRPWireFrame(nanos: nanos, toBackup: toBackup, kind: .advertisement(vrid: f[vrrp + 1], priority: f[vrrp + 2], source: ipv4(26)))
        case 0x0806:
            guard f.count >= 42, f[16] == 0x08, f[17] == 0x00 else { return nil }   // IPv4 over Ethernet
            return VRRPWireFrame(nanos: nanos, toBackup: toBackup, kind: .arp(sender: ipv4(28)))
        default:
            return nil
        }
    }
}

/// How fast a backup reacts to its master's silence, from the wire alone: from the last
/// advertisement of the master that reached the backup to the backup's first sign of taking
/// over (its own advertisement, or a gratuitous ARP for the VIP). For an RFC speaker this is
/// `Master_Down_Interval` plus the speaker's own delay (timer wake-up, sending); unlike the
/// client's takeover it carries no phase of the failure in the advert interval and no probe
/// quantisation.
public enum VRRPBenchReaction {
    public static func measure(_ frames: [VRRPWireFrame], vrid: UInt8, master: String, backup: String, vip: String) -> Duration? {
        let sorted = frames.sorted { $0.nanos < $1.nanos }
        guard let first = sorted.firstIndex(where: { f in
            guard !f.toBackup else { return false }
            switch f.kind {
            case .advertisement(let v, let priority, let source): return v == vrid && priority > 0 && source == backup
            case .arp(let sender): return sender == vip
            }
        }) else { return nil }
        guard let last = sorted[..<first].lastIndex(where: { f in
            guard f.toBackup, case .advertisement(let v, let priority, let source) = f.kind else { return false }
            return v == vrid && priority > 0 && source == master
        }) else { return nil }
        return .nanoseconds(sorted[first].nanos - sorted[last].nanos)
    }
}

/// A packet socket on one interface of a lab namespace, opened from a thread that enters the
/// namespace (`setns`) so that nothing forks, recording VRRP and ARP frames with the kernel's
/// timestamps until `stop()`. The thread ends in that namespace; the process's others stay where
/// they were.
final class VRRPWireTap: Sendable {
    private let frames = Mutex<[VRRPWireFrame]>([])
    private let stopping = Mutex(false)
    private let done = DispatchSemaphore(value: 0)

    static let soTimestampNS: Int32 = 35, scmTimestampNS: Int32 = 35
    static let cloneNewNet: Int32 = 0x4000_0000

    /// Returns once the socket is bound and timestamping (frames from then on are recorded).
    init(namespace: String, interface: String) throws {
        let ready = DispatchSemaphore(value: 0)
        let failure = Mutex<String?>(nil)
        let thread = Thread { [self] in
            let fd = Self.open(namespace: namespace, interface: interface)
            switch fd {
            case .failure(let why):
                failure.withLock { $0 = why }
                ready.signal()
                done.signal()
            case .success(let fd):
                ready.signal()
                record(fd)
                Glibc.close(fd)
                done.signal()
            }
        }
        thread.name = "vrrp-wire"
        thread.start()
        ready.wait()
        if let why = failure.withLock({ $0 }) { throw LabError("wire tap on \(interface) in \(namespace): \(why)") }
    }

    /// Stops recording and returns what was seen, in order received. Idempotent.
    func stop() -> [VRRPWireFrame] {
        let first = stopping.withLock { s in defer { s = true }; return !s }
        if first { done.wait() }
        return frames.withLock { $0 }
    }

    private enum Opened { case success(Int32), failure(String) }

    private static func open(namespace: String, interface: String) -> Opened {
        let ns = Glibc.open("/var/run/netns/\(namespace)", O_RDONLY | O_CLOEXEC)
        guard ns >= 0 else { return .failure("cannot open the namespace: errno \(errno)") }
        defer { Glibc.close(ns) }
        // glibc's setns(2) wrapper, which the Glibc module does not import.
        guard let symbol = dlsym(nil, "setns") else { return .failure("no setns in libc") }
        let setns = unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
        guard setns(ns, cloneNewNet) == 0 else { return .failure("cannot enter the namespace: errno \(errno)") }
        let index = if_nametoindex(interface)
        guard index != 0 else { return .failure("no such interface") }
        let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(LabWire.ethPAll.bigEndian))
        guard fd >= 0 else { return .failure("cannot open a packet socket: errno \(errno)") }
        var on: Int32 = 1
        var timeout = timeval(tv_sec: 0, tv_usec: 50_000)
        let address = LabWire.linkAddress(protocol: LabWire.ethPAll, index: index, destination: nil)
        let bound = address.withUnsafeBytes { bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(address.count)) }
        guard bound == 0,
              setsockopt(fd, SOL_SOCKET, soTimestampNS, &on, socklen_t(MemoryLayout<Int32>.size)) == 0,
              setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
            let e = errno
            Glibc.close(fd)
            return .failure("cannot bind the packet socket or ask for timestamps: errno \(e)")
        }
        return .success(fd)
    }

    private func record(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 256)        // headers only
        var from = [UInt8](repeating: 0, count: 128)          // sockaddr_ll
        var control = [UInt8](repeating: 0, count: 256)
        while !stopping.withLock({ $0 }) {
            var nanos: Int64? = nil
            var pktType: UInt8 = 0
            let n = buffer.withUnsafeMutableBytes { b in
                from.withUnsafeMutableBytes { f in
                    control.withUnsafeMutableBytes { c in
                        var iov = iovec(iov_base: b.baseAddress, iov_len: b.count)
                        return withUnsafeMutablePointer(to: &iov) { iovPointer in
                            var message = msghdr(msg_name: f.baseAddress, msg_namelen: socklen_t(f.count), msg_iov: iovPointer, msg_iovlen: 1,
                                                 msg_control: c.baseAddress, msg_controllen: c.count, msg_flags: 0)
                            let n = recvmsg(fd, &message, Int32(MSG_TRUNC))
                            guard n > 0 else { return n }
                            pktType = f[10]   // sll_pkttype
                            nanos = Self.timestamp(UnsafeRawBufferPointer(rebasing: c[0..<Int(message.msg_controllen)]))
                            return n
                        }
                    }
                }
            }
            guard n > 0, let nanos else { continue }
            if let frame = VRRPWireFrame.parse(buffer[0..<min(n, buffer.count)], nanos: nanos, toBackup: pktType == LabWire.packetOutgoing) {
                frames.withLock { $0.append(frame) }
            }
        }
    }

    /// The `SCM_TIMESTAMPNS` control message's `timespec`, in nanoseconds.
    static func timestamp(_ control: UnsafeRawBufferPointer) -> Int64? {
        var at = 0
        while at + 16 <= control.count {
            let length = Int(control.loadUnaligned(fromByteOffset: at, as: UInt.self))
            let level = control.loadUnaligned(fromByteOffset: at + 8, as: Int32.self)
            let type = control.loadUnaligned(fromByteOffset: at + 12, as: Int32.self)
            guard length >= 16, at + length <= control.count else { return nil }
            if level == SOL_SOCKET, type == scmTimestampNS, length >= 32 {
                let seconds = control.loadUnaligned(fromByteOffset: at + 16, as: Int64.self)
                let nanoseconds = control.loadUnaligned(fromByteOffset: at + 24, as: Int64.self)
                return seconds * 1_000_000_000 + nanoseconds
            }
            at += (length + 7) & ~7
        }
        return nil
    }
}
