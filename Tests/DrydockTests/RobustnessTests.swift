import DrydockClient
import DrydockBuildContext
import DrydockServer
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import HTTPTypes
import Testing

/// Nothing a client sends may take the server down, and faults around it (PostgreSQL away, a
/// full disk, a crash of the server itself) fail fast and clean.
@Suite("Robustness")
struct RobustnessTests {
    /// Requests that once killed the process (an index into an empty `split`), and their
    /// relatives: each is a 400 in the registry's format, and the server keeps answering.
    @Test("malformed Content-Range, Content-Type, percent escapes and forms are 400s, never a crash")
    func crashInputs() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("web")
            let basic = "Basic " + Data("ci:\(server.ownerToken)".utf8).base64EncodedString()
            let start = try await server.registry(.post, "/v2/\(project)/app/blobs/uploads/", token: server.ownerToken)
            let location = try #require(start.headers[.location])

            func raw(_ request: String) async throws -> String {
                try await offCooperativePool { try RawConnection(port: server.port).exchange(request) }
            }
            for range in ["/", "bytes /", "", "bytes -/", "-", "bytes=0-1", "bytes ٣-4/5"] {
                let line = try await raw("PATCH \(location) HTTP/1.1\r\nHost: x\r\nAuthorization: \(basic)\r\nContent-Range: \(range)\r\nContent-Length: 3\r\n\r\nabc")
                #expect(line.contains(" 400 "), "Content-Range '\(range)': \(line)")
            }
            let manifest = #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#
            for type in [";", "", " ; ", "a/", "/b"] {
                let line = try await raw("PUT /v2/\(project)/app/manifests/t HTTP/1.1\r\nHost: x\r\nAuthorization: \(basic)\r\nContent-Type: \(type)\r\nContent-Length: \(manifest.utf8.count)\r\n\r\n\(manifest)")
                #expect(line.contains(" 400 "), "Content-Type '\(type)': \(line)")
            }

            for query in ["last=%00", "last=%ff", "last=%zz", "n=%00"] {
                let tags = try await server.registry(.get, "/v2/\(project)/app/tags/list?\(query)", token: server.ownerToken)
                #expect(tags.status == .badRequest, "?\(query)")
                #expect(String(decoding: tags.body, as: UTF8.self).contains(#""errors""#))
            }
            let api = try await server.request(.get, "/api/v1/builds?projectId=%00", token: server.ownerToken)
            #expect(api.status == .badRequest)
            #expect(api.headers[.contentType] == "application/problem+json")
            #expect(api.problem?.code == "malformed_request")

            let form = try await server.registry(.post, "/v2/token", body: Array("grant_type=password&password=%zz&scope=x".utf8),
                                                 headers: [.contentType: "application/x-www-form-urlencoded"])
            #expect(form.status == .badRequest)
            for header in ["Basic", "Basic ", "Basic !!!!", "Basic " + Data([0xff, 0xfe]).base64EncodedString(), "Bearer", ""] {
                let v2 = try await server.registry(.get, "/v2/", headers: [.authorization: header])
                #expect(v2.status == .unauthorized, "Authorization '\(header)'")
            }

