import Foundation

/// A resolved bake target, with buildx's field names (what `--print` writes).
public struct BakeTarget: Sendable, Equatable {
    public var name: String
    public var description: String?
    public var context: String?
    public var contexts: [String: String] = [:]
    public var dockerfile: String?
    public var dockerfileInline: String?
    public var args: [String: String?] = [:]
    public var labels: [String: String?] = [:]
    public var annotations: [String] = []
    public var tags: [String] = []
    public var platforms: [String] = []
    public var target: String?
    public var attest: [String] = []
    public var cacheFrom: [String] = []
    public var cacheTo: [String] = []
    public var secret: [String] = []
    public var ssh: [String] = []
    public var output: [String] = []
    public var pull: Bool?
    public var noCache: Bool?
    public var noCacheFilter: [String] = []
    public var network: String?
    public var entitlements: [String] = []

    public init(name: String) { self.name = name }

    /// The targets this one's build needs first: `contexts` values `target:NAME`.
    public var dependencies: [String] {
        contexts.values.compactMap { $0.hasPrefix("target:") ? String($0.dropFirst("target:".count)) : nil }.sorted()
    }

    /// `type=registry,ref=x` (or a bare reference) as buildx prints it: an object of its keys.
    static func csvObject(_ text: String, defaultKey: String, defaultType: String?) -> [String: Any] {
        var fields: [String: Any] = [:]
        for part in text.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            if kv.count == 2 { fields[kv[0]] = kv[1] } else { fields[defaultKey] = kv[0] }
        }
        if fields["type"] == nil, let defaultType { fields["type"] = defaultType }
        return fields
    }

    /// The JSON object `docker buildx bake --print` writes for this target.
    public var printed: [String: Any] {
        var out: [String: Any] = [:]
        if let description { out["description"] = description }
        out["context"] = context ?? "."
        if !contexts.isEmpty { out["contexts"] = contexts }
        if dockerfileInline == nil { out["dockerfile"] = dockerfile ?? "Dockerfile" } else if let dockerfile { out["dockerfile"] = dockerfile }
        if let dockerfileInline { out["dockerfile-inline"] = dockerfileInline }
        if !args.isEmpty { out["args"] = args.mapValues { $0 as Any? ?? NSNull() } }
        if !labels.isEmpty { out["labels"] = labels.mapValues { $0 as Any? ?? NSNull() } }
        if !annotations.isEmpty { out["annotations"] = annotations }
        if !attest.isEmpty { out["attest"] = attest.map { Self.csvObject($0, defaultKey: "type", defaultType: nil) } }
        if !cacheFrom.isEmpty { out["cache-from"] = cacheFrom.map { Self.csvObject($0, defaultKey: "ref", defaultType: "registry") } }
        if !cacheTo.isEmpty { out["cache-to"] = cacheTo.map { Self.csvObject($0, defaultKey: "ref", defaultType: "registry") } }
        if !entitlements.isEmpty { out["entitlements"] = entitlements }
        if let network { out["network"] = network }
        if let noCache { out["no-cache"] = noCache }
        if !noCacheFilter.isEmpty { out["no-cache-filter"] = noCacheFilter }
        if !output.isEmpty { out["output"] = output.map { Self.csvObject($0, defaultKey: "type", defaultType: nil) } }
        if !platforms.isEmpty { out["platforms"] = platforms }
        if let pull { out["pull"] = pull }
        if !secret.isEmpty { out["secret"] = secret.map { Self.csvObject($0, defaultKey: "id", defaultType: nil) } }
        if !ssh.isEmpty { out["ssh"] = ssh.map { Self.csvObject($0, defaultKey: "id", defaultType: nil) } }
        if !tags.isEmpty { out["tags"] = tags }
        if let target { out["target"] = target }
        return out
    }
}

/// What `drydock bake` builds: the groups and targets the command line asked for, resolved.
public struct BakeDefinition: Sendable {
    /// Group name → its members as written (targets and groups).
    public var groups: [String: [String]]
    /// Every target to build, by name.
    public var targets: [String: BakeTarget]
    /// The names asked for (or `default`), expanded through groups, in a stable order.
    public var requested: [String]

    /// `{"group": {…}, "target": {…}}` as `docker buildx bake --print` writes it.
    public func printed() throws -> String {
        var groupsOut: [String: Any] = [:]
        for (name, members) in groups { groupsOut[name] = ["targets": members] }
        let object: [String: Any] = ["group": groupsOut, "target": targets.mapValues(\.printed)]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    /// The targets in an order that builds every `target:` context before its users.
    public func buildOrder() throws -> [String] {
        var order: [String] = []
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        func visit(_ name: String, _ path: [String]) throws {
            if state[name] == 2 { return }
            if state[name] == 1 { throw BakeError("a cycle through contexts: \((path + [name]).joined(separator: " -> "))") }
            state[name] = 1
            guard let target = targets[name] else { throw BakeError("target '\(path.last ?? name)' uses target:\(name), which does not exist") }
            for dependency in target.dependencies { try visit(dependency, path + [name]) }
            state[name] = 2
            order.append(name)
        }
        for name in targets.keys.sorted() { try visit(name, []) }
        return order
    }
}
