import BatonDataplane
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `baton lab bench vrrp`: keepalived and `baton vrrp` through the same failures, at the same
/// advertisement intervals, in network namespaces of its own (it needs no `baton lab up`).
///
/// Topology (PREFIX `bvr`), every namespace made and removed by the bench:
/// - `bvr-lan`: the LAN, a bridge `br0` (192.168.88.0/24), with one port per host.
/// - `bvr-client`: 192.168.88.2, runs `baton lab send` at the VIP under test every 5 ms.
/// - `bvr-rI`: router I, 192.168.88.(10+I). Setting P (one speaker at one interval) runs on
///   routers 2P-1 (the master, priority 200) and 2P (the backup, priority 100), VRID 50+P,
///   VIP 192.168.88.(100+P)/24. Each router runs `baton lab echo` bound to the VIP (non-local
///   bind), answering with the router's own address, so the client knows who answered.
/// - `bvr-load`: no network; the busy loops of the load run (`baton lab spin`).
///
/// Every process is recorded by PID in the state directory, as `baton lab up` does, so
/// `Lab.down` (or `baton lab down --prefix bvr`, or the next run) removes everything even after
/// a crash; the busy loops also stop by themselves when the bench dies.
public struct VRRPBench: Sendable {
    /// Namespaces, PIDs and logs (`Lab`'s machinery; its egress cluster is not built).
    public var lab: Lab
    /// The advertisement intervals both speakers run at (centiseconds).
    public var intervals: [Int]
    /// Baton's default interval (centiseconds): at it Baton runs without `--advert-interval`.
    public var batonDefault: Int
    public var trials: Int
    public var modes: [VRRPBenchFailure]
    /// How long the load run lasts; 0 skips it.
    public var loadSeconds: Int
    /// Busy loops during the load run (one per core).
    public var loadProcesses: Int
    /// Where to copy the speakers' logs and notify logs before the lab is removed; nil: nowhere.
    public var keepLogs: String?
    /// SCHED_RR priority for both speakers (Baton's `--realtime-priority`, keepalived's
    /// `vrrp_rt_priority`); nil runs both without real-time scheduling.
    public var realtimePriority: Int?
    /// The keepalived binary.
    public var keepalived: String

    public static let lanPrefix = "192.168.88"
    public static let clientAddress = "192.168.88.2"
    public static let echoPort = 9000
    /// keepalived's `vrrp_rlimit_rttime` under real-time scheduling, in microseconds: 10 s.
    public static let keepalivedRTTimeLimit = 10_000_000
    public static let masterPriority = 200
    public static let backupPriority = 100
    public static let probeInterval = Duration.milliseconds(5)
    /// The sender sends this long before the failure at most (it is made as soon as the master
    /// has answered 100 ms of probes), on top of the time it watches the failover.
    static let senderStartLimit = Duration.seconds(1)

    public init(prefix: String = "bvr", stateDir: String? = nil, binary: String, intervals: [Int], batonDefault: Int,
                trials: Int = 20, modes: [VRRPBenchFailure] = VRRPBenchFailure.allCases, loadSeconds: Int = 600,
                loadProcesses: Int = 2, realtimePriority: Int? = nil, keepalived: String = "keepalived") {
        lab = Lab(prefix: prefix, nodes: 0, stateDir: stateDir, binary: binary)
        self.intervals = intervals
        self.batonDefault = batonDefault
        self.trials = trials
        self.modes = modes
        self.loadSeconds = loadSeconds
        self.loadProcesses = loadProcesses
        self.realtimePriority = realtimePriority
        self.keepalived = keepalived
    }

    // MARK: Names

    var client: String { "\(lab.prefix)-client" }
    var load: String { "\(lab.prefix)-load" }
    func router(_ i: Int) -> String { "\(lab.prefix)-r\(i)" }
    static func routerAddress(_ i: Int) -> String { "\(lanPrefix).\(10 + i)" }

    /// Every setting, in the order run: per interval, keepalived then Baton. Setting P (from 1)
    /// runs on routers 2P-1 and 2P.
    public var settings: [VRRPBenchResults.Key] {
        intervals.flatMap { cs in VRRPBenchSpeaker.allCases.map { VRRPBenchResults.Key($0, cs) } }
    }