            // A NUL inside JSON text (here a worker's error message) reaches PostgreSQL, which
            // refuses it: the client's fault (400), not a server error.
            let context = try await server.uploadZeroContext(project)
            let (_, worker) = try await server.createToken(#"{"name":"w","kind":"worker"}"#)
            _ = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken, json: #"{"contextDigest":"\#(context)"}"#)
            let claim = try await server.request(.post, "/api/v1/workers/claim", token: worker,
                                                 json: #"{"name":"w","platforms":["\#(Platform.host)"],"waitSeconds":0}"#)
            let assignment = try claim.decoded(Schemas.JobAssignment.self)
            let job = assignment.jobId, buildToken = assignment.buildToken
            #expect(try await server.request(.post, "/api/v1/jobs/\(job)/heartbeat", token: buildToken).status == .ok)
            let events = try await server.request(.post, "/api/v1/jobs/\(job)/finish", token: buildToken,
                                                  json: #"{"status":"failed","error":"a\u0000b"}"#)
            #expect(events.status == .badRequest, "\(events.text)")
            #expect(events.problem?.code == "invalid_value")

            let health = try await server.request(.get, "/healthz")
            #expect(health.status == .ok)
        }
    }

    @Test("a request stalled in its headers and an idle kept-alive connection are closed after their timeouts")
    func slowAndIdleConnections() async throws {
        try await withTestServer(configure: {
            $0.headerTimeout = .seconds(1)
            $0.idleTimeout = .seconds(2)
        }) { server in
            // Slowloris: headers trickle in, one byte at a time, and never end.
            let slow = try RawConnection(port: server.port)
            let started = ContinuousClock.now
            let closed = try await offCooperativePool { () -> Bool in
                for byte in "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".utf8 {
                    do { try slow.send(String(UnicodeScalar(byte))) } catch { return true }
                    if slow.readUntilClosed(timeout: .milliseconds(150)).closed { return true }
                }
                return slow.readUntilClosed(timeout: .seconds(10)).closed
            }
            #expect(closed, "the server kept a connection whose headers never ended")
            #expect(ContinuousClock.now - started < .seconds(8))
            #expect(ContinuousClock.now - started >= .milliseconds(900))

            // Keep-alive: one request answered, then silence.
            let idle = try RawConnection(port: server.port)
            let status = try await offCooperativePool { try idle.exchange("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") }
            #expect(status.contains(" 200 "))
            let idleStart = ContinuousClock.now
            let idleClosed = try await offCooperativePool { idle.readUntilClosed(timeout: .seconds(15)).closed }
            #expect(idleClosed, "an idle connection stayed open")
            #expect(ContinuousClock.now - idleStart >= .seconds(1))

            #expect(await httpStatus(port: server.port, "/healthz") == 200)
        }
    }

    @Test("more connections than the server has descriptors: it stays up, keeps serving the ones it has, and answers again once they close")
    func descriptorExhaustion() async throws {
        raiseOwnDescriptorLimit()
        let database = try await TestDatabase.create()  // no password: its redacted URL is the URL
        try await withTemporaryDirectory { dir in
            let server = try await ServerProcess(
                environment: ["DRYDOCK_DATABASE_URL": database.redacted, "DRYDOCK_DATA_DIR": dir.appendingPathComponent("data").path,
                              "DRYDOCK_HEADER_TIMEOUT_SECONDS": "30", "DRYDOCK_IDLE_TIMEOUT_SECONDS": "60"],
                descriptorLimit: 128, logFile: dir.appendingPathComponent("server.log"))
            // A connection made before the flood keeps being served during it.
            let held = try RawConnection(port: server.port)
            #expect(try await offCooperativePool { try held.exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") }.contains(" 200 "))

            var flood: [Int32] = []
            defer { flood.forEach { close($0) } }
            for _ in 0..<400 {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
                guard fd >= 0 else { break }
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = in_port_t(UInt16(server.port).bigEndian)
                address.sin_addr.s_addr = inet_addr("127.0.0.1")
                _ = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                flood.append(fd)
            }
            #expect(flood.count == 400)
            // Give the server time to accept what it will; it must neither crash nor stop serving.
            let until = ContinuousClock.now + .seconds(4)
            while ContinuousClock.now < until, server.process.isRunning { try await Task.sleep(for: .milliseconds(200)) }
            #expect(server.process.isRunning, "the server died under the flood:\n\(server.lastOutput)")
            let during = try await offCooperativePool { try held.exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") }
            #expect(during.contains(" 200 "), "the held connection was not served during the flood")
            #expect(server.output.contains("connection limit reached"), "the limit was not logged:\n\(server.lastOutput)")

            flood.forEach { close($0) }
            flood.removeAll()
            var recovered = false
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline, !recovered {
                recovered = await httpStatus(port: server.port, "/healthz") == 200
            }
            #expect(recovered, "the server did not answer again after the connections closed:\n\(server.lastOutput)")
            #expect(server.process.isRunning)
            server.signal(SIGTERM)
            // Its shutdown ends with `pg_ctl stop`, which may wait up to a minute for PostgreSQL;
            // under the whole suite's load (emulated builds included) 30 s was once not enough.
            let status = try await server.waitForExit(timeout: .seconds(120))
            #expect(status == 0, "exit \(status.map(String.init) ?? "none within 120 s"):\n\(server.lastOutput)")
        }
    }

    @Test("PostgreSQL stopped: requests answer 503 with Retry-After within the wait limit, and work again once it is back, without a restart")
    func databaseOutage() async throws {
        try await withTemporaryDirectory { dir in
            let dataDir = dir.appendingPathComponent("data")
            let env = ["DRYDOCK_DATA_DIR": dataDir.path, "DRYDOCK_DATABASE_WAIT_SECONDS": "2", "HOME": dir.path]
            let server = try await ServerProcess(environment: env, logFile: dir.appendingPathComponent("server.log"))
            let bootstrap = try await runExecutable("drydock-server", ["bootstrap", "--org", "outage"], environment: env)
            let token = try #require(bootstrap.stdout.split(separator: "\n").last.map(String.init), "\(bootstrap.stderr)")
            func get(_ path: String, _ authorization: String) async throws -> String {
                try await offCooperativePool {
                    let connection = try RawConnection(port: server.port)
                    try connection.send("GET \(path) HTTP/1.1\r\nHost: x\r\nAuthorization: \(authorization)\r\nConnection: close\r\n\r\n")
                    return connection.readUntilClosed(timeout: .seconds(20)).text
                }
            }
            let bearer = "Bearer \(token)", basic = "Basic " + Data("ci:\(token)".utf8).base64EncodedString()
            #expect(try await get("/api/v1/projects", bearer).hasPrefix("HTTP/1.1 200"))
            let project = try #require(try await DrydockClient(baseURL: server.baseURL, token: token).createProject(name: "web").id)

            let postgres = try EmbeddedPostgres(dataDirectory: dataDir)
            await postgres.stop(logger: TestDatabase.logger)
            let started = ContinuousClock.now
            let api = try await get("/api/v1/projects", bearer)
            #expect(ContinuousClock.now - started < .seconds(10), "the request hung while PostgreSQL was down")
            #expect(api.hasPrefix("HTTP/1.1 503"), "\(api)")
            #expect(api.lowercased().contains("retry-after: "))
            #expect(api.contains("database_unavailable"))
            let registry = try await get("/v2/\(project)/app/tags/list", basic)
            #expect(registry.hasPrefix("HTTP/1.1 503"), "\(registry)")
            #expect(registry.contains("UNAVAILABLE"))
            #expect(await httpStatus(port: server.port, "/readyz", timeout: .seconds(10)) == 503)

            try await postgres.start(logger: TestDatabase.logger)
            var answer = ""
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline, !answer.hasPrefix("HTTP/1.1 200") {
                answer = try await get("/api/v1/projects", bearer)
            }
            #expect(answer.hasPrefix("HTTP/1.1 200"), "no recovery: \(answer)\n\(server.lastOutput)")
            #expect(server.process.isRunning)
            server.signal(SIGTERM)
            #expect(try await server.waitForExit() == 0, "\(server.lastOutput)")
        }
    }

    @Test("after kill -9 of the server, the next server adopts its private PostgreSQL and stops it on SIGTERM")
    func killedServerLeavesNoOrphan() async throws {
        try await withTemporaryDirectory { dir in
            let dataDir = dir.appendingPathComponent("data")
            let env = ["DRYDOCK_DATA_DIR": dataDir.path, "HOME": dir.path]
            let pidFile = dataDir.appendingPathComponent("postgres/postmaster.pid").path
            let first = try await ServerProcess(environment: env, logFile: dir.appendingPathComponent("first.log"))
            first.signal(SIGKILL)
            _ = try await first.waitForExit()
            #expect(FileManager.default.fileExists(atPath: pidFile), "PostgreSQL should outlive a killed server")

            let second = try await ServerProcess(environment: env, logFile: dir.appendingPathComponent("second.log"))
            #expect(second.output.contains("adopting the private PostgreSQL cluster"), "\(second.lastOutput)")
            #expect(await httpStatus(port: second.port, "/readyz") == 200)
            second.signal(SIGTERM)
            #expect(try await second.waitForExit() == 0, "\(second.lastOutput)")
            #expect(!FileManager.default.fileExists(atPath: pidFile), "the adopted cluster kept running:\n\(second.lastOutput)")
        }
    }

    @Test("SIGTERM is logged and starts the shutdown; a second one while the shutdown waits stops at once, with the private PostgreSQL")
    func secondSignalStopsNow() async throws {
        try await withTemporaryDirectory { dir in
            let dataDir = dir.appendingPathComponent("data")
            let env = ["DRYDOCK_DATA_DIR": dataDir.path, "HOME": dir.path]
            let pidFile = dataDir.appendingPathComponent("postgres/postmaster.pid").path
            let server = try await ServerProcess(environment: env, logFile: dir.appendingPathComponent("server.log"))
            #expect(await httpStatus(port: server.port, "/readyz") == 200)
            // A PostgreSQL that does not stop when asked keeps the graceful shutdown waiting at its
            // last step (here: stopped with SIGSTOP, so `pg_ctl stop` waits).
            let postmaster = try #require(
                (try? String(contentsOfFile: pidFile, encoding: .utf8))?.split(separator: "\n").first.flatMap { pid_t($0) })
            #expect(kill(postmaster, SIGSTOP) == 0)
            defer { kill(postmaster, SIGCONT) }
            server.signal(SIGTERM)
            let waiting = await eventually(.seconds(30)) { server.output.contains("stopping private PostgreSQL cluster") }
            #expect(waiting, "\(server.lastOutput)")
            #expect(server.output.contains("SIGTERM: shutting down gracefully"), "\(server.lastOutput)")
            #expect(server.process.isRunning)

            server.signal(SIGTERM)
            let stopping = await eventually(.seconds(30)) { server.output.contains("SIGTERM again: stopping now") }
            #expect(stopping, "\(server.lastOutput)")
            // The forced stop asks PostgreSQL to stop too, and waits for it (at most 20 s).
            kill(postmaster, SIGCONT)
            let status = try await server.waitForExit(timeout: .seconds(60))
            #expect(status == 130, "exit \(status.map(String.init) ?? "none within 60 s"):\n\(server.lastOutput)")
            #expect(!FileManager.default.fileExists(atPath: pidFile), "PostgreSQL outlived the forced stop:\n\(server.lastOutput)")
        }
    }

    @Test("a full disk: a push is refused with 507 naming storage, the partial upload is gone at once, and pushing works again", .enabled(if: SmallDisk.canMount))
    func fullDisk() async throws {
        try await SmallDisk.with(megabytes: 4) { mount in
            try await withTestServer(configure: { $0.dataDirectory = mount.appendingPathComponent("data") }) { server in
                let project = try await server.createProject("web")
                let start = try await server.registry(.post, "/v2/\(project)/app/blobs/uploads/", token: server.ownerToken)
                let location = try #require(start.headers[.location])
                let big = [UInt8](repeating: 7, count: 6 << 20)
                let patch = try await server.registry(.patch, location, token: server.ownerToken, body: big,
                                                      headers: [.contentType: "application/octet-stream"])
                let text = String(decoding: patch.body, as: UTF8.self)
                #expect(patch.status.code == 507, "\(patch.status) \(text)")
                #expect(text.contains("storage is full"))
                let uploads = try FileManager.default.contentsOfDirectory(atPath: server.dataDirectory.appendingPathComponent("uploads").path)
                #expect(uploads.isEmpty, "partial uploads left behind: \(uploads)")
                let status = try await server.registry(.get, location, token: server.ownerToken)
                #expect(status.status == .notFound, "the upload session outlived its file")

                let small = Array("hello".utf8)
                let digest = Digest.of(small).description
                let again = try await server.registry(.post, "/v2/\(project)/app/blobs/uploads/?digest=\(digest)", token: server.ownerToken, body: small)
                #expect(again.status == .created, "space was not freed")
            }
        }
    }
}

/// A tmpfs of a few megabytes, for running out of space on purpose (needs root and mount(2)).
enum SmallDisk {
    static let canMount: Bool = {
        guard geteuid() == 0 else { return false }
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("drydock-mount-probe-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: probe, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: probe) }
        guard mount("tmpfs", probe.path, "tmpfs", 0, "size=1m") == 0 else { return false }
        umount(probe.path)
        return true
    }()

    static func with<T>(megabytes: Int, _ body: (URL) async throws -> T) async throws -> T {
        let point = FileManager.default.temporaryDirectory.appendingPathComponent("drydock-small-disk-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: point, withIntermediateDirectories: true)
        guard mount("tmpfs", point.path, "tmpfs", 0, "size=\(megabytes)m") == 0 else {
            throw CLITestError("mount tmpfs: \(String(cString: strerror(errno)))")
        }
        defer {
            umount2(point.path, Int32(MNT_DETACH))
            try? FileManager.default.removeItem(at: point)
        }
        return try await body(point)
    }
}
