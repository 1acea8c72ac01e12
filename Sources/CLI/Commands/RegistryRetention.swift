import ArgumentParser
import DrydockClient
import DrydockProcess
import Foundation

struct RegistryRetention: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention",
        abstract: "Show, set and preview what registry housekeeping deletes in a project.",
        discussion: HelpText.reflow("""
            A policy deletes untagged manifests older than N days, build images (<project>/build:<id>) \
            older than N days, and tags beyond the newest N matching a pattern; it also makes tags \
            immutable (a push that would move them is refused). Patterns are TAG-GLOB or \
            REPOSITORY:TAG-GLOB with * and ?. Housekeeping applies it (every 10 minutes); the blobs of \
            what it deletes are freed by the collector afterwards. Preview before you set it.

            Examples:
              drydock registry retention show --project ID
              drydock registry retention set --untagged-days 14 --build-tag-days 7 \\
                  --keep 'v*=10' --immutable 'release-*'
              drydock registry retention preview
            """),
        subcommands: [Show.self, Set.self, Preview.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the project's retention policy.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var project: ProjectOption
        @OptionGroup var output: FormatOption

        func run() async throws {
            let client = try await connection.client()
            let policy = try await client.retentionPolicy(projectId: try await project.id(using: client))
            try output.details(policy, RegistryRetention.fields(policy))
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Replace the project's retention policy (options not given are removed from it).")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var project: ProjectOption
        @OptionGroup var output: FormatOption

        @Option(name: .customLong("untagged-days"), help: "Delete manifests untagged for longer than this many days.")
        var untaggedDays: Int?
        @Option(name: .customLong("build-tag-days"), help: "Keep build images (<project>/build:<id>) this many days.")
        var buildTagDays: Int?
        @Option(name: .customLong("keep"), help: ArgumentHelp("Keep only the newest COUNT tags matching PATTERN in each repository (repeatable).", valueName: "PATTERN=COUNT"))
        var keep: [String] = []
        @Option(name: .customLong("immutable"), help: ArgumentHelp("Tags a push may never move (repeatable).", valueName: "PATTERN"))
        var immutable: [String] = []

        func run() async throws {
            var rules: [Components.Schemas.RetentionPolicy.KeepPayloadPayload] = []
            for raw in keep {
                guard let eq = raw.lastIndex(of: "="), let count = Int(raw[raw.index(after: eq)...]), count > 0, eq != raw.startIndex else {
                    throw ValidationError("--keep takes PATTERN=COUNT with a positive COUNT, such as 'v*=10' (got '\(raw)')")
                }
                rules.append(.init(pattern: String(raw[..<eq]), count: count))
            }
            let client = try await connection.client()
            let policy = try await client.setRetentionPolicy(
                projectId: try await project.id(using: client),
                .init(untaggedDays: untaggedDays, buildTagDays: buildTagDays, keep: rules.isEmpty ? nil : rules,
                      immutableTags: immutable.isEmpty ? nil : immutable))
            try output.details(policy, RegistryRetention.fields(policy))
        }
    }

    struct Preview: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List what the policy would delete if housekeeping ran now.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var project: ProjectOption
        @OptionGroup var output: FormatOption

        func run() async throws {
            let client = try await connection.client()
            let preview = try await client.previewRetention(projectId: try await project.id(using: client))
            let rows = preview.tags.map { ["tag", "\($0.repository):\($0.tag)", String($0.digest.prefix(19)), $0.reason] }
                + preview.manifests.map { ["manifest", $0.repository, String($0.digest.prefix(19)), $0.reason] }
            switch output.format {
            case .json: try Output.json(preview)
            case .csv: Output.csv([["DELETES", "WHAT", "DIGEST", "WHY"]] + rows)
            case .table: Output.table(["DELETES", "WHAT", "DIGEST", "WHY"], rows, empty: "The policy deletes nothing now.")
            }
        }
    }

    static func fields(_ p: Components.Schemas.RetentionPolicy) -> [(String, String)] {
        [("Untagged manifests", p.untaggedDays.map { "deleted after \($0) days" } ?? "kept"),
         ("Build images", p.buildTagDays.map { "kept \($0) days" } ?? "kept"),
         ("Keep newest", (p.keep ?? []).map { "\($0.pattern)=\($0.count)" }.joined(separator: ", ").nonEmptyOr("-")),
         ("Immutable tags", (p.immutableTags ?? []).joined(separator: ", ").nonEmptyOr("-"))]
    }
}

extension String {
    func nonEmptyOr(_ fallback: String) -> String { isEmpty ? fallback : self }
}