    func pair(_ key: VRRPBenchResults.Key) -> Int { (settings.firstIndex(of: key) ?? 0) + 1 }
    func master(_ p: Int) -> Int { 2 * p - 1 }
    func backup(_ p: Int) -> Int { 2 * p }
    func routerPair(_ i: Int) -> Int { (i + 1) / 2 }
    static func vrid(_ p: Int) -> Int { 50 + p }
    static func vip(_ p: Int) -> String { "\(lanPrefix).\(100 + p)" }
    var routers: ClosedRange<Int> { 1...(2 * settings.count) }

    /// `Master_Down_Interval` of the backup (RFC 9568 §6.1): 3 intervals and `Skew_Time`.
    static func masterDownInterval(_ cs: Int) -> Duration {
        .microseconds(cs * 10_000 * 3 + cs * 10_000 * (256 - backupPriority) / 256)
    }

    // MARK: Run

    /// Builds the lab, runs every setting's trials, then (with `loadSeconds`) every setting at
    /// once under load, and removes everything, also when a step fails.
    public func run(log: @escaping @Sendable (String) -> Void) async throws -> VRRPBenchResults {
        try Lab.checkPrerequisites()
        _ = try Command.locate(keepalived)
        try removeLeftovers(log: log)
        try FileManager.default.createDirectory(atPath: lab.stateDir + "/logs", withIntermediateDirectories: true)
        try "\(getpid())\n".write(toFile: ownerPath, atomically: true, encoding: .utf8)
        var results = VRRPBenchResults(intervals: intervals, batonDefault: batonDefault, modes: modes)
        do {
            try buildNetwork()
            log("lab \(lab.prefix): LAN \(Self.lanPrefix).0/24, client \(Self.clientAddress), \(routers.count) routers; state in \(lab.stateDir)")
            for key in settings {
                try await runTrials(key, into: &results, log: log)
            }
            if loadSeconds > 0 { try await runLoad(into: &results, log: log) }
        } catch {
            log(Task.isCancelled ? "interrupted; tearing down" : "bench failed: \(error); tearing down")
            saveLogs(log: log)
            lab.down { _ in }
            throw error
        }
        saveLogs(log: log)
        lab.down { _ in }
        return results
    }

    /// Copies the lab's logs and notify logs to `keepLogs`.
    func saveLogs(log: (String) -> Void) {
        guard let keepLogs else { return }
        let fm = FileManager.default
        try? fm.createDirectory(atPath: keepLogs, withIntermediateDirectories: true)
        let files = ((try? fm.contentsOfDirectory(atPath: lab.stateDir + "/logs")) ?? []).map { lab.stateDir + "/logs/" + $0 }
            + ((try? fm.contentsOfDirectory(atPath: lab.stateDir)) ?? []).filter { $0.hasSuffix(".log") || $0.hasSuffix(".conf") }.map { lab.stateDir + "/" + $0 }
        for file in files {
            let target = keepLogs + "/" + (file as NSString).lastPathComponent
            try? fm.removeItem(atPath: target)
            try? fm.copyItem(atPath: file, toPath: target)
        }
        log("logs kept in \(keepLogs)")
    }

    var ownerPath: String { lab.stateDir + "/owner" }

    /// A run that crashed leaves its namespaces and processes: remove them, unless the run
    /// that made them is still going.
    func removeLeftovers(log: (String) -> Void) throws {
        if let text = try? String(contentsOfFile: ownerPath, encoding: .utf8), let owner = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
           owner != getpid(), kill(owner, 0) == 0 {
            throw LabError("another bench (pid \(owner)) is using prefix \(lab.prefix); stop it or choose another --prefix")
        }
        let left = lab.existingNamespaces()
        if !left.isEmpty || FileManager.default.fileExists(atPath: lab.stateDir) {
            lab.down(log: log)
        }
    }

