import DrydockClient
import DrydockProcess
@testable import DrydockServer
import Foundation
import Logging
import NIOCore
import Testing

/// moto in server mode on a kernel-chosen port, checking signatures with the access key it prints.
final class MotoS3: Sendable {
    let port: Int
    let key: String
    let secret: String
    let process: RunningProcess

    /// `checked`: signatures verified (moto cannot verify presigned URLs, so a store serving
    /// redirects needs an unchecked one).
    init(directory: URL, checked: Bool = true) async throws {
        port = try kernelPort()
        let log = directory.appendingPathComponent("moto-\(port).log")
        let process = try await RunningProcess(["python3", packageRoot.appendingPathComponent("Tests/Fixtures/moto-s3.py").path, "\(port)"]
                                               + (checked ? [] : ["--no-auth"]),
                                               environment: ProcessInfo.processInfo.environment, log: log.path)
        self.process = process
        var credentials: (String, String)?
        let started = await eventually(.seconds(60)) {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") where line.hasPrefix("{") {
                if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String],
                   let key = object["key"], let secret = object["secret"] {
                    credentials = (key, secret)
                }
            }
            return credentials != nil || !process.isRunning
        }
        guard started, let credentials else {
            process.signal(SIGKILL)
            throw CLITestError("moto did not start: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        }
        (key, secret) = credentials
    }

    var environment: [String: String] { ["AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret] }

    func stop() { process.signal(SIGKILL) }
}

/// The pass-through proxy that fails on request (Tests/Fixtures/s3-fault-proxy.py).
final class FaultProxy: Sendable {
    let port: Int
    let process: RunningProcess

    let scheme: String

    /// `tls`: https with that certificate and key (PEM files).
    /// `idle`: connections idle that many seconds are closed by the proxy.
    init(directory: URL, upstream: Int, tls: (certificate: String, key: String)? = nil, idle: Int? = nil, chunked: Bool = false) async throws {
        port = try kernelPort()
        scheme = tls == nil ? "http" : "https"
        let log = directory.appendingPathComponent("proxy-\(port).log")
        process = try await RunningProcess(["python3", packageRoot.appendingPathComponent("Tests/Fixtures/s3-fault-proxy.py").path, "\(port)", "\(upstream)"]
                                           + (tls.map { ["--tls", $0.certificate, $0.key] } ?? []) + (idle.map { ["--idle", "\($0)"] } ?? []) + (chunked ? ["--chunked"] : []),
                                           environment: ProcessInfo.processInfo.environment, log: log.path)
        let port = self.port
        let up = await eventually(.seconds(20)) {
            if tls == nil { return await httpStatus(port: port, "/__fault") == 200 }
            return (try? await runTool("curl", ["-skf", "https://127.0.0.1:\(port)/__fault"]).status) == 0
        }
        guard up else { throw CLITestError("the fault proxy did not start: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")") }
    }

    /// The next `count` requests containing `match` fail with `mode` (`500` or `drop`).
    func inject(_ mode: String, count: Int, match: String) async throws {
        let result = try await runTool("curl", ["-skf", "-X", "POST", "\(scheme)://127.0.0.1:\(port)/__fault?mode=\(mode)&count=\(count)&match=\(match)"])
        try #require(result.status == 0, "\(result.stderr)")
    }

    func injected() async throws -> Int { try await counts()["injected"] ?? -1 }

    /// Connections that carried requests to the store so far (not those asking for counts).
    func connections() async throws -> Int { try await counts()["connections"] ?? -1 }

    /// Of those, the ones still open.
    func openConnections() async throws -> Int { try await counts()["open"] ?? -1 }

    private func counts() async throws -> [String: Int] {
        let text = try await runTool("curl", ["-skf", "\(scheme)://127.0.0.1:\(port)/__fault"]).stdout
        var counts: [String: Int] = [:]
        for field in text.split(whereSeparator: \.isWhitespace) {
            let parts = field.split(separator: "=")
            if parts.count == 2, let value = Int(parts[1]) { counts[String(parts[0])] = value }
        }
        return counts
    }

    func stop() { process.signal(SIGKILL) }
}

/// Deterministic bytes that do not compress.
func pseudoRandomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    var bytes = [UInt8](repeating: 0, count: count)
    var i = 0
    while i < count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        withUnsafeBytes(of: state) { word in
            for byte in word where i < count {
                bytes[i] = byte
                i += 1
            }
        }
    }
    return bytes
}

/// Registry blobs and build contexts in an S3-compatible store: moto from PyPI, started by the
/// test, checking every request's SigV4 signature.
@Suite("S3-compatible blob store", .serialized)
struct S3StoreTests {
    static let logger = Logger(label: "s3-test")

    func chunks(_ bytes: ArraySlice<UInt8>, size: Int = 64 << 10) -> AsyncStream<ByteBuffer> {
        AsyncStream { continuation in
            var start = bytes.startIndex
            while start < bytes.endIndex {
                let end = min(start + size, bytes.endIndex)
                continuation.yield(ByteBuffer(bytes: bytes[start..<end]))
                start = end
            }
            continuation.finish()
        }
    }

    func readAll(_ store: S3BlobStore, _ digest: Digest, range: ClosedRange<Int64>? = nil) async throws -> [UInt8] {
        let blob = try #require(try await store.read(digest, range: range))
        var read: [UInt8] = []
        for try await chunk in blob.body { read += Array(chunk.readableBytesView) }
        return read
    }

    @Test("blob reads: one kept-alive connection serves read after read; a reader that stops early costs its connection, not the next read's bytes; a 500 or a connection dropped before the answer is retried; a connection the store closed while idle is replaced; a store answering in chunks without a length; a missing blob is nil")
    func reads() async throws {
        try await withTemporaryDirectory { dir in
            let moto = try await MotoS3(directory: dir)
            defer { moto.stop() }
            let proxy = try await FaultProxy(directory: dir, upstream: moto.port)
            defer { proxy.stop() }
            let settings = try S3Settings.parse(
                "s3://drydock-reads/r?endpoint=http://127.0.0.1:\(proxy.port)&region=us-east-1&path-style=true&part-size-mib=5",
                environment: moto.environment)
            let store = S3BlobStore(settings: settings, logger: Self.logger)
            try await store.prepare()
            let data = pseudoRandomBytes(6 << 20, seed: 7)
            let digest = try #require(Digest(sha256(data)))
            try await store.createUpload(id: "r1")
            _ = try await store.commit(upload: "r1", appending: chunks(data[...]), limit: .max, as: digest)
            // Pushed again (two parts, then the commit): the stored blob is not copied over again,
            // so a fault waiting for a write under blobs/ is never met.
            try await proxy.inject("500", count: 1, match: "PUT%20/drydock-reads/r/blobs/")
            try await store.createUpload(id: "r2")
            #expect(try await store.commit(upload: "r2", appending: chunks(data[...]), limit: .max, as: digest) == Int64(data.count))
            #expect(try await proxy.injected() == 0, "the second commit wrote the blob again")
            try await proxy.inject("500", count: 0, match: "")

            #expect(try await readAll(store, digest) == data)
            let before = try await proxy.connections()
            for _ in 0..<3 { #expect(try await readAll(store, digest) == data) }
            #expect(try await readAll(store, digest, range: 100...199) == Array(data[100...199]))
            #expect(try await store.read(Digest(sha256([1, 2, 3]))!, range: nil) == nil)
            #expect(try await proxy.connections() == before, "reads after the first opened connections of their own")

            // A reader that takes one piece and goes: that connection is closed, not handed to the next read mid-body.
            do {
                let blob = try #require(try await store.read(digest, range: nil))
                var iterator = blob.body.makeAsyncIterator()
                #expect(try await iterator.next() != nil)
            }
            // (It may have had the whole body already, and then its connection is kept.)
            #expect(try await readAll(store, digest) == data)
            #expect(try await proxy.connections() <= before + 1)

            // Faults before the answer's first byte: retried, the reader never sees them.
            let injected = try await proxy.injected()
            try await proxy.inject("500", count: 1, match: "GET%20/drydock-reads/r/blobs")
            #expect(try await readAll(store, digest) == data)
            try await proxy.inject("drop", count: 1, match: "GET%20/drydock-reads/r/blobs")
            #expect(try await readAll(store, digest) == data)
            #expect(try await proxy.injected() == injected + 2)

            // A store that closes idle connections (here after 1 s): the read after it is not hurt.
            // The same bucket through another proxy in front of moto.
            func storeThrough(_ other: FaultProxy) throws -> S3BlobStore {
                var through = settings
                through.endpoint = try #require(URL(string: "http://127.0.0.1:\(other.port)"))
                return S3BlobStore(settings: through, logger: Self.logger)
            }
            let closing = try await FaultProxy(directory: dir, upstream: moto.port, idle: 1)
            defer { closing.stop() }
            let closingStore = try storeThrough(closing)
            #expect(try await readAll(closingStore, digest) == data)
            let closed = await eventually(.seconds(20)) { (try? await closing.openConnections()) == 0 }
            #expect(closed, "the proxy still holds connections open")
            #expect(try await readAll(closingStore, digest) == data)
            #expect(try await closing.connections() == 2)

            // A store that answers in chunks, without a length: the blob's size still comes out right.
            let chunking = try await FaultProxy(directory: dir, upstream: moto.port, chunked: true)
            defer { chunking.stop() }
            let chunkingStore = try storeThrough(chunking)
            let whole = try #require(try await chunkingStore.read(digest, range: nil))
            #expect(whole.size == Int64(data.count))
            #expect(try await chunkingStore.read(digest, range: 10...19)?.size == 10)
            #expect(try await readAll(chunkingStore, digest) == data)
            #expect(try await readAll(chunkingStore, digest, range: 10...19) == Array(data[10...19]))
        }
    }

    @Test("an https store whose certificate a private CA signed: trusted through AWS_CA_BUNDLE, uploads and reads go over TLS; without the bundle the store's certificate is refused, in words")
    func privateCA() async throws {
        try await withTemporaryDirectory { dir in
            let script = """
                set -e
                openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=drydock-test-ca 2>/dev/null
                openssl req -newkey rsa:2048 -nodes -keyout store.key -out store.csr -subj /CN=localhost 2>/dev/null
                printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > store.ext
                openssl x509 -req -in store.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out store.pem -days 2 -extfile store.ext 2>/dev/null
                """
            let made = try await runTool("bash", ["-c", "cd '\(dir.path)' && " + script])
            try #require(made.status == 0, "\(made.stderr)")
            let moto = try await MotoS3(directory: dir)
            defer { moto.stop() }
            let proxy = try await FaultProxy(directory: dir, upstream: moto.port,
                                             tls: (dir.appendingPathComponent("store.pem").path, dir.appendingPathComponent("store.key").path))
            defer { proxy.stop() }
            let url = "s3://drydock-tls/t?endpoint=https://localhost:\(proxy.port)&region=us-east-1&path-style=true"
            let trusted = try S3Settings.parse(url, environment: moto.environment.merging(["AWS_CA_BUNDLE": dir.appendingPathComponent("ca.pem").path]) { $1 })
            let store = S3BlobStore(settings: trusted, logger: Self.logger)
            try await store.prepare()
            let data = pseudoRandomBytes(3 << 20, seed: 11)
            let digest = try #require(Digest(sha256(data)))
            try await store.createUpload(id: "t1")
            #expect(try await store.commit(upload: "t1", appending: chunks(data[...]), limit: .max, as: digest) == Int64(data.count))
            #expect(try await readAll(store, digest) == data)
            #expect(try await readAll(store, digest, range: 7...10) == Array(data[7...10]))
            #expect(try await proxy.connections() >= 2)

            // The system's roots do not include the test's CA: a read fails and says why. (Other
            // requests go through AsyncHTTPClient, which retries a failing connection for its
            // 10-second connect timeout, three times: not waited for here.)
            let untrusted = S3BlobStore(settings: try S3Settings.parse(url, environment: moto.environment.merging(["AWS_CA_BUNDLE": ""]) { $1 }),
                                        logger: Self.logger)
            do {
                _ = try await untrusted.read(digest, range: nil)
                Issue.record("a store with an untrusted certificate was read")
            } catch {
                #expect("\(error)".contains("CERTIFICATE_VERIFY_FAILED"), "\(error)")
            }
            // A server starting on it stops at once, saying what to set.
            do {
                try await untrusted.prepare()
                Issue.record("a store with an untrusted certificate was accepted at start")
            } catch {
                #expect("\(error)".contains("AWS_CA_BUNDLE"), "\(error)")
            }
            #expect(throws: ConfigurationError.self) {
                try S3Settings.parse(url, environment: moto.environment.merging(["AWS_CA_BUNDLE": dir.appendingPathComponent("none.pem").path]) { $1 })
            }
        }
    }

    @Test("an upload continued on another replica goes through multipart parts and a tail, is verified by reading it back, and reads whole and by range; a wrong digest or a too-large upload leaves nothing; the collector's listing finds the blobs")
    func store() async throws {
        try await withTemporaryDirectory { dir in
            let moto = try await MotoS3(directory: dir)
            defer { moto.stop() }
            let settings = try S3Settings.parse(
                "s3://drydock-unit/some/prefix?endpoint=http://127.0.0.1:\(moto.port)&region=us-east-1&path-style=true&part-size-mib=5",
                environment: moto.environment)
            let a = S3BlobStore(settings: settings, logger: Self.logger)
            let b = S3BlobStore(settings: settings, logger: Self.logger)  // another replica: none of a's running state
            try await a.prepare()

            let data = pseudoRandomBytes(13 << 20, seed: 1)
            let digest = try #require(Digest(sha256(data)))
            try await a.createUpload(id: "u1")
            #expect(try await a.append(to: "u1", chunks(data[0..<(3 << 20)]), limit: .max) == 3 << 20)
            #expect(try await b.uploadSize(id: "u1") == 3 << 20)
            #expect(try await b.append(to: "u1", chunks(data[(3 << 20)..<(7 << 20)]), limit: .max) == 7 << 20)
            #expect(try await a.append(to: "u1", chunks(data[(7 << 20)...]), limit: .max) == 13 << 20)
            let state = try #require(try await a.loadState("u1"))
            #expect(state.multipart != nil && state.parts.count == 2, "\(state.parts.map(\.size))")
            #expect(state.tail == (13 << 20) - state.parts.reduce(0) { $0 + $1.size })
            // Committed on b, whose running hash does not cover a's last bytes: it reads the upload back.
            #expect(try await b.commit(upload: "u1", as: digest) == 13 << 20)
            #expect(try await a.size(of: digest) == 13 << 20)
            let whole = try #require(try await a.read(digest, range: nil))
            var read: [UInt8] = []
            for try await chunk in whole.body { read += Array(chunk.readableBytesView) }
            #expect(read == data)
            let ranged = try #require(try await b.read(digest, range: Int64(5 << 20)...Int64((5 << 20) + 99)))
            var slice: [UInt8] = []
            for try await chunk in ranged.body { slice += Array(chunk.readableBytesView) }
            #expect(slice == Array(data[(5 << 20)..<((5 << 20) + 100)]))
            // One request on one replica, larger than a part: parts, verified before completing.
            let second = pseudoRandomBytes(11 << 20, seed: 2)
            let secondDigest = try #require(Digest(sha256(second)))
            try await a.createUpload(id: "u2")
            #expect(try await a.commit(upload: "u2", appending: chunks(second[...]), limit: .max, as: secondDigest) == 11 << 20)
            #expect(try await b.size(of: secondDigest) == 11 << 20)
            // Small, in one request: a single PUT.
            let small = Array("a config blob".utf8)
            let smallDigest = try #require(Digest(sha256(small)))
            try await b.createUpload(id: "u3")
            #expect(try await b.commit(upload: "u3", appending: chunks(small[...]), limit: .max, as: smallDigest) == Int64(small.count))

            // A wrong digest: refused, no blob under either digest, nothing of the upload left.
            let wrong = pseudoRandomBytes(6 << 20, seed: 3)
            try await a.createUpload(id: "u4")
            _ = try await a.append(to: "u4", chunks(wrong[...]), limit: .max)
            await #expect(throws: BlobStoreError.digestMismatch(actual: sha256(wrong))) {
                try await a.commit(upload: "u4", as: Digest(sha256([9, 9, 9]))!)
            }
            #expect(try await a.size(of: Digest(sha256(wrong))!) == nil)
            #expect(try await a.uploadSize(id: "u4") == nil)
            // Too large: refused before it is stored.
            try await a.createUpload(id: "u5")
            await #expect(throws: BlobStoreError.tooLarge) { try await a.append(to: "u5", chunks(wrong[...]), limit: 1 << 20) }
            try await a.cancelUpload(id: "u5")
            for id in ["u1", "u2", "u3", "u4", "u5"] {
                for name in ["state", "tail", "data"] { #expect(try await a.client.head(a.uploadKey(id, name)) == nil, "\(id)/\(name) left behind") }
            }

            // Listing (moto cannot check the signature of a list whose prefix has a '/': boto3's
            // own fails the same way against it, so this part runs on an unchecked moto).
            let open = try await MotoS3(directory: dir, checked: false)
            defer { open.stop() }
            let listing = S3BlobStore(settings: try S3Settings.parse("s3://drydock-list/p?endpoint=http://127.0.0.1:\(open.port)&path-style=true",
                                                                     environment: open.environment), logger: Self.logger)
            try await listing.prepare()
            var stored: Set<Digest> = []
            for blob in [small, Array(wrong[0..<100]), Array(second[0..<(6 << 20)])] {
                let blobDigest = try #require(Digest(sha256(blob)))
                try await listing.createUpload(id: "l\(stored.count)")
                _ = try await listing.commit(upload: "l\(stored.count)", appending: chunks(blob[...]), limit: .max, as: blobDigest)
                stored.insert(blobDigest)
            }
            var listed: Set<Digest> = []
            try await listing.listBlobs { page in for entry in page { listed.insert(entry.digest) } }
            #expect(listed == stored)
            #expect(try await listing.client.list(prefix: "p/uploads/", after: nil).objects.isEmpty)

            // A project's contexts: their own prefix, removed together.
            let contexts = listing.scoped("contexts/p1")
            try await contexts.createUpload(id: "c1")
            _ = try await contexts.commit(upload: "c1", appending: chunks(small[...]), limit: .max, as: smallDigest)
            #expect(try await contexts.size(of: smallDigest) == Int64(small.count))
            try await contexts.removeAll()
            #expect(try await contexts.size(of: smallDigest) == nil)
            #expect(try await listing.size(of: smallDigest) == Int64(small.count), "the registry's blob is not the context's")

        }
    }

    @Test("configuration: the s3:// form with its settings, and clear refusals")
    func configuration() throws {
        let env = ["AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"]
        let parsed = try S3Settings.parse("s3://bucket/a/b?endpoint=http://minio:9000&region=eu-west-1&path-style=true", environment: env)
        #expect(parsed.bucket == "bucket" && parsed.prefix == "a/b/" && parsed.region == "eu-west-1" && parsed.pathStyle && !parsed.redirect)
        #expect(parsed.endpoint.absoluteString == "http://minio:9000")
        let aws = try S3Settings.parse("s3://bucket", environment: env.merging(["AWS_REGION": "us-west-2"]) { $1 })
        #expect(aws.endpoint.absoluteString == "https://s3.us-west-2.amazonaws.com" && aws.prefix.isEmpty && !aws.pathStyle)
        #expect(S3Client(settings: aws, logger: Self.logger).address(key: "k/x").host == "bucket.s3.us-west-2.amazonaws.com")
        #expect(throws: ConfigurationError.self) { try S3Settings.parse("s3://bucket", environment: [:]) }
        #expect(throws: ConfigurationError.self) { try S3Settings.parse("s3://bucket?endpoint=ftp://x", environment: env) }
        #expect(throws: ConfigurationError.self) { try S3Settings.parse("s3://bucket?pathstyle=true", environment: env) }
        #expect(throws: ConfigurationError.self) { try S3Settings.parse("s3://bucket?part-size-mib=1", environment: env) }
        let configured = try ServerConfiguration.fromEnvironment(env.merging(["DRYDOCK_BLOB_STORE": "s3://bucket/p?endpoint=http://127.0.0.1:9"]) { $1 })
        #expect(configured.blobStoreS3?.bucket == "bucket" && configured.blobStoreDirectory == nil)
    }

    @Test("a server on S3: skopeo pushes and pulls through it, nothing lands in the data dir; a 500 or a dropped connection mid-upload fails the push cleanly and a retry succeeds; a blob far larger than the server's memory growth streams both ways; presigned redirects serve pulls; orphans are collected")
    func server() async throws {
        try await withTemporaryDirectory { dir in
            let moto = try await MotoS3(directory: dir)
            defer { moto.stop() }
            let proxy = try await FaultProxy(directory: dir, upstream: moto.port)
            defer { proxy.stop() }
            let database = try await TestDatabase.create()
            let store = "s3://drydock-e2e/registry?endpoint=http://127.0.0.1:\(proxy.port)&region=us-east-1&path-style=true&part-size-mib=5"
            func server(_ name: String, store: String) async throws -> ServerProcess {
                try await ServerProcess(environment: [
                    "DRYDOCK_DATABASE_URL": database.redacted, "DRYDOCK_DATA_DIR": dir.appendingPathComponent(name).path,
                    "DRYDOCK_BLOB_STORE": store, "HOME": dir.path,
                ].merging(moto.environment) { $1 }, logFile: dir.appendingPathComponent("\(name).log"))
            }
            let a = try await server("a", store: store)
            let bootstrap = try await runExecutable("drydock-server", ["bootstrap", "--org", "s3", "--database-url", database.redacted],
                                                    environment: ["HOME": dir.path, "DRYDOCK_DATA_DIR": dir.appendingPathComponent("cli").path])
            let owner = try #require(bootstrap.stdout.split(separator: "\n").last.map(String.init), "\(bootstrap.stderr)")
            let client = DrydockClient(baseURL: a.baseURL, token: owner)
            let project = try await client.createProject(name: "app").id
            let host = "127.0.0.1:\(a.port)"
            let creds = "ci:\(owner)"
            var manifests: Set<String> = []
            func layout(_ name: String, layers: Int, kib: Int) async throws -> String {
                let path = dir.appendingPathComponent(name).path
                let made = try await runTool("python3", [packageRoot.appendingPathComponent("Tests/Fixtures/make-oci-layout.py").path,
                                                         path, "\(layers)", "\(kib)", name])
                try #require(made.status == 0, "\(made.stderr)")
                manifests.insert(made.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
                return path
            }
            func push(_ path: String, _ tag: String) async throws -> CommandResult {
                try await runTool("skopeo", ["copy", "--retry-times", "0", "--dest-tls-verify=false", "--dest-creds", creds,
                                             "oci:\(path):latest", "docker://\(host)/\(project)/app:\(tag)"])
            }

            // Two layers of 7 MiB (multipart with 5 MiB parts) and two small ones.
            let image = try await layout("image", layers: 2, kib: 7000)
            let pushed = try await push(image, "v1")
            #expect(pushed.status == 0, "\(pushed.stderr)\n\(a.lastOutput)")
            let pulled = dir.appendingPathComponent("pulled").path
            let pull = try await runTool("skopeo", ["copy", "--src-tls-verify=false", "--src-creds", creds,
                                                    "docker://\(host)/\(project)/app:v1", "oci:\(pulled):v1"])
            #expect(pull.status == 0, "\(pull.stderr)")
            let original = Set(try FileManager.default.contentsOfDirectory(atPath: image + "/blobs/sha256"))
            #expect(original == Set((try? FileManager.default.contentsOfDirectory(atPath: pulled + "/blobs/sha256")) ?? []))
            // The bytes are in the bucket; nothing of them under the data dir.
            let settings = try S3Settings.parse(store, environment: moto.environment)
            let bucket = S3BlobStore(settings: settings, logger: Self.logger)
            // Every blob (the manifest is kept in PostgreSQL) with its size.
            for name in original where !manifests.contains("sha256:" + name) {
                let size = (try FileManager.default.attributesOfItem(atPath: image + "/blobs/sha256/" + name)[.size] as? NSNumber)?.int64Value
                #expect(try await bucket.size(of: Digest("sha256:" + name)!) == size, "blob \(name) is not in the bucket")
            }
            for sub in ["blobs", "uploads", "contexts"] {
                let path = dir.appendingPathComponent("a/\(sub)").path
                let found = FileManager.default.enumerator(atPath: path)?.allObjects.compactMap { $0 as? String }.filter { !$0.hasSuffix("/") } ?? []
                let files = found.filter { var isDir: ObjCBool = false; return FileManager.default.fileExists(atPath: path + "/" + $0, isDirectory: &isDir) && !isDir.boolValue }
                #expect(files.isEmpty, "files under the data dir's \(sub): \(files)")
            }
            // A build context lands in the bucket, under the project's prefix.
            let context = dir.appendingPathComponent("context.tar")
            let contextBytes = pseudoRandomBytes(10_240, seed: 7)
            try Data(contextBytes).write(to: context)
            let contextDigest = sha256(contextBytes)
            _ = try await client.uploadContext(projectId: project, digest: contextDigest, file: context)
            #expect(try await bucket.scoped("contexts/\(project)").size(of: Digest(contextDigest)!) == 10_240)

            // The store fails every part upload for a while: the push fails cleanly; then it succeeds.
            let second = try await layout("second", layers: 1, kib: 7000)
            try await proxy.inject("500", count: 1000, match: "partNumber")
            let failed = try await push(second, "v2")
            #expect(failed.status != 0)
            #expect(failed.stderr.contains("503") || failed.stderr.lowercased().contains("storage"), "\(failed.stderr)")
            // The server tried each failing part three times before giving up.
            #expect(try await proxy.injected() >= 3)
            #expect(await httpStatus(port: a.port, "/readyz") == 200, "the server is still serving")
            try await proxy.inject("500", count: 0, match: "")
            let retried = try await push(second, "v2")
            #expect(retried.status == 0, "\(retried.stderr)\n\(a.lastOutput)")
            // The connection dropped mid-part: the same.
            let third = try await layout("third", layers: 1, kib: 7000)
            try await proxy.inject("drop", count: 1000, match: "partNumber")
            let injectedBefore = try await proxy.injected()
            #expect(try await push(third, "v3").status != 0)
            #expect(try await proxy.injected() >= injectedBefore + 3)
            try await proxy.inject("drop", count: 0, match: "")
            let again = try await push(third, "v3")
            #expect(again.status == 0, "\(again.stderr)\n\(a.lastOutput)")
            // One failure alone is retried by the server: the client never sees it.
            let fourth = try await layout("fourth", layers: 1, kib: 7000)
            try await proxy.inject("500", count: 1, match: "partNumber")
            let injectedBeforeOne = try await proxy.injected()
            let absorbed = try await push(fourth, "v4")
            #expect(absorbed.status == 0, "\(absorbed.stderr)")
            #expect(try await proxy.injected() == injectedBeforeOne + 1)

            // 192 MiB through one PUT and back: the server's peak memory grows far less than that.
            let big = dir.appendingPathComponent("big.bin")
            let made = try await runTool("sh", ["-c", "head -c 201326592 /dev/urandom > \(big.path) && sha256sum \(big.path)"])
            let bigDigest = "sha256:" + (made.stdout.split(separator: " ").first.map(String.init) ?? "")
            func peak() -> Int {
                let status = (try? String(contentsOfFile: "/proc/\(a.pid)/status", encoding: .utf8)) ?? ""
                let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
                return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
            }
            let before = peak()
            let started = try await runTool("curl", ["-s", "-u", creds, "-X", "POST", "-o", "/dev/null", "-D", "-",
                                                     "http://\(host)/v2/\(project)/big/blobs/uploads/"])
            let location = try #require(started.stdout.split(separator: "\r\n").first { $0.lowercased().hasPrefix("location:") }
                .map { $0.dropFirst("location:".count).trimmingCharacters(in: .whitespaces) }, "\(started.stdout)")
            let put = try await runTool("curl", ["-s", "-u", creds, "-o", "/dev/null", "-w", "%{http_code}", "-T", big.path,
                                                 "-H", "Content-Type: application/octet-stream", "http://\(host)\(location)?digest=\(bigDigest)"])
            #expect(put.stdout == "201", "\(put.stdout) \(put.stderr)\n\(a.lastOutput)")
            let back = try await runTool("sh", ["-c", "curl -sf -u '\(creds)' http://\(host)/v2/\(project)/big/blobs/\(bigDigest) | sha256sum"])
            #expect(back.stdout.hasPrefix(String(bigDigest.dropFirst("sha256:".count))), "\(back.stdout) \(back.stderr)")
            let grown = peak() - before
            print("S3 store: a 192 MiB blob pushed and pulled; the server's peak memory grew by \(grown) KiB")
            #expect(grown < 64 * 1024, "peak memory grew by \(grown) KiB for a 192 MiB blob")

            // Redirects to presigned URLs (on a store moto does not check: it cannot check
            // presigned URLs): skopeo follows them and pulls what was pushed; the URL works
            // without credentials and expires.
            let open = try await MotoS3(directory: dir, checked: false)
            defer { open.stop() }
            let r = try await server("r", store: "s3://drydock-open/r?endpoint=http://127.0.0.1:\(open.port)&path-style=true&redirect=true")
            let pushR = try await runTool("skopeo", ["copy", "--dest-tls-verify=false", "--dest-creds", creds,
                                                     "oci:\(image):latest", "docker://127.0.0.1:\(r.port)/\(project)/other:r"])
            #expect(pushR.status == 0, "\(pushR.stderr)\n\(r.lastOutput)")
            let layer = try #require(original.first { ((try? FileManager.default.attributesOfItem(atPath: image + "/blobs/sha256/" + $0)[.size] as? Int) ?? 0) > 1 << 20 })
            let redirected = try await runTool("curl", ["-s", "-u", creds, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                                                        "http://127.0.0.1:\(r.port)/v2/\(project)/other/blobs/sha256:\(layer)"])
            #expect(redirected.stdout.hasPrefix("307 http://127.0.0.1:\(open.port)/drydock-open/r/blobs/sha256/"), "\(redirected.stdout)")
            #expect(redirected.stdout.contains("X-Amz-Signature=") && redirected.stdout.contains("X-Amz-Expires=1200"))
            let viaStore = dir.appendingPathComponent("via-store").path
            let direct = try await runTool("skopeo", ["copy", "--src-tls-verify=false", "--src-creds", creds,
                                                      "docker://127.0.0.1:\(r.port)/\(project)/other:r", "oci:\(viaStore):r"])
            #expect(direct.status == 0, "\(direct.stderr)")
            #expect(original == Set((try? FileManager.default.contentsOfDirectory(atPath: viaStore + "/blobs/sha256")) ?? []))

            // A blob in the bucket that no row knows (a crash between storing and recording) is
            // collected once it is older than the grace period.
            // (On the unchecked store: moto cannot check a listing's signature.)
            let openBucket = S3BlobStore(settings: try S3Settings.parse("s3://drydock-open/r?endpoint=http://127.0.0.1:\(open.port)&path-style=true",
                                                                        environment: open.environment), logger: Self.logger)
            let orphan = Array("orphan".utf8)
            let orphanDigest = Digest(sha256(orphan))!
            try await openBucket.createUpload(id: "orphan")
            _ = try await openBucket.commit(upload: "orphan", appending: chunks(orphan[...]), limit: .max, as: orphanDigest)
            let collected = try await ServerRunner.withDatabase(database, logger: Self.logger) { db in
                let janitor = RegistryJanitor(store: RegistryStore(client: db, logger: Self.logger), blobs: openBucket, logger: Self.logger, grace: .seconds(0))
                return try await janitor.removeOrphans()
            }
            #expect(collected == 1)
            #expect(try await openBucket.size(of: orphanDigest) == nil)
            for name in original where !manifests.contains("sha256:" + name) {
                #expect(try await openBucket.size(of: Digest("sha256:" + name)!) != nil, "a known blob was collected")
            }
            r.signal(SIGTERM)
            a.signal(SIGTERM)
            _ = try await r.waitForExit(timeout: .seconds(60))
            _ = try await a.waitForExit(timeout: .seconds(60))
        }
    }

}
