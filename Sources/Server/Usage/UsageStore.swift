import Foundation
import Logging
import PostgresNIO

/// One job's billed time: from its start, whole seconds (rounded up once, per job).
struct BuildUsage: Sendable {
    var projectId: String
    var platform: String
    var start: Int64
    var seconds: Int64
    /// An isolated build's job (untrusted code: no cache).
    var isolated = false

    /// Seconds of this job inside [from, to).
    func overlap(_ from: Int64, _ to: Int64) -> Int64 {
        max(0, min(start + seconds, to) - max(start, from))
    }
}

/// Storage held by one series (a project's cache for one platform, or its registry).
struct StorageSeries: Sendable {
    var projectId: String
    var samples: [(at: Int64, bytes: Int64)]

    /// Byte-seconds held inside [from, to), each sample's size holding until the next sample
    /// (the last until `now`).
    func byteSeconds(_ from: Int64, _ to: Int64, now: Int64) -> Decimal {
        var total = Decimal(0)
        for (i, sample) in samples.enumerated() {
            let end = i + 1 < samples.count ? samples[i + 1].at : now
            let a = max(sample.at, from), b = min(end, to)
            if b > a { total += Decimal(sample.bytes) * Decimal(b - a) }
        }
        return total
    }
}

struct CapsRecord: Sendable {
    var minutesPerMonth: Int64?
    var spendCentsPerMonth: Int64?
    var softThresholdPercent: Int
}

/// Metering (append-only, idempotent records), plans and caps in PostgreSQL.
public struct UsageStore: Sendable {
    let client: Database
    let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    // MARK: plans

    /// Per-organization amounts for negotiated (Business) plans, over the plan's defaults.
    public struct PlanOverrides: Codable, Sendable {
        public var monthlyCents: Int64?
        public var includedMinutes: Int64?
        public var minuteOverageMillicents: Int64?
        public var includedStorageGB: Int64?
        public var storageOverageMillicents: Int64?

        public init(monthlyCents: Int64? = nil, includedMinutes: Int64? = nil, minuteOverageMillicents: Int64? = nil,
                    includedStorageGB: Int64? = nil, storageOverageMillicents: Int64? = nil) {
            self.monthlyCents = monthlyCents
            self.includedMinutes = includedMinutes
            self.minuteOverageMillicents = minuteOverageMillicents
            self.includedStorageGB = includedStorageGB
            self.storageOverageMillicents = storageOverageMillicents
        }
    }

    static let termsColumns = """
        p.id, p.name, p.monthly_cents, p.max_users, p.included_minutes, p.minute_overage_millicents,
        p.included_storage_gb, p.storage_overage_millicents, p.usage_caps
        """
    typealias TermsRow = (String, String, Int64, Int?, Int64, Int64?, Int64, Int64?, Bool, String?)

    /// A plan's terms with an organization's negotiated amounts over them.
    static func terms(_ r: TermsRow) -> PlanTerms {
        var terms = PlanTerms(id: PlanName(rawValue: r.0) ?? .developer, name: r.1, monthlyCents: r.2, maxUsers: r.3, includedMinutes: r.4,
                              minuteOverageMillicents: r.5, includedStorageGB: r.6, storageOverageMillicentsPerGBMonth: r.7, usageCaps: r.8)
        if let text = r.9, let o = try? JSONDecoder().decode(PlanOverrides.self, from: Data(text.utf8)) {
            terms.monthlyCents = o.monthlyCents ?? terms.monthlyCents
            terms.includedMinutes = o.includedMinutes ?? terms.includedMinutes
            terms.minuteOverageMillicents = o.minuteOverageMillicents ?? terms.minuteOverageMillicents
            terms.includedStorageGB = o.includedStorageGB ?? terms.includedStorageGB
            terms.storageOverageMillicentsPerGBMonth = o.storageOverageMillicents ?? terms.storageOverageMillicentsPerGBMonth
        }
        return terms
    }

    static func terms(organizationId: String, on connection: PostgresConnection, logger: Logger) async throws -> PlanTerms {
        let rows = try await connection.query(
            """
            SELECT \(unescaped: termsColumns), o.plan_overrides
            FROM organizations o JOIN plans p ON p.id = o.plan WHERE o.id = \(organizationId)
            """, logger: logger)
        for try await r in rows.decode(TermsRow.self) { return terms(r) }
        throw DomainError.notFound("organization", organizationId)
    }

