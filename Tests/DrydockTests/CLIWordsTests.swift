import DrydockProcess
import Foundation
import Testing

/// What a new user types and reads: names instead of ids, members, pages, and errors that speak
/// of the flags they used.
@Suite("The CLI speaks CLI")
struct CLIWordsTests {
    static func cli(_ server: TestServer, _ arguments: [String], token: String? = nil, apiURL: String? = nil) async throws -> CommandResult {
        try await runExecutable("drydock", arguments, environment: [
            "DRYDOCK_API_URL": apiURL ?? server.baseURL, "DRYDOCK_TOKEN": token ?? server.ownerToken, "HOME": "/tmp",
        ])
    }

    @Test("every program's --help fits an 80-column terminal: examples and tables are never cut, and prose paragraphs are one line each for the terminal to wrap")
    func helpLayout() async throws {
        let commands: [(String, [String])] = [("drydock-server", []), ("drydock-builder", []), ("drydock-agent", []), ("drydock", [])]
            + ["set-plan", "worker-token", "agent-token", "rotate-keys"].map { ("drydock-server", [$0]) }
            + [["login"], ["whoami"], ["init"], ["build"], ["bake"], ["usage"], ["members"], ["cache"], ["registry"], ["registry", "retention"],
               ["projects", "trust"], ["tokens", "create"], ["projects", "update"], ["pull-token"], ["configure-docker"]].map { ("drydock", $0) }
        for (program, arguments) in commands {
            func discussion(columns: Int) async throws -> [Substring] {
                let help = try await runExecutable(program, arguments + ["--help"], environment: ["COLUMNS": "\(columns)"])
                let lines = help.stdout.split(separator: "\n", omittingEmptySubsequences: false)
                return Array(lines.prefix { !$0.hasPrefix("USAGE:") }.drop { !$0.isEmpty })
            }
            let narrow = try await discussion(columns: 80), wide = try await discussion(columns: 10_000)
            let name = ([program] + arguments).joined(separator: " ")
            #expect(narrow.filter { $0.hasPrefix(" ") } == wide.filter { $0.hasPrefix(" ") }, "\(name): an indented line is cut at 80 columns")
            for (line, next) in zip(wide, wide.dropFirst()) where !line.isEmpty && !line.hasPrefix(" ") && !line.hasSuffix(":") {
                #expect(next.isEmpty || next.hasPrefix(" ") || next.hasPrefix("- "), "\(name): a paragraph broken by hand: \(line) / \(next)")
            }
        }
    }

    @Test("members: add (printing their first token once), list, set a role by email, remove")
    func members() async throws {
        try await withTestServer { server in
            let added = try await Self.cli(server, ["members", "add", "Dev@Acme.test", "--role", "admin"])
            #expect(added.status == 0, "\(added.stderr)")
            let token = added.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(token.hasPrefix("ddu_"), "the token alone on stdout: \(added.stdout)")
            #expect(added.stderr.contains("dev@acme.test as admin"))
            let whoami = try await Self.cli(server, ["whoami", "--format", "json"], token: token)
            #expect(try APIJSON.decode(Schemas.Caller.self, whoami.stdout).role == .admin)

            let list = try await Self.cli(server, ["members", "list"])
            #expect(list.stdout.contains("dev@acme.test") && list.stdout.contains("admin"), "\(list.stdout)")
            let demoted = try await Self.cli(server, ["members", "set-role", "dev@acme.test", "member", "--format", "json"])
            #expect(demoted.status == 0, "\(demoted.stderr)")
            #expect(try APIJSON.decode(Schemas.Member.self, demoted.stdout).role == .member)
            let removed = try await Self.cli(server, ["members", "remove", "DEV@acme.test"])
            #expect(removed.status == 0, "\(removed.stderr)")
            #expect(try await Self.cli(server, ["whoami"], token: token).status != 0, "their token was revoked")
            let page = try APIJSON.decode(Schemas.MemberPage.self, try await Self.cli(server, ["members", "list", "--format", "json"]).stdout)
            #expect(page.items.map(\.user.email) == ["owner@acme.test"])
            let nobody = try await Self.cli(server, ["members", "remove", "nobody@acme.test"])
            #expect(nobody.status != 0 && nobody.stderr.contains("no member 'nobody@acme.test'"), "\(nobody.stderr)")
        }
    }

