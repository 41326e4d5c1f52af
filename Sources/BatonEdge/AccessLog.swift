#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// One line per request, the cluster that served it near the front so that `cut -c -60` (the
/// seed's demo) still shows it:
///
///     2026-11-24T10:00:00.123Z 200 cluster-1 GET bookinfo.tse.tetratelabs.io/productpage 127.0.0.11:8080 1.2ms try=1 bytes=10 from=127.0.0.1
///     2026-11-24T10:00:01.456Z 200 cluster-3 GET bookinfo.tse.tetratelabs.io/productpage 127.0.0.13:8080 0.9ms try=2 bytes=10 from=127.0.0.1 tried=cluster-1,cluster-3
///
/// The time is when the response ended (UTC); the duration is from the request head. The
/// cluster is `-` when none took the request (404, 503 no healthy upstream); `tried=` lists the
/// clusters of a retried request in order. Lines are
/// written with one `write(2)` each, so lines from several event loops never interleave.
public final class AccessLog: Sendable {
    private let fd: Int32

    /// Writes to a file descriptor the caller keeps open (1 for stdout).
    public init(fileDescriptor: Int32) { self.fd = fileDescriptor }

    /// Now as RFC 3339 UTC with milliseconds (`2026-11-24T10:00:00.123Z`), as
    /// `Timestamp.format` writes resources' times, without Foundation's formatter on the
    /// request path.
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return timestamp(seconds: Int(ts.tv_sec), milliseconds: Int(ts.tv_nsec / 1_000_000))
    }

    /// `seconds` since the Unix epoch and `milliseconds` into the next second, as RFC 3339 UTC.
    static func timestamp(seconds: Int, milliseconds: Int) -> String {
        var t = tm()
        var secs = time_t(seconds)
        gmtime_r(&secs, &t)
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(pad(t.tm_year + 1900, 4))-\(pad(t.tm_mon + 1, 2))-\(pad(t.tm_mday, 2))T\(pad(t.tm_hour, 2)):\(pad(t.tm_min, 2)):\(pad(t.tm_sec, 2)).\(pad(Int32(milliseconds), 3))Z"
    }

    func write(_ line: String) {
        var l = line
        l.append("\n")
        l.withUTF8 { buf in
            var off = 0
            while off < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + off, buf.count - off)
                if n <= 0 { return }
                off += n
            }
        }
    }
}
