import BatonAPI
import BatonTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// SplitMix64: a small seeded generator, so a failing case can be replayed from its seed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Throws random and malformed YAML and JSON at every write path. Every answer must be a
/// 4xx (or a 2xx for an input that happens to be valid), never a 5xx; and a refused input
/// must leave the store's revision where it was.
@Suite struct FuzzTests {
    static let corpus: [String] = {
        var docs = (try? SeedManifests.all().map(\.yaml)) ?? []
        docs.append(seedGateway)
        return docs
    }()

    static func mutate(_ text: String, _ rng: inout SeededRandom) -> String {
        var chars = Array(text.unicodeScalars)
        let junk: [String] = ["{", "}", "[", "]", ":", "- ", "\t", "\"", "'", "&a", "*a", "!!binary", "\u{0}", "\u{FFFF}", "%",
                              "null", "-1", "99999999999999999999", "1e400", "0x", "NaN", "true", "\n  - ", ": : :", "---\n",
                              "a".padding(toLength: 300, withPad: "a", startingAt: 0), "256.1.1.1", "::::", "10.0.0.0/33"]
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            guard !chars.isEmpty else { break }
            let i = Int.random(in: 0..<chars.count, using: &rng)
            switch Int.random(in: 0..<5, using: &rng) {
            case 0: chars.remove(at: i)
            case 1: chars.insert(contentsOf: junk.randomElement(using: &rng)!.unicodeScalars, at: i)
            case 2: chars = Array(chars.prefix(i))
            case 3: chars[i] = UnicodeScalar(UInt8.random(in: 32...126, using: &rng))
            default:
                let j = Int.random(in: 0..<chars.count, using: &rng)
                chars.swapAt(i, j)
            }
        }
        var s = String.UnicodeScalarView()
        s.append(contentsOf: chars)
        return String(s)
    }

    static func randomJSON(_ rng: inout SeededRandom, depth: Int = 0) -> JSONValue {
        switch Int.random(in: 0..<(depth > 4 ? 5 : 7), using: &rng) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &rng))
        case 2: return .int(Int64.random(in: Int64.min...Int64.max, using: &rng))
        case 3: return .double(Double.random(in: -1e300...1e300, using: &rng))
        case 4: return .string(["", "10.6.1.55", "fd00::55", "egw1", "0x26d9b723", "a-b", "10.0.0.0/8", "default", "rr"].randomElement(using: &rng)!)
        case 5: return .array((0..<Int.random(in: 0...3, using: &rng)).map { _ in randomJSON(&rng, depth: depth + 1) })
        default:
            let keys = ["apiVersion", "kind", "metadata", "name", "spec", "status", "ippools", "ipv4", "nodeSelector", "selector",
                        "destinations", "gateway", "http", "port", "weight", "labels", "namespace", "egressIP", "virtualIPs"]
            var o: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0...4, using: &rng) { o[keys.randomElement(using: &rng)!] = randomJSON(&rng, depth: depth + 1) }
            return .object(o)
        }
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func malformedInputNeverGetsA5xxAndRefusalsStoreNothing(seed: UInt64) async throws {
        let h = try Harness()
        let targets = KindRegistry.all.map { k in (k, k.collectionPath(namespace: k.namespaced ? "default" : nil)) }
        try await h.app.test(.router) { client in
            var rng = SeededRandom(state: seed)
            for iteration in 0..<250 {
                let (kind, collection) = targets.randomElement(using: &rng)!
                var body: ByteBuffer
                var contentType: String
                if Bool.random(using: &rng) {
                    body = ByteBuffer(string: Self.mutate(Self.corpus.randomElement(using: &rng)!, &rng))
                    contentType = "application/yaml"
                } else {
                    var doc = Self.randomJSON(&rng)
                    if Bool.random(using: &rng) {
                        doc = .object(["apiVersion": .string(kind.apiVersion), "kind": .string(kind.kind),
                                       "metadata": ["name": "fuzz"], "spec": Self.randomJSON(&rng)])
                    }
                    body = ByteBuffer(data: doc.jsonData())
                    contentType = "application/json"
                }
                let method: HTTPRequest.Method = [.post, .put, .patch].randomElement(using: &rng)!
                let uri = method == .post ? collection : collection + "/fuzz"
                let before = try await h.store.currentRevision()
                let r = try await client.execute(uri: uri, method: method,
                                                 headers: [.authorization: "Bearer \(Harness.admin)", .contentType: contentType], body: body)
                #expect(r.status.code < 500, "seed \(seed) iteration \(iteration): \(r.status.code) \(String(buffer: r.body))")
                if r.status.code >= 400 {
                    #expect(try await h.store.currentRevision() == before, "seed \(seed) iteration \(iteration): a refused input changed the store")
                    let status = try? JSONValue.parse(Data(buffer: r.body))
                    #expect(status?["kind"] == "Status" && !(status?["message"]?.stringValue ?? "").isEmpty,
                            "every refusal carries a Status with a message")
                } else {
                    // It happened to be valid: clean up so the next input starts from the same place.
                    _ = try await client.execute(uri: collection + "/" + (try JSONValue.parse(Data(buffer: r.body))["metadata"]?["name"]?.stringValue ?? "fuzz"),
                                                 method: .delete, headers: [.authorization: "Bearer \(Harness.admin)"])
                }
            }
        }
    }
}