    /// The plans an organization has been on, oldest first, each with the epoch seconds it began
    /// and ended (nil: still in force).
    func planHistory(organizationId: String) async throws -> [PlanPeriod] {
        try await client.withConnection { try await Self.planHistory(organizationId: organizationId, on: $0, logger: logger) }
    }

    /// Read by every claim batch of an organization with a cap or no overage: prepared.
    enum PlanHistoryQuery: StatementShape {}

    static func planHistory(organizationId: String, on connection: PostgresConnection, logger: Logger) async throws -> [PlanPeriod] {
        let rows = try await connection.prepared(
            PlanHistoryQuery.self,
            """
            SELECT \(unescaped: Self.termsColumns), h.plan_overrides,
                   extract(epoch FROM h.valid_from)::bigint, extract(epoch FROM h.valid_to)::bigint
            FROM organization_plans h JOIN plans p ON p.id = h.plan
            WHERE h.organization_id = \(organizationId) ORDER BY h.valid_from
            """, logger: logger)
        var periods: [PlanPeriod] = []
        for try await row in rows {
            let r = try row.decode((String, String, Int64, Int?, Int64, Int64?, Int64, Int64?, Bool, String?, Int64, Int64?).self)
            periods.append(PlanPeriod(terms: terms((r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9)), from: r.10, to: r.11))
        }
        return periods
    }

    /// Puts a just-created organization on its first plan, as if it had started on it (no change
    /// in the history: `bootstrap --plan`).
    func setInitialPlan(organizationId: String, plan: PlanName) async throws {
        try await client.transaction(logger: logger) { tx in
            try await tx.query("UPDATE organizations SET plan = \(plan.rawValue) WHERE id = \(organizationId)", logger: logger)
            try await tx.query("UPDATE organization_plans SET plan = \(plan.rawValue) WHERE organization_id = \(organizationId)", logger: logger)
        }
    }

