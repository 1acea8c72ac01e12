import Hummingbird

/// Marks the requests a builder's progress depends on: job heartbeats (a late one lets the lease
/// expire and fails a healthy build) and claims (a late one idles a builder). Their database
/// work skips the lane ordinary work queues in when the pool is busy (`ConnectionLane`).
struct UrgentLaneMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard UrgentRequests.matches(method: request.method.rawValue, path: request.uri.path) else { return try await next(request, context) }
        return try await Database.$urgent.withValue(true) { try await next(request, context) }
    }
}

enum UrgentRequests {
    /// `POST /api/v1/workers/claim` and `POST /api/v1/jobs/{jobId}/heartbeat`.
    static func matches(method: String, path: String) -> Bool {
        guard method == "POST" else { return false }
        if path == "/api/v1/workers/claim" { return true }
        // /api/v1/jobs/{jobId}/heartbeat
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 6 && parts[1] == "api" && parts[2] == "v1" && parts[3] == "jobs" && !parts[4].isEmpty && parts[5] == "heartbeat"
    }
}
