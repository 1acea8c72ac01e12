/// An image reference as users write it after `-t`: `app`, `app:1`, `team/app:1`,
/// `ghcr.io/team/app:1`, `localhost:5000/app`. The one naming rule for the server (where a tag
/// is pushed) and the CLI (what it reports and which registry's credentials it sends).
public struct ImageReference: Equatable, Sendable {
    /// The registry host, when the first component names one (has a `.` or a `:`, or is
    /// `localhost`, and more components follow); nil means the project's own registry.
    public let host: String?
    /// The path inside the registry, `/`-separated lowercase components.
    public let path: String
    public let tag: String

    public init?(_ raw: some StringProtocol) {
        let raw = String(raw)
        guard !raw.isEmpty, raw.utf8.count <= 512, !raw.contains("@") else { return nil }
        var components = raw.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let host = Self.host(of: components)
        if host != nil { components.removeFirst() }
        guard var last = components.popLast() else { return nil }
        var tag = "latest"
        if let colon = last.lastIndex(of: ":") {
            tag = String(last[last.index(after: colon)...])
            last = String(last[..<colon])
        }
        components.append(last)
        guard components.allSatisfy(Self.isPathComponent), isValidTag(tag) else { return nil }
        self.host = host
        self.path = components.joined(separator: "/")
        self.tag = tag
    }

    /// Where the image goes: references with a host stay as they are; bare names land in the
    /// project's registry, `<project-id>/<path>:<tag>`.
    public func resolved(inProject projectId: String) -> String {
        if let host { return "\(host)/\(path):\(tag)" }
        return "\(projectId)/\(path):\(tag)"
    }

    /// Whether a registry host is this machine (`localhost`, `127.x.x.x`, `[::1]`, with any
    /// port): such registries are reached over plain HTTP, as docker allows.
    public static func isLoopback(host: String) -> Bool {
        let name = host.hasPrefix("[") ? String(host.dropFirst().prefix { $0 != "]" }) : String(host.split(separator: ":").first ?? "")
        return name == "localhost" || name == "::1" || name.hasPrefix("127.")
    }

    /// The registry host a reference names, if any (without validating the rest).
    public static func registryHost(of raw: some StringProtocol) -> String? {
        host(of: Substring(raw).split(separator: "/", omittingEmptySubsequences: false).map(String.init))
    }

    static func host(of components: [String]) -> String? {
        guard components.count > 1, let first = components.first,
              first.contains(".") || first.contains(":") || first == "localhost"
        else { return nil }
        return first
    }

    /// Lowercase letters and digits, with `.`, `_` and `-` inside.
    static func isPathComponent(_ component: String) -> Bool {
        func alphanumeric(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) }
        let bytes = Array(component.utf8)
        guard let first = bytes.first, let last = bytes.last, alphanumeric(first), alphanumeric(last) else { return false }
        return bytes.allSatisfy { alphanumeric($0) || $0 == 46 || $0 == 95 || $0 == 45 }
    }
}
