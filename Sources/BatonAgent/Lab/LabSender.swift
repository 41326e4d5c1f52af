import Dispatch
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A pod's steady UDP flow to the lab's echo service during a failover: one socket, so one
/// source port and one conntrack flow for the whole run, one datagram per interval, and for each
/// datagram the source address the echo saw. Timestamps are CLOCK_MONOTONIC nanoseconds, the
/// clock `LabEcho` and `LabWire` log with.
public enum LabSender {
    /// Sends datagram `SEQ` (decimal, from 0) to `host:port` every `interval` for `duration`, on
    /// absolute deadlines (a late send does not push the later ones back), waits 300 ms for late
    /// replies, then prints one line per datagram, in SEQ order:
    ///
    ///     SEQ SENT_NANOS RECV_NANOS SOURCE    answered; SOURCE is the address the echo saw
    ///     SEQ SENT_NANOS - -                  no answer
    ///
    /// Only the first reply to a datagram counts.
    public static func run(host: String, port: UInt16, interval: Duration, duration: Duration) throws {
        let period = nanos(interval)
        guard period > 0 else { throw LabError("the interval must be positive") }
        let count = Int((nanos(duration) + period - 1) / period)
        guard count > 0 else { throw LabError("the duration must be positive") }
        var target = try LabEcho.socketAddress(host: host, port: port)

        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw LabError("cannot open a UDP socket: errno \(errno)") }
        defer { close(fd) }
        var any = sockaddr_in()
        any.sin_family = sa_family_t(AF_INET)
        let bound = withUnsafePointer(to: &any) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw LabError("cannot bind a UDP socket: errno \(errno)") }
        // The receive thread wakes this often to see whether the run is over.
        var tv = timeval(tv_sec: 0, tv_usec: 50_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))

        let run = SenderRun(count: count)
        let echo = target
        let receiverDone = DispatchSemaphore(value: 0)
        let receiver = Thread {
            receive(fd: fd, from: echo, into: run)
            receiverDone.signal()
        }
        receiver.name = "udp-receive"
        receiver.start()

        let start = LabEcho.monotonicNanos()
        for seq in 0..<count {
            sleep(until: start + UInt64(seq) * period)
            let payload = Array(String(seq).utf8)
            run.state.withLock { $0.sent[seq] = LabEcho.monotonicNanos() }
            // A failed send (no route during a failover, say) is an unanswered datagram.
            _ = withUnsafePointer(to: &target) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, payload, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        let lastChance = LabEcho.monotonicNanos() + 300_000_000
        while LabEcho.monotonicNanos() < lastChance, !run.state.withLock({ $0.answered == count }) {
            sleep(until: min(lastChance, LabEcho.monotonicNanos() + 10_000_000))
        }
        run.state.withLock { $0.stopped = true }
        receiverDone.wait()

        let lines = run.state.withLock { s in
            (0..<count).map { seq in
                let sent = s.sent[seq] ?? 0
                guard let reply = s.replies[seq] else { return "\(seq) \(sent) - -\n" }
                return "\(seq) \(sent) \(reply.nanos) \(reply.source)\n"
            }
        }
        FileHandle.standardOutput.write(Data(lines.joined().utf8))
    }

    /// Reads replies `SOURCE SEQ` from the echo at `echo` until the run is stopped.
    static func receive(fd: Int32, from echo: sockaddr_in, into run: SenderRun) {
        var buffer = [UInt8](repeating: 0, count: 512)
        while !run.state.withLock({ $0.stopped }) {
            var from = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let n = withUnsafeMutablePointer(to: &from) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &length) }
            }
            let now = LabEcho.monotonicNanos()
            guard n > 0, from.sin_addr.s_addr == echo.sin_addr.s_addr, from.sin_port == echo.sin_port else { continue }
            let words = String(decoding: buffer[0..<n], as: UTF8.self).split(whereSeparator: \.isWhitespace)
            guard words.count == 2, let seq = Int(words[1]) else { continue }
            run.state.withLock { s in
                guard s.replies.indices.contains(seq), s.replies[seq] == nil else { return }
                s.replies[seq] = (now, String(words[0]))
                s.answered += 1
            }
        }
    }

    /// Sleeps until CLOCK_MONOTONIC reaches `deadline` nanoseconds (at once if it has).
    static func sleep(until deadline: UInt64) {
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
    }

    static func nanos(_ d: Duration) -> UInt64 {
        let (seconds, attoseconds) = d.components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }
}

