import Foundation

/// The VRRP speakers `baton lab bench vrrp` compares.
public enum VRRPBenchSpeaker: String, CaseIterable, Sendable {
    case keepalived, baton

    public var title: String { self == .keepalived ? "keepalived" : "Baton" }
}

/// How `baton lab bench vrrp` makes the master fail.
public enum VRRPBenchFailure: String, CaseIterable, Sendable {
    /// The master's LAN port is set down on the bridge.
    case link
    /// The master's speaker is SIGKILLed (keepalived: its VRRP process); its host keeps the VIP.
    case kill
    /// The master's speaker is SIGSTOPped, then SIGCONTed after the trial.
    case freeze
}

/// What `baton lab bench vrrp` measured, and the tables it prints.
public struct VRRPBenchResults: Sendable {
    public struct Key: Hashable, Sendable {
        public var speaker: VRRPBenchSpeaker
        /// The advertisement interval, in centiseconds (VRRPv3's unit).
        public var advertCentiseconds: Int

        public init(_ speaker: VRRPBenchSpeaker, _ advertCentiseconds: Int) {
            self.speaker = speaker
            self.advertCentiseconds = advertCentiseconds
        }
    }

    /// The advertisement intervals, in the order run (centiseconds).
    public var intervals: [Int]
    /// Baton's default interval (centiseconds), marked in the tables.
    public var batonDefault: Int
    public var modes: [VRRPBenchFailure]
    public var trials: [Key: [VRRPBenchFailure: [VRRPBenchTrial]]] = [:]
    /// Times the backup became Master during the load run; nil when no load run was made.
    public var falseFailovers: [Key: Int] = [:]
    /// Times the master came back but the client kept the backup's MAC for the VIP, so the bench
    /// flushed the client's neighbour entry before the next trial.
    public var staleClientARP: [Key: Int] = [:]

    public init(intervals: [Int], batonDefault: Int, modes: [VRRPBenchFailure]) {
        self.intervals = intervals
        self.batonDefault = batonDefault
        self.modes = modes
    }

    public static func seconds(_ centiseconds: Int) -> String {
        centiseconds % 100 == 0 ? "\(centiseconds / 100) s" : String(format: "%.2f s", Double(centiseconds) / 100)
    }

    func intervalLabel(_ cs: Int) -> String { Self.seconds(cs) + (cs == batonDefault ? " (Baton's default)" : "") }

    public static func what(_ mode: VRRPBenchFailure) -> String {
        switch mode {
        case .link: "master's link cut"
        case .kill: "master SIGKILLed"
        case .freeze: "master frozen (SIGSTOP)"
        }
    }

    /// `p50 / p99` in whole milliseconds, `-` without samples, and how many trials saw no takeover.
    static func cell(_ durations: [Duration?]) -> String {
        let figures = DurationFigures(durations.compactMap { $0 })
        guard let p50 = figures.percentile(50), let p99 = figures.percentile(99) else { return "-" }
        let missing = durations.count - figures.count
        return String(format: "%.0f / %.0f", p50, p99) + (missing > 0 ? " (\(missing) never)" : "")
    }

    /// The failover table: one row per failure and interval, keepalived and Baton side by side.
    public var failoverTable: [String] {
        var lines = [
            "| failure | advert interval | trials | keepalived outage p50 / p99 ms | Baton outage p50 / p99 ms | keepalived takeover p50 / p99 ms | Baton takeover p50 / p99 ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for mode in modes {
            for cs in intervals {
                let k = trials[Key(.keepalived, cs)]?[mode] ?? [], b = trials[Key(.baton, cs)]?[mode] ?? []
                lines.append("| \(Self.what(mode)) | \(intervalLabel(cs)) | \(max(k.count, b.count)) | \(Self.cell(k.map(\.outage))) | \(Self.cell(b.map(\.outage))) | \(Self.cell(k.map(\.takeover))) | \(Self.cell(b.map(\.takeover))) |")
            }
        }
        return lines
    }

    /// `p50 / p99` to 10 µs (the kernel's timestamps are finer), `-` without samples.
    static func fineCell(_ durations: [Duration]) -> String {
        let figures = DurationFigures(durations)
        guard let p50 = figures.percentile(50), let p99 = figures.percentile(99) else { return "-" }
        return String(format: "%.2f / %.2f", p50, p99)
    }

