import Foundation
import Logging
import PostgresNIO

/// A project's registry retention policy (`drydock registry retention set`): what housekeeping
/// deletes, and which tags a push may never move.
struct RetentionPolicy: Codable, Sendable, Equatable {
    struct Keep: Codable, Sendable, Equatable {
        /// `TAG-GLOB` or `REPOSITORY:TAG-GLOB` (`*` any run, `?` one character).
        var pattern: String
        var count: Int
    }

    /// Manifests no tag points at (and no kept index or image refers to) older than this are deleted.
    var untaggedDays: Int?
    /// Build images (`<project>/build:<build-id>`) are kept this long after they were pushed.
    var buildTagDays: Int?
    /// In each repository, only the newest `count` tags matching `pattern` are kept.
    var keep: [Keep] = []
    /// Tags a push may not move to another manifest (nor may retention delete them).
    var immutableTags: [String] = []

    var isEmpty: Bool { untaggedDays == nil && buildTagDays == nil && keep.isEmpty && immutableTags.isEmpty }

    func isImmutable(repository: String, tag: String) -> Bool {
        immutableTags.contains { TagPattern.matches($0, repository: repository, tag: tag) }
    }
}

enum TagPattern {
    /// Whether `pattern` (`TAG-GLOB` or `REPOSITORY:TAG-GLOB`) covers this tag.
    static func matches(_ pattern: String, repository: String, tag: String) -> Bool {
        if let colon = pattern.firstIndex(of: ":") {
            return glob(Array(pattern[..<colon].utf8), Array(repository.utf8))
                && glob(Array(pattern[pattern.index(after: colon)...].utf8), Array(tag.utf8))
        }
        return glob(Array(pattern.utf8), Array(tag.utf8))
    }

    /// `*` and `?` over bytes, iteratively (no recursion, linear backtracking on the last `*`).
    static func glob(_ pattern: [UInt8], _ text: [UInt8]) -> Bool {
        var p = 0, t = 0
        var star: Int?, mark = 0
        while t < text.count {
            if p < pattern.count, pattern[p] == UInt8(ascii: "?") || pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.count, pattern[p] == UInt8(ascii: "*") {
                star = p
                mark = t
                p += 1
            } else if let s = star {
                p = s + 1
                mark += 1
                t = mark
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }

    /// Why a pattern is refused, or nil.
    static func problem(_ pattern: String) -> String? {
        guard !pattern.isEmpty, pattern.count <= 256 else { return "must be 1 to 256 characters" }
        guard pattern.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-/:*?".contains($0)) }) else {
            return "may hold letters, digits, '.', '_', '-', '/', ':' and the wildcards '*' and '?'"
        }
        guard pattern.filter({ $0 == ":" }).count <= 1 else { return "takes at most one ':' (REPOSITORY:TAG)" }
        return nil
    }
}

/// What a policy deletes now.
struct RetentionPlan: Sendable, Equatable {
    struct Tag: Sendable, Equatable {
        var repository: String
        var tag: String
        var digest: String
        var reason: String
    }
    struct Manifest: Sendable, Equatable {
        var repository: String
        var digest: String
        var reason: String
    }
    var tags: [Tag] = []
    var manifests: [Manifest] = []
}

extension RegistryStore {
    func retention(projectId: String) async throws -> RetentionPolicy {
        for try await text in try await client.query(
            "SELECT policy FROM registry_retention WHERE project_id = \(projectId)", logger: logger).decode(String.self) {
            return (try? JSONDecoder().decode(RetentionPolicy.self, from: Data(text.utf8))) ?? RetentionPolicy()
        }
        return RetentionPolicy()
    }

    func tagDigest(projectId: String, repository: String, tag: String) async throws -> String? {
        for try await digest in try await client.query(
            """
            SELECT t.digest FROM registry_tags t JOIN registry_repositories r ON r.id = t.repository_id
            WHERE r.project_id = \(projectId) AND r.name = \(repository) AND t.name = \(tag)
            """, logger: logger).decode(String.self) { return digest }
        return nil
    }

