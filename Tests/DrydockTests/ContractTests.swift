import DrydockServer
import Foundation
import HTTPTypes
import Testing

/// The server holds requests to `openapi.yaml` as written, and says what is wrong in the words of
/// the parameter or field at fault.
@Suite("The contract, exactly")
struct ContractTests {
    static func field(_ response: JSONResponse) -> String? { response.problem?.errors?.first?.field }

    @Test("query parameters: wrong types, values out of range, unknown enum values and malformed ids are 400 naming the parameter")
    func queryParameters() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("web")
            let cases: [(String, String)] = [
                ("/api/v1/projects/\(project)/builds?status=AAA", "status"),
                ("/api/v1/projects?limit=abc", "limit"),
                ("/api/v1/projects?limit=0", "limit"),
                ("/api/v1/projects?limit=1.5", "limit"),
                ("/api/v1/tokens?projectId=", "projectId"),
                ("/api/v1/tokens?projectId=ZZ", "projectId"),
                ("/api/v1/tokens?kind=superuser", "kind"),
                ("/api/v1/tokens?includeRevoked=maybe", "includeRevoked"),
                ("/api/v1/orgs/\(server.organizationId)/usage?month=2026-82", "month"),
                ("/api/v1/builds/zzzzzzzzzzzzzzzz/logs?offset=-1", "offset"),
            ]
            for (path, parameter) in cases {
                let response = try await server.request(.get, path, token: server.ownerToken)
                #expect(response.status == .badRequest, "\(path) → \(response.status) \(response.text)")
                #expect(response.headers[.contentType] == "application/problem+json")
                #expect(Self.field(response) == parameter, "\(path) → \(response.text)")
                #expect(response.problem?.code == "invalid_field", "\(path) → \(response.text)")
                let detail = response.problem?.detail ?? ""
                #expect(!detail.contains("JSON"), "a query error is not called a body error: \(response.text)")
            }
            // Unknown parameters are ignored, as HTTP does; valid ones still work.
            #expect(try await server.request(.get, "/api/v1/projects?limit=5&colour=blue", token: server.ownerToken).status == .ok)
        }
    }

    @Test("JSON bodies: explicit null, fractions and huge numbers where whole numbers go, and spec limits are refused naming the field")
    func bodies() async throws {
        try await withTestServer { server in
            let cases: [(String, String, String, String)] = [
                ("/api/v1/projects", #"{"name":null}"#, "name", "must not be null"),
                ("/api/v1/projects", #"{"name":"a","cachePolicy":null}"#, "cachePolicy", "must not be null"),
                ("/api/v1/projects", #"{"name":"a","cachePolicy":{"keepDays":1.5}}"#, "cachePolicy.keepDays", "whole number"),
                ("/api/v1/projects", #"{"name":"a","cachePolicy":{"keepDays":1e30}}"#, "cachePolicy.keepDays", "too large"),
                ("/api/v1/projects", #"{"name":"a","cachePolicy":{"keepDays":true}}"#, "cachePolicy.keepDays", "whole number"),
                ("/api/v1/tokens", "{\"name\":\"\(String(repeating: "n", count: 101))\"}", "name", "at most 100"),
                ("/api/v1/tokens", #"{"name":"t","expiresInSeconds":59}"#, "expiresInSeconds", "at least 60"),
            ]
            for (path, body, field, words) in cases {
                let response = try await server.request(.post, path, token: server.ownerToken, json: body)
                #expect(response.status == .badRequest, "\(body) → \(response.status) \(response.text)")
                #expect(Self.field(response) == field, "\(body) → \(response.text)")
                #expect(response.problem?.detail?.contains(words) == true, "\(body) → \(response.text)")
            }
            let list = try await server.request(.get, "/api/v1/projects", token: server.ownerToken)
            #expect(try list.decoded(Schemas.ProjectPage.self).items.isEmpty, "nothing was created by a refused request")
        }
    }

    @Test("a job's reports keep the spec's limits: at most 1000 events, lines of at most 65536 characters, errors of at most 4096, step durations from 0 to a year, cache sizes from 0 to a PiB")
    func jobLimits() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("limits")
            let digest = try await server.uploadZeroContext(project)
            let (_, worker) = try await server.createToken(#"{"name":"w","kind":"worker"}"#)
            _ = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken, json: #"{"contextDigest":"\#(digest)"}"#)
            let claim = try await server.request(.post, "/api/v1/workers/claim", token: worker,
                                                 json: #"{"name":"w","platforms":["\#(Platform.host)"],"waitSeconds":0}"#)
            let job = try claim.decoded(Schemas.JobAssignment.self)
            #expect(try await server.request(.post, "/api/v1/jobs/\(job.jobId)/heartbeat", token: job.buildToken).status == .ok)
            let many = (0...1000).map { #"{"sequence":\#($0),"kind":"log","line":"x"}"# }.joined(separator: ",")
            let tooMany = try await server.request(.post, "/api/v1/jobs/\(job.jobId)/events", token: job.buildToken, json: #"{"events":[\#(many)]}"#)
            #expect(tooMany.status == .badRequest)
            #expect(Self.field(tooMany) == "events", "\(tooMany.text)")
            let long = try await server.request(.post, "/api/v1/jobs/\(job.jobId)/events", token: job.buildToken,
                                                json: "{\"events\":[{\"sequence\":0,\"kind\":\"log\",\"line\":\"\(String(repeating: "x", count: 65537))\"}]}")
            #expect(long.status == .badRequest)
            #expect(Self.field(long) == "events[0].line", "\(long.text)")
            // Durations and cache sizes are summed and billed: out of range, they are refused.
            for duration in ["-1", "31536000001", "9223372036854775807"] {
                let step = #"{"platform":"linux/amd64","number":1,"instruction":"RUN x","cached":false,"status":"done","durationMs":\#(duration)}"#
                let refused = try await server.request(.post, "/api/v1/jobs/\(job.jobId)/events", token: job.buildToken,
                                                       json: #"{"events":[{"sequence":0,"kind":"step","step":\#(step)}]}"#)
                #expect(refused.status == .badRequest && Self.field(refused) == "events[0].step.durationMs", "\(duration): \(refused.text)")
            }
            for bytes in ["-1", "1125899906842625"] {
                let refused = try await server.request(.post, "/api/v1/jobs/\(job.jobId)/finish", token: job.buildToken,
                                                       json: #"{"status":"failed","error":"boom","cacheBytes":\#(bytes)}"#)
                #expect(refused.status == .badRequest && Self.field(refused) == "cacheBytes", "\(bytes): \(refused.text)")
            }
            let step = #"{"platform":"linux/amd64","number":1,"instruction":"RUN x","cached":false,"status":"done","durationMs":31536000000}"#
            #expect(try await server.request(.post, "/api/v1/jobs/\(job.jobId)/events", token: job.buildToken,
                                             json: #"{"events":[{"sequence":0,"kind":"step","step":\#(step)}]}"#).status == .noContent)
            let error = try await server.request(.post, "/api/v1/jobs/\(job.jobId)/finish", token: job.buildToken,
                                                 json: "{\"status\":\"failed\",\"error\":\"\(String(repeating: "e", count: 4097))\"}")
            #expect(error.status == .badRequest)
            #expect(Self.field(error) == "error", "\(error.text)")
            // Within the limits, the same reports are taken.
            #expect(try await server.request(.post, "/api/v1/jobs/\(job.jobId)/finish", token: job.buildToken,
                                             json: #"{"status":"failed","error":"boom"}"#).status == .noContent)
        }
    }

    @Test("a method a path does not have is 405 with Allow and a problem; an unknown API path is a 404 problem")
    func methods() async throws {
        try await withTestServer { server in
            let put = try await server.request(.put, "/api/v1/projects", token: server.ownerToken, json: "{}")
            #expect(put.status == .methodNotAllowed)
            #expect(put.headers[.contentType] == "application/problem+json")
            let allowed = Set((put.headers[.allow] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            #expect(allowed.isSuperset(of: ["GET", "POST"]) && !allowed.contains("PUT"), "\(put.headers[.allow] ?? "no Allow")")
            #expect(put.problem?.code == "method_not_allowed")
            let project = try await server.createProject("web")
            let post = try await server.request(.post, "/api/v1/projects/\(project)", token: server.ownerToken, json: "{}")
            #expect(post.status == .methodNotAllowed)
            #expect(Set((post.headers[.allow] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                .isSuperset(of: ["GET", "PATCH", "DELETE"]))
            let unknown = try await server.request(.get, "/api/v1/nothing-here", token: server.ownerToken)
            #expect(unknown.status == .notFound)
            #expect(unknown.problem?.code == "not_found")
        }
    }

    @Test("a refused operation says in words what the token may not do, never the operation's internal name")
    func forbiddenInWords() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("web")
            let (_, projectToken) = try await server.createToken(#"{"name":"ci","projectId":"\#(project)"}"#)
            let usage = try await server.request(.get, "/api/v1/orgs/\(server.organizationId)/usage", token: projectToken)
            #expect(usage.status == .forbidden)
            let detail = usage.problem?.detail ?? ""
            #expect(detail == "a project token may not see the organization, its members, usage and caps", "\(detail)")
            #expect(!detail.contains("getOrganizationUsage"))
        }
    }

    @Test("the served contract documents 400 for every operation and 415 for every one with a body")
    func documentedStatuses() async throws {
        try await withTestServer { server in
            let yaml = try await server.request(.get, "/openapi.yaml").text
            var operations = 0, with400 = 0, bodies = 0, with415 = 0
            // Each operation's block, from `operationId:` to the next one.
            let blocks = yaml.components(separatedBy: "operationId: ").dropFirst()
            for block in blocks {
                let operation = block.prefix { $0 != "\n" }
                let body = block.components(separatedBy: "\n    get:")[0].components(separatedBy: "\n    post:")[0]
                    .components(separatedBy: "\n    put:")[0].components(separatedBy: "\n    patch:")[0]
                    .components(separatedBy: "\n    delete:")[0].components(separatedBy: "\n  /")[0]
                operations += 1
                if body.contains("\"400\":") { with400 += 1 } else { Issue.record("\(operation) does not document 400") }
                if body.contains("requestBody:") {
                    bodies += 1
                    if body.contains("\"415\":") { with415 += 1 } else { Issue.record("\(operation) does not document 415") }
                }
            }
            #expect(operations >= 39)
            #expect(with400 == operations && with415 == bodies)
            let wrongType = try await server.request(.post, "/api/v1/projects", token: server.ownerToken, json: #"{"name":"a"}"#,
                                                     headers: [.contentType: "text/plain"])
            #expect(wrongType.status == .unsupportedMediaType)
        }
    }
}
