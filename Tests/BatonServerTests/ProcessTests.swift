import BatonAPI
import BatonClient
import Foundation
import NIOCore
import Synchronization
import Testing

/// End-to-end tests of the `baton` binary: the server as a child process, the CLI as the user
/// runs it. They skip when the binary has not been built (`swift build` first).
@Suite(.serialized, .enabled(if: BatonBinary.path != nil, "baton binary not built: run `swift build` before `swift test`"))
struct ProcessTests {
    @Test func cliAppliesReadsLabelsAndPrintsTheSeedColumns() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ServerProcess(dataDir: dir)
        defer { server.kill() }
        let manifest = """
        apiVersion: egressgateway.spidernet.io/v1beta1
        kind: EgressTunnel
        metadata:
          name: node1
        spec: {}
        ---
        apiVersion: baton.io/v1
        kind: Node
        metadata:
          name: node1
        """
        let applied = try BatonBinary.run(["apply", "-f", "-"], env: server.env, stdin: manifest)
        #expect(applied.status == 0, "\(applied.err)")
        #expect(applied.out.contains("egresstunnel.egressgateway.spidernet.io/node1 created"))
        let get = try BatonBinary.run(["get", "egt"], env: server.env)
        #expect(get.status == 0)
        let header = get.out.split(separator: "\n").first.map(String.init) ?? ""
        #expect(header.split(separator: " ", omittingEmptySubsequences: true) == ["NAME", "TUNNELMAC", "TUNNELIPV4", "TUNNELIPV6", "MARK", "PHASE"])
        let label = try BatonBinary.run(["label", "node", "node1", "egress=true"], env: server.env)
        #expect(label.status == 0, "\(label.err)")
        let selected = try BatonBinary.run(["get", "no", "-l", "egress=true", "-o", "name"], env: server.env)
        #expect(selected.out.contains("node.baton.io/node1"))
        // A token read from the data dir works as well as BATON_TOKEN.
        let viaDir = try BatonBinary.run(["get", "egt", "node1", "-o", "json", "--server", server.url, "--data-dir", dir], env: ["BATON_TOKEN": ""])
        #expect(viaDir.status == 0, "\(viaDir.err)")
        #expect(viaDir.out.contains("\"name\" : \"node1\"") || viaDir.out.contains("\"name\": \"node1\""))
    }

    @Test func invalidManifestExitsNonZeroNamesTheFieldAndStoresNothing() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ServerProcess(dataDir: dir)
        defer { server.kill() }
        let manifest = """
        apiVersion: networking.digitalocean.com/v1
        kind: StaticRoute
        metadata:
          name: good
        spec:
          destinations: ["34.160.111.145"]
          gateway: "10.116.0.4"
        ---
        apiVersion: networking.digitalocean.com/v1
        kind: StaticRoute
        metadata:
          name: bad
        spec:
          destinations: []
          gateway: "10.116.0.4"
        """
        let r = try BatonBinary.run(["apply", "-f", "-"], env: server.env, stdin: manifest)
        #expect(r.status != 0)
        #expect(r.err.contains("spec.destinations"))
        let list = try await server.client.list(.staticRoute, namespace: nil)
        #expect(list.items.isEmpty, "a refused document leaves the others of the file unapplied too")
    }

    @Test func acknowledgedWritesSurviveSIGKILL() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ServerProcess(dataDir: dir)
        var writer = server.client
        writer.timeout = .seconds(5)  // a request caught by the kill fails fast instead of holding the test
        let client = writer
        let acknowledged = Acknowledged()
        let killAfter = 300
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var i = 0
                    while true {
                        let name = "w\(worker)-\(i)"
                        i += 1
                        var meta = ObjectMeta(name: name)
                        meta.labels = ["load": "sigkill"]
                        let node = Resource(apiVersion: "baton.io/v1", kind: "Node", metadata: meta, body: [:])
                        do {
                            _ = try await client.create(node)
                        } catch {
                            return  // the server is gone: stop this writer
                        }
                        let count = acknowledged.insert(name)
                        if count == killAfter { server.kill() }
                    }
                }
            }
            try await group.waitForAll()
        }
        let acked = acknowledged.all
        #expect(acked.count >= killAfter)
        let restarted = try await ServerProcess(dataDir: dir)
        defer { restarted.kill() }
        let stored = Set(try await restarted.client.list(.node, namespace: nil, labelSelector: "load=sigkill").items.map(\.name))
        let lost = acked.subtracting(stored)
        #expect(lost.isEmpty, "acknowledged writes lost after SIGKILL: \(lost.sorted().prefix(10))")
    }
}


