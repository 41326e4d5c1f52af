#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// One line per request, the cluster that served it near the front so that `cut -c -60` (the
/// seed's demo) still shows it:
///
///     2026-11-24T10:00:00.123Z 200 cluster-1 GET bookinfo.tse.tetratelabs.io/productpage 127.0.0.11:8080 1.2ms try=1 from=127.0.0.1
///
/// The cluster is `-` when none took the request (404, 503 no healthy upstream). Lines are
/// written with one `write(2)` each, so lines from several event loops never interleave.
public final class AccessLog: Sendable {
    private let fd: Int32

    /// Writes to a file descriptor the caller keeps open (1 for stdout).
    public init(fileDescriptor: Int32) { self.fd = fileDescriptor }

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