/// What the sending loop and the receive thread share during one `LabSender.run`.
final class SenderRun: Sendable {
    struct State {
        var sent: [UInt64?]
        var replies: [(nanos: UInt64, source: String)?]
        var answered = 0
        var stopped = false
    }
    let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(sent: Array(repeating: nil, count: count), replies: Array(repeating: nil, count: count)))
    }
}

/// One line of a `LabSender.run` log.
public struct SenderRecord: Sendable, Equatable {
    public var seq: Int
    /// CLOCK_MONOTONIC nanoseconds just before the datagram was sent.
    public var sent: UInt64
    /// CLOCK_MONOTONIC nanoseconds when the first reply arrived; nil when none did.
    public var received: UInt64?
    /// The source address the echo saw; nil when no reply arrived.
    public var source: String?

    public init(seq: Int, sent: UInt64, received: UInt64? = nil, source: String? = nil) {
        self.seq = seq
        self.sent = sent
        self.received = received
        self.source = source
    }
}

/// Reads what `baton lab send` printed.
public struct SenderLog {
    /// The records of a send log, in the log's order. Only lines that end in a newline count
    /// (a last line without one was cut off); lines that do not parse are skipped.
    public static func parse(_ text: String) -> [SenderRecord] {
        completeLines(text).compactMap { line in
            let f = line.split(separator: " ")
            guard f.count == 4, let seq = Int(f[0]), seq >= 0, let sent = UInt64(f[1]) else { return nil }
            if f[2] == "-", f[3] == "-" { return SenderRecord(seq: seq, sent: sent) }
            guard let received = UInt64(f[2]), isIPv4(f[3]) else { return nil }
            return SenderRecord(seq: seq, sent: sent, received: received, source: String(f[3]))
        }
    }
}

extension LabSender {
    /// The failover's outage, from a send log: the longest run of consecutive datagrams (in SEQ
    /// order) that got no reply showing `expectedSource`. A reply with another source is both
    /// lost and wrong.
    ///
    /// - `outage`: from the first datagram of that run being sent to the first datagram after it
    ///   that was answered with `expectedSource` being sent; when none was, to the last datagram
    ///   being sent. Zero when nothing was lost.
    /// - `lost` and `wrongSource`: counted over the whole log, not only that run.
    /// - `firstLostSeq`: the run's first SEQ; `recoveredSeq`: the SEQ of the first datagram
    ///   answered with `expectedSource` after it, nil when the log ends inside the run.
    /// When two runs are equally long, the earlier one is reported.
    public static func outage(_ records: [SenderRecord], expectedSource: String)
        -> (outage: Duration, lost: Int, wrongSource: Int, firstLostSeq: Int?, recoveredSeq: Int?)
    {
        let sorted = records.sorted { $0.seq < $1.seq }
        let good = sorted.map { $0.received != nil && $0.source == expectedSource }
        let lost = good.filter { !$0 }.count
        let wrongSource = sorted.filter { $0.received != nil && $0.source != expectedSource }.count

        var longest: (start: Int, end: Int)?  // indices into `sorted`, end exclusive
        var i = 0
        while i < sorted.count {
            guard !good[i] else { i += 1; continue }
            var end = i
            while end < sorted.count, !good[end] { end += 1 }
            if longest.map({ end - i > $0.end - $0.start }) ?? true { longest = (i, end) }
            i = end
        }
        guard let run = longest else { return (.zero, 0, wrongSource, nil, nil) }
        let first = sorted[run.start]
        let recovered = run.end < sorted.count ? sorted[run.end] : nil
        let until = recovered?.sent ?? sorted[sorted.count - 1].sent
        let span = until >= first.sent ? until - first.sent : 0
        return (.nanoseconds(Int64(span)), lost, wrongSource, first.seq, recovered?.seq)
    }
}
