import ArgumentParser
import DrydockServer

struct Bootstrap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create an organization and its owner, and print the owner's token once (last line of stdout).")
    @OptionGroup var storage: StorageOptions

    @Option(help: "Name of the organization to create.")
    var org: String

    @Option(help: "The owner's email (default owner@<org>.local).")
    var email: String?

    @Option(help: "developer (default), startup or business.")
    var plan: PlanName = .developer

    func run() async throws {
        let result = try await storage.runOperatorCommand { configuration, logger in
            try await ServerRunner.bootstrap(configuration, organization: org, email: email, plan: plan, logger: logger)
        }
        print("Created organization \(result.organization.name) (id \(result.organization.id), \(result.organization.plan.rawValue) plan) with owner \(result.owner.email).")
        print("The owner's token follows; it is shown only this once:")
        print(result.secret)
    }
}