extension ProcessTests {
    @Test func watchPrintsARowPerChangeAndMetricsCountRequests() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ServerProcess(dataDir: dir)
        defer { server.kill() }
        let watcher = Process()
        watcher.executableURL = URL(fileURLWithPath: BatonBinary.path!)
        watcher.arguments = ["get", "egt", "-w"]
        watcher.environment = ProcessInfo.processInfo.environment.merging(server.env) { _, b in b }
        let out = Pipe()
        watcher.standardOutput = out
        watcher.standardError = FileHandle.nullDevice
        try watcher.run()
        defer { if watcher.isRunning { kill(watcher.processIdentifier, SIGKILL); watcher.waitUntilExit() } }
        // Reading a pipe blocks: if rows never come, stop the watcher so the read ends and the test fails.
        let pid = watcher.processIdentifier
        let watchdog = Task { try await Task.sleep(for: .seconds(20)); kill(pid, SIGKILL) }
        defer { watchdog.cancel() }
        for phase in ["Init", "Ready"] {
            let tunnel = "apiVersion: egressgateway.spidernet.io/v1beta1\nkind: EgressTunnel\nmetadata:\n  name: node1\n  labels: {phase: \(phase.lowercased())}\n"
            #expect(try BatonBinary.run(["apply", "-f", "-"], env: server.env, stdin: tunnel).status == 0)
        }
        // The header, then one row for the create and one for the update.
        var text = ""
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while text.split(separator: "\n").count < 3 && ContinuousClock.now < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        let lines = text.split(separator: "\n")
        #expect(lines.count >= 3, "\(text)")
        #expect(lines.first?.hasPrefix("NAME") == true)
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix("node1") })
        let metrics = try await server.client.send(.GET, "/metrics")
        let body = String(decoding: metrics.body, as: UTF8.self)
        #expect(body.contains("baton_api_requests_total"), "\(body.prefix(300))")
        #expect(body.contains("resource=\"egresstunnels\""))
    }

    @Test func describeAndEventsShowTheRecordedTimeline() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await ServerProcess(dataDir: dir)
        defer { server.kill() }
        let tunnel = "apiVersion: egressgateway.spidernet.io/v1beta1\nkind: EgressTunnel\nmetadata:\n  name: node2\n"
        #expect(try BatonBinary.run(["apply", "-f", "-"], env: server.env, stdin: tunnel).status == 0)
        let event = """
        apiVersion: baton.io/v1
        kind: Event
        metadata: {name: node2.hb, namespace: default}
        involvedObject: {kind: EgressTunnel, name: node2}
        reason: HeartbeatTimeout
        message: update tunnel status to HeartbeatTimeout
        type: Warning
        firstTimestamp: "2026-01-01T00:00:00.000Z"
        lastTimestamp: "2026-01-01T00:00:00.250Z"
        count: 1
        """
        #expect(try BatonBinary.run(["apply", "-f", "-"], env: server.env, stdin: event).status == 0)
        let describe = try BatonBinary.run(["describe", "egt", "node2"], env: server.env)
        #expect(describe.status == 0, "\(describe.err)")
        #expect(describe.out.contains("HeartbeatTimeout"))
        #expect(describe.out.contains("update tunnel status to HeartbeatTimeout"))
        let events = try BatonBinary.run(["events", "--for", "egt/node2"], env: server.env)
        #expect(events.out.contains("2026-01-01T00:00:00.250Z"))
        #expect(events.out.contains("egresstunnel/node2"))
    }
}

extension ProcessTests {
    @Test func serverRefusesAnEvictionTimeoutNotAboveTheSumOfPeriods() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let values = dir + "/values.yaml"
        try "feature:\n  tunnelMonitorPeriod: 5\n  tunnelUpdatePeriod: 5\n  eipEvictionTimeout: 5\n".write(toFile: values, atomically: true, encoding: .utf8)
        let r = try BatonBinary.run(["server", "--data-dir", dir, "--listen", "127.0.0.1:\(ServerProcess.freePort())", "--config", values])
        #expect(r.status != 0)
        #expect(r.err.contains("eipEvictionTimeout should be greater than the sum of tunnelUpdatePeriod and tunnelMonitorPeriod"))
    }
}

/// Names whose creation the server acknowledged.
final class Acknowledged: Sendable {
    private let names = Mutex<Set<String>>([])
    func insert(_ name: String) -> Int { names.withLock { $0.insert(name); return $0.count } }
    var all: Set<String> { names.withLock { $0 } }
}
