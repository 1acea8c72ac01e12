import ArgumentParser
import DrydockProcess
import DrydockServer

struct SetPlan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set-plan",
        abstract: "Move an organization to a plan: developer, startup or business (with custom amounts).",
        discussion: HelpText.reflow("""
            Developer: $20/month, 1 user, 500 build minutes, 25 GB storage. Startup: $200/month, unlimited
            users, 5,000 minutes then $0.04/minute, 250 GB then $0.20/GB-month, usage caps. Business: the
            Startup terms unless given here, e.g.
              drydock-server set-plan --org ID business --monthly-price 1500 \\
                  --included-minutes 40000 --minute-price 0.03
            """))
    @OptionGroup var storage: StorageOptions

    @Option(help: "The organization's id.")
    var org: String

    @Argument(help: "developer, startup or business.")
    var plan: PlanName

    @Option(name: .customLong("monthly-price"), help: "Business: dollars a month.")
    var monthlyPrice: String?
    @Option(name: .customLong("included-minutes"), help: "Business: build minutes included a month.")
    var includedMinutes: Int64?
    @Option(name: .customLong("minute-price"), help: "Business: dollars per build minute past the included ones (e.g. 0.03).")
    var minutePrice: String?
    @Option(name: .customLong("included-storage-gb"), help: "Business: storage GB included.")
    var includedStorageGB: Int64?
    @Option(name: .customLong("storage-price"), help: "Business: dollars per GB-month past the included storage.")
    var storagePrice: String?

    /// "0.035" dollars → 3500 millicents, exactly.
    static func millicents(_ text: String, _ flag: String) throws -> Int64 {
        guard let value = parseDollars(text, scale: 5) else {
            throw ValidationError("\(flag) must be an amount in dollars such as 0.04 or 1500")
        }
        return value
    }

    func run() async throws {
        let custom = monthlyPrice != nil || includedMinutes != nil || minutePrice != nil || includedStorageGB != nil || storagePrice != nil
        var overrides: UsageStore.PlanOverrides?
        if custom {
            overrides = UsageStore.PlanOverrides(
                monthlyCents: try monthlyPrice.map { try Self.millicents($0, "--monthly-price") / 1000 },
                includedMinutes: includedMinutes, minuteOverageMillicents: try minutePrice.map { try Self.millicents($0, "--minute-price") },
                includedStorageGB: includedStorageGB, storageOverageMillicents: try storagePrice.map { try Self.millicents($0, "--storage-price") })
        }
        try await storage.runOperatorCommand { configuration, logger in
            try await ServerRunner.setPlan(configuration, organizationId: org, plan: plan, overrides: overrides, logger: logger)
        }
        print("Organization \(org) is now on the \(plan.rawValue) plan\(custom ? " with custom amounts" : "").")
    }
}
