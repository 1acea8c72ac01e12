import ArgumentParser
import DrydockClient
import DrydockProcess

struct MemberCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "members",
        abstract: "List, add and remove the people of your organization, and change their roles.",
        discussion: HelpText.reflow("""
            Roles: owner (everything, including billing and other owners), admin (members, projects,
            tokens, caps) and member (builds and their own tokens). Owners and admins manage
            members; only owners make owners. Name a member by email or user id.
            """),
        subcommands: [MemberList.self, MemberAdd.self, MemberSetRole.self, MemberRemove.self],
        aliases: ["member"]
    )
}

extension Components.Schemas.Role: ExpressibleByArgument {}

extension Components.Schemas.Member {
    var tableRow: [String] { [user.id, user.email, role.rawValue, Output.date(joinedAt)] }
    static let tableHeaders = ["USER ID", "EMAIL", "ROLE", "JOINED"]
}

extension DrydockClient {
    /// The caller's organization.
    func currentOrganizationId() async throws -> String {
        try await whoami().organization.id
    }

    /// A member named by user id or email (case-insensitive).
    func member(named name: String, in orgId: String) async throws -> Components.Schemas.Member {
        let members = try await allMembers(orgId)
        if let found = members.first(where: { $0.user.id == name || $0.user.email.lowercased() == name.lowercased() }) {
            return found
        }
        throw CLIError("no member '\(name)' in your organization; 'drydock members list' shows who is")
    }
}

struct MemberList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the organization's members.", aliases: ["ls"])

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption
    @OptionGroup var paging: PagingOptions

    func run() async throws {
        let client = try await connection.client()
        let orgId = try await client.currentOrganizationId()
        let (members, next) = try await paging.fetch { limit, cursor in
            let page = try await client.members(orgId, limit: limit, cursor: cursor)
            return (page.items, page.nextCursor)
        }
        try output.list(members, nextCursor: next, headers: Components.Schemas.Member.tableHeaders, rows: members.map(\.tableRow),
                        empty: "No members.")
    }
}

struct MemberAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "Add a member; prints their first token once (give it to them).")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Argument(help: "The new member's email address.")
    var email: String

    @Option(help: "owner, admin or member.")
    var role: Components.Schemas.Role = .member

    func run() async throws {
        let client = try await connection.client()
        let created = try await client.addMember(try await client.currentOrganizationId(), email: email, role: role)
        try output.created(
            created,
            message: "Added \(created.member.user.email) as \(created.member.role.rawValue). Their first token follows, shown once: give it to them for 'drydock login --token TOKEN'.",
            secret: created.token,
            fields: [("User ID", created.member.user.id), ("Email", created.member.user.email), ("Role", created.member.role.rawValue),
                     ("Token", created.token)])
    }
}

struct MemberSetRole: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set-role", abstract: "Change a member's role.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Argument(help: "The member: email or user id.")
    var member: String

    @Argument(help: "owner, admin or member.")
    var role: Components.Schemas.Role

    func run() async throws {
        let client = try await connection.client()
        let orgId = try await client.currentOrganizationId()
        let current = try await client.member(named: member, in: orgId)
        let updated = try await client.updateMember(orgId, userId: current.user.id, role: role)
        try output.details(updated, [("User ID", updated.user.id), ("Email", updated.user.email), ("Role", updated.role.rawValue)])
    }
}

struct MemberRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Remove a member; their user tokens are revoked at once.", aliases: ["rm"])

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "The member: email or user id.")
    var member: String

    func run() async throws {
        let client = try await connection.client()
        let orgId = try await client.currentOrganizationId()
        let current = try await client.member(named: member, in: orgId)
        try await client.removeMember(orgId, userId: current.user.id)
        print("Removed \(current.user.email) from the organization; their tokens are revoked.")
    }
}