    /// The wire table: per failure and interval, each backup's reaction (the master's last
    /// advertisement reaching it → its first advertisement or gratuitous ARP, kernel timestamps
    /// on its bridge port) and the excess over `Master_Down_Interval`, the speaker's own delay.
    public var reactionTable: [String] {
        var lines = [
            "| failure | advert interval | Master_Down_Interval ms | keepalived reaction p50 / p99 ms | Baton reaction p50 / p99 ms | keepalived excess p50 / p99 ms | Baton excess p50 / p99 ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for mode in modes {
            for cs in intervals {
                let mdi = VRRPBench.masterDownInterval(cs)
                let k = (trials[Key(.keepalived, cs)]?[mode] ?? []).compactMap(\.reaction)
                let b = (trials[Key(.baton, cs)]?[mode] ?? []).compactMap(\.reaction)
                lines.append("| \(Self.what(mode)) | \(intervalLabel(cs)) | " + String(format: "%.2f", mdi.milliseconds)
                             + " | \(Self.fineCell(k)) | \(Self.fineCell(b)) | \(Self.fineCell(k.map { $0 - mdi })) | \(Self.fineCell(b.map { $0 - mdi })) |")
            }
        }
        return lines
    }

    /// The load table: false failovers per interval, keepalived and Baton side by side.
    public var loadTable: [String] {
        var lines = ["| advert interval | keepalived false failovers | Baton false failovers |", "|---|---|---|"]
        for cs in intervals {
            let k = falseFailovers[Key(.keepalived, cs)].map(String.init) ?? "-"
            let b = falseFailovers[Key(.baton, cs)].map(String.init) ?? "-"
            lines.append("| \(intervalLabel(cs)) | \(k) | \(b) |")
        }
        return lines
    }

    /// Whether Baton met the issue's goals: at its default a p99 takeover (and outage) of at most
    /// 50 ms and no false failover; at every interval a p99 no slower than keepalived's.
    public var verdict: [String] {
        var lines: [String] = []
        let key = Key(.baton, batonDefault)
        let all = modes.flatMap { trials[key]?[$0] ?? [] }
        if !all.isEmpty {
            let worst = DurationFigures(all.map { $0.takeover ?? .seconds(3600) }).percentile(99) ?? 0
            lines.append(String(format: "Baton's default: p99 takeover %.0f ms over every failure (goal ≤ 50 ms): %@", worst, worst <= 50 ? "met" : "NOT met"))
        }
        if let f = falseFailovers[key] { lines.append("Baton's default: \(f) false failovers under load (goal 0): \(f == 0 ? "met" : "NOT met")") }
        for cs in intervals {
            for mode in modes {
                guard let k = trials[Key(.keepalived, cs)]?[mode], let b = trials[Key(.baton, cs)]?[mode] else { continue }
                // Compared as printed: whole milliseconds.
                let kp = (DurationFigures(k.map { $0.takeover ?? .seconds(3600) }).percentile(99) ?? 0).rounded()
                let bp = (DurationFigures(b.map { $0.takeover ?? .seconds(3600) }).percentile(99) ?? 0).rounded()
                if bp > kp {
                    let resolution = Int(VRRPBench.probeInterval.milliseconds)
                    lines.append(String(format: "slower than keepalived: %@ at %@, p99 takeover %.0f ms against %.0f ms (%@ the %ld ms between probes)",
                                        Self.what(mode), Self.seconds(cs), bp, kp, bp - kp <= Double(resolution) ? "within" : "more than", resolution))
                }
            }
        }
        for cs in intervals {
            for mode in modes {
                let k = (trials[Key(.keepalived, cs)]?[mode] ?? []).compactMap(\.reaction)
                let b = (trials[Key(.baton, cs)]?[mode] ?? []).compactMap(\.reaction)
                guard let kp = DurationFigures(k).percentile(50), let bp = DurationFigures(b).percentile(50) else { continue }
                let mdi = VRRPBench.masterDownInterval(cs).milliseconds
                // Compared as printed: hundredths of a millisecond.
                let be = ((bp - mdi) * 100).rounded() / 100, ke = ((kp - mdi) * 100).rounded() / 100
                let behind = ((be - ke) * 100).rounded() / 100
                lines.append(String(format: "on the wire, %@ at %@: Baton's backup reacts %.2f ms after Master_Down_Interval (p50), keepalived's %.2f ms: %@",
                                    Self.what(mode), Self.seconds(cs), be, ke,
                                    behind <= 0 ? "not slower" : "slower by \(String(format: "%.2f", behind)) ms"))
            }
        }
        for (key, n) in staleClientARP.sorted(by: { ($0.key.advertCentiseconds, $0.key.speaker.rawValue) < ($1.key.advertCentiseconds, $1.key.speaker.rawValue) }) where n > 0 {
            lines.append("\(key.speaker.title) at \(Self.seconds(key.advertCentiseconds)): \(n) fail-backs left the client on the backup's MAC (the bench flushed its ARP entry)")
        }
        return lines
    }
}