    func buildNetwork() throws {
        let namespaces = [lab.lan, client, load] + routers.map(router)
        try lab.ip(namespaces.map { "netns add \($0)" })
        var lanCommands = ["link set lo up", "link add br0 type bridge", "link set br0 up"]
        let hosts = [(client, "cl", Self.clientAddress)] + routers.map { (router($0), "r\($0)", Self.routerAddress($0)) }
        for (ns, port, _) in hosts {
            lanCommands += ["link add \(port) type veth peer name eth0 netns \(ns)", "link set \(port) master br0 up"]
        }
        try lab.ip(lanCommands, netns: lab.lan)
        for (ns, _, address) in hosts {
            try lab.ip(["link set lo up", "link set eth0 up", "address add \(address)/24 dev eth0"], netns: ns)
        }
        for i in routers {
            // The echo binds the VIP before the router holds it.
            try lab.sysctl(router(i), "net/ipv4/ip_nonlocal_bind", "1")
            try lab.spawn("echo-r\(i)", netns: router(i), [lab.binary, "lab", "echo", "--listen", "\(Self.vip(routerPair(i))):\(Self.echoPort)",
                                                             "--answer-as", Self.routerAddress(i), "--quiet"])
        }
    }

    // MARK: Trials

    func runTrials(_ key: VRRPBenchResults.Key, into results: inout VRRPBenchResults, log: (String) -> Void) async throws {
        let p = pair(key)
        let label = "\(key.speaker.title) at \(VRRPBenchResults.seconds(key.advertCentiseconds))"
        try await startPair(key)
        _ = try await settle(key)
        log("\(label): \(router(master(p))) is master of VRID \(Self.vrid(p)) (\(Self.vip(p))), \(router(backup(p))) backup")
        for mode in modes {
            var done: [VRRPBenchTrial] = []
            for t in 1...trials {
                var attempt: (VRRPBenchTrial, staleClientARP: Bool)? = nil
                for _ in 1...3 where attempt == nil {
                    attempt = try await runTrial(key, mode: mode)
                    if attempt == nil { _ = try await settle(key) }
                }
                guard let (trial, stale) = attempt else {
                    throw LabError("\(label): the master answered too few probes three times in a row; see \(lab.stateDir)/logs")
                }
                done.append(trial)
                if stale { results.staleClientARP[key, default: 0] += 1 }
                let takeover = trial.takeover.map { String(format: "%.0f ms", $0.milliseconds) } ?? "never"
                let reaction = trial.reaction.map { String(format: ", wire reaction %.2f ms", $0.milliseconds) } ?? ""
                log("\(label), \(VRRPBenchResults.what(mode)), trial \(t)/\(trials): " + String(format: "outage %.0f ms", trial.outage.milliseconds)
                    + ", takeover \(takeover)" + reaction + (stale ? " (client ARP flushed after fail-back)" : ""))
            }
            results.trials[key, default: [:]][mode] = done
        }
        try stopPair(key)
    }

