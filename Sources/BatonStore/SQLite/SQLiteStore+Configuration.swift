extension SQLiteStore {
    /// How a `SQLiteStore` trades durability, latency and disk space. The defaults suit a
    /// `baton server` with a data dir on a local disk.
    public struct Configuration: Sendable {
        /// When SQLite waits for the disk (`PRAGMA synchronous`) in WAL mode.
        public enum Synchronous: String, Sendable {
            /// The WAL is fsynced at every commit: an acknowledged write survives a power loss
            /// or a kernel crash. Costs one fsync per write.
            case full = "FULL"
            /// The WAL is fsynced only at checkpoints: an acknowledged write survives the
            /// process being killed (SIGKILL, a crash), but the last commits may be lost if
            /// the machine itself loses power.
            case normal = "NORMAL"
        }

        /// Defaults to `.full`.
        public var synchronous: Synchronous = .full

        /// How long a write waits for another connection (another process sharing the file)
        /// to release the write lock before it fails with 503. Defaults to 5 seconds.
        public var busyTimeout: Duration = .seconds(5)

        /// How often the watch tailer looks for changes that another process committed to the
        /// same file. Commits made through this store wake the tailer at once and do not wait
        /// for a poll. nil disables polling: use it only when no other process writes the file.
        /// Defaults to 50 ms.
        public var pollInterval: Duration? = .milliseconds(50)

        /// How many of the latest revisions the change log keeps. A watch from an older
        /// revision fails with 410 Gone and the client must re-list. Defaults to 100,000.
        public var retainedRevisions: Int64 = 100_000

        /// The log is compacted in the write that makes the revision a multiple of this
        /// number, so compaction costs one bounded DELETE every so many writes. Defaults to 1,000.
        public var compactionInterval: Int64 = 1_000

        /// How many live changes one watcher may have waiting before the store gives up on it:
        /// when a watcher falls this far behind, it receives what was queued and then its
        /// stream ends with 410 Gone; it can resume with a new watch from the last revision
        /// it saw. Replay of history is read on demand and does not count. Defaults to 10,000.
        public var watchBufferLimit: Int = 10_000

        /// Concurrent read connections (list, get, watch replay) of a file-backed store.
        public var maximumReaderCount: Int = 5

        public init() {}
    }
}
