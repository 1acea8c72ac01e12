import DrydockAPITypes
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OpenAPIRuntime

// The pages. Each reads through the API's operations as the session's token (`call`), adds what
// `DashboardQueries` reads for the rows the API returned, and renders a template.

extension Dashboard {
    /// The frame with who is signed in (their email, or the token's name) and their organization.
    func signedInFrame(_ session: Session, title: String, flash: String? = nil) async throws -> [String: Any] {
        var context = frame(session, title: title, flash: flash)
        let me = try await call(session, "getCurrentCaller") { try await api.getCurrentCaller(.init()).ok.body.json }
        let who = me.user?.email ?? "\(me.token.kind.rawValue) token \(me.token.name)"
        context["who"] = "\(who)\(me.role.map { " · \($0.rawValue)" } ?? "") · \(me.organization.name)"
        context["organizationId"] = me.organization.id
        context["organizationName"] = me.organization.name
        context["plan"] = me.organization.plan.rawValue
        return context
    }

    static func flash(_ request: Request) -> String? {
        switch request.uri.queryParameters.get("done") {
        case "settings": "Settings saved."
        case "deleted": "Deleted."
        case "revoked": "Token revoked."
        case "canceled": "Cancel requested; the build stops at its next step."
        case "role": "Role changed."
        case "removed": "Member removed."
        default: nil
        }
    }

    static func platformsText(_ platforms: [String]) -> String { platforms.joined(separator: ", ") }

    // MARK: overview

