import DrydockProcess
import Foundation
import Testing

struct CommandResult: Sendable {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs one of the package's built executables with a clean environment plus `environment`.
func runExecutable(_ name: String, _ arguments: [String], environment: [String: String], stdin: String? = nil,
                   directory: URL? = nil) async throws -> CommandResult {
    let binary = packageRoot.appendingPathComponent(".build/debug/\(name)")
    guard FileManager.default.isExecutableFile(atPath: binary.path) else {
        throw CLITestError("\(binary.path) is missing: build with 'swift build --build-tests' first")
    }
    var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
    for (key, value) in environment { env[key] = value }
    let outcome = try await ChildProcess.run([binary.path] + arguments, environment: env, directory: directory?.path, input: stdin)
    return CommandResult(status: outcome.status, stdout: outcome.output, stderr: outcome.errorOutput)
}

/// Runs blocking work (plain sockets) on a dispatch thread: blocking the few cooperative threads
/// would starve the server under test.
func offCooperativePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
}

struct CLITestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("drydock-cli-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try await body(url)
}

@Suite("CLI against a live server")
struct CLITests {
    @Test("login, whoami, projects, init, tokens, logout: the whole first session")
    func firstSession() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { home in
                let env = ["HOME": home.path, "XDG_CONFIG_HOME": home.appendingPathComponent("config").path]
                func drydock(_ args: String..., extra: [String: String] = [:], stdin: String? = nil) async throws -> CommandResult {
                    try await runExecutable("drydock", args, environment: env.merging(extra) { $1 }, stdin: stdin)
                }

                let notLoggedIn = try await drydock("projects", "list")
                #expect(notLoggedIn.status != 0)
                #expect(notLoggedIn.stderr.contains("not logged in"))

                let login = try await drydock("login", "--token", server.ownerToken, "--api-url", server.baseURL)
                #expect(login.status == 0, "\(login.stderr)")
                #expect(login.stdout.contains("owner@acme.test"))
                let configFile = home.appendingPathComponent("config/drydock/config.json")
                let attributes = try FileManager.default.attributesOfItem(atPath: configFile.path)
                #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)

                let whoami = try await drydock("whoami", "--format", "json")
                #expect(whoami.status == 0)
                #expect(try APIJSON.decode(Schemas.Caller.self, whoami.stdout).organization.name == "acme")

                let created = try await drydock("projects", "create", "webapp", "--keep-gb", "100", "--format", "json")
                #expect(created.status == 0, "\(created.stderr)")
                let project = try APIJSON.decode(Schemas.Project.self, created.stdout)
                let projectId = project.id
                #expect(project.cachePolicy.keepGigabytes == 100)

                let list = try await drydock("projects", "list")
                #expect(list.status == 0)
                #expect(list.stdout.contains("ID") && list.stdout.contains("webapp") && list.stdout.contains(projectId))
                let listJSON = try await drydock("projects", "ls", "--format", "json")
                // Every list's JSON is a page: {"items": [...], "nextCursor": ...}.
                #expect(try APIJSON.decode(Schemas.ProjectPage.self, listJSON.stdout).items.map(\.id) == [projectId])

                let get = try await drydock("projects", "get", projectId)
                #expect(get.status == 0 && get.stdout.contains("100 GB per platform"))
                let update = try await drydock("projects", "update", projectId, "--name", "webapp2", "--format", "json")
                #expect(update.status == 0 && update.stdout.contains("\"webapp2\""))

                let workdir = home.appendingPathComponent("repo/sub", isDirectory: true)
                try FileManager.default.createDirectory(at: workdir, withIntermediateDirectories: true)
                let initialised = try await drydock("init", "--project", projectId, "--directory", home.appendingPathComponent("repo").path)
                #expect(initialised.status == 0, "\(initialised.stderr)")
                let written = try String(contentsOf: home.appendingPathComponent("repo/drydock.json"), encoding: .utf8)
                #expect(written.contains("\"id\" : \"\(projectId)\""))
                let again = try await drydock("init", "--project", projectId, "--directory", home.appendingPathComponent("repo").path)
                #expect(again.status != 0 && again.stderr.contains("--force"))
                let nonInteractive = try await drydock("init", "--directory", workdir.path)
                #expect(nonInteractive.status != 0 && nonInteractive.stderr.contains(projectId))
                let emptyProject = try await drydock("builds", "list", "--project", "")
                #expect(emptyProject.status != 0 && emptyProject.stderr.contains("--project is empty"), "\(emptyProject.stderr)")

                let token = try await drydock("tokens", "create", "--name", "github-actions", "--project", projectId, "--expires", "30d", "--format", "json")
                #expect(token.status == 0, "\(token.stderr)")
                let createdToken = try APIJSON.decode(Schemas.CreatedToken.self, token.stdout)
                let secret = createdToken.token
                let tokenId = createdToken.id
                #expect(secret.hasPrefix("ddp_"))
                #expect(createdToken.expiresAt != nil)

                let plain = try await drydock("tokens", "create", "--name", "laptop")
                #expect(plain.status == 0)
                #expect(plain.stdout.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("ddu_"), "the secret alone on stdout")

                // The project token works through the environment, overriding the saved login.
                let asProject = try await drydock("projects", "list", "--format", "json", extra: ["DRYDOCK_TOKEN": secret])
                #expect(asProject.status == 0)
                #expect(asProject.stdout.contains(projectId))

                let tokens = try await drydock("tokens", "list")
                #expect(tokens.status == 0 && tokens.stdout.contains("github-actions") && !tokens.stdout.contains(secret))
                let revoke = try await drydock("tokens", "revoke", tokenId)
                #expect(revoke.status == 0)
                let revokedUse = try await drydock("whoami", extra: ["DRYDOCK_TOKEN": secret])
                #expect(revokedUse.status != 0)
                #expect(revokedUse.stderr.contains("revoked"))
                #expect(revokedUse.stderr.split(separator: "\n").count == 1, "one line: \(revokedUse.stderr)")

                let missing = try await drydock("projects", "get", "zzzzzzzzzzzzzzzz")
                #expect(missing.status != 0 && missing.stderr.contains("no project 'zzzzzzzzzzzzzzzz'"), "\(missing.stderr)")
                let invalid = try await drydock("projects", "create", "bad name")
                #expect(invalid.status != 0 && invalid.stderr.contains("letters, digits"))

                let delete = try await drydock("projects", "delete", projectId)
                #expect(delete.status == 0)

                let logout = try await drydock("logout")
                #expect(logout.status == 0)
                let after = try await drydock("whoami")
                #expect(after.status != 0 && after.stderr.contains("not logged in"))

                let unreachable = try await drydock("whoami", extra: ["DRYDOCK_API_URL": "http://127.0.0.1:1", "DRYDOCK_TOKEN": server.ownerToken])
                #expect(unreachable.status != 0 && unreachable.stderr.contains("cannot reach"))
            }
        }
    }
}