    /// Records a new organization's first plan (inside its creation's transaction).
    static func recordFirstPlan(organizationId: String, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO organization_plans (organization_id, plan, plan_overrides, valid_from)
            SELECT id, plan, plan_overrides, created_at FROM organizations WHERE id = \(organizationId)
            """, logger: logger)
    }

    func terms(organizationId: String) async throws -> PlanTerms {
        try await client.withConnection { try await Self.terms(organizationId: organizationId, on: $0, logger: logger) }
    }

    /// Sets an organization's plan (operator command). Overrides apply to Business only.
    public func setPlan(organizationId: String, plan: PlanName, overrides: PlanOverrides?) async throws {
        if overrides != nil, plan != .business {
            throw DomainError.invalidField("plan", "custom amounts apply to the business plan only")
        }
        let text = try overrides.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        // The plan in force changes now: the old one's period ends where the new one's begins.
        try await client.transaction(logger: logger) { tx in
            var found = false
            for try await _ in try await tx.query(
                "UPDATE organizations SET plan = \(plan.rawValue), plan_overrides = \(text) WHERE id = \(organizationId) RETURNING id", logger: logger
            ).decode(String.self) { found = true }
            guard found else { throw DomainError.notFound("organization", organizationId) }
            try await tx.query(
                "UPDATE organization_plans SET valid_to = now() WHERE organization_id = \(organizationId) AND valid_to IS NULL", logger: logger)
            try await tx.query(
                """
                INSERT INTO organization_plans (organization_id, plan, plan_overrides, valid_from)
                VALUES (\(organizationId), \(plan.rawValue), \(text), now())
                """, logger: logger)
        }
    }

    // MARK: metering

    /// Records a job's time once it has ended (idempotent: one record per job, whatever retries).
    /// A job that never started has no start time and costs nothing.
    /// Records a finished job's build seconds (a trigger adds them to the month's running total,
    /// `usage_totals`).
    /// The metering insert for jobs just closed, read from a CTE of closed jobs (`id, build_id,
    /// organization_id, platform, started_at, finished_at`), for the statement that closes them.
    static func recordBuildFrom(_ closed: String) -> String {
        """
        INSERT INTO usage_builds (job_id, organization_id, project_id, platform, start_epoch, seconds, isolated)
        SELECT j.id, j.organization_id, b.project_id, j.platform, floor(extract(epoch FROM j.started_at))::bigint,
               greatest(0, ceil(extract(epoch FROM j.finished_at) - floor(extract(epoch FROM j.started_at))))::bigint,
               coalesce((b.spec::jsonb ->> 'isolated')::boolean, false)
        FROM \(closed) j JOIN builds b ON b.id = j.build_id
        WHERE j.started_at IS NOT NULL AND j.finished_at IS NOT NULL
        ON CONFLICT (job_id) DO NOTHING
        """
    }

    static func recordBuild(jobId: String, on tx: PostgresConnection, logger: Logger) async throws {
        try await tx.query(
            """
            WITH closed AS (SELECT id, build_id, organization_id, platform, started_at, finished_at FROM build_jobs WHERE id = \(jobId))
            \(unescaped: recordBuildFrom("closed"))
            """, logger: logger)
    }

    /// A builder's report of a project's cache size for one platform.
    static func recordCache(jobId: String, bytes: Int64, on tx: PostgresConnection, logger: Logger) async throws {
        try await tx.query(
            """
            INSERT INTO usage_storage (organization_id, project_id, kind, platform, sampled_at, bytes)
            SELECT j.organization_id, b.project_id, 'cache', j.platform, now(), \(bytes)
            FROM build_jobs j JOIN builds b ON b.id = j.build_id WHERE j.id = \(jobId)
            ON CONFLICT DO NOTHING
            """, logger: logger)
    }

    /// Samples every project's registry storage (distinct blobs its repositories link).
    func sampleRegistry() async throws {
        try await client.query(
            """
            INSERT INTO usage_storage (organization_id, project_id, kind, platform, sampled_at, bytes)
            SELECT p.organization_id, p.id, 'registry', '', now(), coalesce(sum(b.size), 0)::bigint
            FROM projects p
            LEFT JOIN (SELECT DISTINCT r.project_id, rb.digest FROM registry_repository_blobs rb
                       JOIN registry_repositories r ON r.id = rb.repository_id) linked ON linked.project_id = p.id
            LEFT JOIN registry_blobs b ON b.digest = linked.digest
            GROUP BY p.organization_id, p.id
            ON CONFLICT DO NOTHING
            """, logger: logger)
    }

    // MARK: reading

    func builds(organizationId: String, projectId: String?, from: Int64, to: Int64) async throws -> [BuildUsage] {
        try await client.withConnection { try await Self.builds(organizationId: organizationId, projectId: projectId, from: from, to: to, on: $0, logger: logger) }
    }

    static func builds(organizationId: String, projectId: String?, from: Int64, to: Int64, on connection: PostgresConnection, logger: Logger) async throws -> [BuildUsage] {
        var out: [BuildUsage] = []
        for try await (project, platform, start, seconds, isolated) in try await connection.query(
            """
            SELECT project_id, platform, start_epoch, seconds, isolated FROM usage_builds
            WHERE organization_id = \(organizationId) AND start_epoch < \(to) AND start_epoch + seconds > \(from)
              AND (\(projectId)::text IS NULL OR project_id = \(projectId))
            """, logger: logger).decode((String, String, Int64, Int64, Bool).self)
        {
            out.append(BuildUsage(projectId: project, platform: platform, start: start, seconds: seconds, isolated: isolated))
        }
        // Jobs still running count up to now.
        for try await (project, platform, start, seconds) in try await connection.query(
            """
            SELECT b.project_id, j.platform, floor(extract(epoch FROM j.started_at))::bigint,
                   greatest(0, ceil(extract(epoch FROM now()) - floor(extract(epoch FROM j.started_at))))::bigint
            FROM build_jobs j JOIN builds b ON b.id = j.build_id
            WHERE j.organization_id = \(organizationId) AND j.status = 'running' AND j.started_at IS NOT NULL
              AND (\(projectId)::text IS NULL OR b.project_id = \(projectId))
            """, logger: logger).decode((String, String, Int64, Int64).self)
        {
            out.append(BuildUsage(projectId: project, platform: platform, start: start, seconds: seconds))
        }
        return out
    }

    static func storage(organizationId: String, projectId: String?, to: Int64, on connection: PostgresConnection, logger: Logger) async throws -> [StorageSeries] {
        var series: [String: StorageSeries] = [:]
        var order: [String] = []
        for try await (project, kind, platform, at, bytes) in try await connection.query(
            """
            SELECT project_id, kind, platform, floor(extract(epoch FROM sampled_at))::bigint, bytes FROM usage_storage
            WHERE organization_id = \(organizationId) AND sampled_at < to_timestamp(\(Double(to)))
              AND (\(projectId)::text IS NULL OR project_id = \(projectId))
            ORDER BY sampled_at
            """, logger: logger).decode((String, String, String, Int64, Int64).self)
        {
            let key = "\(project)|\(kind)|\(platform)"
            if series[key] == nil { order.append(key); series[key] = StorageSeries(projectId: project, samples: []) }
            series[key]!.samples.append((at, bytes))
        }
        return order.compactMap { series[$0] }
    }

    func storage(organizationId: String, projectId: String?, to: Int64) async throws -> [StorageSeries] {
        try await client.withConnection { try await Self.storage(organizationId: organizationId, projectId: projectId, to: to, on: $0, logger: logger) }
    }

    func projectNames(organizationId: String) async throws -> [String: String] {
        var out: [String: String] = [:]
        for try await (id, name) in try await client.query(
            "SELECT id, name FROM projects WHERE organization_id = \(organizationId)", logger: logger).decode((String, String).self) { out[id] = name }
        return out
    }

    func memberCount(organizationId: String) async throws -> Int {
        for try await n in try await client.query(
            "SELECT count(*)::int FROM memberships WHERE organization_id = \(organizationId)", logger: logger).decode(Int.self) { return n }
        return 0
    }

    // MARK: caps

    static func caps(organizationId: String, on connection: PostgresConnection, logger: Logger) async throws -> CapsRecord {
        for try await (minutes, spend, soft) in try await connection.query(
            "SELECT minutes_per_month, spend_cents_per_month, soft_threshold_percent FROM usage_caps WHERE organization_id = \(organizationId)",
            logger: logger).decode((Int64?, Int64?, Int).self)
        {
            return CapsRecord(minutesPerMonth: minutes, spendCentsPerMonth: spend, softThresholdPercent: soft)
        }
        return CapsRecord(minutesPerMonth: nil, spendCentsPerMonth: nil, softThresholdPercent: 80)
    }

    func caps(organizationId: String) async throws -> CapsRecord {
        try await client.withConnection { try await Self.caps(organizationId: organizationId, on: $0, logger: logger) }
    }

    func setCaps(organizationId: String, minutes: Int64??, spendCents: Int64??, softThreshold: Int?) async throws -> CapsRecord {
        let current = try await caps(organizationId: organizationId)
        let minutes = minutes ?? current.minutesPerMonth
        let spend = spendCents ?? current.spendCentsPerMonth
        let soft = softThreshold ?? current.softThresholdPercent
        try await client.query(
            """
            INSERT INTO usage_caps (organization_id, minutes_per_month, spend_cents_per_month, soft_threshold_percent)
            VALUES (\(organizationId), \(minutes), \(spend), \(soft))
            ON CONFLICT (organization_id) DO UPDATE SET minutes_per_month = EXCLUDED.minutes_per_month,
                spend_cents_per_month = EXCLUDED.spend_cents_per_month, soft_threshold_percent = EXCLUDED.soft_threshold_percent,
                updated_at = now()
            """, logger: logger)
        return CapsRecord(minutesPerMonth: minutes, spendCentsPerMonth: spend, softThresholdPercent: soft)
    }

    func clearCaps(organizationId: String) async throws {
        try await client.query(
            "UPDATE usage_caps SET minutes_per_month = NULL, spend_cents_per_month = NULL, updated_at = now() WHERE organization_id = \(organizationId)",
            logger: logger)
    }

    /// Why a build of this organization may not start now, or nil. A read, without locks: a
    /// build starting under a cap may take the month past it while it runs (as builds already
    /// running may), and claims of one organization never wait for each other. Its cost does not
    /// grow with the month's builds: it reads the month's running total (`usage_totals`, kept in
    /// 64 stripes so that finishing jobs do not queue for one row).
    static func refusal(organizationId: String, on tx: PostgresConnection, logger: Logger, now: Date = Date()) async throws -> String? {
        let period = UsagePeriod.month(containing: now)
        // The plan, the caps and the month's seconds so far, in one round trip.
        var found: UsageFacts?
        for try await r in try await tx.prepared(
            UsageFactsQuery.self,
            """
            SELECT \(unescaped: usageFactsColumns) FROM \(unescaped: usageFactsFrom) CROSS JOIN (SELECT \(period.from)::bigint AS month_from) m
            WHERE o.id = \(organizationId)
            """,
            logger: logger)
        {
            found = usageFacts(try r.decode(UsageFactsRow.self))
        }
        guard let found else { throw DomainError.notFound("organization", organizationId) }
        return try await refusal(found, organizationId: organizationId, on: tx, logger: logger, now: now)
    }

    /// What a usage check reads of an organization (`o`): its plan's terms, its caps and the
    /// month's build seconds so far (finished and running), as one row; a claim reads them with
    /// its job. `m.month_from` is the month's first second (the caller's query binds it: the
    /// statement's text is the same every month, so it stays prepared).
    static let usageFactsColumns = """
        \(termsColumns), o.plan_overrides, c.minutes_per_month, c.spend_cents_per_month,
        (coalesce((SELECT sum(t.build_seconds) FROM usage_totals t WHERE t.organization_id = o.id AND t.month_from = m.month_from), 0)
         + coalesce((SELECT sum(greatest(0, ceil(extract(epoch FROM now()) - greatest(floor(extract(epoch FROM j.started_at)), m.month_from))))
                     FROM build_jobs j WHERE j.organization_id = o.id AND j.status = 'running' AND j.started_at IS NOT NULL), 0))::bigint
        """

    static let usageFactsFrom = "organizations o JOIN plans p ON p.id = o.plan LEFT JOIN usage_caps c ON c.organization_id = o.id"
    /// The usage check's query, prepared (`StatementShape`).
    enum UsageFactsQuery: StatementShape {}
    typealias UsageFactsRow = (String, String, Int64, Int?, Int64, Int64?, Int64, Int64?, Bool, String?, Int64?, Int64?, Int64)

    struct UsageFacts {
        var terms: PlanTerms
        var caps: CapsRecord
        /// Build seconds of the month so far.
        var used: Int64
    }

    static func usageFacts(_ r: UsageFactsRow) -> UsageFacts {
        UsageFacts(terms: terms((r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9)),
                   caps: CapsRecord(minutesPerMonth: r.10, spendCentsPerMonth: r.11, softThresholdPercent: 80), used: r.12)
    }

    /// Why a build may not start, from the facts read; reads more only for a spend cap or a plan
    /// changed within the month.
    static func refusal(_ facts: UsageFacts, organizationId: String, on tx: PostgresConnection, logger: Logger,
                        now: Date = Date()) async throws -> String? {
        let period = UsagePeriod.month(containing: now)
        let (terms, caps, used) = (facts.terms, facts.caps, facts.used)
        // Overage allowed and no caps: nothing to count.
        if terms.minuteOverageMillicents != nil, caps.minutesPerMonth == nil, caps.spendCentsPerMonth == nil { return nil }
        let nowEpoch = Int64(now.timeIntervalSince1970)
        let usedMinutes = String(format: "%.1f", Double(used) / 60)
        let month = period.label
        // The month priced as the usage report prices it: by the plans in force during it, each
        // for its share (a month begun on another plan, or an organization created mid-month).
        let history = try await planHistory(organizationId: organizationId, on: tx, logger: logger)
        // Only a plan change inside the month needs the seconds of each part: then (rarely) the
        // month's builds are read.
        let plansInMonth = history.filter { ($0.to ?? period.to) > period.from && $0.from < period.to }.count
        let builds = plansInMonth > 1
            ? try await builds(organizationId: organizationId, projectId: nil, from: period.from, to: period.to, on: tx, logger: logger) : []
        var storage: [StorageSeries]?
        func bills() async throws -> [MonthBill] {
            if storage == nil, caps.spendCentsPerMonth != nil {
                storage = try await Self.storage(organizationId: organizationId, projectId: nil, to: period.to, on: tx, logger: logger)
            }
            let held = storage ?? []
            return Billing.month(
                history: history, monthFrom: period.from, monthTo: period.to, partFrom: period.from, partTo: period.to, now: nowEpoch,
                buildSeconds: { from, to in
                    plansInMonth > 1 ? builds.reduce(Int64(0)) { $0 + $1.overlap(from, to) } : used
                },
                storageByteSeconds: { from, to in held.reduce(Decimal(0)) { $0 + $1.byteSeconds(from, to, now: nowEpoch) } })
        }
        let monthBills = history.isEmpty ? [] : try await bills()
        let included = monthBills.isEmpty ? terms.includedMinutes : monthBills.reduce(Int64(0)) { $0 + $1.includedMinutes }
        if terms.minuteOverageMillicents == nil, used >= included * 60 {
            return "the \(terms.name) plan includes \(included) build minutes this month and \(usedMinutes) are used in \(month); "
                + "builds resume on \(UsagePeriod.month(containing: Date(timeIntervalSince1970: TimeInterval(period.to))).label)-01, "
                + "or the server operator can move the organization to the Startup plan (drydock-server set-plan --org \(organizationId) startup)"
        }
        if let cap = caps.minutesPerMonth, used >= cap * 60 {
            return "the organization's cap of \(cap) build minutes a month is reached: \(usedMinutes) minutes used in \(month). "
                + "An admin can raise it with 'drydock usage caps set --minutes N' or remove it with 'drydock usage caps clear'"
        }
        if let cap = caps.spendCentsPerMonth {
            var total = monthBills.reduce(Int64(0)) { $0 + $1.totalCents }
            if history.isEmpty {
                let held = try await Self.storage(organizationId: organizationId, projectId: nil, to: period.to, on: tx, logger: logger)
                    .reduce(Decimal(0)) { $0 + $1.byteSeconds(period.from, period.to, now: nowEpoch) }
                total = Billing.month(plan: terms, buildSeconds: used, storageByteSeconds: held, monthSeconds: period.to - period.from).totalCents
            }
            if total >= cap {
                return "the organization's spend cap of \(Billing.dollars(cap)) a month is reached: \(Billing.dollars(total)) "
                    + "estimated for \(month). An admin can raise it with 'drydock usage caps set --spend AMOUNT' or remove it with 'drydock usage caps clear'"
            }
        }
        return nil
    }
}

/// A period of whole UTC days, [from, to) in epoch seconds.
struct UsagePeriod: Sendable, Equatable {
    var from: Int64
    var to: Int64

    static var utc: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }

    static func month(containing date: Date) -> UsagePeriod {
        let c = utc.dateComponents([.year, .month], from: date)
        return month(year: c.year!, month: c.month!)
    }

    static func month(year: Int, month: Int) -> UsagePeriod {
        let start = utc.date(from: DateComponents(year: year, month: month, day: 1))!
        let end = utc.date(byAdding: .month, value: 1, to: start)!
        return UsagePeriod(from: Int64(start.timeIntervalSince1970), to: Int64(end.timeIntervalSince1970))
    }

    /// `YYYY-MM` of the period's start.
    var label: String {
        let c = Self.utc.dateComponents([.year, .month], from: Date(timeIntervalSince1970: TimeInterval(from)))
        return String(format: "%04d-%02d", c.year!, c.month!)
    }

    /// From `month=YYYY-MM` or `from`/`to` (`YYYY-MM-DD`, inclusive), else the current month.
    static func parse(month: String?, from: String?, to: String?, now: Date = Date()) throws -> UsagePeriod {
        if let month {
            guard from == nil, to == nil else { throw DomainError.invalidField("month", "give either month or from/to, not both") }
            let parts = month.split(separator: "-")
            guard parts.count == 2, let y = Int(parts[0]), let m = Int(parts[1]), (1970...9999).contains(y), (1...12).contains(m) else {
                throw DomainError.invalidField("month", "must be YYYY-MM, e.g. 2026-11")
            }
            return Self.month(year: y, month: m)
        }
        if from != nil || to != nil {
            guard let from, let to else { throw DomainError.invalidField(from == nil ? "from" : "to", "give both from and to (YYYY-MM-DD)") }
            let start = try day(from, field: "from"), end = try day(to, field: "to") + 86_400
            guard end > start else { throw DomainError.invalidField("to", "must be on or after from") }
            guard end - start <= 400 * 86_400 else { throw DomainError.invalidField("to", "a period is at most 400 days") }
            return UsagePeriod(from: start, to: end)
        }
        return Self.month(containing: now)
    }

    static func day(_ text: String, field: String) throws -> Int64 {
        let parts = text.split(separator: "-")
        // The year bounded as for `month` (Foundation reads a year of Int.max as year 1).
        guard parts.count == 3, let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]), (1970...9999).contains(y),
              let date = utc.date(from: DateComponents(year: y, month: m, day: d)),
              utc.component(.day, from: date) == d
        else { throw DomainError.invalidField(field, "must be a date YYYY-MM-DD") }
        return Int64(date.timeIntervalSince1970)
    }

    /// The calendar months this period touches, each cut to the period.
    var months: [(month: UsagePeriod, part: UsagePeriod)] {
        var out: [(UsagePeriod, UsagePeriod)] = []
        var cursor = from
        while cursor < to {
            let month = Self.month(containing: Date(timeIntervalSince1970: TimeInterval(cursor)))
            out.append((month, UsagePeriod(from: max(from, month.from), to: min(to, month.to))))
            cursor = month.to
        }
        return out
    }
}
