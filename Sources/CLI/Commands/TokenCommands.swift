import ArgumentParser

struct TokenCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens",
        abstract: "Create, list and revoke tokens for people, CI and builders.",
        discussion: "Secrets are shown once, when created; the server keeps only a hash.",
        subcommands: [TokenCreate.self, TokenList.self, TokenRevoke.self],
        aliases: ["token"]
    )
}
