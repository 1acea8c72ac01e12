import DrydockWireFormats
import Foundation
import Testing

/// The parsers applied to what clients send. Each table row is a case a client can send; the
/// regression rows are inputs that once crashed the server or that the fuzzers turned up.
@Suite("Unit: wire formats")
struct WireFormatTests {
    @Test("Content-Range start offsets", arguments: [
        ("0-1023", Int64?.some(0)), ("1024-2047", 1024), ("bytes 10-19/100", 10), ("bytes 10-19/*", 10), ("5-", 5),
        // These killed drydock-server (an index into an empty split):
        ("/", nil), ("bytes /", nil), ("", nil),
        ("-", nil), ("bytes -/", nil), ("a-b", nil), ("10-5", nil), ("+1-2", nil), ("٣-4", nil), ("99999999999999999999-1", nil),
    ])
    func contentRange(header: String, start: Int64?) {
        #expect(parseContentRangeStart(header) == start)
    }

    @Test("Range headers against a 100-byte blob", arguments: [
        ("bytes=0-9", 0...9 as ClosedRange<Int>?), ("bytes=90-", 90...99), ("bytes=-10", 90...99), ("bytes=-1000", 0...99), ("bytes=5-1000", 5...99),
        ("bytes=100-", nil), ("bytes=9-5", nil), ("bytes=0-1,5-6", nil), ("bytes=", nil), ("bytes=-", nil), ("bytes=-0", nil),
        ("items=0-1", nil), ("bytes=x-1", nil), ("bytes=-9223372036854775807", nil),
    ])
    func byteRange(header: String, range: ClosedRange<Int>?) {
        #expect(parseByteRange(header, size: 100) == range)
    }

