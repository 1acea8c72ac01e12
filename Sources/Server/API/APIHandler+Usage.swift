import DrydockAPITypes
import Foundation
import OpenAPIRuntime

extension APIHandler {
    func getOrganizationUsage(_ input: Operations.GetOrganizationUsage.Input) async throws -> Operations.GetOrganizationUsage.Output {
        let caller = try Caller.require()
        guard input.path.orgId == caller.organizationId else { throw APIError.notFound("organization", input.path.orgId) }
        let period = try UsagePeriod.parse(month: input.query.month, from: input.query.from, to: input.query.to)
        // Project tokens see their project's usage only (getProjectUsage).
        return .ok(.init(body: .json(try await usageReport(organizationId: caller.organizationId, projectId: nil, period: period))))
    }

    func getProjectUsage(_ input: Operations.GetProjectUsage.Input) async throws -> Operations.GetProjectUsage.Output {
        let project = try await visibleProject(input.path.projectId)
        let period = try UsagePeriod.parse(month: input.query.month, from: input.query.from, to: input.query.to)
        return .ok(.init(body: .json(try await usageReport(organizationId: project.organizationId, projectId: project.id, period: period))))
    }

    func getUsageCaps(_ input: Operations.GetUsageCaps.Input) async throws -> Operations.GetUsageCaps.Output {
        let caller = try Caller.require()
        guard input.path.orgId == caller.organizationId else { throw APIError.notFound("organization", input.path.orgId) }
        let caps = try await usage.caps(organizationId: caller.organizationId)
        return .ok(.init(body: .json(try await capsReport(caps, organizationId: caller.organizationId))))
    }

    func setUsageCaps(_ input: Operations.SetUsageCaps.Input) async throws -> Operations.SetUsageCaps.Output {
        let caller = try Caller.require()
        guard input.path.orgId == caller.organizationId else { throw APIError.notFound("organization", input.path.orgId) }
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        let terms = try await usage.terms(organizationId: caller.organizationId)
        guard terms.usageCaps else {
            throw APIError(status: .paymentRequired, code: "plan_feature",
                           detail: "usage caps belong to the Startup and Business plans; this organization is on \(terms.name)")
        }
        if let minutes = body.minutesPerMonth, !(1...100_000_000).contains(minutes) {
            throw APIError.invalidField("minutesPerMonth", "must be between 1 and 100000000")
        }
        let spend = try body.spendPerMonth.map { try Self.cents(fromDollars: $0, field: "spendPerMonth") }
        if let soft = body.softThresholdPercent, !(1...99).contains(soft) {
            throw APIError.invalidField("softThresholdPercent", "must be between 1 and 99")
        }
        let caps = try await usage.setCaps(
            organizationId: caller.organizationId, minutes: body.minutesPerMonth.map { .some($0) }, spendCents: spend.map { .some($0) },
            softThreshold: body.softThresholdPercent)
        return .ok(.init(body: .json(try await capsReport(caps, organizationId: caller.organizationId))))
    }

    func clearUsageCaps(_ input: Operations.ClearUsageCaps.Input) async throws -> Operations.ClearUsageCaps.Output {
        let caller = try Caller.require()
        guard input.path.orgId == caller.organizationId else { throw APIError.notFound("organization", input.path.orgId) }
        try await usage.clearCaps(organizationId: caller.organizationId)
        return .noContent(.init())
    }

    /// "250", "250.5", "250.00" → 25000 cents, exactly.
    static func cents(fromDollars text: String, field: String) throws -> Int64 {
        guard let cents = parseDollars(text, scale: 2) else {
            throw APIError.invalidField(field, "must be an amount in dollars such as 250 or 250.00")
        }
        return cents
    }

    private func capsReport(_ caps: CapsRecord, organizationId: String) async throws -> Components.Schemas.UsageCaps {
        var report = Components.Schemas.UsageCaps(
            minutesPerMonth: caps.minutesPerMonth, spendPerMonthCents: caps.spendCentsPerMonth,
            spendPerMonth: caps.spendCentsPerMonth.map(Billing.dollars), softThresholdPercent: caps.softThresholdPercent)
        if caps.minutesPerMonth != nil || caps.spendCentsPerMonth != nil {
            let current = try await usageReport(organizationId: organizationId, projectId: nil, period: UsagePeriod.month(containing: Date()), withCaps: false)
            if let cap = caps.minutesPerMonth { report.minutesUsedPercent = Int(current.buildSeconds * 100 / max(1, cap * 60)) }
            if let cap = caps.spendCentsPerMonth, let cost = current.cost { report.spendUsedPercent = Int(cost.totalCents * 100 / max(1, cap)) }
        }
        return report
    }

    static func number(_ value: Decimal, places: Int = 2) -> Double {
        Double(Billing.decimalString(value, places: Int16(places))) ?? 0
    }

