import Foundation
import HTTPTypes
import Testing

@Suite("Bad input")
struct BadInputTests {
    static func firstField(_ response: JSONResponse) -> String? {
        response.problem?.errors?.first?.field
    }

    @Test("malformed JSON, wrong types, unknown enum values and unknown fields answer 400 naming the field")
    func malformed() async throws {
        try await withTestServer { server in
            let cases: [(String, String, String?)] = [
                ("/api/v1/projects", #"{"name": "#, nil),
                ("/api/v1/projects", #"{"name": 42}"#, "name"),
                ("/api/v1/projects", #"{}"#, "name"),
                ("/api/v1/projects", #"{"name":"ok","cachePolicy":{"keepGigabytes":"lots"}}"#, "cachePolicy.keepGigabytes"),
                ("/api/v1/projects", #"{"name":"ok","colour":"blue"}"#, nil),
                ("/api/v1/tokens", #"{"name":"t","kind":"superuser"}"#, "kind"),
                ("/api/v1/tokens", #"{"name":"t","expiresInSeconds":"soon"}"#, "expiresInSeconds"),
            ]
            for (path, body, field) in cases {
                let response = try await server.request(.post, path, token: server.ownerToken, json: body)
                #expect(response.status == .badRequest, "\(body) → \(response.status) \(response.text)")
                #expect(response.headers[.contentType] == "application/problem+json")
                let problem = try response.decoded(Schemas.Problem.self)
                #expect(problem.status == 400)
                #expect(problem.detail?.isEmpty == false)
                if let field {
                    #expect(Self.firstField(response) == field, "\(body) → \(response.text)")
                }
            }
            let list = try await server.request(.get, "/api/v1/projects", token: server.ownerToken)
            #expect(try list.decoded(Schemas.ProjectPage.self).items.isEmpty, "nothing was half-created")
        }
    }

    @Test("names, ranges, emails, limits and cursors are validated with a clear message")
    func validation() async throws {
        try await withTestServer { server in
            let cases: [(HTTPRequest.Method, String, String?, String)] = [
                (.post, "/api/v1/projects", #"{"name":""}"#, "name"),
                (.post, "/api/v1/projects", #"{"name":"has space"}"#, "name"),
                (.post, "/api/v1/projects", #"{"name":"-leading"}"#, "name"),
                (.post, "/api/v1/projects", "{\"name\":\"\(String(repeating: "a", count: 65))\"}", "name"),
                (.post, "/api/v1/projects", #"{"name":"ok","cachePolicy":{"keepGigabytes":501}}"#, "cachePolicy.keepGigabytes"),
                (.post, "/api/v1/projects", #"{"name":"ok","cachePolicy":{"keepDays":0}}"#, "cachePolicy.keepDays"),
                (.post, "/api/v1/tokens", #"{"name":"t","expiresInSeconds":5}"#, "expiresInSeconds"),
                (.post, "/api/v1/tokens", #"{"name":"   "}"#, "name"),
                (.post, "/api/v1/orgs/\(server.organizationId)/members", #"{"email":"not-an-email"}"#, "email"),
                (.get, "/api/v1/projects?limit=0", nil, "limit"),
                (.get, "/api/v1/projects?limit=201", nil, "limit"),
                (.get, "/api/v1/projects?cursor=bogus", nil, "cursor"),
            ]
            for (method, path, body, field) in cases {
                let response = try await server.request(method, path, token: server.ownerToken, json: body)
                #expect(response.status == .badRequest, "\(path) \(body ?? "") → \(response.status) \(response.text)")
                #expect(Self.firstField(response) == field, "\(path) \(body ?? "") → \(response.text)")
            }
            let message = try await server.request(.post, "/api/v1/projects", token: server.ownerToken, json: #"{"name":"has space"}"#)
            #expect((message.problem?.detail ?? "").contains("letters, digits"))
        }
    }

    @Test("JSON bodies over 1 MiB answer 413 and store nothing")
    func tooLarge() async throws {
        try await withTestServer { server in
            let big = "{\"name\":\"x\",\"pad\":\"\(String(repeating: "a", count: 1 << 20))\"}"
            let response = try await server.request(.post, "/api/v1/projects", token: server.ownerToken, json: big)
            #expect(response.status == .contentTooLarge)
            #expect(response.headers[.contentType] == "application/problem+json")
            let list = try await server.request(.get, "/api/v1/projects", token: server.ownerToken)
            #expect(try list.decoded(Schemas.ProjectPage.self).items.isEmpty)
        }
    }

    @Test("a wrong content type is refused, not guessed")
    func contentType() async throws {
        try await withTestServer { server in
            let response = try await server.request(
                .post, "/api/v1/projects", token: server.ownerToken, json: #"{"name":"x"}"#, headers: [.contentType: "text/plain"])
            #expect(response.status == .unsupportedMediaType || response.status == .badRequest)
            #expect(response.headers[.contentType] == "application/problem+json")
        }
    }
}