    @Test("projects by name wherever an id is taken; an ambiguous name lists the candidates; an unknown one lists the projects")
    func projectsByName() async throws {
        try await withTestServer { server in
            let web = try await server.createProject("web")
            let other = try await server.createProject("Web")
            let got = try await Self.cli(server, ["projects", "get", "web", "--format", "json"])
            #expect(try APIJSON.decode(Schemas.Project.self, got.stdout).id == web, "\(got.stderr)")
            let builds = try await Self.cli(server, ["builds", "list", "--project", "Web", "--format", "json"])
            #expect(builds.status == 0, "\(builds.stderr)")
            let ambiguous = try await Self.cli(server, ["projects", "get", "WEB"])
            #expect(ambiguous.status != 0)
            #expect(ambiguous.stderr.contains(web) && ambiguous.stderr.contains(other), "\(ambiguous.stderr)")
            let unknown = try await Self.cli(server, ["registry", "ls", "--project", "api"])
            #expect(unknown.status != 0 && unknown.stderr.contains("no project 'api'") && unknown.stderr.contains("web (\(web))"), "\(unknown.stderr)")
            let token = try await Self.cli(server, ["tokens", "create", "--name", "ci", "--project", "web", "--format", "json"])
            #expect(try APIJSON.decode(Schemas.CreatedToken.self, token.stdout).projectId == web, "\(token.stderr)")
        }
    }

    @Test("every list's --format json is one page shape, and --limit/--cursor walk the pages")
    func pages() async throws {
        try await withTestServer { server in
            var ids: [String] = []
            for name in ["a", "b", "c"] { ids.append(try await server.createProject(name)) }
            let first = try APIJSON.decode(Schemas.ProjectPage.self, try await Self.cli(server, ["projects", "list", "--limit", "2", "--format", "json"]).stdout)
            #expect(first.items.count == 2)
            let cursor = try #require(first.nextCursor)
            let second = try APIJSON.decode(Schemas.ProjectPage.self,
                                            try await Self.cli(server, ["projects", "list", "--limit", "2", "--cursor", cursor, "--format", "json"]).stdout)
            #expect(Set(first.items.map(\.id) + second.items.map(\.id)) == Set(ids))
            #expect(second.nextCursor == nil)
            for command in [["tokens", "list"], ["members", "list"], ["builds", "list", "--project", "a"], ["registry", "ls", "--project", "a"]] {
                let result = try await Self.cli(server, command + ["--format", "json"])
                #expect(result.status == 0, "\(command): \(result.stderr)")
                let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? NSDictionary
                #expect(object?["items"] is NSArray, "\(command) prints {items, nextCursor}: \(result.stdout)")
            }
            let badLimit = try await Self.cli(server, ["projects", "list", "--limit", "500"])
            #expect(badLimit.status != 0 && badLimit.stderr.contains("--limit"), "\(badLimit.stderr)")
        }
    }

