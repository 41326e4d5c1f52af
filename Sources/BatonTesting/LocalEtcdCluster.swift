import BatonAPI
import BatonEtcd
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A single-member or several-member etcd on loopback for tests: each member on free ports, in
/// its own temporary data dir, with fast election settings, and stopped by PID (`stop()`, and at
/// the latest when the test process exits). Members can be killed and started again on the same
/// ports and data, as an operator restores a failed machine.
public final class LocalEtcdCluster: Sendable {
    /// `$ETCD_BINARY`, else Debian's `/usr/bin/etcd`; nil when neither is there (tests skip).
    public static var binary: String? {
        if let path = ProcessInfo.processInfo.environment["ETCD_BINARY"], FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        return FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd") ? "/usr/bin/etcd" : nil
    }

    /// Why etcd tests skip, for `.enabled(if:_:)`.
    public static let missingMessage = "etcd not installed: apt-get install etcd-server (or set ETCD_BINARY)"

    public struct Member: Sendable {
        public var name: String
        public var clientPort: Int
        public var peerPort: Int
        public var dataDir: String
        public var endpoint: String { "http://127.0.0.1:\(clientPort)" }
    }

    public let members: [Member]
    public let directory: String
    public let heartbeatInterval: Int
    public let electionTimeout: Int
    private let processes: Mutex<[Int: Process]>

    /// The client URLs of every member.
    public var endpoints: [String] { members.map(\.endpoint) }

    /// Starts `size` members and waits (up to 30 s) until the cluster has a leader.
    /// - Parameters: heartbeatInterval, electionTimeout: etcd's, in milliseconds.
    public init(size: Int = 1, heartbeatInterval: Int = 50, electionTimeout: Int = 250) async throws {
        guard let binary = Self.binary else { throw LocalEtcdError(Self.missingMessage) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("baton-etcd-\(UUID().uuidString.prefix(8))").path
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        members = (0..<size).map { i in
            Member(name: "m\(i)", clientPort: Self.freePort(), peerPort: Self.freePort(), dataDir: "\(directory)/m\(i)")
        }
        self.heartbeatInterval = heartbeatInterval
        self.electionTimeout = electionTimeout
        processes = Mutex([:])
        Self.registry.withLock { $0.directories.insert(directory) }
        Self.installExitHandler()
        do {
            for i in members.indices { try start(i, binary: binary) }
            try await waitForLeader(timeout: .seconds(30))
        } catch {
            stop()
            throw error
        }
    }

    deinit { stop() }

    /// Starts member `i` (again, on its ports and data dir) and waits until it answers.
    public func restart(_ i: Int) async throws {
        guard let binary = Self.binary else { throw LocalEtcdError(Self.missingMessage) }
        try start(i, binary: binary)
        try await waitUntil("etcd member \(members[i].name) answers", timeout: .seconds(30)) {
            (try? await self.status(i)) != nil
        }
    }

    /// SIGKILLs member `i` and waits until it has exited.
    public func kill(_ i: Int) {
        guard let p = processes.withLock({ $0.removeValue(forKey: i) }) else { return }
        if p.isRunning { Glibc.kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        Self.registry.withLock { _ = $0.pids.remove(p.processIdentifier) }
    }

    public func isRunning(_ i: Int) -> Bool { processes.withLock { $0[i]?.isRunning ?? false } }

    /// Stops every member by PID and removes the data dirs. Safe to call more than once.
    public func stop() {
        for i in members.indices { kill(i) }
        try? FileManager.default.removeItem(atPath: directory)
        Self.registry.withLock { _ = $0.directories.remove(directory) }
    }

    /// Member `i`'s `/v3/maintenance/status`.
    public func status(_ i: Int) async throws -> [String: String] {
        let client = try EtcdClient(endpoints: [members[i].endpoint])
        let json: JSONValue
        do {
            json = try await client.status(of: members[i].endpoint)
            await client.shutdown()
        } catch {
            await client.shutdown()
            throw error
        }
        var out: [String: String] = [:]
        for key in ["leader", "version", "raftTerm"] { out[key] = json[key]?.stringValue }
        out["member"] = json["header"]?["member_id"]?.stringValue
        out["errors"] = json["errors"]?.arrayValue?.compactMap(\.stringValue).joined(separator: "; ")
        return out
    }

    /// The index of the member that leads, if a running member knows one.
    public func leader() async -> Int? {
        for i in members.indices where isRunning(i) {
            guard let s = try? await status(i), let leader = s["leader"], leader != "0" else { continue }
            for j in members.indices where isRunning(j) {
                if (try? await status(j))?["member"] == leader { return j }
            }
        }
        return nil
    }

    /// Waits until some running member reports a leader.
    public func waitForLeader(timeout: Duration = .seconds(30)) async throws {
        try await waitUntil("the etcd cluster elects a leader", timeout: timeout) { await self.leader() != nil }
    }

    private func start(_ i: Int, binary: String) throws {
        let m = members[i]
        let cluster = members.map { "\($0.name)=http://127.0.0.1:\($0.peerPort)" }.joined(separator: ",")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = [
            "--name", m.name, "--data-dir", m.dataDir,
            "--listen-client-urls", m.endpoint, "--advertise-client-urls", m.endpoint,
            "--listen-peer-urls", "http://127.0.0.1:\(m.peerPort)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(m.peerPort)",
            "--initial-cluster", cluster, "--initial-cluster-state", "new", "--initial-cluster-token", "baton-test",
            "--heartbeat-interval", "\(heartbeatInterval)", "--election-timeout", "\(electionTimeout)",
            "--log-level", "error", "--logger", "zap",
        ]
        let log = "\(directory)/\(m.name).log"
        if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = FileHandle(forWritingAtPath: log)
        handle?.seekToEndOfFile()
        p.standardOutput = handle ?? FileHandle.nullDevice
        p.standardError = handle ?? FileHandle.nullDevice
        try p.runWithStopSignalsUnblocked()
        processes.withLock { $0[i] = p }
        Self.registry.withLock { _ = $0.pids.insert(p.processIdentifier) }
    }

    private func waitUntil(_ what: String, timeout: Duration, _ condition: @Sendable () async -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !(await condition()) {
            if ContinuousClock.now > deadline {
                let logs = members.map { m in
                    "\(m.name): " + ((try? String(contentsOfFile: "\(directory)/\(m.name).log", encoding: .utf8)).map { String($0.suffix(500)) } ?? "")
                }
                throw LocalEtcdError("timed out waiting until \(what): \(logs.joined(separator: " | "))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Every member started and not yet stopped, killed when the process exits.
    private static let registry = Mutex<(pids: Set<pid_t>, directories: Set<String>)>(([], []))
    private static let exitHandlerInstalled = Atomic<Bool>(false)

    private static func installExitHandler() {
        guard !exitHandlerInstalled.exchange(true, ordering: .relaxed) else { return }
        atexit {
            let (pids, dirs) = LocalEtcdCluster.registry.withLock { $0 }
            for pid in pids { Glibc.kill(pid, SIGKILL) }
            for dir in dirs { try? FileManager.default.removeItem(atPath: dir) }
        }
    }

    /// A port the kernel just handed out on loopback.
    public static func freePort() -> Int { LoopbackPort.free() }
}

public struct LocalEtcdError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
