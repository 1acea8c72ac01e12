import ArgumentParser
import DrydockClient
import DrydockProcess

struct CacheCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "A project's layer cache: its size per platform, and starting it over.",
        discussion: HelpText.reflow("""
            Each project has a persistent layer cache per platform on its builders. Its policy (drydock
            projects update --keep-gb, --keep-days) is applied after every job: the least recently used
            images go first until the cache is within its size, and nothing unused for longer than its days stays.
            """),
        subcommands: [CacheShow.self, CacheReset.self],
        defaultSubcommand: CacheShow.self
    )
}

struct CacheShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Size, image count and last use of the project's cache, per platform (as its builders last reported).")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Option(help: "Project ID or name.")
    var project: String

    @Option(help: "Only this platform, e.g. linux/arm64.")
    var platform: String?

    func run() async throws {
        let client = try await connection.client()
        let wanted = try platform.map(CacheReset.platform)
        let caches = try await client.projectCache(try await client.projectId(for: project)).filter { wanted == nil || $0.platform == wanted }
        try output.list(caches, headers: ["PLATFORM", "SIZE", "IMAGES", "LAST USED", "RESET"], rows: caches.map { cache in
            [cache.platform, Output.bytes(cache.bytes), "\(cache.images)", Output.date(cache.lastUsedAt), cache.resetAt.map(Output.date) ?? "-"]
        }, empty: "No cache yet\(wanted.map { " for \($0)" } ?? ""): the project's first build makes one.")
    }
}

struct CacheReset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset", abstract: "Start the project's cache over: the next build runs uncached, and the old cache is deleted.",
        discussion: "Without --platform, every platform's cache is reset.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Option(help: "Project ID or name.")
    var project: String

    @Option(help: "Only this platform's cache, e.g. linux/amd64.")
    var platform: String?

    static func platform(_ raw: String) throws -> String {
        guard let parsed = Platform(raw), parsed.isSupported else {
            throw CLIError("--platform '\(raw)' is not a supported platform; use \(Platform.supportedList)")
        }
        return parsed.description
    }

    func run() async throws {
        let client = try await connection.client()
        let wanted = try platform.map(Self.platform)
        let caches = try await client.resetProjectCache(try await client.projectId(for: project), platform: wanted)
        try output.list(caches, headers: ["PLATFORM", "SIZE", "IMAGES", "LAST USED", "RESET"], rows: caches.map { cache in
            [cache.platform, Output.bytes(cache.bytes), "\(cache.images)", Output.date(cache.lastUsedAt), cache.resetAt.map(Output.date) ?? "-"]
        }, empty: "The project has no cache yet; nothing to reset.")
        if output.format != .json {
            print("The next build\(wanted.map { " for \($0)" } ?? "") starts on an empty cache; its builder deletes the old one.")
        }
    }
}
