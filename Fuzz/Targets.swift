// libFuzzer targets for everything the server parses from clients. Built by scripts/fuzz.sh
// with `swiftc -sanitize=fuzzer,address -D FUZZ_<TARGET>` together with the parser sources;
// each target checks that the parser does not trap and that what it returns is consistent.
import Foundation

@inline(__always)
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        fputs("invariant broken: \(message())\n", stderr)
        abort()
    }
}

func fuzzOne(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    #if FUZZ_CONTENT_RANGE
    if let start = parseContentRangeStart(text) { check(start >= 0, "negative start \(start)") }
    #elseif FUZZ_RANGE
    let size = Int(bytes.first ?? 0) * 1000 + 1
    if let range = parseByteRange(String(decoding: bytes.dropFirst(), as: UTF8.self), size: size) {
        check(range.lowerBound >= 0 && range.upperBound < size && !range.isEmpty, "range \(range) outside 0..<\(size)")
    }
    #elseif FUZZ_CONTENT_TYPE
    if let type = parseMediaType(text) {
        check(type.split(separator: "/", omittingEmptySubsequences: false).count == 2, "media type \(type)")
        check(parseMediaType(type) == type, "not idempotent: \(type)")
    }
    #elseif FUZZ_AUTHORIZATION
    if let (scheme, value) = parseAuthorization(text) {
        check(!scheme.isEmpty && !value.isEmpty && !value.contains(" "), "credentials \(scheme) \(value)")
        _ = parseBasicCredentials(value)
    }
    #elseif FUZZ_DIGEST
    if let digest = Digest(text) {
        check(Digest(digest.description) == digest, "digest round trip \(digest)")
        check(digest.hex.utf8.count == digest.algorithm.hexLength, "digest length \(digest)")
    }
    #elseif FUZZ_REPOSITORY_NAME
    if let name = RepositoryName(text) {
        check(RepositoryName(name.description) == name, "name round trip \(name)")
        check(name.description.utf8.count <= 255, "name too long")
    }
    _ = isValidTag(text)
    #elseif FUZZ_SCOPE
    for item in text.split(separator: " ") {
        if let scope = RegistryScope(item) { check(!scope.type.isEmpty && !scope.name.isEmpty, "scope \(scope)") }
    }
    #elseif FUZZ_FORM
    if let pairs = parseFormURLEncoded(text) {
        for (name, value) in pairs { check(!name.contains("\0") && !value.contains("\0"), "NUL in form") }
    }
    if let decoded = percentDecoded(text) { check(!decoded.utf8.contains(0), "NUL after decoding") }
    _ = isCleanRequestTarget(text)
    #elseif FUZZ_DOCKERIGNORE
    // Patterns, a NUL, then a path to match against them.
    let parts = bytes.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
    let ignore = DockerIgnore(String(decoding: parts.first ?? [], as: UTF8.self))
    let path = String(decoding: parts.dropFirst().first ?? [], as: UTF8.self)
    _ = ignore.excludes(path)
    _ = ignore.mayReinclude(under: path)
    #elseif FUZZ_TAR
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("drydock-fuzz-\(getpid())")
    let tar = scratch.appendingPathComponent("in.tar"), out = scratch.appendingPathComponent("out")
    try? FileManager.default.removeItem(at: scratch)
    try? FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    FileManager.default.createFile(atPath: tar.path, contents: Data(bytes))
    _ = try? ContextUnpacker.unpack(tar, into: out, limits: .init(maxBytes: 1 << 20, maxFiles: 100))
    // Nothing may land outside the destination.
    let outside = (try? FileManager.default.contentsOfDirectory(atPath: scratch.path)) ?? []
    check(Set(outside).isSubset(of: ["in.tar", "out"]), "unpacking wrote outside its directory: \(outside)")
    try? FileManager.default.removeItem(at: scratch)
    #elseif FUZZ_MANIFEST
    // What the registry reads from a pushed manifest or index (sizes, digests, platforms).
    if let document = try? JSONDecoder().decode(OCIManifestDocument.self, from: Data(bytes)) {
        check(document.declaredImageBytes >= 0, "negative image bytes \(document.declaredImageBytes)")
        check(Set(document.requiredBlobs).isSubset(of: Set(document.referencedBlobs)), "a required blob that is not referenced")
        _ = document.referencedManifests
        _ = document.effectiveArtifactType
        for descriptor in document.manifests ?? [] { _ = descriptor.platform?.name }
    }
    #elseif FUZZ_IMAGE_REFERENCE
    if let reference = ImageReference(text) {
        let written = (reference.host.map { "\($0)/" } ?? "") + "\(reference.path):\(reference.tag)"
        // (Written out, a reference may gain ":latest" and pass the 512-byte limit.)
        if written.utf8.count <= 512 { check(ImageReference(written) == reference, "round trip \(text) -> \(written)") }
        if let host = reference.host { _ = ImageReference.isLoopback(host: host) }
    }
    _ = ImageReference.registryHost(of: text)
    #else
    #error("define one FUZZ_<TARGET>")
    #endif
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
