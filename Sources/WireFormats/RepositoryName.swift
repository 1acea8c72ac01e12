/// A repository in the registry: `<project-id>/<name>`, with the distribution spec's grammar for
/// every path component (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`) and at most 255 characters.
public struct RepositoryName: Hashable, Sendable, CustomStringConvertible {
    public let projectId: String
    /// The name inside the project, which may hold further `/`.
    public let repository: String

    public init?(_ text: some StringProtocol) {
        guard text.utf8.count <= 255 else { return nil }
        let components = text.split(separator: "/", omittingEmptySubsequences: false)
        guard components.count >= 2, let project = components.first, Self.isProjectIdentifier(project),
              components.allSatisfy(Self.isComponent)
        else { return nil }
        self.projectId = String(project)
        self.repository = components.dropFirst().joined(separator: "/")
    }

    public var description: String { "\(projectId)/\(repository)" }

    /// Project ids are 16 characters of `[a-z0-9]`.
    public static func isProjectIdentifier(_ text: some StringProtocol) -> Bool {
        text.utf8.count == 16 && text.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) }
    }

    static func isComponent(_ text: some StringProtocol) -> Bool {
        func alphanumeric(_ byte: UInt8) -> Bool { (byte >= 97 && byte <= 122) || (byte >= 48 && byte <= 57) }
        var previousWasSeparator = true  // a component starts with an alphanumeric
        var separator: [UInt8] = []
        for byte in text.utf8 {
            if alphanumeric(byte) {
                if !separator.isEmpty {
                    // ".", "_", "__" or any run of "-".
                    let valid = separator == [46] || separator == [95] || separator == [95, 95] || separator.allSatisfy { $0 == 45 }
                    guard valid else { return false }
                    separator.removeAll(keepingCapacity: true)
                }
                previousWasSeparator = false
            } else if byte == 46 || byte == 95 || byte == 45 {
                guard !previousWasSeparator || !separator.isEmpty else { return false }
                separator.append(byte)
                previousWasSeparator = true
            } else {
                return false
            }
        }
        return !previousWasSeparator && separator.isEmpty
    }
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
public func isValidTag(_ text: some StringProtocol) -> Bool {
    let bytes = Array(text.utf8)
    guard let first = bytes.first, (1...128).contains(bytes.count) else { return false }
    func word(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 65 && b <= 90) || (b >= 48 && b <= 57) || b == 95 }
    return word(first) && bytes.dropFirst().allSatisfy { word($0) || $0 == 46 || $0 == 45 }
}
