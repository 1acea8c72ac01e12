import DrydockClient
import DrydockServer
import Foundation
import Testing

/// The docker CLI (Debian's docker.io, no engine) and the containers tools through Drydock.
@Suite("docker CLI integration", .serialized)
struct DockerIntegrationTests {
    @Test("configure-docker --default: 'docker build' runs on Drydock and exits with its status; skopeo pulls through the credential helper; --undo restores config.json byte for byte")
    func configureDocker() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "web")
                let builder = try await BuilderProcess(server: server, token: try await workerToken(server), cache: dir.appendingPathComponent("cache"), name: "docker-b")
                let home = dir.appendingPathComponent("home")
                let dockerDir = home.appendingPathComponent(".docker")
                try FileManager.default.createDirectory(at: dockerDir, withIntermediateDirectories: true)
                // A config.json of the user's own, formatted their way.
                let original = Data("{\n  \"auths\": {\"registry.example.com\": {\"auth\": \"dXNlcjpwYXNz\"}},\n  \"psFormat\": \"table {{.ID}}\"\n}\n".utf8)
                try original.write(to: dockerDir.appendingPathComponent("config.json"))
                let bin = packageRoot.appendingPathComponent(".build/debug").path
                let env = ["HOME": home.path, "PATH": bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                           "DRYDOCK_PROJECT": fixture.projectId]
                let login = try await runExecutable("drydock", ["login", "--token", server.ownerToken, "--api-url", server.baseURL], environment: env)
                #expect(login.status == 0, "\(login.stderr)")

                let configured = try await runExecutable("drydock", ["configure-docker", "--default"], environment: env)
                #expect(configured.status == 0, "\(configured.stderr)")
                #expect(FileManager.default.fileExists(atPath: dockerDir.appendingPathComponent("cli-plugins/docker-drydock").path))
                let config = try JSONSerialization.jsonObject(with: Data(contentsOf: dockerDir.appendingPathComponent("config.json"))) as? [String: Any]
                #expect((config?["aliases"] as? [String: String])?["builder"] == "drydock")
                #expect((config?["credHelpers"] as? [String: String])?[fixture.host] == "drydock")
                #expect(config?["psFormat"] as? String == "table {{.ID}}", "the user's own settings stay")

                let context = dir.appendingPathComponent("app")
                try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
                try "FROM \(fixture.base)\nRUN echo from-docker-build > /hello\n".write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
                let built = try await runTool("env", env.map { "\($0.key)=\($0.value)" } + ["docker", "build", "-t", "hello:1", "--progress", "plain", context.path])
                #expect(built.status == 0, "docker build: \(built.stderr)\nbuilder: \(builder.output)")
                #expect(built.stderr.contains("from-docker-build"), "\(built.stderr)")
                // A failing build: docker exits with the build's failure.
                try "FROM \(fixture.base)\nRUN exit 3\n".write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
                let failed = try await runTool("env", env.map { "\($0.key)=\($0.value)" } + ["docker", "build", "--progress", "plain", context.path])
                #expect(failed.status != 0, "\(failed.stderr)")

                // skopeo, with no --creds: the credential helper hands it the saved login.
                let inspect = try await runTool("env", ["HOME=\(home.path)", "PATH=\(env["PATH"] ?? "")", "skopeo", "inspect", "--tls-verify=false",
                                                        "--format", "{{.Digest}}", "docker://\(fixture.host)/\(fixture.projectId)/hello:1"])
                #expect(inspect.status == 0, "skopeo through docker-credential-drydock: \(inspect.stderr)")
                #expect(inspect.stdout.hasPrefix("sha256:"))
                let helper = try await runExecutable("docker-credential-drydock", ["get"], environment: env, stdin: "https://\(fixture.host)")
                #expect(helper.status == 0 && helper.stdout.contains("\"Secret\""))
                let other = try await runExecutable("docker-credential-drydock", ["get"], environment: env, stdin: "ghcr.io")
                #expect(other.status != 0 && !other.stdout.contains(server.ownerToken), "another registry gets nothing")

                let undone = try await runExecutable("drydock", ["configure-docker", "--undo"], environment: env)
                #expect(undone.status == 0, "\(undone.stderr)")
                #expect(try Data(contentsOf: dockerDir.appendingPathComponent("config.json")) == original)
                #expect(!FileManager.default.fileExists(atPath: dockerDir.appendingPathComponent("cli-plugins/docker-drydock").path))
                #expect(!FileManager.default.fileExists(atPath: dockerDir.appendingPathComponent("drydock-configure.json").path))
                await builder.stop()
            }
        }
    }

    @Test("a CI job installs the server's own CLI: /downloads/install.sh fetches drydock-linux-<arch>, checks its SHA-256 and links the credential helper")
    func downloads() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let arch = Platform.host.architecture
                let index = try await server.request(.get, "/downloads/")
                #expect(index.status == .ok && index.text.contains("drydock-linux-\(arch)"), "\(index.text)")
                let sum = try await server.request(.get, "/downloads/drydock-linux-\(arch).sha256")
                #expect(sum.status == .ok)
                let own = try await runTool("sha256sum", [packageRoot.appendingPathComponent(".build/debug/drydock").path])
                #expect(sum.text.split(separator: " ").first == own.stdout.split(separator: " ").first, "the checksum is the CLI's")
                let missing = try await server.request(.get, "/downloads/drydock-windows-amd64.exe")
                #expect(missing.status == .notFound && missing.text.contains("it offers: drydock-linux-\(arch)"))

                let install = try await runTool("sh", ["-c", "curl -fsSL \(server.baseURL)/downloads/install.sh | DRYDOCK_INSTALL_DIR=\(dir.path)/bin sh"])
                #expect(install.status == 0, "\(install.stderr)")
                let version = try await runTool(dir.appendingPathComponent("bin/drydock").path, ["--version"])
                #expect(version.status == 0 && version.stdout.contains("0.7.0"), "\(version.stdout) \(version.stderr)")
                #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: dir.appendingPathComponent("bin/docker-credential-drydock").path)) == "drydock")
            }
        }
    }
}
