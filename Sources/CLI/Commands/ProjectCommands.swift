import ArgumentParser

struct ProjectCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "projects",
        abstract: "Create, list, inspect, change and delete projects.",
        discussion: "A project is a build cache and a registry namespace (HOST/<project-id>/<name>).",
        subcommands: [ProjectCreate.self, ProjectList.self, ProjectGet.self, ProjectUpdate.self, ProjectDelete.self, TrustCommands.self],
        aliases: ["project"]
    )
}
