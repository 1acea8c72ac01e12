import ArgumentParser
import DrydockClient
import Foundation

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

    @Option(help: "project, platform or day.")
    var by: Grouping = .project

    @OptionGroup var output: FormatOption

    enum Grouping: String, ExpressibleByArgument, CaseIterable { case project, platform, day }

    func validate() throws {
        if month != nil, from != nil || to != nil { throw ValidationError("give --month or --from/--to, not both") }
        if (from == nil) != (to == nil) { throw ValidationError("give both --from and --to") }
    }

    func run() async throws {
        let client = try await connection.client()
        let usage: Components.Schemas.Usage
        if let project {
            usage = try await client.projectUsage(projectId: project, month: month, from: from, to: to)
        } else {
            let orgId: String
            if let org { orgId = org } else { orgId = try await client.whoami().organization.id }
            usage = try await client.usage(orgId: orgId, month: month, from: from, to: to)
        }
        switch output.format {
        case .json, .csv:
            // The breakdown is the list; JSON carries the whole report.
            if output.format == .json {
                try Output.json(usage)
            } else if by == .project {
                Output.csv([["project_id", "name", "build_seconds", "build_minutes", "storage_gb_months"]]
                    + usage.byProject.map { ["\($0.projectId)", $0.name, "\($0.buildSeconds)", "\($0.buildMinutes)", "\($0.storageGBMonths)"] })
            } else if by == .platform {
                Output.csv([["platform", "build_seconds", "build_minutes"]]
                    + (usage.byPlatform ?? []).map { [$0.platform, "\($0.buildSeconds)", "\($0.buildMinutes)"] })
            } else {
                Output.csv([["date", "build_seconds", "build_minutes"]] + usage.byDay.map { [$0.date, "\($0.buildSeconds)", "\($0.buildMinutes)"] })
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
            } else if by == .platform {
                Output.table(["PLATFORM", "BUILD MINUTES"], (usage.byPlatform ?? []).map { [$0.platform, String(format: "%.2f", $0.buildMinutes)] },
                             empty: "No builds in this period.")
            } else {
                Output.table(["DATE", "BUILD MINUTES"], usage.byDay.map { [$0.date, String(format: "%.2f", $0.buildMinutes)] }, empty: "No days in this period yet.")
            }
        }
    }
}
