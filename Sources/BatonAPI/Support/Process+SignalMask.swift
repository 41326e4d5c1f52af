import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension Process {
    /// Starts the process with no signal blocked. `run()` starts the child with the calling
    /// thread's signal mask, and the threads of Swift's concurrency pool and of Dispatch block
    /// most signals (SIGTERM and SIGINT among them): a child that does not set its own mask
    /// (wrk, for one) then ignores the SIGTERM that stops it by PID. The calling thread's mask
    /// is cleared for the start and put back after.
    public func runWithDefaultSignalMask() throws {
        var none = sigset_t()
        sigemptyset(&none)
        var saved = sigset_t()
        pthread_sigmask(SIG_SETMASK, &none, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        try run()
    }
}
