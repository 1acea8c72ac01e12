import DrydockAPITypes
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

// Usage, tokens and members: the organization's pages.

extension Dashboard {
    // MARK: usage

    /// The month asked for (`?month=YYYY-MM`), the current one by default.
    static func month(_ request: Request) -> String {
        if let asked = request.uri.queryParameters.get("month").map { String($0) }, asked.count == 7,
           let year = Int(asked.prefix(4)), let month = Int(asked.suffix(2)), asked.dropFirst(4).first == "-",
           (2000...9999).contains(year), (1...12).contains(month) {
            return asked
        }
        return currentMonth()
    }

    static func currentMonth() -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let now = calendar.dateComponents([.year, .month], from: Date())
        return String(format: "%04d-%02d", now.year ?? 2026, now.month ?? 1)
    }

    static func shift(_ month: String, by delta: Int) -> String {
        let year = Int(month.prefix(4)) ?? 2026, number = Int(month.suffix(2)) ?? 1
        let index = year * 12 + (number - 1) + delta
        return String(format: "%04d-%02d", index / 12, index % 12 + 1)
    }

    func usageReport(_ session: Session, month: String) async throws -> Components.Schemas.Usage {
        try await call(session, "getOrganizationUsage") {
            try await api.getOrganizationUsage(.init(path: .init(orgId: session.caller.organizationId), query: .init(month: month))).ok.body.json
        }
    }

    func usagePage(_ session: Session, request: Request) async throws -> Response {
        let month = Self.month(request)
        let usage = try await usageReport(session, month: month)
        var context = try await signedInFrame(session, title: "Usage \(month)")
        let current = Self.currentMonth()
        context["month"] = month
        context["previous"] = Self.shift(month, by: -1)
        context["next"] = month < current ? Self.shift(month, by: 1) : NSNull()
        context["minutes"] = DashboardFormat.number(usage.buildMinutes)
        context["included"] = "\(usage.includedMinutes)"
        context["storage"] = String(format: "%.3f", usage.storageGBMonths)
        context["includedStorage"] = "\(usage.includedStorageGB)"
        context["total"] = usage.cost?.total ?? "$0.00"
        context["warnings"] = usage.warnings ?? []
        context["chart"] = DashboardCharts.minutesPerDay(usage.byDay.map { ($0.date, $0.buildMinutes) })
        context["byProject"] = usage.byProject.map { project -> [String: Any] in
            ["id": project.projectId, "name": project.name, "minutes": DashboardFormat.number(project.buildMinutes),
             "isolated": DashboardFormat.number(Double(project.isolatedBuildSeconds ?? 0) / 60), "storage": String(format: "%.3f", project.storageGBMonths)]
        }
        context["lines"] = (usage.cost?.lines ?? []).map { line -> [String: Any] in
            ["item": line.item, "quantity": line.quantity, "unitPrice": line.unitPrice, "amount": line.amount]
        }
        if let caps = usage.caps {
            context["caps"] = [
                "minutesCap": caps.minutesPerMonth.map { "\($0) min" } ?? NSNull(), "minutesPercent": caps.minutesUsedPercent ?? 0,
                "spendCap": Self.optional(caps.spendPerMonth), "spendPercent": caps.spendUsedPercent ?? 0,
                "threshold": caps.softThresholdPercent, "any": caps.minutesPerMonth != nil || caps.spendPerMonth != nil,
            ] as [String: Any]
        } else {
            context["caps"] = ["minutesCap": NSNull(), "spendCap": NSNull(), "threshold": 80, "any": false] as [String: Any]
        }
        return html("usage", context)
    }

    /// The month's usage as CSV: a row per day, per project and per cost line.
    func usageCSV(_ session: Session, request: Request) async throws -> Response {
        let month = Self.month(request)
        let usage = try await usageReport(session, month: month)
        func field(_ text: String) -> String {
            // Quoted when needed; a leading =, +, - or @ is neutralised so a spreadsheet never runs it.
            var value = text
            if let first = value.first, "=+-@".contains(first) { value = "'" + value }
            guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
            return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        var csv = "section,key,name,build_seconds,build_minutes,storage_gb_months,quantity,unit_price,amount\r\n"
        for day in usage.byDay {
            csv += "day,\(field(day.date)),,\(day.buildSeconds),\(day.buildMinutes),,,,\r\n"
        }
        for project in usage.byProject {
            csv += "project,\(field(project.projectId)),\(field(project.name)),\(project.buildSeconds),\(project.buildMinutes),\(project.storageGBMonths),,,\r\n"
        }
        for line in usage.cost?.lines ?? [] {
            csv += "cost,\(field(line.month)),\(field(line.item)),,,,\(field(line.quantity)),\(field(line.unitPrice)),\(field(line.amount))\r\n"
        }
        csv += "total,\(field(month)),,\(usage.buildSeconds),\(usage.buildMinutes),\(usage.storageGBMonths),,,\(field(usage.cost?.total ?? "$0.00"))\r\n"
        return Response(status: .ok, headers: [
            .contentType: "text/csv; charset=utf-8", .cacheControl: "no-store",
            .contentDisposition: "attachment; filename=\"drydock-usage-\(month).csv\"",
        ], body: .init(byteBuffer: ByteBuffer(string: csv)))
    }

    // MARK: tokens

    func tokensPage(_ session: Session, request: Request) async throws -> Response {
        let cursor = request.uri.queryParameters.get("cursor").map { String($0) }
        let page = try await call(session, "listTokens") {
            try await api.listTokens(.init(query: .init(limit: 50, cursor: cursor, includeRevoked: true))).ok.body.json
        }
        var context = try await signedInFrame(session, title: "Tokens", flash: Self.flash(request))
        let canRevoke = may(session, "revokeToken")
        context["tokens"] = page.items.map { token -> [String: Any] in
            var row: [String: Any] = ["id": token.id, "name": token.name, "kind": token.kind.rawValue, "prefix": token.prefix]
            let project: String = token.projectId ?? token.projectIds?.joined(separator: ", ") ?? "—"
            row["project"] = project
            row["created"] = DashboardFormat.time(token.createdAt)
            row["lastUsed"] = DashboardFormat.time(token.lastUsedAt)
            let expires: String = token.expiresAt.map { DashboardFormat.time($0) } ?? "never"
            row["expires"] = expires
            row["revoked"] = token.revokedAt != nil
            row["canRevoke"] = canRevoke
            return row
        }
        context["nextPage"] = Self.optional(page.nextCursor)
        context["canCreate"] = may(session, "createToken")
        if may(session, "listProjects") {
            let projects = try await call(session, "listProjects") { try await api.listProjects(.init(query: .init(limit: 200))).ok.body.json }
            context["projects"] = projects.items.map { ["id": $0.id, "name": $0.name] }
        } else {
            context["projects"] = [[String: Any]]()
        }
        return html("tokens", context)
    }

    func createToken(_ session: Session, form: Form) async throws -> Response {
        guard let name = form.text("name") else { throw FormError(message: "give the token a name") }
        let kind = try form.text("kind").map { value -> Components.Schemas.TokenKind in
            guard let kind = Components.Schemas.TokenKind(rawValue: value) else { throw FormError(message: "'\(value)' is not a kind of token") }
            return kind
        }
        let days = try form.integer("expiresInDays", label: "the days before it expires")
        if let days, !(1...3650).contains(days) { throw FormError(message: "a token expires after 1 to 3650 days") }
        let body = Components.Schemas.TokenCreate(name: name, kind: kind, projectId: form.text("projectId"), expiresInSeconds: days.map { $0 * 86400 })
        let created = try await call(session, "createToken") { try await api.createToken(.init(body: .json(body))).created.body.json }
        var context = try await signedInFrame(session, title: "Token created")
        context["name"] = created.name
        context["kind"] = created.kind.rawValue
        context["project"] = Self.optional(created.projectId)
        context["expires"] = Self.optional(created.expiresAt.map(DashboardFormat.time))
        context["secret"] = created.token
        return html("tokenCreated", context, status: .created)
    }

    func tokenPage(_ session: Session, id: String) async throws -> Response {
        let token = try await call(session, "getToken") { try await api.getToken(.init(path: .init(tokenId: id))).ok.body.json }
        var context = try await signedInFrame(session, title: token.name)
        context["name"] = token.name
        context["kind"] = token.kind.rawValue
        context["prefix"] = token.prefix
        context["project"] = Self.optional(token.projectId)
        context["created"] = DashboardFormat.time(token.createdAt)
        context["lastUsed"] = DashboardFormat.time(token.lastUsedAt)
        context["expires"] = token.expiresAt.map(DashboardFormat.time) ?? "never"
        context["revokedAt"] = Self.optional(token.revokedAt.map(DashboardFormat.time))
        return html("token", context)
    }

    func revokeToken(_ session: Session, id: String) async throws -> Response {
        _ = try await call(session, "revokeToken") { try await api.revokeToken(.init(path: .init(tokenId: id))) }
        // Revoking the session's own token ends the session: the next page is the sign-in page.
        return redirect("/tokens?done=revoked")
    }

    // MARK: members

    func membersPage(_ session: Session, request: Request) async throws -> Response {
        let organizationId = session.caller.organizationId
        let page = try await call(session, "listMembers") {
            try await api.listMembers(.init(path: .init(orgId: organizationId), query: .init(limit: 200))).ok.body.json
        }
        var context = try await signedInFrame(session, title: "Members", flash: Self.flash(request))
        let isAdmin = may(session, "updateMember")
        context["isAdmin"] = isAdmin
        context["members"] = page.items.map { member -> [String: Any] in
            [
                "userId": member.user.id, "email": member.user.email, "role": member.role.rawValue,
                "joined": DashboardFormat.time(member.joinedAt),
                "roles": ["member", "admin", "owner"].map { ["value": $0, "selected": $0 == member.role.rawValue] },
            ]
        }
        return html("members", context)
    }

    static func role(_ form: Form) throws -> Components.Schemas.Role {
        let value = form.text("role") ?? "member"
        guard let role = Components.Schemas.Role(rawValue: value) else { throw FormError(message: "a role is member, admin or owner, not '\(value)'") }
        return role
    }

    func addMember(_ session: Session, form: Form) async throws -> Response {
        guard let email = form.text("email") else { throw FormError(message: "give the new member's email") }
        let role = try Self.role(form)
        let organizationId = session.caller.organizationId
        let created = try await call(session, "addMember") {
            try await api.addMember(.init(path: .init(orgId: organizationId), body: .json(.init(email: email, role: role)))).created.body.json
        }
        var context = try await signedInFrame(session, title: "Member added")
        context["email"] = created.member.user.email
        context["role"] = created.member.role.rawValue
        context["secret"] = created.token
        return html("memberAdded", context, status: .created)
    }

    func changeRole(_ session: Session, userId: String, form: Form) async throws -> Response {
        let role = try Self.role(form)
        let organizationId = session.caller.organizationId
        _ = try await call(session, "updateMember") {
            try await api.updateMember(.init(path: .init(orgId: organizationId, userId: userId), body: .json(.init(role: role)))).ok.body.json
        }
        return redirect("/members?done=role")
    }

    func removeMember(_ session: Session, userId: String) async throws -> Response {
        let organizationId = session.caller.organizationId
        _ = try await call(session, "removeMember") { try await api.removeMember(.init(path: .init(orgId: organizationId, userId: userId))) }
        return redirect("/members?done=removed")
    }
}
