import BatonAPI
import BatonCore
import BatonTesting
@testable import BatonVRRP
import Testing

/// Malformed packets fed to the whole receive path (`VRRPReceiver` into `VRRPInstance`), step by
/// step on a manual clock: none crashes, none is accepted, and none changes the instance: its
/// state, its timer (master-down or advertisement), the Master's interval it learned, its
/// preempt delay and its priority stay as they were, and it returns no action. Each malformed
/// packet is made from a packet that, valid, would change the instance (a priority-0 advert
/// cuts a Backup's timer to Skew_Time; a higher priority makes a Master step down), with the
/// checksum recomputed after the change so that the check named is the one that refuses it.
@Suite struct VRRPReceiverFuzzTests {
    /// One receiver set-up: what the instance is, who the other router is, and where packets go.
    struct Profile: Sendable, CustomTestStringConvertible {
        var name: String
        var version: VRRPProtocolVersion
        var password: String?
        var us: String
        var peer: String
        /// The group, or (unicast) our address.
        var destination: String
        var unicast: Bool = false
        var vip: String
        /// The Master's interval in the packets, and ours (VRRPv2: they must be equal; VRRPv3:
        /// they differ, so that learning the Master's is visible).
        var theirInterval: Duration
        var ourInterval: Duration

        var testDescription: String { name }

        static let all = [
            Profile(name: "VRRPv2, auth PASS, multicast", version: .v2, password: "baton42", us: "10.77.0.2", peer: "10.77.0.1",
                    destination: "224.0.0.18", vip: "10.77.0.100", theirInterval: .seconds(1), ourInterval: .seconds(1)),
            Profile(name: "VRRPv3 IPv4 multicast", version: .v3, us: "10.77.0.2", peer: "10.77.0.1",
                    destination: "224.0.0.18", vip: "10.77.0.100", theirInterval: .milliseconds(200), ourInterval: .seconds(1)),
            Profile(name: "VRRPv3 IPv4 unicast", version: .v3, us: "10.77.0.2", peer: "10.77.0.1",
                    destination: "10.77.0.2", unicast: true, vip: "10.77.0.100", theirInterval: .milliseconds(200), ourInterval: .seconds(1)),
            Profile(name: "VRRPv3 IPv6 multicast", version: .v3, us: "fe80::2", peer: "fe80::1",
                    destination: "ff02::12", vip: "fd77::100", theirInterval: .milliseconds(200), ourInterval: .seconds(1)),
        ]

        static let vrid: UInt8 = 51

        var receiver: VRRPReceiver {
            VRRPReceiver(vrid: Self.vrid, version: version,
                         authentication: password.flatMap(VRRPPassword.init).map(VRRPAuthentication.password) ?? .none,
                         unicastPeers: unicast ? [ip(peer)] : [])
        }

        func instance(priority: UInt8 = 100) -> VRRPInstance {
            VRRPInstance(configuration: try! VRRPInstance.Configuration(
                version: version, vrid: Self.vrid, priority: priority, advertInterval: ourInterval, primaryAddress: ip(us)))
        }

        /// A valid advertisement from the peer, encoded for the wire.
        func message(priority: UInt8, vrid: UInt8 = vrid, version: VRRPProtocolVersion? = nil, password: String?? = nil,
                     interval: Duration? = nil, from source: String? = nil, to destination: String? = nil) -> [UInt8] {
            let version = version ?? self.version
            let interval = interval ?? theirInterval
            let authentication = version == .v3 ? .none : ((password ?? self.password).flatMap(VRRPPassword.init).map(VRRPAuthentication.password) ?? .none)
            let advertisement = try! VRRPAdvertisement(
                version: version, vrid: vrid, priority: priority,
                maxAdvertIntervalCentiseconds: UInt16(interval.components.seconds * 100 + interval.components.attoseconds / 10_000_000_000_000_000),
                addresses: [ip(vip)], authentication: authentication)
            return try! advertisement.encode(source: ip(source ?? peer), destination: ip(destination ?? self.destination))
        }

        func datagram(_ message: [UInt8], ttl: UInt8 = 255, from source: String? = nil, to destination: String? = nil) -> VRRPSocket.Datagram {
            VRRPSocket.Datagram(message: message, source: ip(source ?? peer), destination: ip(destination ?? self.destination), ttl: ttl)
        }

