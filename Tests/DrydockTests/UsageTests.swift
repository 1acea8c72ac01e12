import DrydockClient
import DrydockServer
import Foundation
import HTTPTypes
import PostgresNIO
import Testing

@Suite("Usage, plans and caps")
struct UsageTests {
    static func epoch(_ text: String) -> Int64 {
        Int64(ISO8601DateFormatter().date(from: text)!.timeIntervalSince1970)
    }

    /// Makes the test organization (and its plan) as old as `date`, as if it had been created then.
    static func backdate(_ server: TestServer, to date: String) async throws {
        try await TestDatabase.execute(server.database, "DELETE FROM organization_plans WHERE organization_id = \(server.organizationId) AND valid_to IS NOT NULL")
        try await TestDatabase.execute(server.database, "UPDATE organizations SET created_at = \(date)::timestamptz WHERE id = \(server.organizationId)")
        try await TestDatabase.execute(server.database, "UPDATE organization_plans SET valid_from = \(date)::timestamptz WHERE organization_id = \(server.organizationId)")
    }

    @Test("a month is billed by the plans in force during it: nothing before the organization existed or for months to come, a change splits the month")
    func planHistory() async throws {
        try await withTestServer(plan: .developer) { server in
            let org = "/api/v1/orgs/\(server.organizationId)/usage"
            // Created today, on Developer: October is not owed, nor is a future month.
            for month in ["2026-10", "2027-01"] {
                let bill = try await server.request(.get, "\(org)?month=\(month)", token: server.ownerToken)
                #expect(bill.status == .ok, "\(bill.text)")
                let cost = try #require(try bill.decoded(Schemas.Usage.self).cost)
                #expect(cost.totalCents == 0, "\(month): \(bill.text)")
                #expect(cost.lines.isEmpty, "\(month)")
            }
            // Developer from November 1st, Startup from the 16th (the operator's set-plan): half of each fee.
            try await Self.backdate(server, to: "2026-11-01T00:00:00Z")
            let organizationId = server.organizationId
            try await ServerRunner.withDatabase(server.database, logger: TestDatabase.logger) { database in
                try await UsageStore(client: database, logger: TestDatabase.logger).setPlan(organizationId: organizationId, plan: .startup, overrides: nil)
            }
            try await TestDatabase.execute(server.database, """
                UPDATE organization_plans SET valid_to = '2026-11-16T00:00:00Z' WHERE organization_id = \(server.organizationId) AND plan = 'developer'
                """)
            try await TestDatabase.execute(server.database, """
                UPDATE organization_plans SET valid_from = '2026-11-16T00:00:00Z' WHERE organization_id = \(server.organizationId) AND plan = 'startup'
                """)
            let november = try await server.request(.get, "\(org)?month=2026-11", token: server.ownerToken)
            let novemberUsage = try november.decoded(Schemas.Usage.self)
            let lines = novemberUsage.cost?.lines ?? []
            #expect(lines.map(\.item) == ["Developer plan", "Startup plan"], "\(november.text)")
            #expect(lines.map(\.quantity) == ["0.5 month", "0.5 month"])
            #expect(lines.map(\.amountCents) == [1_000, 10_000])
            #expect(novemberUsage.cost?.totalCents == 11_000)
            #expect(novemberUsage.includedMinutes == 250 + 2_500)
            #expect(novemberUsage.plan == .startup)
            // October is still not owed: the history starts in November.
            let october = try await server.request(.get, "\(org)?month=2026-10", token: server.ownerToken)
            #expect(try october.decoded(Schemas.Usage.self).cost?.totalCents == 0)
        }
    }