    /// One failure of the master while the client probes the VIP; then the master comes back
    /// (link up, a new speaker, SIGCONT) and the pair settles as before, so trials are independent.
    /// Nil when the master answered too few probes before the failure was due (a busy machine):
    /// then nothing was made to fail.
    func runTrial(_ key: VRRPBenchResults.Key, mode: VRRPBenchFailure) async throws -> (VRRPBenchTrial, staleClientARP: Bool)? {
        let p = pair(key)
        let after = max(Duration.milliseconds(500), Self.masterDownInterval(key.advertCentiseconds) * 4)
        let path = lab.stateDir + "/send.log"
        // The failure comes once the master's echo has answered 20 probes (100 ms): a sender slow
        // to start on a busy machine must not turn into a trial without a "before".
        guard let echo = lab.recordedPIDs()["echo-r\(master(p))"] else { throw LabError("no echo recorded on \(router(master(p)))") }
        let received = try UDPCounters.read(pid: echo).inDatagrams
        // The backup's port on the bridge, timestamped by the kernel, from before the sender
        // starts (so the master's adverts before the failure are on it): the wire reaction.
        let tap = try VRRPWireTap(namespace: lab.lan, interface: "r\(backup(p))")
        defer { _ = tap.stop() }
        let sender = try lab.child(netns: client, [lab.binary, "lab", "send", "--to", "\(Self.vip(p)):\(Self.echoPort)",
                                                   "--interval-ms", "\(Int(Self.probeInterval.milliseconds))",
                                                   "--duration-ms", "\(Int((Self.senderStartLimit + after).milliseconds))"], output: path)
        let start = ContinuousClock.now
        while try UDPCounters.read(pid: echo).inDatagrams < received + 20 {
            guard ContinuousClock.now - start < Self.senderStartLimit - .milliseconds(200) else {
                await waitExit(sender, within: .zero)
                return nil   // nothing failed: the caller may try again
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let failureAt = LabEcho.monotonicNanos()
        let frozen = try fail(key, mode: mode)
        await waitExit(sender)
        let frames = tap.stop()
        try restore(key, mode: mode, frozen: frozen)
        let stale = try await settle(key)
        let records = SenderLog.parse(try String(contentsOfFile: path, encoding: .utf8))
        guard records.contains(where: { $0.sent < failureAt && $0.source == Self.routerAddress(master(p)) }) else {
            throw LabError("\(key.speaker.title): the master answered no probe before the failure; see \(path)")
        }
        appendWireLog(frames, router: backup(p), mode: mode)
        var trial = VRRPBenchTrial(records: records, failureAt: failureAt, backup: Self.routerAddress(backup(p)))
        trial.reaction = VRRPBenchReaction.measure(frames, vrid: UInt8(Self.vrid(p)), master: Self.routerAddress(master(p)),
                                                   backup: Self.routerAddress(backup(p)), vip: Self.vip(p))
        return (trial, stale)
    }

    /// Appends one trial's frames on the backup's port to `logs/wire-rI.log` (kept with
    /// `--keep-logs`): `NANOS to|from ...`, CLOCK_REALTIME nanoseconds from the kernel.
    func appendWireLog(_ frames: [VRRPWireFrame], router i: Int, mode: VRRPBenchFailure) {
        var text = "# \(mode.rawValue)\n"
        for f in frames {
            let what: String
            switch f.kind {
            case .advertisement(let vrid, let priority, let source): what = "vrrp vrid \(vrid) priority \(priority) from \(source)"
            case .arp(let sender): what = "arp sender \(sender)"
            }
            text += "\(f.nanos) \(f.toBackup ? "to" : "from") \(what)\n"
        }
        let path = "\(lab.stateDir)/logs/wire-r\(i).log"
        if let handle = FileHandle(forWritingAtPath: path) {
            handle.seekToEndOfFile()
            handle.write(Data(text.utf8))
            try? handle.close()
        } else {
            try? text.write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    /// Makes the master fail; returns the PID a freeze stopped.
    func fail(_ key: VRRPBenchResults.Key, mode: VRRPBenchFailure) throws -> Int32? {
        let m = master(pair(key))
        switch mode {
        case .link:
            try lab.ip(["link set r\(m) down"], netns: lab.lan)
            return nil
        case .kill:
            try stopSpeaker(key.speaker, router: m, signal: SIGKILL)
            return nil
        case .freeze:
            let pid = try vrrpPID(key.speaker, router: m)
            kill(pid, SIGSTOP)
            return pid
        }
    }

    func restore(_ key: VRRPBenchResults.Key, mode: VRRPBenchFailure, frozen: Int32?) throws {
        let p = pair(key), m = master(p)
        switch mode {
        case .link: try lab.ip(["link set r\(m) up"], netns: lab.lan)
        case .kill:
            // A SIGKILLed speaker leaves its VIP: clear it, as a reboot would.
            _ = try? Command.run("ip", ["-n", router(m), "address", "del", "\(Self.vip(p))/24", "dev", "eth0"])
            try startSpeaker(key, router: m)
        case .freeze: if let frozen { kill(frozen, SIGCONT) }
        }
    }

    /// Waits until the master alone holds the VIP and answers the client. When the master holds
    /// it but the client still sends to the backup's MAC for a second, flushes the client's
    /// neighbour entry (and returns true): a fail-back that sent no gratuitous ARP.
    func settle(_ key: VRRPBenchResults.Key) async throws -> Bool {
        let p = pair(key), m = master(p), b = backup(p)
        let limit = Duration.seconds(5) + Self.masterDownInterval(key.advertCentiseconds) * 10
        let start = ContinuousClock.now
        var placedAt: ContinuousClock.Instant? = nil
        var flushed = false
        while ContinuousClock.now - start < limit {
            if try holdsVIP(m), try !holdsVIP(b) {
                let placed = placedAt ?? ContinuousClock.now
                placedAt = placed
                if probe(p) == Self.routerAddress(m) { return flushed }
                if !flushed, ContinuousClock.now - placed > .seconds(1) {
                    try lab.ip(["neigh flush to \(Self.vip(p))"], netns: client)
                    flushed = true
                }
            } else {
                placedAt = nil
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw LabError("\(key.speaker.title) at \(VRRPBenchResults.seconds(key.advertCentiseconds)): \(router(m)) did not become the only holder of \(Self.vip(p)) answering the client within \(limit); see \(lab.stateDir)/logs")
    }

    func holdsVIP(_ i: Int) throws -> Bool {
        try Command.run("ip", ["-n", router(i), "-4", "address", "show", "dev", "eth0"]).contains("inet \(Self.vip(routerPair(i)))/")
    }

    /// The address of the router that answered one probe to setting P's VIP, nil when none did
    /// within 100 ms.
    func probe(_ p: Int) -> String? {
        let out = try? Command.run("ip", ["netns", "exec", client, lab.binary, "lab", "probe", "--to", "\(Self.vip(p)):\(Self.echoPort)", "--timeout-ms", "100"])
        return out.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    // MARK: Load

    /// Every setting at once, each pair settled, then one busy loop per core for `loadSeconds`;
    /// counts the times each backup became Master (its notify script's MASTER lines).
    func runLoad(into results: inout VRRPBenchResults, log: (String) -> Void) async throws {
        for key in settings { try await startPair(key) }
        for key in settings { _ = try await settle(key) }
        let offsets = Dictionary(uniqueKeysWithValues: routers.map { ($0, notifications($0).states.count) })
        let cpuBefore = try CPUTimes.read()
        var spinners: [Process] = []
        for i in 1...loadProcesses {
            spinners.append(try lab.spawn("spin-\(i)", netns: load, [lab.binary, "lab", "spin", "--seconds", "\(loadSeconds)", "--parent", "\(getpid())"]))
        }
        log("load: \(loadProcesses) busy loops for \(loadSeconds) s; every setting runs at once (\(settings.count) pairs)")
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .seconds(loadSeconds) {
            try await Task.sleep(for: min(.seconds(30), .seconds(loadSeconds) - (ContinuousClock.now - start)))
            let elapsed = Int((ContinuousClock.now - start).milliseconds / 1000)
            if elapsed < loadSeconds { log("load: \(elapsed)/\(loadSeconds) s") }
        }
        for spinner in spinners { await waitExit(spinner, within: .seconds(5)) }
        let busy = (try CPUTimes.read()).busyFraction(since: cpuBefore)
        // Notify scripts run in the background: give the last ones time to write.
        try await Task.sleep(for: .seconds(1))
        for key in settings {
            let p = pair(key)
            let backupStates = NotifyLog(notifications(backup(p)).states.dropFirst(offsets[backup(p)] ?? 0).joined(separator: "\n"))
            results.falseFailovers[key] = backupStates.count("MASTER")
        }
        log(String(format: "load: done, CPU busy %.0f%% over the run", busy * 100))
        for key in settings { try stopPair(key) }
    }

    // MARK: Speakers

    func notifyScript(_ i: Int) -> String { "\(lab.stateDir)/notify-r\(i).sh" }
    func notifyLog(_ i: Int) -> String { "\(lab.stateDir)/notify-r\(i).log" }
    func notifications(_ i: Int) -> NotifyLog { NotifyLog((try? String(contentsOfFile: notifyLog(i), encoding: .utf8)) ?? "") }
    func keepalivedPIDFile(_ i: Int, vrrp: Bool) -> String { "\(lab.stateDir)/keepalived-r\(i)\(vrrp ? "-vrrp" : "").pid" }

    /// The master first, and the backup once the master holds the VIP, so the backup never
    /// passes through Master at startup (its notify log then holds only what the test caused).
    func startPair(_ key: VRRPBenchResults.Key) async throws {
        let p = pair(key)
        try startSpeaker(key, router: master(p))
        let limit = Duration.seconds(5) + Self.masterDownInterval(key.advertCentiseconds) * 2
        let start = ContinuousClock.now
        while try !holdsVIP(master(p)) {
            guard ContinuousClock.now - start < limit else {
                throw LabError("\(key.speaker.title) on \(router(master(p))) did not take \(Self.vip(p)) within \(limit); see \(lab.stateDir)/logs")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        try startSpeaker(key, router: backup(p))
    }

    /// Stops both speakers of a setting (SIGTERM: they leave gracefully) and clears their VIPs.
    func stopPair(_ key: VRRPBenchResults.Key) throws {
        let p = pair(key)
        for i in [master(p), backup(p)] {
            try stopSpeaker(key.speaker, router: i, signal: SIGTERM)
            _ = try? Command.run("ip", ["-n", router(i), "address", "del", "\(Self.vip(p))/24", "dev", "eth0"])
        }
    }

    func startSpeaker(_ key: VRRPBenchResults.Key, router i: Int) throws {
        let p = routerPair(i)
        let priority = i == master(p) ? Self.masterPriority : Self.backupPriority
        let script = notifyScript(i)
        if !FileManager.default.fileExists(atPath: script) {
            try "#!/bin/sh\necho \"$3\" >> \(notifyLog(i))\n".write(toFile: script, atomically: true, encoding: .utf8)
            chmod(script, 0o755)
        }
        switch key.speaker {
        case .baton:
            var argv = [lab.binary, "vrrp", "--interface", "eth0", "--vrid", "\(Self.vrid(p))", "--priority", "\(priority)",
                        "--vip", "\(Self.vip(p))/24", "--notify", script, "--name", "VI_\(Self.vrid(p))"]
            // At Baton's default the bench passes no interval or version: it measures the default.
            if key.advertCentiseconds != batonDefault {
                argv += ["--version", "3", "--advert-interval", String(format: "%.2f", Double(key.advertCentiseconds) / 100)]
            }
            argv += realtimePriority.map { ["--realtime-priority", "\($0)"] } ?? ["--no-realtime"]
            try lab.spawn("speaker-r\(i)", netns: router(i), argv)
        case .keepalived:
            let conf = Self.keepalivedConfiguration(router: router(i), vrid: Self.vrid(p), priority: priority,
                                                    advertCentiseconds: key.advertCentiseconds, vip: Self.vip(p),
                                                    notify: script, realtimePriority: realtimePriority)
            let path = "\(lab.stateDir)/keepalived-r\(i).conf"
            try conf.write(toFile: path, atomically: true, encoding: .utf8)
            for vrrp in [false, true] { try? FileManager.default.removeItem(atPath: keepalivedPIDFile(i, vrrp: vrrp)) }
            try lab.spawn("speaker-r\(i)", netns: router(i), [try Command.locate(keepalived), "-n", "-l", "-P", "-f", path,
                                                               "-p", keepalivedPIDFile(i, vrrp: false), "-r", keepalivedPIDFile(i, vrrp: true)])
            _ = try vrrpPID(.keepalived, router: i)
        }
    }

    /// keepalived 2.2.7 for one router: VRRPv3, both routers start as BACKUP (as `baton vrrp`
    /// always does) and the higher priority preempts; `vrrp_rt_priority` when the bench gives
    /// real-time scheduling to both speakers, with `vrrp_rlimit_rttime` raised from its 10 ms
    /// (on a busy machine the kernel SIGKILLed keepalived's VRRP process at that limit, which
    /// Baton does not set). Everything else is keepalived's default.
    public static func keepalivedConfiguration(router: String, vrid: Int, priority: Int, advertCentiseconds: Int, vip: String,
                                               notify: String, realtimePriority: Int?) -> String {
        """
        global_defs {
            router_id \(router)
            vrrp_version 3
            script_user root
        \(realtimePriority.map { "    vrrp_rt_priority \($0)\n    vrrp_rlimit_rttime \(Self.keepalivedRTTimeLimit)\n" } ?? "")}
        vrrp_instance VI_\(vrid) {
            state BACKUP
            interface eth0
            virtual_router_id \(vrid)
            priority \(priority)
            advert_int \(String(format: "%.2f", Double(advertCentiseconds) / 100))
            virtual_ipaddress {
                \(vip)/24 dev eth0
            }
            notify \(notify)
        }

        """
    }

    /// The process that speaks VRRP: Baton's speaker, or keepalived's VRRP child (from its
    /// `-r` PID file, waited for up to 5 s).
    func vrrpPID(_ speaker: VRRPBenchSpeaker, router i: Int) throws -> Int32 {
        switch speaker {
        case .baton:
            guard let pid = lab.recordedPIDs()["speaker-r\(i)"] else { throw LabError("no speaker recorded on \(router(i))") }
            return pid
        case .keepalived:
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline {
                if let text = try? String(contentsOfFile: keepalivedPIDFile(i, vrrp: true), encoding: .utf8),
                   let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), kill(pid, 0) == 0 {
                    return pid
                }
                usleep(10_000)
            }
            throw LabError("keepalived on \(router(i)) started no VRRP process; see \(lab.stateDir)/logs/speaker-r\(i).log")
        }
    }

    /// Stops router I's speaker with `signal`. keepalived's parent would restart a killed VRRP
    /// child (and a child whose parent dies first leaves gracefully, PR_SET_PDEATHSIG): for
    /// SIGKILL the parent is stopped first, then the child killed, then the parent.
    func stopSpeaker(_ speaker: VRRPBenchSpeaker, router i: Int, signal: Int32) throws {
        guard let pid = lab.recordedPIDs()["speaker-r\(i)"] else { return }
        switch speaker {
        case .baton:
            kill(pid, signal)
            if !lab.waitGone(pid, within: .seconds(5)) { kill(pid, SIGKILL) }
        case .keepalived:
            let child = try? vrrpPID(.keepalived, router: i)
            if signal == SIGKILL {
                kill(pid, SIGSTOP)
                if let child { kill(child, SIGKILL) }
                kill(pid, SIGKILL)
            } else {
                kill(pid, signal)
            }
            if !lab.waitGone(pid, within: .seconds(5)) { kill(pid, SIGKILL) }
            if let child, !lab.waitGone(child, within: .seconds(5)) { kill(child, SIGKILL) }
        }
    }

    func waitExit(_ process: Process, within limit: Duration? = nil) async {
        let start = ContinuousClock.now
        while process.isRunning {
            if let limit, ContinuousClock.now - start > limit { kill(process.processIdentifier, SIGKILL) }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// A network namespace's UDP counters, from `/proc/PID/net/snmp` of a process inside it.
public struct UDPCounters: Sendable, Equatable {
    public var inDatagrams: UInt64

    /// Parses the two `Udp:` lines (names, then values).
    public init?(snmp text: String) {
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("Udp:") }.map { $0.split(separator: " ").dropFirst().map(String.init) }
        guard lines.count >= 2, let i = lines[0].firstIndex(of: "InDatagrams"), lines[1].indices.contains(i),
              let value = UInt64(lines[1][i]) else { return nil }
        inDatagrams = value
    }

    static func read(pid: Int32) throws -> UDPCounters {
        guard let counters = UDPCounters(snmp: (try? String(contentsOfFile: "/proc/\(pid)/net/snmp", encoding: .utf8)) ?? "") else {
            throw LabError("cannot read the UDP counters of process \(pid)")
        }
        return counters
    }
}

/// The machine's CPU time from `/proc/stat`, to show that a load run kept the CPUs busy.
public struct CPUTimes: Sendable, Equatable {
    public var busy: UInt64
    public var total: UInt64

    /// Parses the `cpu` line: user nice system idle iowait irq softirq steal (guest time is
    /// already in user).
    public init?(procStat text: String) {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        let fields = line.split(separator: " ").dropFirst().prefix(8).compactMap { UInt64($0) }
        guard fields.count >= 5 else { return nil }
        total = fields.reduce(0, +)
        busy = total - fields[3] - fields[4]
    }

    public init(busy: UInt64, total: UInt64) {
        self.busy = busy
        self.total = total
    }

    static func read() throws -> CPUTimes {
        guard let times = CPUTimes(procStat: try String(contentsOfFile: "/proc/stat", encoding: .utf8)) else {
            throw LabError("cannot read /proc/stat")
        }
        return times
    }

    /// The share of CPU time spent busy between `earlier` and this reading (0...1).
    public func busyFraction(since earlier: CPUTimes) -> Double {
        guard total > earlier.total else { return 0 }
        return Double(busy &- earlier.busy) / Double(total - earlier.total)
    }
}
