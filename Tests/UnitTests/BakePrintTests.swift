import DrydockBake
import Foundation
import Testing

/// `drydock bake --print` for realistic bake files, against JSON worked out from buildx's
/// documentation (defaults `context: "."` and `dockerfile: "Dockerfile"`, later files and child
/// targets replacing tags/platforms/dockerfile/target and merging args/labels, matrix targets
/// named by their `name` template and grouped under the base name).
@Suite("Unit: bake files resolved and printed")
struct BakePrintTests {
    struct Case: Sendable, CustomStringConvertible {
        var description: String
        var files: [(String, String)]
        var names: [String] = []
        var environment: [String: String] = [:]
        var overrides: [String] = []
        var expected: String
    }

    static let services = """
        variable "TAG" {
          default = "latest"
        }
        variable "REGISTRY" {
          default = "reg.example.com"
        }
        function "image" {
          params = [name]
          result = "${REGISTRY}/${name}:${TAG}"
        }
        group "default" {
          targets = ["api", "web"]
        }
        target "_common" {
          args = { GO_VERSION = "1.22" }
          labels = {
            "org.opencontainers.image.source" = "https://github.com/acme/mono"
          }
          platforms = ["linux/amd64"]
        }
        target "_service" {
          inherits = ["_common"]
          dockerfile = "Dockerfile.service"
        }
        target "api" {
          inherits = ["_service"]
          context = "services/api"
          args = { SERVICE = "api" }
          tags = [image("api")]
        }
        target "web" {
          inherits = ["_common"]
          context = "web"
          tags = [image("web"), "${REGISTRY}/web:edge"]
          platforms = ["linux/amd64", "linux/arm64"]
        }
        """

    static let cases: [Case] = [
        Case(description: "services with inherits chains, a function and TAG from the environment",
             files: [("docker-bake.hcl", services)], environment: ["TAG": "v2"], expected: """
            {"group": {"default": {"targets": ["api", "web"]}},
             "target": {
               "api": {"context": "services/api", "dockerfile": "Dockerfile.service",
                       "args": {"GO_VERSION": "1.22", "SERVICE": "api"},
                       "labels": {"org.opencontainers.image.source": "https://github.com/acme/mono"},
                       "platforms": ["linux/amd64"], "tags": ["reg.example.com/api:v2"]},
               "web": {"context": "web", "dockerfile": "Dockerfile",
                       "args": {"GO_VERSION": "1.22"},
                       "labels": {"org.opencontainers.image.source": "https://github.com/acme/mono"},
                       "platforms": ["linux/amd64", "linux/arm64"], "tags": ["reg.example.com/web:v2", "reg.example.com/web:edge"]}}}
            """),
        Case(description: "--set overrides: a platform for every target, one target's tags and an argument",
             files: [("docker-bake.hcl", services)], names: ["api", "web"],
             overrides: ["*.platform=linux/arm64", "api.tags=reg/api:dev", "api.args.EXTRA=1"], expected: """
            {"group": {"default": {"targets": ["api", "web"]}},
             "target": {
               "api": {"context": "services/api", "dockerfile": "Dockerfile.service",
                       "args": {"EXTRA": "1", "GO_VERSION": "1.22", "SERVICE": "api"},
                       "labels": {"org.opencontainers.image.source": "https://github.com/acme/mono"},
                       "platforms": ["linux/arm64"], "tags": ["reg/api:dev"]},
               "web": {"context": "web", "dockerfile": "Dockerfile",
                       "args": {"GO_VERSION": "1.22"},
                       "labels": {"org.opencontainers.image.source": "https://github.com/acme/mono"},
                       "platforms": ["linux/arm64"], "tags": ["reg.example.com/web:latest", "reg.example.com/web:edge"]}}}
            """),
        Case(description: "a matrix over variants and platforms",
             files: [("docker-bake.hcl", """
                target "app" {
                  name = "app-${variant}-${replace(platform, "/", "-")}"
                  matrix = {
                    variant = ["slim", "full"]
                    platform = ["linux/amd64", "linux/arm64"]
                  }
                  dockerfile = "Dockerfile.${variant}"
                  platforms = [platform]
                  args = { VARIANT = variant }
                  tags = ["app:${variant}-${split("/", platform)[1]}"]
                }
                """)], names: ["app"], expected: """
            {"group": {"default": {"targets": ["app"]},
                       "app": {"targets": ["app-full-linux-amd64", "app-full-linux-arm64", "app-slim-linux-amd64", "app-slim-linux-arm64"]}},
             "target": {
               "app-full-linux-amd64": {"context": ".", "dockerfile": "Dockerfile.full", "args": {"VARIANT": "full"}, "platforms": ["linux/amd64"], "tags": ["app:full-amd64"]},
               "app-full-linux-arm64": {"context": ".", "dockerfile": "Dockerfile.full", "args": {"VARIANT": "full"}, "platforms": ["linux/arm64"], "tags": ["app:full-arm64"]},
               "app-slim-linux-amd64": {"context": ".", "dockerfile": "Dockerfile.slim", "args": {"VARIANT": "slim"}, "platforms": ["linux/amd64"], "tags": ["app:slim-amd64"]},
               "app-slim-linux-arm64": {"context": ".", "dockerfile": "Dockerfile.slim", "args": {"VARIANT": "slim"}, "platforms": ["linux/arm64"], "tags": ["app:slim-arm64"]}}}
            """),
        Case(description: "a compose file with two services that build (and one that does not)",
             files: [("compose.yaml", """
                services:
                  api:
                    image: acme/api:latest
                    build:
                      context: ./api
                      args:
                        - VERSION=${VERSION:-1.0}
                  web:
                    build: ./web
                  db:
                    image: postgres:16
                """)], environment: [:], expected: """
            {"group": {"default": {"targets": ["api", "web"]}},
             "target": {
               "api": {"context": "./api", "dockerfile": "Dockerfile", "args": {"VERSION": "1.0"}, "tags": ["acme/api:latest"]},
               "web": {"context": "./web", "dockerfile": "Dockerfile"}}}
            """),
        Case(description: "an HCL file and its override: tags replaced, args merged",
             files: [("docker-bake.hcl", """
                target "default" {
                  context = "."
                  tags = ["app:dev"]
                  args = { A = "1" }
                }
                """), ("docker-bake.override.hcl", """
                target "default" {
                  tags = ["app:prod"]
                  args = { B = "2" }
                }
                """)], expected: """
            {"group": {"default": {"targets": ["default"]}},
             "target": {"default": {"context": ".", "dockerfile": "Dockerfile", "args": {"A": "1", "B": "2"}, "tags": ["app:prod"]}}}
            """),
        Case(description: "a JSON bake file whose strings interpolate variables, and a target: context",
             files: [("docker-bake.json", """
                {"variable": {"TAG": {"default": "1.0"}},
                 "group": {"default": {"targets": ["app"]}},
                 "target": {"base": {"dockerfile": "base.Dockerfile"},
                            "app": {"contexts": {"base": "target:base"}, "tags": ["app:${TAG}"]}}}
                """)], expected: """
            {"group": {"default": {"targets": ["app"]}},
             "target": {"app": {"context": ".", "dockerfile": "Dockerfile", "contexts": {"base": "target:base"}, "tags": ["app:1.0"]},
                        "base": {"context": ".", "dockerfile": "base.Dockerfile"}}}
            """),
    ]

