import DrydockClient
import DrydockProcess
@testable import DrydockServer
import Foundation
import Testing

/// Where images land: bare -t names in the project registry on every build, names on other
/// registries with --push and the user's own docker login, over plain HTTP on loopback.
@Suite("Pushing where users push")
struct PushTests {
    @Test("a multi-platform push to a registry that asks for credentials the build was not sent says how to send them; wrong ones are refused as such")
    func externalPushWithoutCredentials() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("elsewhere")
            let host = "127.0.0.1:\(server.port)"
            let anonymous = ExternalPush(host: host, repository: "\(project)/app", username: nil, password: nil, insecure: true, blobs: nil)
            do {
                _ = try await anonymous.authorize()
                Issue.record("an anonymous push was let in")
            } catch {
                let said = "\(error)"
                #expect(said.contains("the build was sent none for it") && said.contains("docker login \(host)"), "\(said)")
            }
            let wrong = ExternalPush(host: host, repository: "\(project)/app", username: "ci", password: "ddu_notavalidtoken", insecure: true, blobs: nil)
            do {
                _ = try await wrong.authorize()
                Issue.record("a wrong password was let in")
            } catch {
                #expect("\(error)".contains("refused the credentials"), "\(error)")
            }
            // The owner's token is let in: a bearer token for the push.
            let owner = ExternalPush(host: host, repository: "\(project)/app", username: "ci", password: server.ownerToken, insecure: true, blobs: nil)
            #expect(try await owner.authorize()?.hasPrefix("Bearer ") == true)
        }
    }

    @Test("-t app:1 alone tags the project registry and says where; another registry's name waits for --push, then goes there with the docker login of DOCKER_CONFIG")
    func tagsAndPushes() async throws {
        try await withTestServer { server in
            // A first request on this server's test connection before the second server starts: a
            // connection that has sent nothing is dropped after the 10 s header timeout, which a
            // loaded machine's second start-up can exceed.
            let fixture = try await BuildFixture.make(server, project: "app")
            try await withTestServer { outside in
                try await withTemporaryDirectory { dir in
                    let builder = try await BuilderProcess(server: server, token: try await workerToken(server), cache: dir.appendingPathComponent("cache"), name: "b1")
                    defer { withExtendedLifetime(builder) {} }
                    let elsewhere = try await outside.createProject("mirror")
                    let context = dir.appendingPathComponent("ctx")
                    try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
                    try "FROM \(fixture.base)\nRUN echo hi > /hi\n".write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
                    let remote = "127.0.0.1:\(outside.port)/\(elsewhere)/app:1"
                    let environment = ["HOME": dir.path]
                    let arguments = ["build", "--api-url", server.baseURL, "--token", server.ownerToken, "--project", "app", "--progress", "plain",
                                     "-t", "app:1", "-t", remote]

                    let local = try await runExecutable("drydock", arguments + [context.path], environment: environment)
                    #expect(local.status == 0, "\(local.stderr)")
                    #expect(local.stderr.contains("tagged \(fixture.host)/\(fixture.projectId)/app:1 in the project registry"), "\(local.stderr)")
                    #expect(local.stderr.contains("not pushed: \(remote) is on another registry; add --push"), "\(local.stderr)")
                    let tags = try await server.registry(.get, "/v2/\(fixture.projectId)/app/tags/list", token: server.ownerToken)
                    #expect(String(decoding: tags.body, as: UTF8.self).contains("\"1\""), "the project registry has app:1")

                    // The user's docker login for the other registry, kept where DOCKER_CONFIG says.
                    let config = dir.appendingPathComponent("docker")
                    try FileManager.default.createDirectory(at: config, withIntermediateDirectories: true)
                    let auth = Data("mirror:\(outside.ownerToken)".utf8).base64EncodedString()
                    try #"{"auths":{"127.0.0.1:\#(outside.port)":{"auth":"\#(auth)"}}}"#
                        .write(to: config.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
                    let pushed = try await runExecutable("drydock", arguments + ["--push", context.path],
                                                         environment: environment.merging(["DOCKER_CONFIG": config.path]) { $1 })
                    #expect(pushed.status == 0, "\(pushed.stderr)")
                    // Named as the user knows it (under their home), with the user name and never the secret.
                    #expect(pushed.stderr.contains("credentials for 127.0.0.1:\(outside.port): from ~/docker/config.json (user mirror)"), "\(pushed.stderr)")
                    #expect(!pushed.stderr.contains(outside.ownerToken), "the secret is never shown")
                    #expect(pushed.stderr.contains("pushed \(remote)"), "\(pushed.stderr)")
                    let there = try await outside.registry(.get, "/v2/\(elsewhere)/app/manifests/1", token: outside.ownerToken,
                                                            headers: [.accept: "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"])
                    #expect(there.status == .ok, "the image reached the other registry over plain HTTP on loopback")
                }
            }
        }
    }

    @Test("a credential helper named in the docker config is asked for the registry's login, as docker asks it")
    func credentialHelper() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                _ = try await server.createProject("app")
                // A helper that answers for one registry only, as docker-credential-* helpers do.
                let bin = dir.appendingPathComponent("bin")
                try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
                let helper = bin.appendingPathComponent("docker-credential-drydocktest")
                try """
                    #!/bin/sh
                    read host
                    [ "$1" = get ] && [ "$host" = "registry.example.test:5000" ] || { echo "credentials not found" >&2; exit 1; }
                    echo '{"ServerURL":"registry.example.test:5000","Username":"robot","Secret":"s3cret-from-helper"}'
                    """.write(to: helper, atomically: true, encoding: .utf8)
                try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: helper.path)
                let config = dir.appendingPathComponent(".docker")
                try FileManager.default.createDirectory(at: config, withIntermediateDirectories: true)
                try #"{"credHelpers":{"registry.example.test:5000":"drydocktest"}}"#
                    .write(to: config.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
                let context = dir.appendingPathComponent("ctx")
                try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
                try "FROM scratch\n".write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
                // No builder: the build is queued with the credentials, then canceled.
                let cli = try await RunningProcess(
                    [packageRoot.appendingPathComponent(".build/debug/drydock").path, "build", "--api-url", server.baseURL, "--token", server.ownerToken,
                     "--project", "app", "--progress", "plain", "-t", "registry.example.test:5000/team/app:1", "--push", context.path],
                    environment: ["HOME": dir.path, "PATH": bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")],
                    log: dir.appendingPathComponent("cli.log").path)
                let deadline = ContinuousClock.now + .seconds(30)
                var text = ""
                while ContinuousClock.now < deadline, !text.contains("queued") {
                    try await Task.sleep(for: .milliseconds(100))
                    text = (try? String(contentsOf: dir.appendingPathComponent("cli.log"), encoding: .utf8)) ?? ""
                }
                cli.signal(SIGTERM)
                _ = await cli.wait(timeout: .seconds(20))
                #expect(text.contains("credentials for registry.example.test:5000: from docker-credential-drydocktest named in ~/.docker/config.json (user robot)"), "\(text)")
                #expect(!text.contains("s3cret-from-helper"), "the secret is never shown")
            }
        }
    }
}
