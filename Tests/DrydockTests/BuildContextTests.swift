import DrydockBuildContext
import DrydockClient
import DrydockServer
import Foundation
import HTTPTypes
import Testing

@Suite("Build contexts")
struct BuildContextTests {
    @Test("packing is deterministic and honours .dockerignore; unpacking gives the files back")
    func packAndUnpack() async throws {
        try await withTemporaryDirectory { dir in
            let context = dir.appendingPathComponent("ctx")
            for (path, text) in ["Dockerfile": "FROM x\n", "a.txt": "a", "sub/b.txt": "b", "debug.log": "no", ".dockerignore": "*.log\n"] {
                let url = context.appendingPathComponent(path)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try text.write(to: url, atomically: true, encoding: .utf8)
            }
            try FileManager.default.createSymbolicLink(atPath: context.appendingPathComponent("link").path, withDestinationPath: "sub/b.txt")
            let long = String(repeating: "d", count: 120)
            try FileManager.default.createDirectory(at: context.appendingPathComponent(long), withIntermediateDirectories: true)
            try "deep".write(to: context.appendingPathComponent("\(long)/\(long).txt"), atomically: true, encoding: .utf8)
            let one = try ContextPacker.pack(directory: context, dockerfile: context.appendingPathComponent("Dockerfile"), into: dir.appendingPathComponent("1.tar"))
            let two = try ContextPacker.pack(directory: context, dockerfile: context.appendingPathComponent("Dockerfile"), into: dir.appendingPathComponent("2.tar"))
            #expect(one.digest == two.digest, "an unchanged context has an unchanged digest")
            let out = dir.appendingPathComponent("out")
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            try ContextUnpacker.unpack(one.file, into: out)
            #expect(try String(contentsOf: out.appendingPathComponent("Dockerfile"), encoding: .utf8) == "FROM x\n")
            #expect(try String(contentsOf: out.appendingPathComponent("context/sub/b.txt"), encoding: .utf8) == "b")
            #expect(try String(contentsOf: out.appendingPathComponent("context/\(long)/\(long).txt"), encoding: .utf8) == "deep")
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out.appendingPathComponent("context/link").path) == "sub/b.txt")
            #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("context/debug.log").path))
            // GNU tar reads what we write.
            let listed = try await runTool("tar", ["-tf", one.file.path])
            #expect(listed.status == 0 && listed.stdout.contains("context/sub/b.txt"), "\(listed.stderr)")
        }
    }

    @Test("unpacking refuses tar-slip: absolute paths, '..', escaping links, writes through links, and too many files")
    func tarSlip() async throws {
        try await withTemporaryDirectory { dir in
            func tar(_ entries: [Tar.Header], content: [String: String] = [:]) throws -> URL {
                var bytes: [UInt8] = []
                for var header in entries {
                    let data = Array((content[header.path] ?? "").utf8)
                    if header.type == .file { header.size = Int64(data.count) }
                    bytes += Tar.headerBlocks(header)
                    if header.type == .file { bytes += data + Tar.padding(Int64(data.count)) }
                }
                bytes += Tar.end
                let url = dir.appendingPathComponent(UUID().uuidString + ".tar")
                try Data(bytes).write(to: url)
                return url
            }
            func unpack(_ url: URL, limits: ContextUnpacker.Limits = .init()) throws {
                let out = dir.appendingPathComponent(UUID().uuidString)
                try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
                try ContextUnpacker.unpack(url, into: out, limits: limits)
            }
            let file = { (path: String) in Tar.Header(path: path, type: .file, mode: 0o644, size: 0, mtime: 0) }
            #expect(throws: ContextUnpacker.UnpackError.unsafePath("/etc/evil")) { try unpack(try tar([file("/etc/evil")])) }
            #expect(throws: ContextUnpacker.UnpackError.unsafePath("a/../../evil")) { try unpack(try tar([file("a/../../evil")])) }
            #expect(throws: ContextUnpacker.UnpackError.escapingLink("up", "../..")) {
                try unpack(try tar([Tar.Header(path: "up", type: .symlink, mode: 0o777, size: 0, mtime: 0, linkName: "../..")]))
            }
            #expect(throws: ContextUnpacker.UnpackError.escapingLink("abs", "/etc")) {
                try unpack(try tar([Tar.Header(path: "abs", type: .symlink, mode: 0o777, size: 0, mtime: 0, linkName: "/etc")]))
            }
            // A link that stays inside is fine, but nothing may be written through it.
            #expect(throws: ContextUnpacker.UnpackError.throughSymlink("d/x")) {
                try unpack(try tar([Tar.Header(path: "d", type: .symlink, mode: 0o777, size: 0, mtime: 0, linkName: "."), file("d/x")]))
            }
            #expect(throws: ContextUnpacker.UnpackError.tooManyFiles(2)) {
                try unpack(try tar([file("a"), file("b"), file("c")]), limits: .init(maxFiles: 2))
            }
            #expect(throws: ContextUnpacker.UnpackError.tooLarge(3)) {
                try unpack(try tar([file("a")], content: ["a": "four"]), limits: .init(maxBytes: 3))
            }
            #expect(!FileManager.default.fileExists(atPath: dir.deletingLastPathComponent().appendingPathComponent("evil").path))
        }
    }

    @Test("the context API: digest checked while streaming, 413 over the limit, contexts per project, clear errors on bad builds")
    func contextAPI() async throws {
        try await withTestServer(configure: { $0.maxContextBytes = 4096 }) { server in
            let project = try await server.createProject("ctx")
            let other = try await server.createProject("other")
            let zeros = String(repeating: "\u{0}", count: 1024)
            let hex = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
            let tar: HTTPFields = [.contentType: "application/x-tar"]
            let wrong = try await server.request(.put, "/api/v1/projects/\(project)/contexts/\(String(repeating: "a", count: 64))",
                                                 token: server.ownerToken, json: zeros, headers: tar)
            #expect(wrong.status == .badRequest)
            #expect(wrong.problem?.code == "digest_mismatch")
            let big = try await server.request(.put, "/api/v1/projects/\(project)/contexts/\(hex)", token: server.ownerToken,
                                               json: String(repeating: "x", count: 5000), headers: tar)
            #expect(big.status == .contentTooLarge)
            #expect(big.problem?.detail?.contains(".dockerignore") == true)
            #expect(try await server.request(.get, "/api/v1/projects/\(project)/contexts/\(hex)", token: server.ownerToken).status == .notFound)
            let ok = try await server.request(.put, "/api/v1/projects/\(project)/contexts/\(hex)", token: server.ownerToken, json: zeros, headers: tar)
            #expect(ok.status == .created)
            #expect(try ok.decoded(Schemas.BuildContext.self).sizeBytes == 1024)
            #expect(try await server.request(.get, "/api/v1/projects/\(project)/contexts/\(hex)", token: server.ownerToken).status == .ok)
            // The same context is not visible from another project, and cannot be built there.
            #expect(try await server.request(.get, "/api/v1/projects/\(other)/contexts/\(hex)", token: server.ownerToken).status == .notFound)
            let elsewhere = try await server.request(.post, "/api/v1/projects/\(other)/builds", token: server.ownerToken,
                                                     json: #"{"contextDigest":"sha256:\#(hex)"}"#)
            #expect(elsewhere.status == .badRequest)
            #expect(elsewhere.problem?.detail?.contains("upload it first") == true)

            for (body, field) in [
                (#"{"contextDigest":"sha256:\#(hex)","platforms":["linux/amd64","amd64"]}"#, "platforms[1]"),
                (#"{"contextDigest":"sha256:\#(hex)","platforms":["windows/amd64"]}"#, "platforms[0]"),
                (#"{"contextDigest":"sha256:\#(hex)","platforms":["linux/s390x"]}"#, "platforms[0]"),
                (#"{"contextDigest":"sha256:\#(hex)","platforms":["linux/amd64","linux/arm64","linux/arm/v7","linux/arm/v6","linux/386","arm64","x","y","z"]}"#, "platforms"),
                (#"{"contextDigest":"sha256:\#(hex)","dockerfile":"../Dockerfile"}"#, "dockerfile"),
                (#"{"contextDigest":"sha256:\#(hex)","tags":["UPPER/Case"]}"#, "tags[0]"),
                (#"{"contextDigest":"sha256:\#(hex)","buildArgs":{"1bad":"x"}}"#, "buildArgs.1bad"),
                (#"{"contextDigest":"sha256:\#(hex)","secrets":[{"id":"s","value":"not base64!"}]}"#, "secrets[0].value"),
                (#"{"contextDigest":"md5:abc"}"#, "contextDigest"),
            ] {
                let response = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken, json: body)
                #expect(response.status == .badRequest, "\(body): \(response.text)")
                let fields = response.problem?.errors?.map(\.field) ?? []
                #expect(fields == [field], "\(body): \(response.text)")
            }
            // Nothing was queued by the refused requests.
            let list = try await server.request(.get, "/api/v1/projects/\(project)/builds", token: server.ownerToken)
            #expect(try list.decoded(Schemas.BuildPage.self).items.isEmpty)

            // A queued build can be canceled; its log ends with the final status.
            let build = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken,
                                                 json: #"{"contextDigest":"sha256:\#(hex)","tags":["app:1","registry.example.com/team/app"]}"#)
            #expect(build.status == .created)
            let queued = try build.decoded(Schemas.Build.self)
            let id = queued.id
            #expect(queued.image == "\(project)/build:\(id)")
            let canceled = try await server.request(.post, "/api/v1/builds/\(id)/cancel", token: server.ownerToken)
            #expect(try canceled.decoded(Schemas.Build.self).status == .canceled)
            let log = try await server.request(.get, "/api/v1/builds/\(id)/logs?follow=true", token: server.ownerToken)
            #expect(log.headers[.contentType] == "application/jsonl")
            let last = try #require(log.text.split(separator: "\n").last)
            #expect(last.contains(#""status":"canceled""#))

            // Deleting the project deletes its contexts from disk.
            let stored = server.dataDirectory.appendingPathComponent("contexts/\(project)").path
            #expect(FileManager.default.fileExists(atPath: stored))
            #expect(try await server.request(.delete, "/api/v1/projects/\(project)", token: server.ownerToken).status == .noContent)
            #expect(!FileManager.default.fileExists(atPath: stored))
        }
    }

    @Test("drydock build refuses docker flags it cannot honour, with the reason")
    func refusedFlags() async throws {
        for (flags, words) in [(["--network", "host"], "--network"), (["--ssh", "default"], "--ssh"),
                               (["--platform", "linux/s390x"], "linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6, linux/386"),
                               (["--platform", "linux/arm64,aarch64"], "lists linux/arm64 twice"), (["--cache-from", "x"], "--cache-from"),
                               (["-o", "type=registry"], "type=registry")] {
            let result = try await runExecutable("drydock", ["build"] + flags + ["."], environment: [:])
            #expect(result.status != 0)
            #expect(result.stderr.contains(words), "\(flags): \(result.stderr)")
        }
    }
}
