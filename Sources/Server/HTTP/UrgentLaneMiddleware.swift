import Hummingbird

/// Marks the requests a builder's progress depends on: job heartbeats (a late one lets the lease
/// expire and fails a healthy build) and claims (a late one idles a builder). Their database
/// work skips the lane ordinary work queues in when the pool is busy (`ConnectionLane`), and a
/// heartbeat's uses a small pool of its own.
struct UrgentLaneMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        switch UrgentRequests.kind(method: request.method.rawValue, path: request.uri.path) {
        case nil:
            return try await next(request, context)
        case .claim:
            return try await Database.$urgent.withValue(true) { try await next(request, context) }
        case .heartbeat:
            return try await Database.$urgent.withValue(true) {
                try await Database.$heartbeat.withValue(true) { try await next(request, context) }
            }
        }
    }
}

enum UrgentRequests {
    enum Kind { case claim, heartbeat }

    /// `POST /api/v1/workers/claim` and `POST /api/v1/jobs/{jobId}/heartbeat`.
    static func kind(method: String, path: String) -> Kind? {
        guard method == "POST" else { return nil }
        if path == "/api/v1/workers/claim" { return .claim }
        // /api/v1/jobs/{jobId}/heartbeat
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        let heartbeat = parts.count == 6 && parts[1] == "api" && parts[2] == "v1" && parts[3] == "jobs" && !parts[4].isEmpty && parts[5] == "heartbeat"
        return heartbeat ? .heartbeat : nil
    }
}
