import ArgumentParser
import DrydockClient
import DrydockProcess
import Foundation

struct TrustCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust",
        abstract: "Let CI jobs build in a project without a stored secret (OIDC trust relationships).",
        discussion: HelpText.reflow("""
            A CI job proves who it is with its provider's OIDC ID token; 'drydock' running in the job \
            trades it for a token of the projects that trust it (POST /api/v1/oidc/token), good for an \
            hour at most. Nothing to paste into the CI's secrets.

              drydock projects trust add api --github acme/api --ref main
              drydock projects trust add api --github acme/api --isolate pull-requests
              drydock projects trust add api --gitlab acme/backend/api --ref main
              drydock projects trust add api --circleci ORG-ID/PROJECT-ID
              drydock projects trust add api --buildkite acme/api-pipeline
              drydock projects trust add api --issuer https://idp.example.com \\
                  --claim sub=deploy-bot
            """),
        subcommands: [TrustAdd.self, TrustList.self, TrustRemove.self])
}

struct TrustAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "Trust a CI identity to build in a project.",
        discussion: HelpText.reflow("""
            Exactly one of --github, --gitlab, --circleci, --buildkite or --issuer. --ref narrows to refs \
            (GitHub: main means refs/heads/main, refs/tags/v* is a prefix; GitLab and Buildkite: branch \
            names), --environment to deployment environments, --workflow to GitHub workflow names, \
            --claim KEY=VALUE to exact claims (required with --issuer).

            --isolate pull-requests: jobs of pull requests (GitHub pull_request events, GitLab merge \
            request pipelines) get a token that can start isolated builds only (no cache, no secrets, \
            no tags); a pull request's ref is refs/pull/N/merge, so trust --ref 'refs/pull/*' for them. \
            --isolate always: every job does.
            """))

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Argument(help: "Project ID or name.")
    var project: String

    @Option(name: .customLong("github"), help: ArgumentHelp("A GitHub repository.", valueName: "OWNER/REPO"))
    var github: String?

    @Option(name: .customLong("gitlab"), help: ArgumentHelp("A GitLab project path.", valueName: "GROUP/PROJECT"))
    var gitlab: String?

    @Option(name: .customLong("gitlab-url"), help: ArgumentHelp("A self-managed GitLab's URL (the server must list it as gitlab=URL in DRYDOCK_OIDC_ISSUERS).", valueName: "URL"))
    var gitlabURL: String?

    @Option(name: .customLong("circleci"), help: ArgumentHelp("A CircleCI project by its ids.", valueName: "ORG-ID/PROJECT-ID"))
    var circleci: String?

    @Option(name: .customLong("buildkite"), help: ArgumentHelp("A Buildkite pipeline.", valueName: "ORG/PIPELINE"))
    var buildkite: String?

    @Option(name: .customLong("issuer"), help: ArgumentHelp("Another OIDC issuer (one of the server's DRYDOCK_OIDC_ISSUERS); with --github, a GitHub Enterprise Server issuer.", valueName: "URL"))
    var issuer: String?

    @Option(name: .customLong("ref"), help: ArgumentHelp("Only this ref (repeat for several).", valueName: "REF"))
    var refs: [String] = []

    @Option(name: .customLong("environment"), help: ArgumentHelp("Only jobs of this deployment environment (repeat for several).", valueName: "NAME"))
    var environments: [String] = []

    @Option(name: .customLong("workflow"), help: ArgumentHelp("GitHub: only this workflow (repeat for several).", valueName: "NAME"))
    var workflows: [String] = []

    @Option(name: .customLong("claim"), help: ArgumentHelp("A claim that must equal VALUE (repeat for several).", valueName: "KEY=VALUE"))
    var claims: [String] = []

    @Option(help: ArgumentHelp("never (default), pull-requests or always: which jobs may start isolated builds only.", valueName: "WHEN"))
    var isolate: Components.Schemas.TrustIsolation?

    func validate() throws {
        let chosen = [github, gitlab, circleci, buildkite].compactMap { $0 }.count
        if chosen > 1 { throw ValidationError("pass one of --github, --gitlab, --circleci and --buildkite") }
        if chosen == 0, issuer == nil {
            throw ValidationError("say what to trust: --github OWNER/REPO, --gitlab GROUP/PROJECT, --circleci ORG-ID/PROJECT-ID, --buildkite ORG/PIPELINE or --issuer URL --claim KEY=VALUE")
        }
        if gitlabURL != nil, gitlab == nil { throw ValidationError("--gitlab-url goes with --gitlab") }
        for claim in claims where !claim.contains("=") || claim.hasPrefix("=") {
            throw ValidationError("--claim takes KEY=VALUE (got '\(claim)')")
        }
    }

    func body() -> Components.Schemas.TrustRelationshipCreate {
        var claimMap: [String: String] = [:]
        for claim in claims {
            let parts = claim.split(separator: "=", maxSplits: 1).map(String.init)
            claimMap[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        let provider: Components.Schemas.TrustProvider
        let subject: String?
        var issuerURL = issuer
        if let github { (provider, subject) = (.github, github) }
        else if let gitlab { (provider, subject) = (.gitlab, gitlab); issuerURL = gitlabURL ?? issuer }
        else if let circleci { (provider, subject) = (.circleci, circleci) }
        else if let buildkite { (provider, subject) = (.buildkite, buildkite) }
        else { (provider, subject) = (.oidc, nil) }
        return .init(provider: provider, subject: subject, refs: refs.isEmpty ? nil : refs,
                     environments: environments.isEmpty ? nil : environments, workflows: workflows.isEmpty ? nil : workflows,
                     issuer: issuerURL, claims: claimMap.isEmpty ? nil : .init(additionalProperties: claimMap), isolate: isolate)
    }

    func run() async throws {
        let client = try await connection.client()
        let projectId = try await client.projectId(for: project)
        let trust = try await client.createTrustRelationship(projectId: projectId, body())
        try output.details(trust, TrustList.fields(trust))
    }
}

struct TrustList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "The CI identities a project trusts.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Argument(help: "Project ID or name.")
    var project: String

    static func conditions(_ trust: Components.Schemas.TrustRelationship) -> String {
        trust.conditions.additionalProperties.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.joined(separator: "|"))" }.joined(separator: " ")
    }

    static func fields(_ trust: Components.Schemas.TrustRelationship) -> [(String, String)] {
        [("ID", trust.id), ("Project", trust.projectId), ("Provider", trust.provider.rawValue), ("Subject", trust.subject),
         ("Issuer", trust.issuer), ("Conditions", conditions(trust)), ("Isolate", trust.isolate.rawValue),
         ("Created", Output.date(trust.createdAt))]
    }

    func run() async throws {
        let client = try await connection.client()
        let projectId = try await client.projectId(for: project)
        let items = try await client.trustRelationships(projectId: projectId)
        try output.list(items, headers: ["ID", "PROVIDER", "SUBJECT", "CONDITIONS", "ISOLATE", "CREATED"],
                        rows: items.map { [$0.id, $0.provider.rawValue, $0.subject, Self.conditions($0), $0.isolate.rawValue, Output.date($0.createdAt)] },
                        empty: "The project trusts no CI identity yet; add one with 'drydock projects trust add \(project) --github OWNER/REPO'.")
    }
}

struct TrustRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Stop trusting a CI identity (tokens it already got run out within the hour).",
        aliases: ["rm"])

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "Project ID or name.")
    var project: String

    @Argument(help: "The trust relationship's ID (see 'drydock projects trust list').")
    var id: String

    func run() async throws {
        let client = try await connection.client()
        let projectId = try await client.projectId(for: project)
        try await client.deleteTrustRelationship(projectId: projectId, id: id)
        print("Removed trust relationship \(id) from project \(projectId).")
    }
}

extension Components.Schemas.TrustIsolation: ExpressibleByArgument {}
