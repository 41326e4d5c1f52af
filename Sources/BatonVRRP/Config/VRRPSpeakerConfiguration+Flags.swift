import BatonAPI

extension VRRPSpeakerConfiguration {
    /// One instance from `baton vrrp`'s flags, which cover what a keepalived `vrrp_instance`
    /// sets. Give it the flags as the argument parser holds them: numbers as `Int`, and as
    /// text what must be read exactly (intervals, addresses). Defaults are keepalived's.
    ///
    /// Messages name the flag (`--advert-interval "0.5"`) where the text does not parse, and
    /// the instance's field (`instance VI_1: priority 0`) where the value breaks a rule.
    ///
    /// - Parameters:
    ///   - name: the instance's name, a notify script's `$2` (keepalived's `vrrp_instance NAME`).
    ///   - vrid: `--vrid`, 1...255.
    ///   - priority: `--priority`, 1...255; 255 declares this node the address owner.
    ///   - advertInterval: `--advert-interval` in seconds: whole for version 2 (1...255),
    ///     whole centiseconds for version 3 (`0.5`, `0.02`; 0.01...40.95).
    ///   - version: `--version 2|3`; nil picks 2 for IPv4 and 3 for IPv6, as keepalived does.
    ///   - interface: `--interface`.
    ///   - vips: `--vip`, repeatable: `ADDR`, `ADDR/PREFIX`, or a range `10.0.0.5-9`.
    ///   - unicastPeers: `--unicast-peer`, repeatable; none means multicast.
    ///   - authPass: `--auth-pass`, version 2 only, 1...8 bytes.
    ///   - notifyScript: `--notify`, run with `INSTANCE`, the name and the new state.
    ///   - checkScript: `--check-script`, a command; exit 0 is up.
    ///   - checkTCP: `--check-tcp HOST:PORT`, a TCP connect check.
    ///   - checkHTTP: `--check-http URL`, an HTTP GET check (2xx or 3xx is up).
    ///   - checkInterval: `--check-interval` in seconds (keepalived's `vrrp_script` default, 1).
    ///   - checkTimeout: `--check-timeout` in seconds; the interval unless given.
    ///   - checkWeight: `--check-weight`, −253...253; 0 (the default) sends the instance to FAULT.
    ///   - checkRise: `--check-rise`, successes in a row that bring a failed check back.
    ///   - checkFall: `--check-fall`, failures in a row that fail a check that was up.
    ///   - preemptDelay: `--preempt-delay` in seconds, 0...1000 (fractions allowed, as keepalived).
    ///   - nopreempt: `--nopreempt`; not with `--preempt-delay`, and not with `--priority 255`
    ///     (keepalived clears it for the address owner with a warning; Baton refuses it).
    ///   - vmac: `--vmac` (keepalived's `use_vmac`).
    ///   - monitorPort: a TCP port to check on 127.0.0.1; 0 (the default) checks nothing.
    ///   - iptablesChain: the chain that gets the rule admitting VRRP; nil adds none.
    public static func fromFlags(
        name: String = "VI_1",
        vrid: Int,
        priority: Int = 100,
        advertInterval: String = "1",
        version: Int? = nil,
        interface: String,
        vips: [String],
        unicastPeers: [String] = [],
        authPass: String? = nil,
        notifyScript: String? = nil,
        checkScript: String? = nil,
        checkTCP: String? = nil,
        checkHTTP: String? = nil,
        checkInterval: String = "1",
        checkTimeout: String? = nil,
        checkWeight: Int = 0,
        checkRise: Int = 1,
        checkFall: Int = 1,
        preemptDelay: String? = nil,
        nopreempt: Bool = false,
        vmac: Bool = false,
        monitorPort: Int = 0,
        iptablesChain: String? = nil
    ) throws(VRRPConfigError) -> VRRPSpeakerConfiguration {
        // What the flags alone decide is refused naming the flag, as `baton vrrp` prints it.
        guard (1...255).contains(vrid) else {
            throw VRRPConfigError(.vrid, "--vrid: \(vrid) is not in 1...255")
        }
        if authPass != nil, version == 3 {
            throw VRRPConfigError(.authentication, "--auth-pass needs --version 2 (VRRPv3 has no authentication)")
        }
        let vrrpVersion: VRRPVersion?
        switch version {
        case nil: vrrpVersion = nil
        case 2: vrrpVersion = .v2
        case 3: vrrpVersion = .v3
        case let v?: throw VRRPConfigError(.version, "--version \(v) is not 2 or 3")
        }
        guard let interval = VRRPConfigSyntax.seconds(advertInterval) else {
            throw VRRPConfigError(.advertInterval, "--advert-interval \"\(advertInterval)\" is not a number of seconds (1, 0.5)")
        }
        let health = try VRRPHealthSettings.fromFlags(
            script: checkScript, tcp: checkTCP, http: checkHTTP, interval: checkInterval, timeout: checkTimeout,
            weight: checkWeight, rise: checkRise, fall: checkFall)
        guard !vips.isEmpty else {
            throw VRRPConfigError(.missing, "--vip is required: the virtual addresses, ADDR[/PREFIX], repeatable")
        }
        var addresses: [VRRPVirtualAddress] = []
        for v in vips {
            addresses += try VRRPVirtualAddress.parse(v, field: "--vip")
        }
        var peers: [IPAddress] = []
        for p in unicastPeers {
            guard let a = IPAddress(VRRPConfigSyntax.trim(p)) else {
                throw VRRPConfigError(.unicastPeer, "--unicast-peer \"\(p)\" is not an IP address")
            }
            peers.append(a)
        }
        let preempt: VRRPPreemption
        switch (preemptDelay, nopreempt) {
        case (let d?, true):
            throw VRRPConfigError(.conflict, "--preempt-delay \(d) and --nopreempt contradict each other; give one")
        case (nil, true):
            preempt = .nopreempt
        case (let d?, false):
            guard let delay = VRRPConfigSyntax.seconds(d) else {
                throw VRRPConfigError(.preemption, "--preempt-delay \"\(d)\" is not a number of seconds in 0...1000")
            }
            preempt = .preempt(delay: delay)
        case (nil, false):
            preempt = .preempt(delay: .zero)
        }
        let instance = try VRRPInstanceSettings(
            name: name, vrid: vrid, priority: priority, advertInterval: interval, version: vrrpVersion,
            interface: interface, vips: addresses, unicastPeers: peers, authPass: authPass,
            preempt: preempt, useVMAC: vmac)
        return try VRRPSpeakerConfiguration(
            instances: [instance], checkScript: checkScript, checkInterval: health.interval, notifyScript: notifyScript,
            monitorPort: monitorPort, iptablesChain: iptablesChain, replicaCount: 1,
            otherChecks: health.checks.filter { if case .script = $0 { false } else { true } },
            checkTimeout: checkTimeout == nil ? nil : health.timeout,
            checkWeight: checkWeight, checkRise: checkRise, checkFall: checkFall)
    }
}
