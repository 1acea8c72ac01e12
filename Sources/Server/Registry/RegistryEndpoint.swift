/// What a `/v2/…` path addresses. Names hold slashes, so a path is read from its end: the
/// last components say what it is and everything before them is the repository name (a name
/// may itself contain a `blobs` or `manifests` component, which a router matching from the
/// front would take for the endpoint).
enum RegistryEndpoint: Equatable {
    case catalog
    case blob(name: String, digest: String)
    case uploads(name: String)
    case upload(name: String, id: String)
    case manifest(name: String, reference: String)
    case tags(name: String)
    case referrers(name: String, digest: String)

    init?(path: String) {
        guard path.hasPrefix("/v2/") else { return nil }
        let rest = path.dropFirst(4)
        if rest == "_catalog" {
            self = .catalog
            return
        }
        var parts = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.last == "" { parts.removeLast() }
        let n = parts.count
        func name(dropping count: Int) -> String? {
            n > count ? parts[0..<(n - count)].joined(separator: "/") : nil
        }
        if n >= 3, parts[n - 2] == "blobs", parts[n - 1] == "uploads", let name = name(dropping: 2) {
            self = .uploads(name: name)
        } else if n >= 4, parts[n - 3] == "blobs", parts[n - 2] == "uploads", let name = name(dropping: 3) {
            self = .upload(name: name, id: parts[n - 1])
        } else if n >= 3, parts[n - 2] == "blobs", let name = name(dropping: 2) {
            self = .blob(name: name, digest: parts[n - 1])
        } else if n >= 3, parts[n - 2] == "manifests", let name = name(dropping: 2) {
            self = .manifest(name: name, reference: parts[n - 1])
        } else if n >= 3, parts[n - 2] == "tags", parts[n - 1] == "list", let name = name(dropping: 2) {
            self = .tags(name: name)
        } else if n >= 3, parts[n - 2] == "referrers", let name = name(dropping: 2) {
            self = .referrers(name: name, digest: parts[n - 1])
        } else {
            return nil
        }
    }
}
