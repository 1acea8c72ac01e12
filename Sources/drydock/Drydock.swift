import DrydockCLI
import Foundation

@main
enum Drydock {
    static func main() async {
        // One binary, three names: drydock, the docker CLI plugin docker-drydock, and the
        // credential helper docker-credential-drydock (links `drydock configure-docker` makes).
        let name = URL(fileURLWithPath: CommandLine.arguments.first ?? "drydock").lastPathComponent
        switch name {
        case "docker-credential-drydock":
            exit(await CredentialHelper.main(Array(CommandLine.arguments.dropFirst())))
        case "docker-drydock":
            if CommandLine.arguments.dropFirst().first == "docker-cli-plugin-metadata" {
                print(DockerPlugin.metadata)
                return
            }
            await DrydockCommand.runMain(DockerPlugin.arguments(CommandLine.arguments))
        default:
            await DrydockCommand.runMain()
        }
    }
}
