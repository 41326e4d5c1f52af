import Synchronization

/// Remembers, for a short while, names that were found to exist, so a request that only needs
/// to know that (a heartbeat: 5 per second per node) does not read the store every time.
/// Only positive answers are kept. A deletion through this server forgets the name at once;
/// one through another replica is seen within `ttl`.
final class ExistenceCache: Sendable {
    let ttl: Duration
    private let seen = Mutex<[String: ContinuousClock.Instant]>([:])

    init(ttl: Duration) { self.ttl = ttl }

    /// Whether `name` exists: from memory when it was found within `ttl`, otherwise from `lookup`.
    func exists(_ name: String, lookup: () async throws -> Bool) async throws -> Bool {
        let now = ContinuousClock.now
        if let until = seen.withLock({ $0[name] }), until > now { return true }
        guard try await lookup() else {
            seen.withLock { _ = $0.removeValue(forKey: name) }
            return false
        }
        seen.withLock { $0[name] = now.advanced(by: ttl) }
        return true
    }

    func forget(_ name: String) {
        seen.withLock { _ = $0.removeValue(forKey: name) }
    }
}
