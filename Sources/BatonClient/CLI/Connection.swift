import Foundation

/// Where the CLI finds the server and its token: flags first, then `BATON_SERVER` and
/// `BATON_TOKEN`, then the admin token in the local data dir (`--data-dir`, `BATON_DATA_DIR`,
/// or `/var/lib/baton`).
public struct Connection: Sendable {
    public static let defaultServer = "http://127.0.0.1:7070"
    public static let defaultDataDir = "/var/lib/baton"

    public var server: String
    public var token: String?

    public init(server: String?, token: String?, dataDir: String?) {
        let env = ProcessInfo.processInfo.environment
        self.server = server ?? env["BATON_SERVER"] ?? Self.defaultServer
        if let token { self.token = token }
        else if let t = env["BATON_TOKEN"], !t.isEmpty { self.token = t }
        else {
            let dir = dataDir ?? env["BATON_DATA_DIR"] ?? Self.defaultDataDir
            let path = (dir as NSString).appendingPathComponent("admin.token")
            self.token = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    public var client: BatonClient { BatonClient(server: server, token: token) }
}