    static func canonical(_ json: String) throws -> String {
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8))
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    @Test("--print writes what buildx would", arguments: cases)
    func printed(_ c: Case) throws {
        let definition = try Bake.load(c.files.map { BakeFileSource(name: $0.0, text: $0.1) }, names: c.names,
                                       options: BakeOptions(environment: c.environment, overrides: c.overrides, localPlatform: "linux/amd64"))
        let actual = try Self.canonical(try definition.printed())
        #expect(actual == (try Self.canonical(c.expected)), "\(c.description): \(actual)")
    }

    static let errors: [(String, String, String)] = [
        ("target \"a\" {\n  inherits = [\"b\"]\n}\ntarget \"b\" {\n  inherits = [\"a\"]\n}\n", "a", "a cycle through inherits or target references: a -> b -> a"),
        ("target \"a\" {\n  tags = [\"x:${NOPE}\"]\n}\n", "a", "docker-bake.hcl:2:"),
        ("target \"a\" {\n  tags = [\"x:${NOPE}\"]\n}\n", "a", "undefined variable 'NOPE'"),
        ("target \"a\" {\n  context = \".\"\n}\n", "b", "unknown target or group 'b' (the bake files define: a)"),
        ("variable \"N\" {\n  default = 0\n  validation {\n    condition = N > 0\n    error_message = \"N must be positive\"\n  }\n}\ntarget \"a\" {\n  args = { N = N }\n}\n", "a", "docker-bake.hcl:4:17: variable N = 0: N must be positive"),
        ("target \"a\" {\n  tags = upper(1, 2)\n}\n", "a", "upper() takes 1 argument(s), not 2"),
        ("target \"a\" {\n  contexts = { b = \"target:b\" }\n}\ntarget \"b\" {\n  contexts = { a = \"target:a\" }\n}\n", "a", "a cycle through contexts"),
        ("target \"a\" {\n  colour = \"red\"\n}\n", "a", "docker-bake.hcl:2:3: unknown attribute 'colour' in target 'a'"),
        ("target \"a\" {\n  tags = [\"x\"\n}\n", "a", "docker-bake.hcl:3:1: expected ','"),
    ]

    @Test("mistakes are one line naming the file, line and column", arguments: errors)
    func failure(_ source: String, _ name: String, _ words: String) {
        do {
            _ = try Bake.load([BakeFileSource(name: "docker-bake.hcl", text: source)], names: [name],
                              options: BakeOptions(environment: [:], localPlatform: "linux/amd64"))
            Issue.record("no error for: \(source)")
        } catch {
            #expect("\(error)".contains(words), "\(error)")
            #expect(!"\(error)".contains("\n"), "one line: \(error)")
        }
    }

    @Test("user functions with variadic parameters, variables built from variables, heredoc Dockerfiles")
    func functions() throws {
        let source = """
            variable "REPO" { default = "acme" }
            variable "IMAGE" { default = "${REPO}/app" }
            function "tags" {
              params = [image]
              variadic_param = versions
              result = [for v in versions : "${image}:${v}"]
            }
            target "t" {
              tags = tags(IMAGE, "1", "1.2", "latest")
              dockerfile-inline = <<-EOT
                FROM busybox
                RUN echo ${upper(REPO)}
                EOT
            }
            """
        let definition = try Bake.load([BakeFileSource(name: "docker-bake.hcl", text: source)], names: ["t"],
                                       options: BakeOptions(environment: ["REPO": "globex"], localPlatform: "linux/amd64"))
        let target = try #require(definition.targets["t"])
        #expect(target.tags == ["globex/app:1", "globex/app:1.2", "globex/app:latest"])
        #expect(target.dockerfileInline == "FROM busybox\nRUN echo GLOBEX\n")
    }

    @Test("target.NAME.ATTR reads another target's resolved attributes; a target reading itself is a cycle")
    func targetReferences() throws {
        let source = """
            target "base" {
              tags = ["acme/base:1"]
              args = { GO = "1.22" }
            }
            target "app" {
              args = { BASE_TAG = target.base.tags[0], GO = target.base.args.GO }
              tags = ["acme/app:${target.base.args.GO}"]
            }
            target "loop" {
              tags = target.loop.tags
            }
            """
        let definition = try Bake.load([BakeFileSource(name: "docker-bake.hcl", text: source)], names: ["app"],
                                       options: BakeOptions(environment: [:], localPlatform: "linux/amd64"))
        #expect(definition.targets["app"]?.args == ["BASE_TAG": "acme/base:1", "GO": "1.22"])
        #expect(definition.targets["app"]?.tags == ["acme/app:1.22"])
        #expect(throws: BakeError.self) {
            try Bake.load([BakeFileSource(name: "docker-bake.hcl", text: source)], names: ["loop"],
                          options: BakeOptions(environment: [:], localPlatform: "linux/amd64"))
        }
    }

    @Test("variables: environment overrides typed like their defaults; BAKE_LOCAL_PLATFORM and BAKE_CMD_CONTEXT")
    func variables() throws {
        let source = """
            variable "COUNT" { default = 1 }
            variable "DEBUG" { default = false }
            variable "EXTRA" { default = ["a"] }
            target "t" {
              args = {
                COUNT = COUNT + 1
                DEBUG = DEBUG ? "yes" : "no"
                EXTRA = join(",", EXTRA)
                PLATFORM = BAKE_LOCAL_PLATFORM
              }
              context = BAKE_CMD_CONTEXT
            }
            """
        let definition = try Bake.load([BakeFileSource(name: "docker-bake.hcl", text: source)], names: ["t"],
                                       options: BakeOptions(environment: ["COUNT": "41", "DEBUG": "true", "EXTRA": "[\"x\",\"y\"]"], localPlatform: "linux/arm64",
                                                            commandContext: "cwd"))
        let args = try #require(definition.targets["t"]).args
        #expect(args["COUNT"] == "42" && args["DEBUG"] == "yes" && args["EXTRA"] == "x,y" && args["PLATFORM"] == "linux/arm64")
        #expect(definition.targets["t"]?.context == "cwd")
        #expect(throws: BakeError.self) {
            try Bake.load([BakeFileSource(name: "docker-bake.hcl", text: source)], names: ["t"],
                          options: BakeOptions(environment: ["COUNT": "many"], localPlatform: "linux/amd64"))
        }
    }
}
