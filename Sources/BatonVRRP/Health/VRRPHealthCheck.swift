import BatonAPI
import BatonCore

/// One way the speaker decides that the service behind the VIPs is up. The built-in checks run
/// in the speaker's process (no fork); only `script` starts a process.
public enum VRRPHealthCheck: Sendable, Hashable, CustomStringConvertible {
    /// Run the command, split on whitespace and without a shell (as keepalived runs a
    /// `vrrp_script`); exit status 0 is up.
    case script(String)
    /// Open a TCP connection to the address and port (and close it at once); a connection is up.
    case tcpConnect(host: IPAddress, port: UInt16)
    /// `GET` the URL over plain HTTP/1.1; a 2xx or 3xx status is up.
    case httpGet(VRRPHTTPTarget)

    /// `script /path/check.sh`, `tcp 10.0.0.1:80`, `http http://10.0.0.1/healthz`: the name logs
    /// and FAULT reasons use.
    public var description: String {
        switch self {
        case .script(let command): "script \(command)"
        case .tcpConnect(let host, let port): "tcp \(VRRPHTTPTarget.hostText(host)):\(port)"
        case .httpGet(let target): "http \(target)"
        }
    }

    /// The program and its arguments (`script` only).
    public var scriptArguments: [String] {
        guard case .script(let command) = self else { return [] }
        return command.split(whereSeparator: \.isWhitespace).map(String.init)
    }

    /// `HOST:PORT` with an IP address (IPv6 in brackets, `[fd00::1]:80`) or `localhost`, as
    /// `--check-tcp` takes it.
    public static func tcp(_ text: String, field: String) throws(VRRPConfigError) -> VRRPHealthCheck {
        guard let (host, port) = VRRPHTTPTarget.hostAndPort(VRRPConfigSyntax.trim(text), defaultPort: nil) else {
            throw VRRPConfigError(.check, "\(field) \"\(text)\" is not HOST:PORT with an IP address or localhost and a port in 1...65535 (10.0.0.1:80, [fd00::1]:80)")
        }
        return .tcpConnect(host: host, port: port)
    }

    /// `http://HOST[:PORT][/PATH]`, as `--check-http` takes it.
    public static func http(_ text: String, field: String) throws(VRRPConfigError) -> VRRPHealthCheck {
        let t = VRRPConfigSyntax.trim(text)
        if t.lowercased().hasPrefix("https://") {
            throw VRRPConfigError(.check, "\(field) \"\(text)\": https is not supported; the built-in check speaks plain HTTP (use --check-script for TLS)")
        }
        guard let target = VRRPHTTPTarget(t) else {
            throw VRRPConfigError(.check, "\(field) \"\(text)\" is not http://HOST[:PORT][/PATH] with an IP address or localhost")
        }
        return .httpGet(target)
    }
}

/// Where an HTTP check goes: `http://HOST[:PORT][/PATH]`, with HOST an IP address (IPv6 in
/// brackets) or `localhost` (127.0.0.1). The speaker resolves no names.
public struct VRRPHTTPTarget: Sendable, Hashable, CustomStringConvertible {
    public let host: IPAddress
    public let port: UInt16
    /// The request target, starting with `/`.
    public let path: String
    /// The `Host` header: the authority as written.
    public let authority: String

    public init?(_ url: String) {
        guard url.lowercased().hasPrefix("http://") else { return nil }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        let path = rest[slash...].isEmpty ? "/" : String(rest[slash...])
        guard !path.contains(where: { $0.isWhitespace || $0.isNewline }),
              let (host, port) = Self.hostAndPort(authority, defaultPort: 80) else { return nil }
        self.host = host
        self.port = port
        self.path = path
        self.authority = authority
    }

    public var description: String { "http://\(authority)\(path)" }

    /// `10.0.0.1`, `[fd00::1]`.
    static func hostText(_ host: IPAddress) -> String { host.family == .v6 ? "[\(host)]" : "\(host)" }

    /// `HOST:PORT`, `[V6]:PORT`, or without the port when `defaultPort` is given.
    static func hostAndPort(_ text: String, defaultPort: UInt16?) -> (IPAddress, UInt16)? {
        let hostPart: Substring
        var portPart: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portPart = after.dropFirst()
            }
        } else {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { return nil }
            hostPart = parts[0]
            portPart = parts.count == 2 ? parts[1] : nil
        }
        let host: IPAddress
        if hostPart.lowercased() == "localhost" {
            host = IPAddress("127.0.0.1")!
        } else if let h = IPAddress(String(hostPart)), text.hasPrefix("[") == (h.family == .v6) {
            host = h
        } else {
            return nil
        }
        if let portPart {
            guard let n = VRRPConfigSyntax.integer(String(portPart)), (1...65535).contains(n) else { return nil }
            return (host, UInt16(n))
        }
        guard let defaultPort else { return nil }
        return (host, defaultPort)
    }
}