    @Test("a manifest's declared image bytes: config and layers added, negative sizes as 0, a sum past Int64.max held there")
    func declaredImageBytes() throws {
        func document(_ sizes: [Int64]) throws -> OCIManifestDocument {
            let layers = sizes.map { #"{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:00","size":\#($0)}"# }
            let json = #"{"schemaVersion":2,"config":{"digest":"sha256:00","size":10},"layers":[\#(layers.joined(separator: ","))]}"#
            return try JSONDecoder().decode(OCIManifestDocument.self, from: Data(json.utf8))
        }
        #expect(try document([5, 7]).declaredImageBytes == 22)
        #expect(try document([-5, 7]).declaredImageBytes == 17)
        #expect(try document([Int64.max, Int64.max]).declaredImageBytes == Int64.max)
        #expect(Int64.max.addingClamped(1) == .max && Int64.min.addingClamped(-1) == .min && Int64(2).addingClamped(-3) == -1)
    }

    @Test("a Range on an empty blob is never satisfiable")
    func emptyBlobRange() {
        #expect(parseByteRange("bytes=0-", size: 0) == nil)
        #expect(parseByteRange("bytes=-1", size: 0) == nil)
    }

    @Test("Content-Type media types", arguments: [
        ("application/vnd.oci.image.manifest.v1+json", String?.some("application/vnd.oci.image.manifest.v1+json")),
        ("Application/JSON; charset=utf-8", "application/json"), (" text/plain ;x=y", "text/plain"),
        // The second crash of the old server: Content-Type ";" or empty.
        (";", nil), ("", nil), (" ; ", nil), ("a/", nil), ("/b", nil), ("a/b/c", nil), ("a b/c", nil),
    ])
    func mediaType(header: String, expected: String?) {
        #expect(parseMediaType(header) == expected)
    }

    @Test("Authorization headers", arguments: [
        ("Bearer abc", "bearer", String?.some("abc")), ("basic   Y2k6eA==  ", "basic", "Y2k6eA=="), ("Bearer", "", nil), ("Bearer ", "", nil), ("", "", nil),
    ])
    func authorization(header: String, scheme: String, value: String?) {
        let parsed = parseAuthorization(header)
        #expect(parsed?.value == value)
        if value != nil { #expect(parsed?.scheme == scheme) }
    }

    @Test("Basic credentials take everything after the first colon as the password")
    func basicCredentials() throws {
        let encoded = Data("ci:ddp_a:b".utf8).base64EncodedString()
        let parsed = try #require(parseBasicCredentials(encoded))
        #expect(parsed.user == "ci")
        #expect(parsed.password == "ddp_a:b")
        #expect(parseBasicCredentials("!!!!") == nil)
        #expect(parseBasicCredentials(Data([0xff, 0xfe, 0x3a]).base64EncodedString()) == nil, "not UTF-8")
        #expect(parseBasicCredentials(Data("nocolon".utf8).base64EncodedString()) == nil)
        #expect(parseBasicCredentials("Y2k6eA===") == nil, "three padding characters")
    }

    @Test("token scopes")
    func scopes() throws {
        let scope = try #require(RegistryScope("repository:host:5000/abcdefgh12345678/app:pull,push"))
        #expect(scope.type == "repository")
        #expect(scope.name == "host:5000/abcdefgh12345678/app")
        #expect(scope.actions == ["pull", "push"])
        #expect(RegistryScope("registry:catalog:*")?.actions == ["*"])
        for bad in ["", ":", "::", "repository::pull", ":name:pull", "repository:name"] {
            #expect(RegistryScope(bad) == nil, "\(bad)")
        }
    }

    @Test("form bodies and percent escapes")
    func forms() throws {
        let pairs = try #require(parseFormURLEncoded("grant_type=password&password=a%2Bb+c&scope=x&flag"))
        #expect(pairs.map(\.name) == ["grant_type", "password", "scope", "flag"])
        #expect(pairs[1].value == "a+b c")
        #expect(pairs[3].value == "")
        for bad in ["password=%zz", "password=%0", "password=%00", "password=%ff", "a%"] {
            #expect(parseFormURLEncoded(bad) == nil, "\(bad)")
        }
        #expect(percentDecoded("/v2/a/tags/list?last=%C3%A9") == "/v2/a/tags/list?last=é")
        #expect(!isCleanRequestTarget("/v2/x/tags/list?last=%00"))
        #expect(!isCleanRequestTarget("/api/v1/builds?projectId=%ff"))
        #expect(isCleanRequestTarget("/api/v1/builds?projectId=abc&limit=5"))
    }

    @Test("repository names follow the distribution grammar", arguments: [
        ("abcdefgh12345678/app", true), ("abcdefgh12345678/team/app-1", true), ("abcdefgh12345678/a__b.c--d", true),
        ("abcdefgh12345678", false), ("abcdefgh12345678/", false), ("abcdefgh12345678/App", false), ("abcdefgh12345678/-a", false),
        ("abcdefgh12345678/a-", false), ("abcdefgh12345678/a._b", false), ("abcdefgh12345678/a___b", false), ("abcdefgh12345678//a", false),
        ("short/app", false), ("ABCDEFGH12345678/app", false), ("abcdefgh12345678/" + String(repeating: "a", count: 238), true),
        ("abcdefgh12345678/" + String(repeating: "a", count: 239), false),
    ])
    func repositoryNames(name: String, valid: Bool) throws {
        let parsed = RepositoryName(name)
        #expect((parsed != nil) == valid)
        if let parsed {
            #expect(parsed.projectId == "abcdefgh12345678")
            #expect(parsed.description == name)
        }
    }

    @Test("tags", arguments: [("latest", true), ("v1.2.3-rc_1", true), ("_x", true), (".x", false), ("-x", false), ("", false),
                               (String(repeating: "a", count: 128), true), (String(repeating: "a", count: 129), false), ("a/b", false)])
    func tags(tag: String, valid: Bool) {
        #expect(isValidTag(tag) == valid)
    }

    @Test("digests", arguments: [
        ("sha256:" + String(repeating: "a", count: 64), true), ("sha512:" + String(repeating: "0", count: 128), true),
        ("sha256:" + String(repeating: "A", count: 64), false), ("sha256:" + String(repeating: "a", count: 63), false),
        ("md5:" + String(repeating: "a", count: 32), false), ("sha256", false), (":", false), ("", false),
    ])
    func digests(text: String, valid: Bool) {
        #expect((Digest(text) != nil) == valid)
        if let digest = Digest(text) { #expect(digest.description == text) }
    }

    @Test("hashing gives the well-known digests")
    func hashing() {
        #expect(Digest.of(Array("hello".utf8)).description == "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        #expect(Digest.of([UInt8](), algorithm: .sha512).hex.hasPrefix("cf83e1357eefb8bdf1542850d66d8007"))
    }

    /// Every seed the fuzzers start from goes through its parser here too, so a seed that
    /// reproduces a past crash keeps being checked on every test run.
    @Test("every fuzz seed parses without trapping")
    func fuzzSeeds() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/corpus")
        let targets = try FileManager.default.contentsOfDirectory(atPath: root.path)
        #expect(targets.count >= 10)
        var seen = 0
        for target in targets {
            for file in (try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(target).path)) ?? [] {
                let bytes = try [UInt8](Data(contentsOf: root.appendingPathComponent(target).appendingPathComponent(file)))
                let text = String(decoding: bytes, as: UTF8.self)
                _ = parseContentRangeStart(text)
                _ = parseByteRange(text, size: 1000)
                _ = parseMediaType(text)
                _ = parseAuthorization(text).map { parseBasicCredentials($0.value) }
                _ = Digest(text)
                _ = RepositoryName(text)
                _ = RegistryScope(text)
                _ = parseFormURLEncoded(text)
                seen += 1
            }
        }
        #expect(seen >= 10)
    }
}

@Suite("Unit: image references")
struct ImageReferenceTests {
    @Test("loopback registries (reached over plain HTTP) and others", arguments: [
        ("localhost", true), ("localhost:5000", true), ("127.0.0.1:8080", true), ("127.1.2.3", true), ("[::1]:5000", true),
        ("registry.example.com", false), ("10.0.0.1:5000", false), ("127example.com", false), ("[fe80::1]:5000", false),
    ])
    func loopback(host: String, expected: Bool) {
        #expect(ImageReference.isLoopback(host: host) == expected)
    }

    @Test("tags resolve into the project registry unless they name a registry", arguments: [
        ("app", "p/app:latest"), ("app:1.2", "p/app:1.2"), ("team/app:1", "p/team/app:1"),
        ("ghcr.io/team/app:1", "ghcr.io/team/app:1"), ("localhost:5000/app", "localhost:5000/app:latest"),
        ("localhost/app", "localhost/app:latest"), ("registry.example.com/a", "registry.example.com/a:latest"),
    ])
    func resolves(raw: String, resolved: String) throws {
        #expect(try #require(ImageReference(raw)).resolved(inProject: "p") == resolved)
    }

    @Test("malformed references are refused", arguments: ["", "App", "app:", "app:-x", "app@sha256:abc", "/app", "app/", "a//b", "-a"])
    func refuses(raw: String) {
        #expect(ImageReference(raw) == nil)
    }

    @Test("the registry a reference names")
    func hosts() {
        #expect(ImageReference.registryHost(of: "ghcr.io/team/app") == "ghcr.io")
        #expect(ImageReference.registryHost(of: "localhost:5000/app:1") == "localhost:5000")
        #expect(ImageReference.registryHost(of: "team/app") == nil)
        #expect(ImageReference.registryHost(of: "ghcr.io") == nil)
    }
}
