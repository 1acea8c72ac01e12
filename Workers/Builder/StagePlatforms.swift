/// In a Dockerfile that has a stage of another platform (`FROM --platform=$BUILDPLATFORM …`, the
/// cross-compiling pattern), every other stage's `FROM` gets this job's platform written out.
/// buildah 1.28 otherwise builds the stages after such a stage for that stage's platform, and
/// the arm64 image of a two-platform build would hold amd64 binaries.
public enum StagePlatforms {
    public static func explicit(_ dockerfile: String, target: String) -> String {
        var lines = dockerfile.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let froms = lines.indices.filter { lines[$0].drop { $0 == " " || $0 == "\t" }.prefix(5).uppercased() == "FROM " }
        let hasPlatform = froms.contains { index in words(lines[index]).contains { $0.lowercased().hasPrefix("--platform=") } }
        guard hasPlatform else { return dockerfile }
        var stages: Set<String> = []
        for index in froms {
            var parts = words(lines[index])
            guard let imageIndex = parts.indices.dropFirst().first(where: { !parts[$0].hasPrefix("--") }) else { continue }
            let image = parts[imageIndex].lowercased()
            let named = imageIndex + 2 < parts.count && parts[imageIndex + 1].uppercased() == "AS" ? parts[imageIndex + 2].lowercased() : nil
            defer { if let named { stages.insert(named) } }
            guard !parts.contains(where: { $0.lowercased().hasPrefix("--platform=") }), !stages.contains(image), image != "scratch" else { continue }
            parts.insert("--platform=\(target)", at: 1)
            let indent = lines[index].prefix { $0 == " " || $0 == "\t" }
            lines[index] = indent + parts.joined(separator: " ")
        }
        return lines.joined(separator: "\n")
    }

    static func words(_ line: String) -> [String] {
        line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    }
}