    @Test("errors name the flags the user typed, and the server's address problems are told plainly")
    func errorsInFlagWords() async throws {
        try await withTestServer { server in
            _ = try await server.createProject("web")
            let keep = try await Self.cli(server, ["projects", "create", "big", "--keep-gb", "501"])
            #expect(keep.status != 0)
            #expect(keep.stderr.contains("--keep-gb") && !keep.stderr.contains("cachePolicy"), "\(keep.stderr)")
            let pull = try await Self.cli(server, ["tokens", "create", "--name", "p", "--kind", "pull", "--project", "web", "--expires", "48h"])
            #expect(pull.status != 0 && pull.stderr.contains("--expires") && !pull.stderr.contains("expiresInSeconds"), "\(pull.stderr)")
            let short = try await Self.cli(server, ["tokens", "create", "--name", "s", "--expires", "1s"])
            #expect(short.status != 0 && short.stderr.contains("--expires 1s is too short"), "\(short.stderr)")
            let withPrefix = try await Self.cli(server, ["whoami"], apiURL: server.baseURL + "/api/v1/")
            #expect(withPrefix.status == 0, "an API URL ending in /api/v1 is the server's address: \(withPrefix.stderr)")
            let https = try await Self.cli(server, ["whoami"], apiURL: server.baseURL.replacingOccurrences(of: "http://", with: "https://"))
            #expect(https.status != 0 && https.stderr.contains("use \(server.baseURL)"), "\(https.stderr)")
            #expect(!https.stderr.contains("Transport threw"))
            let (_, projectToken) = try await server.createToken(#"{"name":"ci","projectId":"\#(try await server.createProject("ci"))"}"#)
            let usage = try await Self.cli(server, ["usage"], token: projectToken)
            #expect(usage.status != 0 && usage.stderr.contains("not allowed: a project token may not see the organization"), "\(usage.stderr)")
        }
    }

    @Test("a builder with a revoked token says so and exits non-zero; with a wrong address it says why it is not ready")
    func builderStartup() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let (id, token) = try await server.createToken(#"{"name":"old","kind":"worker"}"#)
                try #require(try await server.request(.delete, "/api/v1/tokens/\(id)", token: server.ownerToken).status == .noContent)
                let revoked = try await BuilderProcess(server: server, token: token, cache: dir.appendingPathComponent("cache"), name: "revoked")
                let status = await revoked.process.wait(timeout: .seconds(30))
                #expect(status != nil && status != 0, "it exits: \(revoked.output)")
                #expect(revoked.output.contains("refused the worker token"), "\(revoked.output)")
                #expect(!revoked.output.contains("builder ready"))

                // Nothing listens on the port of a server that was stopped.
                let (_, good) = try await server.createToken(#"{"name":"good","kind":"worker"}"#)
                let log = dir.appendingPathComponent("wrong.log")
                FileManager.default.createFile(atPath: log.path, contents: nil)
                let wrong = try await RunningProcess(
                    [packageRoot.appendingPathComponent(".build/debug/drydock-builder").path],
                    environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
                                  "DRYDOCK_API_URL": "http://127.0.0.1:1", "DRYDOCK_WORKER_TOKEN": good,
                                  "DRYDOCK_CACHE_DIR": dir.appendingPathComponent("cache2").path],
                    log: log.path)
                let deadline = ContinuousClock.now + .seconds(40)
                var text = ""
                while ContinuousClock.now < deadline, !text.contains("not ready") {
                    try await Task.sleep(for: .milliseconds(100))
                    text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                }
                #expect(text.contains("not ready: cannot use the server") && text.contains("cannot reach"), "\(text)")
                #expect(!text.contains("builder ready"))
                #expect(wrong.isRunning, "it keeps retrying")
                await wrong.stop()
            }
        }
    }

    @Test("a context over the server's limit is refused before the upload, naming its largest files in one unit")
    func contextTooLarge() async throws {
        try await withTestServer(configure: { $0.maxContextBytes = 200_000 }) { server in
            try await withTemporaryDirectory { dir in
                _ = try await server.createProject("web")
                let context = dir.appendingPathComponent("ctx")
                try FileManager.default.createDirectory(at: context.appendingPathComponent("data"), withIntermediateDirectories: true)
                try "FROM scratch\n".write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
                try Data(repeating: 1, count: 150_000).write(to: context.appendingPathComponent("data/big.bin"))
                try Data(repeating: 2, count: 90_000).write(to: context.appendingPathComponent("data/medium.bin"))
                try Data(repeating: 3, count: 10).write(to: context.appendingPathComponent("small.txt"))
                let result = try await runExecutable("drydock", [
                    "build", "--api-url", server.baseURL, "--token", server.ownerToken, "--project", "web", "--progress", "plain", context.path,
                ], environment: ["HOME": dir.path])
                #expect(result.status != 0)
                #expect(result.stderr.contains("over this server's limit of 200.0 kB"), "\(result.stderr)")
                #expect(result.stderr.contains("Largest files: data/big.bin (150.0 kB), data/medium.bin (90.0 kB)"), "\(result.stderr)")
                #expect(result.stderr.contains(".dockerignore"))
                #expect(!result.stderr.contains("uploading"), "nothing was sent: \(result.stderr)")
                let projects = try await server.request(.get, "/api/v1/projects", token: server.ownerToken).decoded(Schemas.ProjectPage.self)
                let contexts = try await server.request(.get, "/api/v1/projects/\(projects.items[0].id)/builds", token: server.ownerToken)
                #expect(try contexts.decoded(Schemas.BuildPage.self).items.isEmpty)
            }
        }
    }
}
