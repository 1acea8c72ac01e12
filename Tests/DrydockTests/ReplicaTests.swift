import DrydockBuildContext
import DrydockClient
import DrydockProcess
import DrydockServer
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}

/// A port the kernel hands out now (for haproxy, which must be told one).
func kernelPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw CLITestError("socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
            guard bind(fd, pointer, length) == 0 else { return -1 }
            return getsockname(fd, pointer, &length)
        }
    }
    guard bound == 0 else { throw CLITestError("bind: \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Two `drydock-server` replicas on one PostgreSQL database and one S3 endpoint (moto, checking
/// signatures), behind Debian's haproxy balancing every request round-robin, as the README's
/// production layout describes.
@Suite("Replicas behind a load balancer", .serialized)
struct ReplicaTests {
    @Test("skopeo pushes and pulls a multi-layer image with requests alternating between replicas; 2 builders build 50 builds through the balancer, each exactly once; housekeeping runs once; a token revoked on one replica is refused by the other within a second; with one replica killed, a push goes through the other")
    func twoReplicas() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy") else {
            Issue.record("haproxy is not installed (scripts/test.sh installs it)")
            return
        }
        try await withTemporaryDirectory { dir in
            let database = try await TestDatabase.create()
            let moto = try await MotoS3(directory: dir)
            defer { moto.stop() }
            func replica(_ name: String) async throws -> ServerProcess {
                try await ServerProcess(environment: [
                    "DRYDOCK_DATABASE_URL": database.redacted, "DRYDOCK_DATA_DIR": dir.appendingPathComponent(name).path,
                    "DRYDOCK_BLOB_STORE": "s3://replicas/drydock?endpoint=http://127.0.0.1:\(moto.port)&region=us-east-1&path-style=true",
                    "HOME": dir.path,
                ].merging(moto.environment) { $1 }, logFile: dir.appendingPathComponent("\(name).log"))
            }
            let a = try await replica("a")
            let b = try await replica("b")

            let port = try kernelPort()
            let config = """
                global
                    maxconn 512
                defaults
                    mode http
                    timeout connect 2s
                    timeout client 60s
                    timeout server 60s
                    option http-server-close
                    retries 3
                    option redispatch
                frontend registry
                    bind 127.0.0.1:\(port)
                    default_backend replicas
                backend replicas
                    balance roundrobin
                    server a 127.0.0.1:\(a.port) check inter 500ms fall 2
                    server b 127.0.0.1:\(b.port) check inter 500ms fall 2
                """
            let configFile = dir.appendingPathComponent("haproxy.cfg")
            try (config + "\n").write(to: configFile, atomically: true, encoding: .utf8)
            let haproxy = try await RunningProcess(["/usr/sbin/haproxy", "-db", "-f", configFile.path],
                                                   environment: ["PATH": "/usr/sbin:/usr/bin:/bin"],
                                                   log: dir.appendingPathComponent("haproxy.log").path)
            defer { if haproxy.isRunning { haproxy.signal(SIGKILL) } }
            let balanced = URL(string: "http://127.0.0.1:\(port)")!
            let up = await eventually(.seconds(20)) { await httpStatus(port: port, "/readyz", timeout: .seconds(2)) == 200 }
            let haproxyLog = (try? String(contentsOf: dir.appendingPathComponent("haproxy.log"), encoding: .utf8)) ?? ""
            try #require(up, "haproxy did not answer: \(haproxyLog)")

            let bootstrap = try await runExecutable("drydock-server", ["bootstrap", "--org", "replicated", "--database-url", database.redacted],
                                                    environment: ["HOME": dir.path, "DRYDOCK_DATA_DIR": dir.appendingPathComponent("cli").path])
            let owner = try #require(bootstrap.stdout.split(separator: "\n").last.map(String.init), "\(bootstrap.stderr)")
            let client = DrydockClient(baseURL: balanced, token: owner)
            let project = try await client.createProject(name: "app").id

            // A multi-layer image, pushed and pulled through the balancer: every blob upload
            // (POST, PATCH, PUT) and the bearer token flow cross replicas.
            let layout = dir.appendingPathComponent("image").path
            let made = try await runTool("python3", [packageRoot.appendingPathComponent("Tests/Fixtures/make-oci-layout.py").path, layout, "4", "512"])
            try #require(made.status == 0, "\(made.stderr)")
            let manifestDigest = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let host = "127.0.0.1:\(port)"
            let creds = "ci:\(owner)"
            let push = try await runTool("skopeo", ["copy", "--dest-tls-verify=false", "--dest-creds", creds,
                                                    "oci:\(layout):latest", "docker://\(host)/\(project)/app:v1"])
            #expect(push.status == 0, "\(push.stderr)\nA: \(a.lastOutput)\nB: \(b.lastOutput)")
            let pulled = dir.appendingPathComponent("pulled").path
            let pull = try await runTool("skopeo", ["copy", "--src-tls-verify=false", "--src-creds", creds,
                                                    "docker://\(host)/\(project)/app:v1", "oci:\(pulled):v1"])
            #expect(pull.status == 0, "\(pull.stderr)")
            let original = Set(try FileManager.default.contentsOfDirectory(atPath: layout + "/blobs/sha256"))
            #expect(original == Set((try? FileManager.default.contentsOfDirectory(atPath: pulled + "/blobs/sha256")) ?? []))
            let inspect = try await runTool("skopeo", ["inspect", "--tls-verify=false", "--creds", creds, "docker://\(host)/\(project)/app:v1"])
            #expect(inspect.stdout.contains(manifestDigest))
            // Both replicas served registry requests of that push and pull.
            for (name, server) in [("a", a), ("b", b)] {
                let metrics = try await offCooperativePool {
                    let connection = try RawConnection(port: server.port)
                    try connection.send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    return connection.readUntilClosed(timeout: .seconds(10)).text
                }
                let registryRequests = metrics.split(separator: "\n").filter { $0.hasPrefix("hb_requests{") && $0.contains("/v2/") }
                #expect(!registryRequests.isEmpty, "replica \(name) served none of the registry requests")
            }
            // Nothing under either replica's data directory: blobs and uploads are in the shared store.
            for name in ["a", "b"] {
                let blobs = dir.appendingPathComponent("\(name)/blobs/sha256")
                #expect(((try? FileManager.default.contentsOfDirectory(atPath: blobs.path)) ?? []).isEmpty, "replica \(name) kept blobs of its own")
            }
            // Housekeeping: both replicas started and looked; one of them swept.
            let sweeps = [a, b].map { $0.output.split(separator: "\n").filter { $0.contains("housekeeping turn") && $0.contains("registry-janitor") }.count }
            #expect(sweeps.reduce(0, +) == 1, "registry housekeeping turns taken: a \(sweeps[0]), b \(sweeps[1])")

            // 2 builders and 50 builds, every request through the balancer: each built exactly once.
            let busybox = try await BuildFixture.busyboxLayout()
            let base = try await runTool("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds,
                                                    "oci:\(busybox):latest", "docker://\(host)/\(project)/busybox:latest"])
            try #require(base.status == 0, "\(base.stderr)")
            let workerToken = try await client.createToken(name: "builders", kind: .worker).token
            let builders = try await [("b1", 0), ("b2", 1)].asyncMap { name, _ in
                try await BuilderProcess(apiURL: balanced.absoluteString, token: workerToken, cache: dir.appendingPathComponent("cache-\(name)"), name: name)
            }
            let contextDir = dir.appendingPathComponent("context")
            try FileManager.default.createDirectory(at: contextDir, withIntermediateDirectories: true)
            try "FROM \(host)/\(project)/busybox:latest\nARG N\nLABEL n=$N\n".write(to: contextDir.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
            let tar = dir.appendingPathComponent("context.tar")
            let packed = try ContextPacker.pack(directory: contextDir, dockerfile: contextDir.appendingPathComponent("Dockerfile"), into: tar)
            _ = try await client.uploadContext(projectId: project, digest: packed.digest, file: tar)
            var ids: [String] = []
            for n in 1...50 {
                ids.append(try await client.createBuild(projectId: project, .init(contextDigest: packed.digest, buildArgs: .init(additionalProperties: ["N": "\(n)"]))).id)
            }
            let allDone = await eventually(.seconds(240)) {
                let states = try? await ids.asyncMap { try await client.build($0).status }
                return states?.allSatisfy { [.succeeded, .failed, .canceled].contains($0) } ?? false
            }
            #expect(allDone, "the 50 builds did not finish; b1: \(builders[0].output.suffix(2000))")
            let finished = try await ids.asyncMap { try await client.build($0) }
            #expect(finished.allSatisfy { $0.status == .succeeded }, "\(finished.filter { $0.status != .succeeded }.map { "\($0.id): \($0.status) \($0.error ?? "")" })")
            let starts = builders.flatMap { $0.output.split(separator: "\n").filter { $0.contains("job started") } }
            for id in ids {
                let count = starts.filter { $0.contains("build=\(id)") }.count
                #expect(count == 1, "build \(id) was started \(count) times")
            }
            let perBuilder = builders.map { builder in builder.output.split(separator: "\n").filter { $0.contains("job started") }.count }
            print("replicas: 50 builds through the balancer, started by b1 \(perBuilder[0]) and b2 \(perBuilder[1]) times")
            for builder in builders { await builder.stop() }

            // A token revoked through A is refused by B within a second (B had it cached).
            let created = try await DrydockClient(baseURL: a.baseURL, token: owner).createToken(name: "short-lived")
            let onB = DrydockClient(baseURL: b.baseURL, token: created.token)
            _ = try await onB.whoami()
            try await DrydockClient(baseURL: a.baseURL, token: owner).revokeToken(created.id)
            let revokedAt = ContinuousClock.now
            // Measured to when the refused request was sent: a loaded machine's slow answer is not
            // the revocation's delay.
            var refused = false
            var took = Duration.zero
            while ContinuousClock.now - revokedAt < .seconds(3), !refused {
                let sent = ContinuousClock.now
                do { _ = try await onB.whoami() } catch { refused = true; took = sent - revokedAt }
                if !refused { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(refused && took < .seconds(1), "B still accepted the revoked token after \(took)")

            // kill -9 of one replica: the balancer stops sending to it and a push goes through the other.
            b.signal(SIGKILL)
            _ = try await b.waitForExit(timeout: .seconds(10))
            let again = try await runTool("skopeo", ["copy", "--dest-tls-verify=false", "--dest-creds", creds,
                                                     "oci:\(layout):latest", "docker://\(host)/\(project)/app:v2"])
            #expect(again.status == 0, "\(again.stderr)")
            let tags = try await DrydockClient(baseURL: a.baseURL, token: owner).tags(projectId: project, repository: "app")
            #expect(Set(tags.items.map(\.name)).isSuperset(of: ["v1", "v2"]), "\(tags)")
            a.signal(SIGTERM)
            _ = try await a.waitForExit(timeout: .seconds(60))
        }
    }
}