        /// `message` with its checksum recomputed (in the form its version nibble calls for), so
        /// that a changed field, not the checksum, is what the receiver sees.
        func rechecksummed(_ message: [UInt8], from source: String? = nil, to destination: String? = nil) -> [UInt8] {
            var bytes = message
            guard bytes.count >= 8 else { return bytes }
            bytes[6] = 0
            bytes[7] = 0
            var sum: UInt32 = 0
            if bytes[0] >> 4 != 2 {
                sum = InternetChecksum.pseudoHeaderSum(source: ip(source ?? peer), destination: ip(destination ?? self.destination), length: bytes.count)
            }
            InternetChecksum.add(bytes, to: &sum)
            let checksum = InternetChecksum.finish(sum)
            bytes[6] = UInt8(checksum >> 8)
            bytes[7] = UInt8(truncatingIfNeeded: checksum)
            return bytes
        }

        /// Every malformed packet made from `base` (a valid advert of priority `priority`).
        func malformed(priority: UInt8) -> [(String, VRRPSocket.Datagram)] {
            let base = message(priority: priority)
            var cases: [(String, VRRPSocket.Datagram)] = []
            func add(_ name: String, _ message: [UInt8], ttl: UInt8 = 255, from source: String? = nil, to destination: String? = nil) {
                cases.append((name, datagram(message, ttl: ttl, from: source, to: destination)))
            }
            func changed(_ change: (inout [UInt8]) -> Void) -> [UInt8] {
                var bytes = base
                change(&bytes)
                return rechecksummed(bytes)
            }
            for length in 0..<base.count { add("truncated to \(length) bytes", Array(base.prefix(length))) }
            add("one byte too many", rechecksummed(base + [0]))
            add("checksum off by one", { var b = base; b[7] &+= 1; return b }())
            add("checksum zero", Array(base.prefix(6)) + [0, 0] + Array(base.dropFirst(8)))
            add("priority changed after the checksum", { var b = base; b[2] &+= 1; return b }())
            if !unicast {
                for ttl: UInt8 in [0, 1, 64, 128, 254] { add("ttl \(ttl)", base, ttl: ttl) }
                add("sent to a unicast address", message(priority: priority, to: us), to: us)
            } else {
                add("from a host that is not a peer", message(priority: priority, from: "10.77.0.9"), from: "10.77.0.9")
                add("to the multicast group", message(priority: priority, to: "224.0.0.18"), to: "224.0.0.18")
            }
            add("count 0", changed { $0[3] = 0 })
            add("count 2 with one address", changed { $0[3] = 2 })
            switch version {
            case .v2: add("interval 0", changed { $0[5] = 0 })
            case .v3: add("interval 0", changed { $0[4] &= 0xF0; $0[5] = 0 })
            }
            for nibble: UInt8 in [0, 1, 4, 5, 15] { add("version \(nibble)", changed { $0[0] = nibble << 4 | 1 }) }
            if family == .v4 {
                let other: VRRPProtocolVersion = version == .v2 ? .v3 : .v2
                add("version \(other.rawValue), valid as such", message(priority: priority, version: other, interval: .seconds(1)))
            }
            for type: UInt8 in [0, 2, 15] { add("type \(type)", changed { $0[0] = $0[0] & 0xF0 | type }) }
            add("vrid 0", changed { $0[1] = 0 })
            add("another vrid", message(priority: priority, vrid: Self.vrid + 1))
            if version == .v2 {
                add("wrong password", message(priority: priority, password: "other"))
                add("no authentication", message(priority: priority, password: .some(nil)))
                add("auth type 2 (AH)", changed { $0[4] = 2 })
                add("auth type 3", changed { $0[4] = 3 })
                // Accepted by the receiver; the instance drops it (RFC 3768 §7.1).
                add("another advert interval", message(priority: priority, interval: .seconds(2)))
            }
            // Accepted by the receiver; the instance ignores them.
            add("our own address (looped back)", message(priority: priority, from: us), from: us)
            if family == .v4 {
                add("IPv6 source and destination", message(priority: priority), from: "fe80::1", to: "ff02::12")
            } else {
                add("IPv4 source and destination", message(priority: priority), from: "10.77.0.1", to: "224.0.0.18")
            }
            return cases
        }

        var family: IPAddress.Family { ip(us).family }
    }

    /// What a malformed packet must leave as it was.
    struct Snapshot: Equatable, CustomStringConvertible {
        var state: VRRPInstance.State
        var nextDeadline: BatonInstant?
        var masterAdverInterval: Duration
        var preemptDelayEndsAt: BatonInstant?
        var priority: UInt8

        init(_ instance: VRRPInstance) {
            state = instance.state
            nextDeadline = instance.nextDeadline
            masterAdverInterval = instance.masterAdverInterval
            preemptDelayEndsAt = instance.preemptDelayEndsAt
            priority = instance.priority
        }

