import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Tag lists and the catalog, paged with `n` and `last`.
extension RegistryRoutes {
    static func page(_ request: Request) -> (limit: Int, last: String?) {
        let n = request.uri.queryParameters.get("n").flatMap { parseDecimal($0) } ?? 1000
        return (min(max(n, 0), 1000), request.uri.queryParameters.get("last").map { String($0) })
    }

    static func json(_ value: some Encodable, link: String? = nil, extra: HTTPFields = [:]) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let link { headers[HTTPField.Name("Link")!] = link }
        for field in extra { headers[field.name] = field.value }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(value))))
    }

    func listTags(_ request: Request, access: RepositoryAccess) async throws -> Response {
        let (name, projectId, repository) = (access.name, access.projectId, access.repository)
        let (limit, last) = Self.page(request)
        guard let tags = try await store.tags(projectId: projectId, repository: repository, after: last, limit: limit) else {
            throw RegistryError.nameUnknown(name)
        }
        struct Tags: Encodable { let name: String; let tags: [String] }
        let link = tags.last.flatMap { last in
            tags.count == limit ? "</v2/\(name)/tags/list?n=\(limit)&last=\(last)>; rel=\"next\"" : nil
        }
        return try Self.json(Tags(name: name, tags: tags), link: link)
    }

    func catalog(_ request: Request, context: RegistryRequestContext) async throws -> Response {
        let grant = try requireGrant(request, context, scope: "registry:catalog:*")
        guard grant.catalog, grant.caller.registryActions.contains(.pull) else {
            throw RegistryError(.unauthorized, "UNAUTHORIZED", "catalog access needs scope registry:catalog:*",
                                headers: challenge(request, scope: "registry:catalog:*", error: "insufficient_scope"))
        }
        let (limit, last) = Self.page(request)
        let names = try await store.catalog(organizationId: grant.caller.organizationId, onlyProjectIds: grant.caller.projectScope,
                                            after: last, limit: limit)
        struct Catalog: Encodable { let repositories: [String] }
        let link = names.last.flatMap { last in
            names.count == limit ? "</v2/_catalog?n=\(limit)&last=\(last)>; rel=\"next\"" : nil
        }
        return try Self.json(Catalog(repositories: names), link: link)
    }
}
