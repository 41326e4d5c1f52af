import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The load of `baton lab bench vrrp`: one core's worth of CPU in a busy loop, no I/O.
public enum LabLoad {
    /// Spins until `duration` has passed, or until `parent` is no longer the parent process, so
    /// a bench that crashed leaves no core busy. The bench passes its own PID: a spinner that
    /// read its parent at start would take the one it was handed to for its own, when the bench
    /// died before the spinner got that far.
    public static func spin(for duration: Duration, parent: pid_t) {
        let end = LabEcho.monotonicNanos() + LabSender.nanos(duration)
        if getppid() != parent { return }
        var turns: UInt64 = 0
        // Reading the clock (vDSO, no system call) is the work, and it cannot be optimised away.
        while LabEcho.monotonicNanos() < end {
            turns &+= 1
            if turns % 100_000 == 0, getppid() != parent { return }
        }
    }
}
