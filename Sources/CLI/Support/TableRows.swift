import ArgumentParser
import DrydockClient
import Foundation

// How API objects appear as table rows and command arguments.

extension Components.Schemas.Build {
    var duration: String {
        guard let startedAt else { return "-" }
        let seconds = (finishedAt ?? Date()).timeIntervalSince(startedAt)
        return String(format: "%.1fs", seconds)
    }

    var tableRow: [String] {
        [id, status.rawValue, isolated == true ? "(isolated)" : tags.first ?? "-", platforms.joined(separator: ","), duration, Output.date(createdAt)]
    }
    static let tableHeaders = ["ID", "STATUS", "TAG", "PLATFORM", "DURATION", "CREATED"]
}

extension Components.Schemas.TokenKind: ExpressibleByArgument {}

extension Components.Schemas.Project {
    var tableRow: [String] {
        [id, name, "\(cachePolicy.keepGigabytes) GB / \(cachePolicy.keepDays) days", Output.date(createdAt)]
    }
    static let tableHeaders = ["ID", "NAME", "CACHE", "CREATED"]
}

extension Components.Schemas.Token {
    var tableRow: [String] {
        [id, name, kind.rawValue, projectId ?? projectIds?.joined(separator: ",") ?? "-", prefix + "…", Output.date(createdAt),
         expiresAt.map(Output.date) ?? "never", lastUsedAt.map(Output.date) ?? "never",
         status]
    }

    /// `revoked`, `expired` (past its expiry, even if never revoked) or `active`.
    var status: String {
        if revokedAt != nil { return "revoked" }
        if let expiresAt, expiresAt <= Date() { return "expired" }
        return "active"
    }
    static let tableHeaders = ["ID", "NAME", "KIND", "PROJECT", "SECRET", "CREATED", "EXPIRES", "LAST USED", "STATUS"]
}