    func setRetention(projectId: String, _ policy: RetentionPolicy) async throws {
        let text = String(decoding: try JSONEncoder().encode(policy), as: UTF8.self)
        try await client.query(
            """
            INSERT INTO registry_retention (project_id, policy) VALUES (\(projectId), \(text))
            ON CONFLICT (project_id) DO UPDATE SET policy = EXCLUDED.policy, updated_at = now()
            """, logger: logger)
    }

    /// Projects with a policy that deletes anything.
    func projectsWithRetention() async throws -> [(String, RetentionPolicy)] {
        var out: [(String, RetentionPolicy)] = []
        for try await (project, text) in try await client.query(
            "SELECT project_id, policy FROM registry_retention", logger: logger).decode((String, String).self) {
            if let policy = try? JSONDecoder().decode(RetentionPolicy.self, from: Data(text.utf8)),
               policy.untaggedDays != nil || policy.buildTagDays != nil || !policy.keep.isEmpty {
                out.append((project, policy))
            }
        }
        return out
    }

    /// What `policy` deletes in the project now. Tags first (build images past their days, tags
    /// past a keep rule's count; never an immutable one), then manifests left without a tag that
    /// are older than `untaggedDays`, unless a kept index lists them or they refer (as an
    /// attestation or signature) to a kept manifest.
    func retentionPlan(projectId: String, policy: RetentionPolicy, now: Date = Date()) async throws -> RetentionPlan {
        struct TagRow { var repository: String, tag: String, digest: String, updated: Double }
        var tags: [TagRow] = []
        for try await (repository, tag, digest, updated) in try await client.query(
            """
            SELECT r.name, t.name, t.digest, extract(epoch FROM t.updated_at)::float8
            FROM registry_tags t JOIN registry_repositories r ON r.id = t.repository_id WHERE r.project_id = \(projectId)
            """, logger: logger).decode((String, String, String, Double).self) {
            tags.append(TagRow(repository: repository, tag: tag, digest: digest, updated: updated))
        }
        let nowEpoch = now.timeIntervalSince1970
        var plan = RetentionPlan()
        var removed = Set<String>()  // "repository tag"
        func remove(_ row: TagRow, _ reason: String) {
            guard !policy.isImmutable(repository: row.repository, tag: row.tag), removed.insert("\(row.repository) \(row.tag)").inserted else { return }
            plan.tags.append(.init(repository: row.repository, tag: row.tag, digest: row.digest, reason: reason))
        }
        if let days = policy.buildTagDays {
            for row in tags where row.repository == "build" && row.updated < nowEpoch - Double(days) * 86_400 {
                remove(row, "build image older than \(days) days")
            }
        }
        for rule in policy.keep {
            let byRepository = Dictionary(grouping: tags.filter { TagPattern.matches(rule.pattern, repository: $0.repository, tag: $0.tag) }, by: \.repository)
            for (_, rows) in byRepository.sorted(by: { $0.key < $1.key }) {
                for row in rows.sorted(by: { ($0.updated, $0.tag) > ($1.updated, $1.tag) }).dropFirst(rule.count) {
                    remove(row, "beyond the newest \(rule.count) tags matching \(rule.pattern)")
                }
            }
        }
        guard let days = policy.untaggedDays else { return plan }

        // Manifests, with the children of indexes and the subjects of referrers.
        struct ManifestRow { var repository: String, digest: String, created: Double, subject: String?, children: [String] }
        var manifests: [ManifestRow] = []
        for try await (repository, digest, created, subject, content) in try await client.query(
            """
            SELECT r.name, m.digest, extract(epoch FROM m.created_at)::float8, m.subject,
                   CASE WHEN m.media_type LIKE '%index%' OR m.media_type LIKE '%manifest.list%' THEN m.content END
            FROM registry_manifests m JOIN registry_repositories r ON r.id = m.repository_id WHERE r.project_id = \(projectId)
            """, logger: logger).decode((String, String, Double, String?, ByteBuffer?).self) {
            let children = content.flatMap { try? JSONDecoder().decode(OCIManifestDocument.self, from: Data(buffer: $0)) }?.referencedManifests ?? []
            manifests.append(ManifestRow(repository: repository, digest: digest, created: created, subject: subject, children: children))
        }
        // Kept: tagged (after the tag removals) or young, then, walking outwards, what a kept index
        // lists and what refers (`subject`) to a kept manifest.
        var dependents: [String: [String]] = [:]  // manifest → the ones kept with it
        for m in manifests {
            let key = "\(m.repository) \(m.digest)"
            for child in m.children { dependents[key, default: []].append("\(m.repository) \(child)") }
            if let subject = m.subject { dependents["\(m.repository) \(subject)", default: []].append(key) }
        }
        var kept = Set(tags.filter { !removed.contains("\($0.repository) \($0.tag)") }.map { "\($0.repository) \($0.digest)" })
        kept.formUnion(manifests.filter { $0.created >= nowEpoch - Double(days) * 86_400 }.map { "\($0.repository) \($0.digest)" })
        var frontier = Array(kept)
        while let next = frontier.popLast() {
            for dependent in dependents[next] ?? [] where kept.insert(dependent).inserted { frontier.append(dependent) }
        }
        for m in manifests.sorted(by: { ($0.repository, $0.digest) < ($1.repository, $1.digest) }) where !kept.contains("\(m.repository) \(m.digest)") {
            plan.manifests.append(.init(repository: m.repository, digest: m.digest, reason: "untagged for more than \(days) days"))
        }
        return plan
    }