    @Test("the minutes a build may use are the ones the usage report shows: an organization on Developer from mid-month has half the included minutes")
    func capsPriceAsTheReport() async throws {
        try await withTestServer(plan: .developer) { server in
            // From the middle of the current (UTC) month on the Developer plan: 500 / 2 = 250 minutes.
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            let monthStart = calendar.date(from: calendar.dateComponents([.year, .month], from: Date()))!
            let monthEnd = calendar.date(byAdding: .month, value: 1, to: monthStart)!
            let middle = Int64(monthStart.timeIntervalSince1970) + Int64(monthEnd.timeIntervalSince(monthStart)) / 2
            let iso = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(middle)))
            try await Self.backdate(server, to: iso)
            let project = try await server.createProject("half")
            let digest = try await server.uploadZeroContext(project)
            try await TestDatabase.execute(server.database, """
                INSERT INTO usage_builds (job_id, organization_id, project_id, platform, start_epoch, seconds)
                VALUES ('halfaaaaaaaaaaaa', \(server.organizationId), \(project), 'linux/amd64', \(middle + 60), \(240 * 60))
                """)
            let usage = try await server.request(.get, "/api/v1/orgs/\(server.organizationId)/usage", token: server.ownerToken)
            #expect(try usage.decoded(Schemas.Usage.self).includedMinutes == 250, "\(usage.text)")
            let body = #"{"contextDigest":"\#(digest)"}"#
            #expect(try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken, json: body).status == .created,
                    "240 of 250 minutes used: a build may start")
            try await TestDatabase.execute(server.database, """
                INSERT INTO usage_builds (job_id, organization_id, project_id, platform, start_epoch, seconds)
                VALUES ('halfbbbbbbbbbbbb', \(server.organizationId), \(project), 'linux/amd64', \(middle + 100_000), \(20 * 60))
                """)
            let refused = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken, json: body)
            #expect(refused.status.code == 402)
            #expect(refused.problem?.detail?.contains("includes 250 build minutes this month") == true, "\(refused.text)")
        }
    }

    @Test("cost arithmetic is exact to the cent, from the seed's prices")
    func costs() {
        let month: Int64 = 30 * 86_400
        // Startup: 6,000 minutes (1,000 over at $0.04) and 300 GB-months (50 over at $0.20): $200 + $40 + $10.
        let gb300 = Decimal(300) * 1_000_000_000 * Decimal(month)
        let startup = Billing.month(plan: .startup, buildSeconds: 6_000 * 60, storageByteSeconds: gb300, monthSeconds: month)
        #expect(startup.lines.map(\.cents) == [20_000, 4_000, 1_000])
        #expect(startup.totalCents == 25_000)
        // 30 seconds over: half a minute at 4 cents is 2 cents.
        #expect(Billing.month(plan: .startup, buildSeconds: 5_000 * 60 + 30, storageByteSeconds: 0, monthSeconds: month).totalCents == 20_002)
        // 1,001 seconds over: 1001 × 4/60 = 66.73 cents → 67 (half up).
        #expect(Billing.month(plan: .startup, buildSeconds: 5_000 * 60 + 1_001, storageByteSeconds: 0, monthSeconds: month).totalCents == 20_067)
        // Within the included minutes and storage: the fee only.
        #expect(Billing.month(plan: .startup, buildSeconds: 4_999 * 60, storageByteSeconds: gb300 / 2, monthSeconds: month).totalCents == 20_000)
        // Developer: $20, no overage lines (builds past 500 minutes are refused instead).
        let developer = Billing.month(plan: .developer, buildSeconds: 600 * 60, storageByteSeconds: gb300, monthSeconds: month)
        #expect(developer.totalCents == 2_000)
        #expect(developer.lines.count == 1)
        // Business with negotiated amounts: $1,500 and $0.035 a minute: 100 minutes over is $3.50.
        var business = PlanTerms.business
        business.monthlyCents = 150_000
        business.includedMinutes = 1_000
        business.minuteOverageMillicents = 3_500
        #expect(Billing.month(plan: business, buildSeconds: 1_100 * 60, storageByteSeconds: 0, monthSeconds: month).totalCents == 150_350)
        #expect(Billing.dollars(150_350) == "$1503.50")
        #expect(Billing.dollars(5) == "$0.05")
    }

    @Test("months are UTC calendar months; a job spanning a month's end is split at midnight; storage in GB-months")
    func monthBoundaries() async throws {
        try await withTestServer { server in
            try await Self.backdate(server, to: "2026-09-01T00:00:00Z")
            let project = try await server.createProject("metered")
            let start = Self.epoch("2026-10-31T23:59:30Z")
            try await TestDatabase.execute(server.database, """
                INSERT INTO usage_builds (job_id, organization_id, project_id, platform, start_epoch, seconds)
                VALUES ('jobaaaaaaaaaaaaa', \(server.organizationId), \(project), 'linux/amd64', \(start), 75)
                """)
            // 10 GB of cache held for the whole of October (31 days), then none.
            try await TestDatabase.execute(server.database, """
                INSERT INTO usage_storage (organization_id, project_id, kind, platform, sampled_at, bytes) VALUES
                (\(server.organizationId), \(project), 'cache', 'linux/amd64', '2026-10-01T00:00:00Z', 10000000000),
                (\(server.organizationId), \(project), 'cache', 'linux/amd64', '2026-11-01T00:00:00Z', 0)
                """)
            let org = "/api/v1/orgs/\(server.organizationId)/usage"
            let october = try await server.request(.get, "\(org)?month=2026-10", token: server.ownerToken)
            #expect(october.status == .ok, "\(october.text)")
            let octoberUsage = try october.decoded(Schemas.Usage.self)
            #expect(octoberUsage.buildSeconds == 30)
            #expect(octoberUsage.storageGBMonths == 10)
            let november = try await server.request(.get, "\(org)?month=2026-11", token: server.ownerToken)
            let novemberUsage = try november.decoded(Schemas.Usage.self)
            #expect(novemberUsage.buildSeconds == 45)
            #expect(novemberUsage.storageGBMonths == 0)
            let span = try await server.request(.get, "\(org)?from=2026-10-31&to=2026-11-01", token: server.ownerToken)
            let spanUsage = try span.decoded(Schemas.Usage.self)
            #expect(spanUsage.buildSeconds == 75)
            #expect(spanUsage.byPlatform?.map(\.platform) == ["linux/amd64"] && spanUsage.byPlatform?.first?.buildSeconds == 75,
                    "build time by platform: \(span.text)")
            #expect(spanUsage.byDay.map(\.date) == ["2026-10-31", "2026-11-01"])
            #expect(spanUsage.byDay.map(\.buildSeconds) == [30, 45])
            // The period touches two months: two plan fees, by line and month.
            #expect(spanUsage.cost?.lines.map(\.month) == ["2026-10", "2026-11"])
            #expect(spanUsage.cost?.totalCents == 40_000)
            #expect(octoberUsage.byProject.first?.name == "metered")
            // The project's own view, and bad periods.
            let projectView = try await server.request(.get, "/api/v1/projects/\(project)/usage?month=2026-11", token: server.ownerToken)
            let projectUsage = try projectView.decoded(Schemas.Usage.self)
            #expect(projectUsage.buildSeconds == 45)
            #expect(projectUsage.cost == nil)
            for query in ["month=2026-13", "from=2026-11-01", "month=2026-11&from=2026-11-01&to=2026-11-02", "from=2026-11-05&to=2026-11-01",
                          "from=9223372036854775807-01-01&to=9223372036854775807-01-02", "from=0001-01-01&to=0001-01-02"] {
                #expect(try await server.request(.get, "\(org)?\(query)", token: server.ownerToken).status == .badRequest, "\(query)")
            }
        }
    }

    @Test("a worker's retried reports count once; a job that never started costs nothing")
    func idempotentReports() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("once")
            let digest = try await server.uploadZeroContext(project)
            let (_, worker) = try await server.createToken(#"{"name":"w","kind":"worker"}"#)
            let build = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken, json: #"{"contextDigest":"\#(digest)"}"#)
            let never = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken, json: #"{"contextDigest":"\#(digest)"}"#)
            let claimed = ContinuousClock.now
            let claim = try await server.request(.post, "/api/v1/workers/claim", token: worker, json: #"{"name":"w","platforms":["\#(Platform.host)"],"waitSeconds":0}"#)
            #expect(claim.status == .ok)
            let assignment = try claim.decoded(Schemas.JobAssignment.self)
            let buildId = try build.decoded(Schemas.Build.self).id
            #expect(assignment.buildId == buildId)
            let job = assignment.jobId, buildToken = assignment.buildToken
            _ = try await server.request(.post, "/api/v1/builds/\(try never.decoded(Schemas.Build.self).id)/cancel", token: server.ownerToken)
            #expect(try await server.request(.post, "/api/v1/jobs/\(job)/heartbeat", token: buildToken).status == .ok)
            let events = #"{"events":[{"sequence":0,"kind":"log","line":"one"},{"sequence":1,"kind":"log","line":"two"}]}"#
            for _ in 0..<2 {  // the same batch twice: stored once
                #expect(try await server.request(.post, "/api/v1/jobs/\(job)/events", token: buildToken, json: events).status == .noContent)
            }
            try await Task.sleep(for: .milliseconds(1100))
            let result = #"{"status":"succeeded","digest":"sha256:\#(String(repeating: "b", count: 64))","cacheBytes":123456}"#
            #expect(try await server.request(.post, "/api/v1/jobs/\(job)/finish", token: buildToken, json: result).status == .noContent)
            // Billed from the job's start to its finish in whole seconds (the start rounded down,
            // the finish up): at least the second slept, at most the time this test saw pass
            // between the claim and the finish plus that rounding.
            let elapsed = (ContinuousClock.now - claimed).components.seconds + 2
            // A retry after the build token was revoked is refused, and recording stays single.
            let retry = try await server.request(.post, "/api/v1/jobs/\(job)/finish", token: buildToken, json: result)
            #expect(retry.status == .unauthorized)
            #expect(try await TestDatabase.count(server.database, "SELECT count(*)::int FROM usage_builds") == 1)
            #expect(try await TestDatabase.count(server.database, "SELECT count(*)::int FROM usage_storage WHERE kind = 'cache' AND bytes = 123456") == 1)
            let logged = try await server.request(.get, "/api/v1/builds/\(buildId)/logs", token: server.ownerToken)
            #expect(logged.text.components(separatedBy: #""line":"one""#).count == 2)
            let usage = try await server.request(.get, "/api/v1/orgs/\(server.organizationId)/usage", token: server.ownerToken)
            let seconds = try usage.decoded(Schemas.Usage.self).buildSeconds
            #expect((1...elapsed).contains(seconds), "one job of about a second (\(elapsed) s passed): \(seconds)")
        }
    }

    @Test("caps: 50 concurrent creations at the cap are all refused with 402; under it none is; a queued build does not start past it")
    func capsUnderConcurrency() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("capped")
            let digest = try await server.uploadZeroContext(project)
            let caps = "/api/v1/orgs/\(server.organizationId)/usage/caps"
            let set = try await server.request(.put, caps, token: server.ownerToken, json: #"{"minutesPerMonth":1,"spendPerMonth":"1000.00"}"#)
            #expect(set.status == .ok, "\(set.text)")
            #expect(try set.decoded(Schemas.UsageCaps.self).spendPerMonthCents == 100_000)
            // A minute already used this month.
            let now = Int64(Date().timeIntervalSince1970)
            try await TestDatabase.execute(server.database, """
                INSERT INTO usage_builds (job_id, organization_id, project_id, platform, start_epoch, seconds)
                VALUES ('usedaaaaaaaaaaaa', \(server.organizationId), \(project), 'linux/amd64', \(now - 120), 60)
                """)
            let body = #"{"contextDigest":"\#(digest)"}"#
            let refused = try await withThrowingTaskGroup(of: JSONResponse.self) { group in
                for _ in 0..<50 { group.addTask { try await server.requestOwn(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken, json: body) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(refused.allSatisfy { $0.status.code == 402 })
            let detail = refused.first?.problem?.detail ?? ""
            #expect(detail.contains("cap of 1 build minutes") && detail.contains("1.0 minutes used") && detail.contains("drydock usage caps set"), "\(detail)")
            #expect(try await TestDatabase.count(server.database, "SELECT count(*)::int FROM builds") == 0)

            // Raised: all 50 queue.
            #expect(try await server.request(.put, caps, token: server.ownerToken, json: #"{"minutesPerMonth":10}"#).status == .ok)
            let accepted = try await withThrowingTaskGroup(of: JSONResponse.self) { group in
                for _ in 0..<50 { group.addTask { try await server.requestOwn(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken, json: body) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(accepted.allSatisfy { $0.status == .created })

            // The cap is reached while they wait: none of them starts.
            try await TestDatabase.execute(server.database, """
                INSERT INTO usage_builds (job_id, organization_id, project_id, platform, start_epoch, seconds)
                VALUES ('usedbbbbbbbbbbbb', \(server.organizationId), \(project), 'linux/amd64', \(now - 1000), 540)
                """)
            let (_, worker) = try await server.createToken(#"{"name":"w","kind":"worker"}"#)
            let claim = try await server.request(.post, "/api/v1/workers/claim", token: worker, json: #"{"name":"w","platforms":["\#(Platform.host)"],"waitSeconds":0}"#)
            #expect(claim.status == .noContent)
            let failed = try await server.request(.get, "/api/v1/projects/\(project)/builds?status=failed&limit=200", token: server.ownerToken)
            let failedBuilds = try failed.decoded(Schemas.BuildPage.self).items
            #expect(failedBuilds.count == 50)
            #expect(failedBuilds.first?.error?.contains("not started: the organization's cap") == true)

            // The usage answer shows the caps, the share used and a warning.
            let usage = try await server.request(.get, "/api/v1/orgs/\(server.organizationId)/usage", token: server.ownerToken)
            let capped = try usage.decoded(Schemas.Usage.self)
            #expect(capped.caps?.minutesUsedPercent == 100)
            #expect(capped.warnings?.contains { $0.contains("100% of the 10-minute monthly cap") } == true)
            // Clearing the caps lets builds queue again.
            #expect(try await server.request(.delete, caps, token: server.ownerToken).status == .noContent)
            #expect(try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken, json: body).status == .created)
        }
    }

    @Test("the month's running total counts every metered job once, whichever of its 64 rows it lands in; a cap check sums them all")
    func stripedTotals() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("striped")
            let digest = try await server.uploadZeroContext(project)
            // 120 jobs of 5 seconds (10 minutes), metered from eight connections at once.
            let now = Int64(Date().timeIntervalSince1970)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for part in 0..<8 {
                    group.addTask {
                        for n in stride(from: part, to: 120, by: 8) {
                            try await TestDatabase.execute(server.database, """
                                INSERT INTO usage_builds (job_id, organization_id, project_id, platform, start_epoch, seconds)
                                VALUES (\("striped\(n)"), \(server.organizationId), \(project), 'linux/amd64', \(now - 600), 5)
                                """)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let rows = try await TestDatabase.count(server.database, "SELECT count(*)::int FROM usage_totals WHERE organization_id = \(server.organizationId)")
            #expect(rows > 8, "the jobs landed in \(rows) row(s)")
            #expect(try await TestDatabase.count(
                server.database, "SELECT sum(build_seconds)::int FROM usage_totals WHERE organization_id = \(server.organizationId)") == 600)
            let usage = try await server.request(.get, "/api/v1/orgs/\(server.organizationId)/usage", token: server.ownerToken).decoded(Schemas.Usage.self)
            #expect(usage.buildSeconds == 600)
            // A 10-minute cap is reached by the sum of the rows; an 11-minute one is not.
            let caps = "/api/v1/orgs/\(server.organizationId)/usage/caps"
            let body = #"{"contextDigest":"\#(digest)"}"#
            #expect(try await server.request(.put, caps, token: server.ownerToken, json: #"{"minutesPerMonth":10}"#).status == .ok)
            let refused = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken, json: body)
            #expect(refused.status.code == 402, "\(refused.text)")
            #expect(refused.problem?.detail?.contains("10.0 minutes used") == true, "\(refused.text)")
            #expect(try await server.request(.put, caps, token: server.ownerToken, json: #"{"minutesPerMonth":11}"#).status == .ok)
            #expect(try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken, json: body).status == .created)
        }
    }

    @Test("plan limits: Developer has one user and no caps; members cannot set caps")
    func planLimits() async throws {
        try await withTestServer(plan: .developer) { server in
            let member = try await server.request(.post, "/api/v1/orgs/\(server.organizationId)/members", token: server.ownerToken, json: #"{"email":"second@acme.test"}"#)
            #expect(member.status.code == 402)
            #expect(member.problem?.detail?.contains("allows 1 user") == true)
            let caps = try await server.request(.put, "/api/v1/orgs/\(server.organizationId)/usage/caps", token: server.ownerToken, json: #"{"minutesPerMonth":10}"#)
            #expect(caps.status.code == 402)
            #expect(caps.problem?.detail?.contains("Startup and Business") == true)
            try await Self.backdate(server, to: "2026-01-01T00:00:00Z")
            let usage = try await server.request(.get, "/api/v1/orgs/\(server.organizationId)/usage", token: server.ownerToken)
            let developer = try usage.decoded(Schemas.Usage.self)
            #expect(developer.plan == .developer)
            #expect(developer.includedMinutes == 500)
            #expect(developer.cost?.total == "$20.00")
        }
        try await withTestServer { server in
            let added = try await server.request(.post, "/api/v1/orgs/\(server.organizationId)/members", token: server.ownerToken, json: #"{"email":"m@acme.test"}"#)
            let memberToken = try added.decoded(Schemas.CreatedMember.self).token
            let caps = try await server.request(.put, "/api/v1/orgs/\(server.organizationId)/usage/caps", token: memberToken, json: #"{"minutesPerMonth":10}"#)
            #expect(caps.status == .forbidden)
            #expect(try await server.request(.get, "/api/v1/orgs/\(server.organizationId)/usage/caps", token: memberToken).status == .ok)
            for bad in [#"{"spendPerMonth":"12.345"}"#, #"{"minutesPerMonth":0}"#, #"{"softThresholdPercent":100}"#] {
                let response = try await server.request(.put, "/api/v1/orgs/\(server.organizationId)/usage/caps", token: server.ownerToken, json: bad)
                #expect(response.status == .badRequest, "\(bad): \(response.text)")
            }
        }
    }

    @Test("drydock usage and drydock usage caps from the CLI")
    func cli() async throws {
        try await withTestServer { server in
            try await Self.backdate(server, to: "2026-01-01T00:00:00Z")
            let project = try await server.createProject("cli")
            let now = Int64(Date().timeIntervalSince1970)
            try await TestDatabase.execute(server.database, """
                INSERT INTO usage_builds (job_id, organization_id, project_id, platform, start_epoch, seconds)
                VALUES ('cliaaaaaaaaaaaaa', \(server.organizationId), \(project), 'linux/amd64', \(now - 600), 90)
                """)
            let env = ["DRYDOCK_API_URL": server.baseURL, "DRYDOCK_TOKEN": server.ownerToken, "HOME": "/tmp"]
            let table = try await runExecutable("drydock", ["usage"], environment: env)
            #expect(table.status == 0, "\(table.stderr)")
            #expect(table.stdout.contains("1.50 of 5000 included"))
            #expect(table.stdout.contains("$200.00"))
            let csv = try await runExecutable("drydock", ["usage", "--by", "project", "--format", "csv"], environment: env)
            #expect(csv.stdout.contains("\(project),cli,90,1.5,"))
            let set = try await runExecutable("drydock", ["usage", "caps", "set", "--minutes", "3000", "--spend", "250.00"], environment: env)
            #expect(set.status == 0, "\(set.stderr)")
            #expect(set.stdout.contains("$250.00"))
            let clear = try await runExecutable("drydock", ["usage", "caps", "clear"], environment: env)
            #expect(clear.status == 0)
            let shown = try await runExecutable("drydock", ["usage", "caps"], environment: env)
            #expect(shown.stdout.contains("no cap"))
        }
    }
}