    func overview(_ session: Session, request: Request) async throws -> Response {
        var context = try await signedInFrame(session, title: "Overview", flash: Self.flash(request))
        let organizationId = session.caller.organizationId
        context["organization"] = context["organizationName"]
        let cursor = request.uri.queryParameters.get("cursor").map { String($0) }
        let page = try await call(session, "listProjects") {
            try await api.listProjects(.init(query: .init(limit: 50, cursor: cursor))).ok.body.json
        }
        let ids = page.items.map(\.id)
        async let lastBuilds = queries.lastBuilds(projectIds: ids)
        async let running = queries.unfinishedBuilds(organizationId: organizationId, projectIds: session.caller.projectScope)
        let last = try await lastBuilds
        var names = Dictionary(page.items.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        context["projects"] = page.items.map { project -> [String: Any] in
            var row: [String: Any] = ["id": project.id, "name": project.name]
            if let build = last[project.id] {
                row["lastBuild"] = ["id": build.id, "status": build.status, "when": DashboardFormat.time(build.finishedAt ?? build.startedAt ?? build.createdAt)]
            } else {
                row["lastBuild"] = NSNull()
            }
            return row
        }
        context["nextPage"] = Self.optional(page.nextCursor)
        let unfinished = try await running
        for build in unfinished where names[build.projectId] == nil { names[build.projectId] = build.projectId }
        context["running"] = unfinished.map { build -> [String: Any] in
            ["id": build.id, "projectId": build.projectId, "projectName": names[build.projectId] ?? build.projectId,
             "status": build.status, "platforms": Self.platformsText(build.platforms),
             "started": build.startedAt.map(DashboardFormat.time) ?? "waiting for a builder"]
        }
        context["hasRunning"] = !unfinished.isEmpty
        if may(session, "getOrganizationUsage") {
            let usage = try await call(session, "getOrganizationUsage") {
                try await api.getOrganizationUsage(.init(path: .init(orgId: organizationId), query: .init())).ok.body.json
            }
            context["usage"] = usageCard(usage)
            context["usageHidden"] = NSNull()
        } else {
            context["usage"] = NSNull()
            context["usageHidden"] = "A \(session.caller.kind.rawValue) token does not see the organization's usage."
        }
        return html("overview", context)
    }

    func usageCard(_ usage: Components.Schemas.Usage) -> [String: Any] {
        let included = Double(usage.includedMinutes)
        var caps: [[String: Any]] = []
        if let c = usage.caps {
            if let minutes = c.minutesPerMonth {
                let percent = c.minutesUsedPercent ?? 0
                caps.append(["name": "Minutes", "used": DashboardFormat.number(usage.buildMinutes), "limit": "\(minutes) min",
                             "percent": min(percent, 100), "warn": percent >= c.softThresholdPercent])
            }
            if let spend = c.spendPerMonth {
                let percent = c.spendUsedPercent ?? 0
                caps.append(["name": "Spend", "used": usage.cost?.total ?? "$0.00", "limit": spend,
                             "percent": min(percent, 100), "warn": percent >= c.softThresholdPercent])
            }
        }
        return [
            "minutes": DashboardFormat.number(usage.buildMinutes), "included": "\(usage.includedMinutes)",
            "includedPercent": included > 0 ? min(Int(usage.buildMinutes / included * 100), 100) : 0,
            "cost": usage.cost?.total ?? "$0.00", "caps": caps, "warnings": usage.warnings ?? [],
        ]
    }

    // MARK: project

    func projectPage(_ session: Session, id: String, request: Request, flash: String? = nil) async throws -> Response {
        let project = try await call(session, "getProject") { try await api.getProject(.init(path: .init(projectId: id))).ok.body.json }
        var context = try await signedInFrame(session, title: project.name, flash: flash ?? Self.flash(request))
        let cursor = request.uri.queryParameters.get("cursor").map { String($0) }
        let page = try await call(session, "listBuilds") {
            try await api.listBuilds(.init(path: .init(projectId: project.id), query: .init(limit: 25, cursor: cursor))).ok.body.json
        }
        let summaries = try await queries.summaries(buildIds: page.items.map(\.id))
        let caches = try await call(session, "getProjectCache") {
            try await api.getProjectCache(.init(path: .init(projectId: project.id))).ok.body.json
        }
        context["id"] = project.id
        context["name"] = project.name
        context["builds"] = page.items.map { build -> [String: Any] in
            let summary = summaries[build.id] ?? .init()
            let share = summary.steps > 0 ? " (\(summary.cachedSteps * 100 / summary.steps)%)" : ""
            return [
                "id": build.id, "status": build.status.rawValue, "platforms": Self.platformsText(build.platforms),
                "duration": DashboardFormat.duration(from: build.startedAt, to: build.finishedAt) ?? "—",
                "cached": summary.steps > 0 ? "\(summary.cachedSteps) of \(summary.steps)\(share)" : "—",
                "saved": summary.savedMs > 0 ? DashboardFormat.duration(ms: summary.savedMs) : "—",
                "startedBy": summary.startedBy ?? "—", "isolated": build.isolated ?? false,
                "created": DashboardFormat.time(build.createdAt),
            ]
        }
        context["nextPage"] = Self.optional(page.nextCursor)
        context["caches"] = caches.items.map { cache -> [String: Any] in
            ["platform": cache.platform, "size": DashboardFormat.bytes(cache.bytes), "images": cache.images,
             "lastUsed": DashboardFormat.time(cache.lastUsedAt)]
        }
        let emulation = project.builds?.emulation.rawValue ?? "fallback"
        context["keepGigabytes"] = project.cachePolicy.keepGigabytes
        context["keepDays"] = project.cachePolicy.keepDays
        context["emulation"] = emulation
        context["emulations"] = ["native-only", "fallback", "allowed"].map { ["value": $0, "selected": $0 == emulation] }
        context["canWrite"] = may(session, "updateProject")
        let retention = try await call(session, "getRetentionPolicy") {
            try await api.getRetentionPolicy(.init(path: .init(projectId: project.id))).ok.body.json
        }
        var rules: [String] = []
        if let days = retention.untaggedDays { rules.append("untagged manifests are deleted after \(days) day(s)") }
        if let days = retention.buildTagDays { rules.append("build images are kept \(days) day(s)") }
        for keep in retention.keep ?? [] { rules.append("only the newest \(keep.count) tag(s) matching \(keep.pattern) are kept") }
        for pattern in retention.immutableTags ?? [] { rules.append("tags matching \(pattern) cannot be moved") }
        context["retention"] = rules
        return html("project", context)
    }

    func saveSettings(_ session: Session, id: String, form: Form) async throws -> Response {
        let emulation = try form.text("emulation").map { value -> Components.Schemas.BuildSettingsUpdate.EmulationPayload in
            guard let parsed = Components.Schemas.BuildSettingsUpdate.EmulationPayload(rawValue: value) else {
                throw FormError(message: "emulation must be native-only, fallback or allowed")
            }
            return parsed
        }
        let update = Components.Schemas.ProjectUpdate(
            name: form.text("name"),
            cachePolicy: .init(keepGigabytes: try form.integer("keepGigabytes", label: "the cache size"),
                               keepDays: try form.integer("keepDays", label: "the days kept")),
            builds: emulation.map { .init(emulation: $0) })
        _ = try await call(session, "updateProject") {
            try await api.updateProject(.init(path: .init(projectId: id), body: .json(update))).ok.body.json
        }
        return redirect("/projects/\(Self.pathEscaped(id))?done=settings")
    }

    /// A path segment or query value: everything but unreserved characters percent-escaped.
    static func pathEscaped(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_.~"))) ?? ""
    }

    // MARK: build

    func buildPage(_ session: Session, id: String, request: Request) async throws -> Response {
        let build = try await call(session, "getBuild") { try await api.getBuild(.init(path: .init(buildId: id))).ok.body.json }
        var context = try await signedInFrame(session, title: "Build \(build.id)", flash: Self.flash(request))
        context["id"] = build.id
        context["projectId"] = build.projectId
        context["status"] = build.status.rawValue
        context["duration"] = Self.optional(DashboardFormat.duration(from: build.startedAt, to: build.finishedAt))
        context["created"] = DashboardFormat.time(build.createdAt)
        context["isolated"] = build.isolated ?? false
        context["error"] = Self.optional(build.error)
        let finished = [.succeeded, .failed, .canceled].contains(build.status)
        context["canCancel"] = !finished && may(session, "cancelBuild")
        context["saved"] = DashboardFormat.duration(ms: build.cacheSavedMs ?? 0)
        context["cachedSteps"] = build.steps.filter(\.cached).count
        context["totalSteps"] = build.steps.count
        context["image"] = build.image
        context["digest"] = Self.optional(build.digest)
        context["tags"] = build.tags
        context["hasTags"] = !build.tags.isEmpty
        context["dockerfile"] = build.dockerfile
        context["target"] = Self.optional(build.target)
        let args = (build.buildArgs?.additionalProperties ?? [:]).sorted { $0.key < $1.key }
        context["buildArgs"] = args.map { ["key": $0.key, "value": $0.value] }
        context["hasBuildArgs"] = !args.isEmpty
        context["platforms"] = build.platforms.map { platform -> [String: Any] in
            let job = build.jobs.first { $0.platform == platform }
            let steps = build.steps.filter { $0.platform == platform }.sorted { $0.number < $1.number }
            let saved = steps.reduce(Int64(0)) { $0.addingClamped($1.cached ? max($1.savedMs ?? 0, 0) : 0) }
            return [
                "platform": platform, "status": job?.status.rawValue ?? build.status.rawValue,
                "worker": Self.optional(job?.workerName), "emulated": job?.emulated ?? false,
                "duration": Self.optional(DashboardFormat.duration(from: job?.startedAt, to: job?.finishedAt)),
                "saved": DashboardFormat.duration(ms: saved), "digest": Self.optional(job?.digest),
                "jobError": Self.optional(job?.error),
                "timeline": DashboardCharts.timeline(steps.map {
                    .init(number: $0.number, instruction: $0.instruction, cached: $0.cached, status: $0.status.rawValue,
                          durationMs: $0.durationMs, savedMs: $0.savedMs)
                }),
            ]
        }
        // The log so far (its last lines); the script follows the rest while the build runs.
        let (lines, next, truncated) = try await logLines(session, buildId: build.id, multiPlatform: build.platforms.count > 1)
        context["logLines"] = lines
        context["logOffset"] = next
        context["logTruncated"] = truncated
        context["logShown"] = lines.count
        context["live"] = !finished
        context["multi"] = build.platforms.count > 1
        return html("build", context)
    }

    static let logLineLimit = 3000

    /// The log so far, read straight from the log of a build the API has just shown this session.
    func logLines(_ session: Session, buildId: String, multiPlatform: Bool) async throws -> (lines: [String], next: Int64, truncated: Bool) {
        var lines: [String] = []
        var dropped = false
        var next: Int64 = 0
        while true {
            let batch = try await api.buildLog.entries(buildId: buildId, from: next, limit: 2000)
            for text in batch {
                guard let entry = try? BuildJSON.decoder.decode(LogEntry.self, from: Data(text.utf8)) else { continue }
                next = entry.offset + 1
                let prefix = multiPlatform ? entry.platform.map { "[\($0)] " } ?? "" : ""
                var line: String?
                switch entry.kind {
                case .log: line = entry.line.map { prefix + $0 }
                case .step:
                    if let step = entry.step {
                        let what = step.cached ? "CACHED " : step.status == .running ? "" : step.status.rawValue.uppercased() + " "
                        line = "\(prefix)#\(step.number) \(what)\(step.instruction)"
                    }
                case .status: line = entry.status.map { "build \($0.rawValue)\(entry.error.map { ": \($0)" } ?? "")" }
                }
                if let line { lines.append(line) }
            }
            if lines.count > Self.logLineLimit {
                lines.removeFirst(lines.count - Self.logLineLimit)
                dropped = true
            }
            if batch.count < 2000 { break }
        }
        return (lines, next, dropped)
    }

    /// The build's log as the API streams it (JSON Lines, followed with `follow=true`), for the
    /// page's script: the session instead of a bearer token.
    func buildLog(_ session: Session, id: String, request: Request) async throws -> Response {
        let offset = request.uri.queryParameters.get("offset").flatMap { Int64($0) } ?? 0
        let follow = request.uri.queryParameters.get("follow") == "true"
        let body = try await call(session, "getBuildLogs") {
            try await api.getBuildLogs(.init(path: .init(buildId: id), query: .init(offset: offset, follow: follow))).ok.body.applicationJsonl
        }
        return Response(status: .ok, headers: [.contentType: "application/jsonl", .cacheControl: "no-store"],
                        body: try await RouterTransport<BasicRequestContext>.responseBody(body))
    }

    func cancelBuild(_ session: Session, id: String) async throws -> Response {
        _ = try await call(session, "cancelBuild") { try await api.cancelBuild(.init(path: .init(buildId: id))) }
        return redirect("/builds/\(Self.pathEscaped(id))?done=canceled")
    }

    // MARK: registry

    func registryPage(_ session: Session, id: String, request: Request) async throws -> Response {
        let project = try await call(session, "getProject") { try await api.getProject(.init(path: .init(projectId: id))).ok.body.json }
        let repositories = try await call(session, "listRepositories") {
            try await api.listRepositories(.init(path: .init(projectId: project.id))).ok.body.json
        }
        var context = try await signedInFrame(session, title: "Registry of \(project.name)", flash: Self.flash(request))
        context["projectId"] = project.id
        context["projectName"] = project.name
        context["host"] = request.head.authority ?? "HOST"
        let canDelete = may(session, "deleteRepositoryTag")
        var rows: [[String: Any]] = []
        let shown = Array(repositories.items.prefix(100))
        // Each repository's tags, eight requests at a time (one after another, a project with a
        // hundred repositories made this page a hundred queries long).
        let tagPages = try await Self.concurrentMap(shown, limit: 8) { repository in
            try await call(session, "listRepositoryTags") {
                try await api.listRepositoryTags(.init(path: .init(projectId: project.id), query: .init(repository: repository.name))).ok.body.json
            }
        }
        for (repository, tags) in zip(shown, tagPages) {
            rows.append([
                "name": repository.name, "size": DashboardFormat.bytes(repository.sizeBytes), "tagCount": repository.tagCount,
                "manifestCount": repository.manifestCount,
                "tags": tags.items.map { tag -> [String: Any] in
                    [
                        "tag": tag.name, "shortDigest": String(tag.digest.prefix(19)) + "…", "size": DashboardFormat.bytes(tag.sizeBytes),
                        "platforms": (tag.platforms ?? []).joined(separator: ", "), "updated": DashboardFormat.time(tag.updatedAt),
                        "canDelete": canDelete, "repositoryQuery": Self.pathEscaped(repository.name), "tagQuery": Self.pathEscaped(tag.name),
                    ]
                },
            ])
        }
        context["repositories"] = rows
        return html("registry", context)
    }

    /// `transform` of every element, at most `limit` at once, in the elements' order.
    static func concurrentMap<Element: Sendable, T: Sendable>(
        _ elements: [Element], limit: Int, _ transform: @escaping @Sendable (Element) async throws -> T
    ) async throws -> [T] {
        try await withThrowingTaskGroup(of: (Int, T).self) { group in
            var results = [T?](repeating: nil, count: elements.count)
            var next = 0
            while next < min(limit, elements.count) {
                let index = next
                group.addTask { (index, try await transform(elements[index])) }
                next += 1
            }
            while let (index, value) = try await group.next() {
                results[index] = value
                if next < elements.count {
                    let index = next
                    group.addTask { (index, try await transform(elements[index])) }
                    next += 1
                }
            }
            return results.compactMap { $0 }
        }
    }

    func confirmDelete(_ session: Session, id: String, request: Request) async throws -> Response {
        guard let repository = request.uri.queryParameters.get("repository").map({ String($0) }),
              let tag = request.uri.queryParameters.get("tag").map({ String($0) })
        else { throw FormError(message: "name the repository and the tag to delete") }
        let project = try await call(session, "getProject") { try await api.getProject(.init(path: .init(projectId: id))).ok.body.json }
        let tags = try await call(session, "listRepositoryTags") {
            try await api.listRepositoryTags(.init(path: .init(projectId: project.id), query: .init(repository: repository))).ok.body.json
        }
        guard let found = tags.items.first(where: { $0.name == tag }) else { throw APIError.notFound("tag", tag) }
        var context = try await signedInFrame(session, title: "Delete \(repository):\(tag)")
        context["heading"] = "Delete \(repository):\(tag)?"
        context["question"] = "The tag points at \(found.digest). Delete only the tag (the image stays while other tags or builds refer to it), or the image with every tag pointing at it."
        context["action"] = "/projects/\(Self.pathEscaped(project.id))/registry/delete"
        context["fields"] = [["name": "repository", "value": repository], ["name": "tag", "value": tag], ["name": "digest", "value": found.digest]]
        context["choices"] = [["value": "tag", "label": "Delete the tag"], ["value": "image", "label": "Delete the image and all its tags"]]
        context["back"] = "/projects/\(Self.pathEscaped(project.id))/registry"
        return html("confirm", context)
    }

    func deleteFromRegistry(_ session: Session, id: String, form: Form) async throws -> Response {
        guard let repository = form.text("repository"), let tag = form.text("tag") else {
            throw FormError(message: "name the repository and the tag to delete")
        }
        if form["what"] == "image" {
            guard let digest = form.text("digest") else { throw FormError(message: "name the image's digest") }
            _ = try await call(session, "deleteImage") {
                try await api.deleteImage(.init(path: .init(projectId: id), query: .init(repository: repository, digest: digest)))
            }
        } else {
            _ = try await call(session, "deleteRepositoryTag") {
                try await api.deleteRepositoryTag(.init(path: .init(projectId: id), query: .init(repository: repository, tag: tag)))
            }
        }
        return redirect("/projects/\(Self.pathEscaped(id))/registry?done=deleted")
    }
}