    /// Carries out a plan: its tags (only where they still point where the plan saw them), then
    /// its manifests (only if still untagged), then the blob links no remaining manifest of those
    /// repositories names (linked over an hour ago, so a push in progress keeps its blobs). The
    /// blobs themselves go with the collector's next pass. Returns (tags, manifests) deleted.
    func apply(_ plan: RetentionPlan, projectId: String) async throws -> (tags: Int, manifests: Int) {
        guard !plan.tags.isEmpty || !plan.manifests.isEmpty else { return (0, 0) }
        return try await client.transaction(logger: logger) { tx -> (tags: Int, manifests: Int) in
            var tags = 0, manifests = 0
            for tag in plan.tags {
                for try await _ in try await tx.query(
                    """
                    DELETE FROM registry_tags t USING registry_repositories r
                    WHERE r.id = t.repository_id AND r.project_id = \(projectId) AND r.name = \(tag.repository)
                      AND t.name = \(tag.tag) AND t.digest = \(tag.digest)
                    RETURNING 1
                    """, logger: logger).decode(Int.self) { tags += 1 }
            }
            for manifest in plan.manifests {
                for try await _ in try await tx.query(
                    """
                    DELETE FROM registry_manifests m USING registry_repositories r
                    WHERE r.id = m.repository_id AND r.project_id = \(projectId) AND r.name = \(manifest.repository) AND m.digest = \(manifest.digest)
                      AND NOT EXISTS (SELECT 1 FROM registry_tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest)
                    RETURNING 1
                    """, logger: logger).decode(Int.self) { manifests += 1 }
            }
            let repositories = Array(Set(plan.manifests.map(\.repository)))
            if manifests > 0 {
                try await tx.query(
                    """
                    DELETE FROM registry_repository_blobs l USING registry_repositories r
                    WHERE r.id = l.repository_id AND r.project_id = \(projectId) AND r.name = ANY(\(repositories))
                      AND l.created_at < now() - interval '1 hour'
                      AND NOT EXISTS (SELECT 1 FROM registry_manifests m
                                      WHERE m.repository_id = l.repository_id AND position(l.digest IN convert_from(m.content, 'UTF8')) > 0)
                    """, logger: logger)
            }
            return (tags, manifests)
        }
    }
}