        var description: String {
            "\(state), timer \(nextDeadline.map { "\($0)" } ?? "none"), master interval \(masterAdverInterval), preempt delay until \(preemptDelayEndsAt.map { "\($0)" } ?? "none"), priority \(priority)"
        }
    }

    /// A Backup that has learned the Master's interval: every malformed priority-0 advert (which,
    /// valid, would cut its timer to Skew_Time) leaves it alone. The valid one does cut it.
    @Test(arguments: Profile.all)
    func malformedAdvertsChangeNothingInABackup(_ profile: Profile) throws {
        let clock = ManualClock()
        let receiver = profile.receiver
        var instance = profile.instance()
        #expect(instance.handle(.startup, now: clock.now) == [.becameBackup, .notify(.backup)])
        clock.advance(by: .milliseconds(100))
        let (verdict, actions) = receiver.receive(profile.datagram(profile.message(priority: 200)), into: &instance, now: clock.now)
        guard case .advertisement = verdict else { Issue.record("the valid advert was refused: \(verdict)"); return }
        #expect(actions.isEmpty)
        #expect(instance.masterAdverInterval == (profile.version == .v3 ? profile.theirInterval : profile.ourInterval))
        #expect(instance.nextDeadline == clock.now + instance.masterDownInterval)
        let before = Snapshot(instance)

        for (name, datagram) in profile.malformed(priority: 0) {
            clock.advance(by: .milliseconds(1))
            let (verdict, actions) = receiver.receive(datagram, into: &instance, now: clock.now)
            #expect(actions.isEmpty, "\(name): \(actions)")
            #expect(Snapshot(instance) == before, "\(name) (\(verdict)) changed the instance")
        }
        // And the timer still runs out when it was due: the Backup takes over.
        clock.set(to: try #require(before.nextDeadline))
        #expect(instance.handle(.timerFired, now: clock.now).contains(.becameMaster))

        // The same priority-0 advert, valid, cuts the timer to Skew_Time (so the cases above could fail).
        var fresh = profile.instance()
        _ = fresh.handle(.startup, now: clock.now)
        _ = receiver.receive(profile.datagram(profile.message(priority: 0)), into: &fresh, now: clock.now)
        #expect(fresh.nextDeadline == clock.now + fresh.skewTime)
    }

    /// A Master: every malformed higher-priority advert (which, valid, would make it step down)
    /// leaves it Master on its advertisement schedule, sending nothing extra.
    @Test(arguments: Profile.all)
    func malformedAdvertsChangeNothingInAMaster(_ profile: Profile) throws {
        let clock = ManualClock()
        let receiver = profile.receiver
        var instance = profile.instance()
        _ = instance.handle(.startup, now: clock.now)
        clock.set(to: try #require(instance.nextDeadline))
        #expect(instance.handle(.timerFired, now: clock.now).contains(.becameMaster))
        let before = Snapshot(instance)

        for (name, datagram) in profile.malformed(priority: 200) {
            clock.advance(by: .microseconds(100))
            let (verdict, actions) = receiver.receive(datagram, into: &instance, now: clock.now)
            #expect(actions.isEmpty, "\(name): \(actions)")
            #expect(Snapshot(instance) == before, "\(name) (\(verdict)) changed the instance")
        }

        let (_, actions) = receiver.receive(profile.datagram(profile.message(priority: 200)), into: &instance, now: clock.now)
        #expect(actions == [.releaseAddresses, .becameBackup, .notify(.backup)], "the valid advert makes it step down")
    }

    /// Seeded random damage (bytes overwritten, cut, extended, random TTLs, random bytes) to a
    /// priority-0 advert fed to a Backup: nothing crashes, and whatever the receiver refuses
    /// leaves the instance as it was. (A change that keeps the packet valid, such as a damaged
    /// checksum that still matches, may be accepted: then the instance is started afresh.)
    @Test(arguments: Profile.all)
    func randomDamageNeverCrashesAndRefusedPacketsChangeNothing(_ profile: Profile) {
        var rng = SplitMix64(seed: 0xBA70_F022)
        let clock = ManualClock()
        let receiver = profile.receiver
        let base = profile.message(priority: 0)
        func backup() -> VRRPInstance {
            var instance = profile.instance()
            _ = instance.handle(.startup, now: clock.now)
            return instance
        }
        var instance = backup()
        var refused = 0, damaged = 0
        for _ in 0..<5_000 {
            clock.advance(by: .microseconds(50))
            var bytes = base
            var ttl: UInt8 = 255
            switch rng.next() % 5 {
            case 0: for _ in 0...(rng.next() % 3) { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            case 1: bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count))))
            case 2: bytes += (0..<Int(1 + rng.next() % 16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            case 3: ttl = UInt8(truncatingIfNeeded: rng.next())
            default: bytes = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            // In unicast mode any TTL is taken (as keepalived does), so only the bytes count.
            if bytes != base || (ttl != 255 && !profile.unicast) { damaged += 1 }
            let before = Snapshot(instance)
            let (verdict, actions) = receiver.receive(profile.datagram(bytes, ttl: ttl), into: &instance, now: clock.now)
            if case .advertisement = verdict {
                instance = backup()
                continue
            }
            refused += 1
            #expect(actions.isEmpty)
            #expect(Snapshot(instance) == before)
        }
        #expect(damaged > 3_000)
        #expect(Double(refused) >= 0.99 * Double(damaged), "damage that slips through needs a checksum that still matches")
    }
}

/// The receiver's own checks, one at a time, with the reason it gives.
@Suite struct VRRPReceiverTests {
    static let v2 = VRRPReceiverFuzzTests.Profile.all[0]
    static let unicast = VRRPReceiverFuzzTests.Profile.all[2]
    static let v6 = VRRPReceiverFuzzTests.Profile.all[3]

    struct RefusalCase: Sendable, CustomTestStringConvertible {
        var profile: VRRPReceiverFuzzTests.Profile
        var datagram: VRRPSocket.Datagram
        var reason: String
        var testDescription: String { "\(profile.name): \(reason)" }
    }

    @Test(arguments: [
        RefusalCase(profile: v2, datagram: v2.datagram(v2.message(priority: 100), ttl: 254), reason: "ttl 254 is not 255"),
        RefusalCase(profile: v2, datagram: v2.datagram(v2.message(priority: 100, password: "other")), reason: "wrong password"),
        RefusalCase(profile: v2, datagram: v2.datagram(v2.message(priority: 100, password: .some(nil))), reason: "auth type none is not PASS"),
        RefusalCase(profile: v2, datagram: v2.datagram(v2.message(priority: 100, version: .v3, interval: .seconds(1))),
                    reason: "version VRRPv3 is not VRRPv2"),
        RefusalCase(profile: v2, datagram: v2.datagram(v2.message(priority: 100, to: "10.77.0.2"), to: "10.77.0.2"),
                    reason: "unicast to 10.77.0.2, but this instance is multicast"),
        RefusalCase(profile: v2, datagram: v2.datagram([0x21]), reason: "length 1"),
        RefusalCase(profile: unicast, datagram: unicast.datagram(unicast.message(priority: 100, from: "10.77.0.9"), from: "10.77.0.9"),
                    reason: "10.77.0.9 is not a unicast peer"),
        RefusalCase(profile: unicast, datagram: unicast.datagram(unicast.message(priority: 100, to: "224.0.0.18"), to: "224.0.0.18"),
                    reason: "multicast to 224.0.0.18, but this instance is unicast"),
        RefusalCase(profile: v6, datagram: v6.datagram(v6.message(priority: 100), ttl: 64), reason: "ttl 64 is not 255"),
    ])
    func refusals(_ c: RefusalCase) {
        #expect(c.profile.receiver.check(c.datagram) == .dropped(reason: c.reason))
    }

    @Test func anotherVirtualRouterIsNotAnError() {
        #expect(Self.v2.receiver.check(Self.v2.datagram(Self.v2.message(priority: 100, vrid: 77))) == .otherVirtualRouter(vrid: 77))
    }

    /// keepalived checks no TTL in unicast mode, and sends IPv6 unicast with the kernel's default
    /// hop limit (64): a unicast peer's advert is taken whatever its TTL.
    @Test func unicastTakesAnyTTLFromAPeer() {
        let message = Self.unicast.message(priority: 100)
        for ttl: UInt8 in [64, 255, 1] {
            guard case .advertisement(let advertisement, let source) = Self.unicast.receiver.check(Self.unicast.datagram(message, ttl: ttl)) else {
                Issue.record("ttl \(ttl) refused")
                continue
            }
            #expect(advertisement.priority == 100 && source == ip("10.77.0.1"))
        }
    }

    @Test func aValidAdvertIsAccepted() throws {
        for profile in VRRPReceiverFuzzTests.Profile.all {
            let verdict = profile.receiver.check(profile.datagram(profile.message(priority: 150)))
            guard case .advertisement(let advertisement, let source) = verdict else {
                Issue.record("\(profile.name): \(verdict)")
                continue
            }
            #expect(advertisement.priority == 150 && advertisement.vrid == VRRPReceiverFuzzTests.Profile.vrid)
            #expect(source == ip(profile.peer))
        }
    }
}
