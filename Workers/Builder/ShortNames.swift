import DrydockWireFormats

/// Short image names in a Dockerfile resolved as docker resolves them: `busybox` is
/// `docker.io/library/busybox`, `team/app` is `docker.io/team/app`. buildah would otherwise
/// take an image of the same short name already in the project's cache (pulled from the project
/// registry by an earlier build) without saying so. Stage names, `scratch` and names built from
/// `ARG`s are left as they are.
public enum ShortNames {
    /// `named`: a bake's `target:` contexts, name → the image another build of the project made;
    /// `FROM name` and `COPY --from=name` take that image (before stage names, as BuildKit's named contexts do).
    /// `local`: named directory contexts (`--build-context NAME=DIR`), left as written.
    public static func qualify(_ dockerfile: String, named: [String: String] = [:], local: Set<String> = []) -> String {
        var stages: Set<String> = Set(local.map { $0.lowercased() })
        var lines = dockerfile.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for index in lines.indices {
            let line = lines[index]
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            let keyword = trimmed.prefix { !$0.isWhitespace }.uppercased()
            if keyword == "FROM" {
                var words = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
                guard let imageIndex = words.indices.dropFirst().first(where: { !words[$0].hasPrefix("--") }) else { continue }
                let image = words[imageIndex]
                if let qualified = named[image] ?? qualified(image, stages: stages) {
                    words[imageIndex] = qualified
                    let indent = line.prefix { $0 == " " || $0 == "\t" }
                    lines[index] = indent + words.joined(separator: " ")
                }
                if imageIndex + 2 < words.count, words[imageIndex + 1].uppercased() == "AS" { stages.insert(words[imageIndex + 2].lowercased()) }
            } else if keyword == "COPY" || keyword == "ADD" {
                // COPY --from=<stage, index or image>
                guard let range = line.range(of: "--from=") else { continue }
                let value = line[range.upperBound...].prefix { !$0.isWhitespace }
                guard let qualified = named[String(value)] ?? qualified(String(value), stages: stages), Int(value) == nil else { continue }
                lines[index] = line.replacingCharacters(in: range.upperBound..<line.index(range.upperBound, offsetBy: value.count), with: qualified)
            }
        }
        return lines.joined(separator: "\n")
    }

    /// The fully qualified name, or nil to leave the reference as written.
    static func qualified(_ image: String, stages: Set<String>) -> String? {
        guard !image.isEmpty, !image.contains("$"), image.lowercased() != "scratch", !stages.contains(image.lowercased()) else { return nil }
        guard ImageReference.registryHost(of: image) == nil else { return nil }
        let name = image.prefix { $0 != ":" && $0 != "@" }
        guard name.allSatisfy({ $0.isLowercase || $0.isNumber || "._-/".contains($0) }), !name.isEmpty else { return nil }
        return name.contains("/") ? "docker.io/" + image : "docker.io/library/" + image
    }
}
