import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension Process {
    /// Starts the process with SIGTERM and SIGINT unblocked. `run()` starts the child with the
    /// calling thread's signal mask, and the threads of Swift's concurrency pool and of Dispatch
    /// block most signals: a child that does not set its own mask (wrk, for one) then ignores
    /// the SIGTERM that stops it by PID. Only those two are unblocked, in the calling thread,
    /// for the start, and the mask is put back after: Foundation starts its process-manager
    /// thread at the first `run()`, with the caller's mask, and that thread must not take
    /// signals (SIGHUP, SIGUSR1, ...) the rest of the program keeps blocked.
    public func runWithStopSignalsUnblocked() throws {
        var stop = sigset_t()
        sigemptyset(&stop)
        sigaddset(&stop, SIGTERM)
        sigaddset(&stop, SIGINT)
        var saved = sigset_t()
        pthread_sigmask(SIG_UNBLOCK, &stop, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        try run()
    }
}