    func usageReport(organizationId: String, projectId: String?, period: UsagePeriod, withCaps: Bool = true) async throws -> Components.Schemas.Usage {
        let terms = try await usage.terms(organizationId: organizationId)
        let history = try await usage.planHistory(organizationId: organizationId)
        let builds = try await usage.builds(organizationId: organizationId, projectId: projectId, from: period.from, to: period.to)
        let storage = try await usage.storage(organizationId: organizationId, projectId: projectId, to: period.to)
        let now = Int64(Date().timeIntervalSince1970)
        let names = try await usage.projectNames(organizationId: organizationId)

        var lines: [Components.Schemas.UsageCostLine] = []
        var includedMinutes: Int64 = 0
        var seconds: Int64 = 0, overageSeconds: Int64 = 0
        var gbMonths = Decimal(0), overGB = Decimal(0)
        var byProjectSeconds: [String: Int64] = [:]
        var byProjectIsolated: [String: Int64] = [:]
        var byProjectGB: [String: Decimal] = [:]
        for (month, part) in period.months {
            // A month is billed by the plans in force during it (`Billing.month(history:…)`).
            let bills = Billing.month(
                history: history, monthFrom: month.from, monthTo: month.to, partFrom: part.from, partTo: part.to, now: now,
                buildSeconds: { from, to in builds.reduce(Int64(0)) { $0 + $1.overlap(from, to) } },
                storageByteSeconds: { from, to in storage.reduce(Decimal(0)) { $0 + $1.byteSeconds(from, to, now: now) } })
            for bill in bills {
                seconds += bill.buildSeconds
                overageSeconds += bill.overageSeconds
                includedMinutes += bill.includedMinutes
                gbMonths += bill.storageGBMonths
                overGB += bill.overageGBMonths
                for line in bill.lines {
                    lines.append(.init(month: month.label, item: line.item, quantity: line.quantity, unitPrice: line.unitPrice,
                                       amountCents: line.cents, amount: Billing.dollars(line.cents)))
                }
            }
            for b in builds {
                byProjectSeconds[b.projectId, default: 0] += b.overlap(part.from, part.to)
                if b.isolated { byProjectIsolated[b.projectId, default: 0] += b.overlap(part.from, part.to) }
            }
            for series in storage {
                byProjectGB[series.projectId, default: 0] += series.byteSeconds(part.from, part.to, now: now) / Billing.bytesPerGB / Decimal(month.to - month.from)
            }
        }
        let total = lines.reduce(Int64(0)) { $0 + $1.amountCents }
        let projectIds = Set(byProjectSeconds.keys).union(byProjectGB.keys).sorted { (byProjectSeconds[$0] ?? 0) > (byProjectSeconds[$1] ?? 0) }
        let byProject = projectIds.map { id in
            Components.Schemas.UsageByProject(
                projectId: id, name: names[id] ?? "(deleted)", buildSeconds: byProjectSeconds[id] ?? 0,
                buildMinutes: Self.number(Decimal(byProjectSeconds[id] ?? 0) / 60), storageGBMonths: Self.number(byProjectGB[id] ?? 0, places: 3),
                isolatedBuildSeconds: byProjectIsolated[id])
        }
        // Build time by platform over the whole period (what native and emulated builders spent).
        var byPlatformSeconds: [String: Int64] = [:]
        for b in builds { byPlatformSeconds[b.platform, default: 0] += b.overlap(period.from, period.to) }
        let byPlatform = byPlatformSeconds.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map {
            Components.Schemas.UsageByPlatform(platform: $0.key, buildSeconds: $0.value, buildMinutes: Self.number(Decimal($0.value) / 60))
        }
        var byDay: [Components.Schemas.UsageByDay] = []
        var day = period.from
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd"
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.locale = Locale(identifier: "en_US_POSIX")
        while day < period.to && day <= now {
            let s = builds.reduce(Int64(0)) { $0 + $1.overlap(day, day + 86_400) }
            byDay.append(.init(date: formatter.string(from: Date(timeIntervalSince1970: TimeInterval(day))), buildSeconds: s,
                               buildMinutes: Self.number(Decimal(s) / 60)))
            day += 86_400
        }
        var report = Components.Schemas.Usage(
            organizationId: organizationId, projectId: projectId, plan: terms.id,
            from: Date(timeIntervalSince1970: TimeInterval(period.from)), to: Date(timeIntervalSince1970: TimeInterval(period.to)),
            buildSeconds: seconds, buildMinutes: Self.number(Decimal(seconds) / 60),
            includedMinutes: includedMinutes, overageMinutes: Self.number(Decimal(overageSeconds) / 60),
            storageGBMonths: Self.number(gbMonths, places: 3), includedStorageGB: terms.includedStorageGB,
            cost: projectId == nil ? .init(currency: .usd, totalCents: total, total: Billing.dollars(total), lines: lines) : nil,
            byProject: byProject, byPlatform: byPlatform, byDay: byDay)
        guard withCaps, projectId == nil else { return report }
        let caps = try await usage.caps(organizationId: organizationId)
        var capsReport = Components.Schemas.UsageCaps(
            minutesPerMonth: caps.minutesPerMonth, spendPerMonthCents: caps.spendCentsPerMonth,
            spendPerMonth: caps.spendCentsPerMonth.map(Billing.dollars), softThresholdPercent: caps.softThresholdPercent)
        var warnings: [String] = []
        if let cap = caps.minutesPerMonth {
            let percent = Int(seconds * 100 / max(1, cap * 60))
            capsReport.minutesUsedPercent = percent
            if percent >= caps.softThresholdPercent {
                warnings.append("\(percent)% of the \(cap)-minute monthly cap is used\(percent >= 100 ? ": new builds are refused" : "")")
            }
        }
        if let cap = caps.spendCentsPerMonth {
            let percent = Int(total * 100 / max(1, cap))
            capsReport.spendUsedPercent = percent
            if percent >= caps.softThresholdPercent {
                warnings.append("\(percent)% of the \(Billing.dollars(cap)) monthly spend cap is used\(percent >= 100 ? ": new builds are refused" : "")")
            }
        }
        if terms.minuteOverageMillicents == nil, seconds >= terms.includedMinutes * 60 * Int64(period.months.count) {
            warnings.append("the \(terms.name) plan's \(terms.includedMinutes) included minutes are used: new builds are refused until next month")
        }
        report.caps = capsReport
        report.warnings = warnings
        return report
    }
}
