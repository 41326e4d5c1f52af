import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The load of `baton lab bench vrrp`: one core's worth of CPU in a busy loop, no I/O.
public enum LabLoad {
    /// Spins until `duration` has passed, or until the parent process is gone, so a bench that
    /// crashed leaves no core busy.
    public static func spin(for duration: Duration) {
        let end = LabEcho.monotonicNanos() + LabSender.nanos(duration)
        let parent = getppid()
        var turns: UInt64 = 0
        // Reading the clock (vDSO, no system call) is the work, and it cannot be optimised away.
        while LabEcho.monotonicNanos() < end {
            turns &+= 1
            if turns % 100_000 == 0, getppid() != parent { return }
        }
    }
}
