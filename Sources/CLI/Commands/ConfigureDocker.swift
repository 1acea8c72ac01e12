import ArgumentParser
import DrydockClient
import DrydockProcess
import Foundation

struct ConfigureDocker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "configure-docker",
        abstract: "Plug Drydock into the docker CLI: 'docker drydock build', and with --default, 'docker build' itself.",
        discussion: HelpText.reflow("""
            Installs drydock as a docker CLI plugin ($DOCKER_CONFIG/cli-plugins/docker-drydock, default \
            ~/.docker), and the credential helper docker-credential-drydock for this server's registry, \
            so docker, podman, buildah and skopeo pull and push there with your Drydock login (no \
            'docker login'). With --default, 'docker build …' runs on Drydock (the docker CLI's builder \
            alias), exiting with the build's status; no Docker engine is needed for it. \
            --undo puts everything back as it was.
            """))

    @OptionGroup var connection: ConnectionOptions

    @Flag(help: "Make 'docker build' run through Drydock (sets the docker CLI's builder alias).")
    var `default` = false

    @Flag(help: "Take back what configure-docker and registry login did.")
    var undo = false

    func run() async throws {
        let integration = DockerIntegration(directory: DockerIntegration.configDirectory(), executable: DockerIntegration.ownExecutable())
        if undo {
            let said = try integration.undo()
            print(said.isEmpty ? "Nothing to undo: Drydock had not configured \(integration.directory.path)." : said.joined(separator: "\n"))
            return
        }
        let host = try connection.serverURL().registryHost
        var settings: [(path: [String], value: String)] = [(["credHelpers", host], "drydock")]
        if `default` { settings.append((["aliases", "builder"], "drydock")) }
        let helper = DockerIntegration.helperLink(executable: integration.executable)
        let said = try integration.apply(settings, links: [integration.pluginLink, helper])
        print(said.joined(separator: "\n"))
        print("'docker drydock build' builds on \(try connection.serverURL().absoluteString)" + (`default` ? "; so does 'docker build'." : "."))
        print("docker, podman, buildah and skopeo use your Drydock login for \(host) (docker-credential-drydock).")
        RegistryLogin.warnIfNotOnPath(helper)
    }
}

struct RegistryLogin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Let docker, podman, buildah and skopeo use your Drydock login for this server's registry.",
        discussion: HelpText.reflow("""
            Sets up the credential helper docker-credential-drydock for the registry's host in the docker \
            configuration ($DOCKER_CONFIG/config.json, default ~/.docker), which the containers tools read \
            too. The helper hands out the token drydock itself would use (DRYDOCK_TOKEN, an OIDC exchange in \
            CI, or the saved login), so nothing is copied. 'drydock configure-docker --undo' takes it back.
            """))

    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let client = try await connection.client()
        _ = try await client.whoami()  // the login works before anything points at it
        let integration = DockerIntegration(directory: DockerIntegration.configDirectory(), executable: DockerIntegration.ownExecutable())
        let host = client.baseURL.registryHost
        let helper = DockerIntegration.helperLink(executable: integration.executable)
        let said = try integration.apply([(["credHelpers", host], "drydock")], links: [helper])
        print(said.joined(separator: "\n"))
        print("Registry \(host): docker, podman, buildah and skopeo now use your Drydock login.")
        Self.warnIfNotOnPath(helper)
    }

    static func warnIfNotOnPath(_ helper: URL) {
        if !DockerIntegration.onPath(helper.deletingLastPathComponent()) {
            FileHandle.standardError.write(Data("warning: \(helper.deletingLastPathComponent().path) is not on PATH; add it so docker finds docker-credential-drydock\n".utf8))
        }
    }
}
