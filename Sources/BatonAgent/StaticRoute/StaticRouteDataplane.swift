import BatonAPI
import BatonCore
import BatonDataplane
import Foundation
import Logging
import Synchronization

/// Where `StaticRouteAgent` installs routes: the kernel (`LinuxStaticRoutes`, `--dataplane
/// linux`) or a journal (`RecordingStaticRoutes`, `--dataplane none`).
public protocol StaticRouteDataplane: Sendable {
    /// Whether gateways are probed (a recording data plane has no network to probe).
    var probes: Bool { get }
    /// The routes installed now (what a restarted agent adopts).
    func installed() throws -> StaticRouteTable
    /// Takes the routes from `from` to `to`; returns the destinations that failed, with why.
    func apply(from: StaticRouteTable, to: StaticRouteTable) throws -> [IPPrefix: String]
    /// Removes everything it added (`--cleanup`).
    func cleanup() throws
}

extension LinuxStaticRoutes: StaticRouteDataplane {
    public var probes: Bool { true }
}

/// `--dataplane none`: decides as the Linux data plane would and touches no network. Gateways
/// are not probed (every one counts as healthy, as `healthCheck.type: none`), and each change
/// is logged and appended to the journal as `staticroute-replace DEST via G[,G]` or
/// `staticroute-delete DEST`.
public final class RecordingStaticRoutes: StaticRouteDataplane {
    let table = Mutex(StaticRouteTable())
    let logger: Logger
    let journal: (@Sendable (_ what: String, _ detail: String) -> Void)?

    public init(logger: Logger, journal: (@Sendable (_ what: String, _ detail: String) -> Void)? = nil) {
        self.logger = logger
        self.journal = journal
    }

    public var probes: Bool { false }

    public func installed() throws -> StaticRouteTable { table.withLock { $0 } }

    public func apply(from: StaticRouteTable, to: StaticRouteTable) throws -> [IPPrefix: String] {
        for change in from.changes(to: to) {
            switch change {
            case .replace(let d, let gateways):
                let via = gateways.map(\.description).joined(separator: ",")
                logger.notice("would route", metadata: ["destination": "\(d)", "via": "\(via)"])
                journal?("staticroute-replace", "\(d) via \(via)")
            case .delete(let d, _):
                logger.notice("would remove the route", metadata: ["destination": "\(d)"])
                journal?("staticroute-delete", "\(d)")
            }
        }
        table.withLock { $0 = to }
        return [:]
    }

    public func cleanup() throws {
        let all = table.withLock { t in defer { t = StaticRouteTable() }; return t }
        for d in all.routes.keys.sorted(by: { $0.description < $1.description }) { journal?("staticroute-delete", "\(d)") }
    }
}
