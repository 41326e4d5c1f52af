import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// keepalived's `vrrp_rt_priority` for `baton vrrp`: real-time round-robin scheduling
/// (SCHED_RR), so that a busy machine cannot delay an advertisement or the master-down timer
/// behind ordinary processes. RR, as keepalived uses, shares a core between real-time threads of
/// equal priority; the kernel keeps 5% of each second for others (`sched_rt_runtime_us`).
public enum RealtimeScheduling {
    /// Puts every thread of this process under SCHED_RR at `priority` (1...99). Threads created
    /// afterwards inherit it, and so do child processes (`ip`, notify scripts). Call it before
    /// the speaker starts. Throws, naming errno, when a thread could not be changed (no
    /// CAP_SYS_NICE, say); threads already changed stay changed.
    public static func apply(priority: Int32) throws(RealtimeSchedulingError) {
        guard (1...99).contains(priority) else { throw RealtimeSchedulingError("priority \(priority) is not in 1...99", errno: 0) }
        var param = sched_param(sched_priority: priority)
        var done: Set<Int32> = []
        // A thread may start while we go through the list: go through it until nothing is new.
        while true {
            let tasks = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []).compactMap { Int32($0) }
            let new = tasks.filter { !done.contains($0) }
            if new.isEmpty { return }
            for tid in new {
                if sched_setscheduler(tid, SCHED_RR, &param) != 0, errno != ESRCH {
                    throw RealtimeSchedulingError("cannot set SCHED_RR priority \(priority) on thread \(tid)", errno: errno)
                }
                done.insert(tid)
            }
        }
    }

    /// The calling thread's policy and priority, as `sched_getscheduler` reports them.
    public static func current() -> (policy: Int32, priority: Int32) {
        var param = sched_param()
        sched_getparam(0, &param)
        return (sched_getscheduler(0), param.sched_priority)
    }
}

public struct RealtimeSchedulingError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var errno: Int32

    public init(_ message: String, errno: Int32) {
        self.message = message
        self.errno = errno
    }

    public var description: String { errno == 0 ? message : "\(message): \(String(cString: strerror(errno)))" }
}