/// The speaker's health checks and how their outcomes count: keepalived's `vrrp_script`
/// settings (`interval`, `timeout`, `weight`, `rise`, `fall`), shared by every check and every
/// instance of the speaker. Valid once built.
public struct VRRPHealthSettings: Sendable, Hashable {
    public let checks: [VRRPHealthCheck]
    public let interval: Duration
    /// How long one run may take; keepalived's default is the interval.
    public let timeout: Duration
    /// 0: a failed check puts every instance in FAULT. Otherwise added to the priority while a
    /// check is down (negative) or up (positive), −253...253.
    public let weight: Int
    public let rise: Int
    public let fall: Int

    /// No check: every instance stays eligible.
    public static let none = try! VRRPHealthSettings(checks: [])

    /// Refuses, naming the value: an interval or timeout not above 0 or above a day, a weight
    /// outside −253...253, a rise or fall outside 1...1000, an empty script.
    public init(checks: [VRRPHealthCheck], interval: Duration = .seconds(1), timeout: Duration? = nil,
                weight: Int = 0, rise: Int = 1, fall: Int = 1) throws(VRRPConfigError) {
        let day = Duration.seconds(86_400)
        guard interval > .zero, interval <= day else {
            throw VRRPConfigError(.number, "check interval \(VRRPConfigSyntax.describe(interval)) must be more than 0 s and at most 86400 s")
        }
        if let timeout {
            guard timeout > .zero, timeout <= day else {
                throw VRRPConfigError(.number, "check timeout \(VRRPConfigSyntax.describe(timeout)) must be more than 0 s and at most 86400 s")
            }
        }
        guard VRRPHealthMonitor.Check.weightRange.contains(weight) else {
            throw VRRPConfigError(.number, "check weight \(weight) is not in -253...253 (keepalived's range; 0 means FAULT)")
        }
        for (name, n) in [("rise", rise), ("fall", fall)] where !(1...1000).contains(n) {
            throw VRRPConfigError(.number, "check \(name) \(n) is not in 1...1000")
        }
        for check in checks where check.scriptArguments.isEmpty {
            if case .script(let command) = check {
                throw VRRPConfigError(.script, "check script \"\(command)\" must be a command: not empty, on one line")
            }
        }
        self.checks = checks
        self.interval = interval
        self.timeout = timeout ?? interval
        self.weight = weight
        self.rise = rise
        self.fall = fall
    }

    /// The checks as `VRRPHealthMonitor` tracks them, in the same order.
    public var monitorChecks: [VRRPHealthMonitor.Check] {
        checks.map { check in
            try! VRRPHealthMonitor.Check(name: check.description, interval: interval, timeout: timeout,
                                         rise: rise, fall: fall, weight: weight)
        }
    }

    /// The settings from `baton vrrp`'s flags: `--check-script`, `--check-tcp`, `--check-http`
    /// (each optional; every one given is tracked), `--check-interval` and `--check-timeout` in
    /// seconds (fractions allowed), `--check-weight`, `--check-rise`, `--check-fall`. Messages
    /// name the flag.
    public static func fromFlags(script: String? = nil, tcp: String? = nil, http: String? = nil,
                                 interval: String = "1", timeout: String? = nil,
                                 weight: Int = 0, rise: Int = 1, fall: Int = 1) throws(VRRPConfigError) -> VRRPHealthSettings {
        var checks: [VRRPHealthCheck] = []
        if let script {
            guard VRRPConfigSyntax.isCommand(script) else {
                throw VRRPConfigError(.script, "--check-script \"\(script)\" must be a command: not empty, on one line")
            }
            checks.append(.script(VRRPConfigSyntax.trim(script)))
        }
        if let tcp { checks.append(try .tcp(tcp, field: "--check-tcp")) }
        if let http { checks.append(try .http(http, field: "--check-http")) }
        guard let every = VRRPConfigSyntax.seconds(interval), every > .zero, every <= .seconds(86_400) else {
            throw VRRPConfigError(.number, "--check-interval \"\(interval)\" is not a number of seconds above 0 and at most 86400 (1, 0.5)")
        }
        var limit: Duration? = nil
        if let timeout {
            guard let t = VRRPConfigSyntax.seconds(timeout), t > .zero, t <= .seconds(86_400) else {
                throw VRRPConfigError(.number, "--check-timeout \"\(timeout)\" is not a number of seconds above 0 and at most 86400 (2, 0.5)")
            }
            limit = t
        }
        guard VRRPHealthMonitor.Check.weightRange.contains(weight) else {
            throw VRRPConfigError(.number, "--check-weight \(weight) is not in -253...253 (keepalived's range; 0, the default, means FAULT)")
        }
        for (flag, n) in [("--check-rise", rise), ("--check-fall", fall)] where !(1...1000).contains(n) {
            throw VRRPConfigError(.number, "\(flag) \(n) is not in 1...1000")
        }
        if checks.isEmpty, let flag = [("--check-timeout", timeout != nil), ("--check-weight", weight != 0),
                                       ("--check-rise", rise != 1), ("--check-fall", fall != 1)].first(where: \.1)?.0 {
            throw VRRPConfigError(.check, "\(flag) needs a check: give --check-script, --check-tcp or --check-http")
        }
        return try VRRPHealthSettings(checks: checks, interval: every, timeout: limit, weight: weight, rise: rise, fall: fall)
    }
}
