import DrydockProcess
import Foundation
import Testing

/// Runs any program found on PATH.
func runTool(_ tool: String, _ arguments: [String]) async throws -> CommandResult {
    let outcome = try await ChildProcess.run([tool] + arguments)
    return CommandResult(status: outcome.status, stdout: outcome.output, stderr: outcome.errorOutput)
}

/// Real registry clients, unchanged, against a live server.
@Suite("Registry with real clients")
struct RegistryClientTests {
    @Test("skopeo copies an image in and out byte for byte, across repositories, and lists tags")
    func skopeo() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let project = try await server.createProject("app")
                let layout = dir.appendingPathComponent("image").path
                let made = try await runTool("python3", [packageRoot.appendingPathComponent("Tests/Fixtures/make-oci-layout.py").path, layout, "3", "256"])
                try #require(made.status == 0, "\(made.stderr)")
                let manifestDigest = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                let host = "127.0.0.1:\(server.port)"
                let creds = "ci:\(server.ownerToken)"

                let push = try await runTool("skopeo", ["copy", "--dest-tls-verify=false", "--dest-creds", creds,
                                                  "oci:\(layout):latest", "docker://\(host)/\(project)/app:v1"])
                #expect(push.status == 0, "\(push.stderr)")

                let inspect = try await runTool("skopeo", ["inspect", "--tls-verify=false", "--creds", creds, "docker://\(host)/\(project)/app:v1"])
                #expect(inspect.status == 0, "\(inspect.stderr)")
                #expect(inspect.stdout.contains(manifestDigest), "the manifest is stored byte-exact")

                let pulled = dir.appendingPathComponent("pulled").path
                let pull = try await runTool("skopeo", ["copy", "--src-tls-verify=false", "--src-creds", creds,
                                                  "docker://\(host)/\(project)/app:v1", "oci:\(pulled):v1"])
                #expect(pull.status == 0, "\(pull.stderr)")
                let original = Set(try FileManager.default.contentsOfDirectory(atPath: layout + "/blobs/sha256"))
                let copy = Set(try FileManager.default.contentsOfDirectory(atPath: pulled + "/blobs/sha256"))
                #expect(original == copy)

                let across = try await runTool("skopeo", ["copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", creds, "--dest-creds", creds,
                                                    "docker://\(host)/\(project)/app:v1", "docker://\(host)/\(project)/mirror:v1"])
                #expect(across.status == 0, "\(across.stderr)")
                #expect(across.stdout.contains("already exists") || across.stderr.contains("already exists") || across.status == 0)

                let tags = try await runTool("skopeo", ["list-tags", "--tls-verify=false", "--creds", creds, "docker://\(host)/\(project)/mirror"])
                #expect(tags.stdout.contains("\"v1\""))

                // A pull token reads but cannot push.
                let pullToken = try await server.request(.post, "/api/v1/tokens", token: server.ownerToken,
                                                         json: #"{"name":"p","kind":"pull","projectId":"\#(project)"}"#).decoded(Schemas.CreatedToken.self).token
                let readOnly = try await runTool("skopeo", ["inspect", "--tls-verify=false", "--creds", "ci:\(pullToken)", "docker://\(host)/\(project)/app:v1"])
                #expect(readOnly.status == 0, "\(readOnly.stderr)")
                let refused = try await runTool("skopeo", ["copy", "--dest-tls-verify=false", "--dest-creds", "ci:\(pullToken)",
                                                     "oci:\(layout):latest", "docker://\(host)/\(project)/app:v2"])
                #expect(refused.status != 0)

                // Another organization cannot read it.
                let (_, ownerB) = try await server.bootstrap("globex")
                let foreign = try await runTool("skopeo", ["inspect", "--tls-verify=false", "--creds", "ci:\(ownerB)", "docker://\(host)/\(project)/app:v1"])
                #expect(foreign.status != 0)
            }
        }
    }

    @Test("buildah pushes an image built from busybox and pulls it back")
    func buildah() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let project = try await server.createProject("app")
                let host = "127.0.0.1:\(server.port)"
                let storage = ["--root", dir.appendingPathComponent("root").path, "--runroot", dir.appendingPathComponent("run").path,
                               "--storage-driver", "vfs"]
                func buildah(_ args: [String]) async throws -> CommandResult {
                    try await runTool("buildah", storage + args)
                }
                let from = try await buildah(["from", "scratch"])
                try #require(from.status == 0, "\(from.stderr)")
                let container = from.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                let busybox = ["/bin/busybox", "/usr/bin/busybox"].first { FileManager.default.isExecutableFile(atPath: $0) }
                let copied = try await buildah(["copy", container, try #require(busybox, "busybox-static is installed by scripts/test.sh"), "/bin/busybox"])
                #expect(copied.status == 0, "\(copied.stderr)")
                _ = try await buildah(["config", "--cmd", "/bin/busybox sh", container])
                let commit = try await buildah(["commit", container, "localhost/drydock-test:1"])
                #expect(commit.status == 0, "\(commit.stderr)")

                let push = try await buildah(["push", "--tls-verify=false", "--creds", "ci:\(server.ownerToken)",
                                              "localhost/drydock-test:1", "docker://\(host)/\(project)/busybox:1"])
                #expect(push.status == 0, "\(push.stderr)")
                _ = try await buildah(["rmi", "-a", "-f"])
                let pull = try await buildah(["pull", "--tls-verify=false", "--creds", "ci:\(server.ownerToken)",
                                              "docker://\(host)/\(project)/busybox:1"])
                #expect(pull.status == 0, "\(pull.stderr)")
                let images = try await buildah(["images", "--format", "{{.Name}}:{{.Tag}}"])
                #expect(images.stdout.contains("\(project)/busybox:1"))
            }
        }
    }

    @Test("oras (PyPI) pushes an artifact in chunks, attaches a referrer and pulls it back")
    func oras() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("app")
            let result = try await runTool("python3", [packageRoot.appendingPathComponent("Tests/Fixtures/oras-check.py").path,
                                                       "127.0.0.1:\(server.port)", "\(project)/artifact", server.ownerToken])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("OK"))
        }
    }
}
