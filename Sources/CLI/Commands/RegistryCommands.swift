import ArgumentParser
import DrydockClient
import DrydockProcess
import Foundation

struct RegistryCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registry",
        abstract: "Look after the project's registry: repositories, tags, storage.",
        discussion: HelpText.reflow("""
            Images live at HOST/<project-id>/<name>:<tag>. 'drydock registry login' lets docker, podman,
            buildah and skopeo use your Drydock login there (a credential helper); or log them in with
            any username and a Drydock token as the password, e.g.
              skopeo login --username ci --password "$DRYDOCK_TOKEN" HOST
            """),
        subcommands: [RegistryLogin.self, RegistryList.self, RegistryTags.self, RegistryRemove.self, RegistryUsage.self, RegistryRetention.self]
    )
}
