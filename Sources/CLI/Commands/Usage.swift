import ArgumentParser
import DrydockClient
import Foundation

struct UsageCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "Build minutes, storage and estimated cost; usage caps.",
        discussion: """
            Periods are UTC. Build time is billed per second from each job's start to its finish (per
            platform) and shown in minutes; storage (builder caches and the registry) in GB-months.
            Examples:
              drydock usage                          this month, by project
              drydock usage --month 2026-10 --by day --format csv
              drydock usage caps set --minutes 3000 --spend 250.00
            """,
        subcommands: [UsageShow.self, UsageCaps.self],
        defaultSubcommand: UsageShow.self
    )
}

struct UsageShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Usage and estimated cost for a period (default: this month).")

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Organization ID (default: the token's).")
    var org: String?

    @Option(help: "Only this project.")
    var project: String?

    @Option(help: "A calendar month, YYYY-MM.")
    var month: String?

    @Option(help: "First day, YYYY-MM-DD (with --to).")
    var from: String?

    @Option(help: "Last day, YYYY-MM-DD (inclusive).")
    var to: String?

    @Option(help: "project or day.")
    var by: Grouping = .project

    @Option(help: "table, json or csv.")
    var format: Format = .table

    enum Grouping: String, ExpressibleByArgument, CaseIterable { case project, day }
    enum Format: String, ExpressibleByArgument, CaseIterable { case table, json, csv }

    func validate() throws {
        if month != nil, from != nil || to != nil { throw ValidationError("give --month or --from/--to, not both") }
        if (from == nil) != (to == nil) { throw ValidationError("give both --from and --to") }
    }

    func run() async throws {
        let client = try connection.client()
        let usage: Components.Schemas.Usage
        if let project {
            usage = try await client.projectUsage(projectId: project, month: month, from: from, to: to)
        } else {
            let orgId: String
            if let org { orgId = org } else { orgId = try await client.whoami().organization.id }
            usage = try await client.usage(orgId: orgId, month: month, from: from, to: to)
        }
        switch format {
        case .json:
            try Output.json(usage)
        case .csv:
            if by == .project {
                print("project_id,name,build_seconds,build_minutes,storage_gb_months")
                for p in usage.byProject { print("\(p.projectId),\(csv(p.name)),\(p.buildSeconds),\(p.buildMinutes),\(p.storageGBMonths)") }
            } else {
                print("date,build_seconds,build_minutes")
                for d in usage.byDay { print("\(d.date),\(d.buildSeconds),\(d.buildMinutes)") }
            }
        case .table:
            let period = "\(Output.date(usage.from)) – \(Output.date(usage.to))"
            var pairs: [(String, String)] = [
                ("Period", period), ("Plan", usage.plan.rawValue),
                ("Build minutes", String(format: "%.2f of %d included (overage %.2f)", usage.buildMinutes, usage.includedMinutes, usage.overageMinutes)),
                ("Storage", String(format: "%.3f GB-months (%d GB included)", usage.storageGBMonths, usage.includedStorageGB)),
            ]
            if let cost = usage.cost { pairs.append(("Estimated cost", cost.total)) }
            if let caps = usage.caps {
                if let minutes = caps.minutesPerMonth { pairs.append(("Minutes cap", "\(minutes)/month (\(caps.minutesUsedPercent ?? 0)% used)")) }
                if let spend = caps.spendPerMonth { pairs.append(("Spend cap", "\(spend)/month (\(caps.spendUsedPercent ?? 0)% used)")) }
            }
            Output.keyValues(pairs)
            for warning in usage.warnings ?? [] { print("warning: \(warning)") }
            if let cost = usage.cost {
                print("")
                Output.table(["MONTH", "ITEM", "QUANTITY", "PRICE", "AMOUNT"], cost.lines.map { [$0.month, $0.item, $0.quantity, $0.unitPrice, $0.amount] }, empty: "")
            }
            print("")
            if by == .project {
                Output.table(["PROJECT", "NAME", "BUILD MINUTES", "STORAGE GB-MONTHS"], usage.byProject.map {
                    [$0.projectId, $0.name, String(format: "%.2f", $0.buildMinutes), String(format: "%.3f", $0.storageGBMonths)]
                }, empty: "No usage in this period.")
            } else {
                Output.table(["DATE", "BUILD MINUTES"], usage.byDay.map { [$0.date, String(format: "%.2f", $0.buildMinutes)] }, empty: "No days in this period yet.")
            }
        }
    }

    func csv(_ text: String) -> String {
        text.contains(",") || text.contains("\"") ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }
}

struct UsageCaps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "caps",
        abstract: "Show, set or clear the organization's hard caps (Startup and Business plans).",
        discussion: "A build that would start past a cap is refused (HTTP 402) with the figures and how to raise it.",
        subcommands: [UsageCapsShow.self, UsageCapsSet.self, UsageCapsClear.self],
        defaultSubcommand: UsageCapsShow.self
    )
}

struct UsageCapsShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show the caps.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption
    @Option(help: "Organization ID (default: the token's).") var org: String?

    func run() async throws {
        let client = try connection.client()
        let orgId: String
        if let org { orgId = org } else { orgId = try await client.whoami().organization.id }
        let caps = try await client.usageCaps(orgId: orgId)
        switch output.format {
        case .json: try Output.json(caps)
        case .table: UsageCapsShow.print(caps)
        }
    }

    static func print(_ caps: Components.Schemas.UsageCaps) {
        Output.keyValues([
            ("Minutes per month", caps.minutesPerMonth.map { "\($0) (\(caps.minutesUsedPercent ?? 0)% used)" } ?? "no cap"),
            ("Spend per month", caps.spendPerMonth.map { "\($0) (\(caps.spendUsedPercent ?? 0)% used)" } ?? "no cap"),
            ("Warn at", "\(caps.softThresholdPercent)%"),
        ])
    }
}

struct UsageCapsSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Set caps (admins). Options left out keep their value.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Organization ID (default: the token's).") var org: String?
    @Option(help: "Build minutes per calendar month.") var minutes: Int64?
    @Option(help: "Dollars per calendar month, e.g. 250.00.") var spend: String?
    @Option(name: .customLong("warn-at"), help: "Percent of a cap that shows a warning (default 80).") var warnAt: Int?

    func validate() throws {
        if minutes == nil, spend == nil, warnAt == nil { throw ValidationError("give --minutes, --spend or --warn-at") }
    }

    func run() async throws {
        let client = try connection.client()
        let orgId: String
        if let org { orgId = org } else { orgId = try await client.whoami().organization.id }
        UsageCapsShow.print(try await client.setUsageCaps(orgId: orgId, minutes: minutes, spend: spend, softThreshold: warnAt))
    }
}

struct UsageCapsClear: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clear", abstract: "Remove both caps (admins).")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Organization ID (default: the token's).") var org: String?

    func run() async throws {
        let client = try connection.client()
        let orgId: String
        if let org { orgId = org } else { orgId = try await client.whoami().organization.id }
        try await client.clearUsageCaps(orgId: orgId)
        print("Usage caps cleared.")
    }
}
