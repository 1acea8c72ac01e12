import DrydockClient
import Foundation

/// What a build says about the image it made, attached to the image as OCI referrers:
/// an in-toto statement with a SLSA provenance v1 predicate, and an SPDX 2.3 SBOM.
public enum Attestations {
    public static let inTotoMediaType = "application/vnd.in-toto+json"
    /// On each statement Drydock attaches: which kind it is (`provenance-min`, `provenance-max`,
    /// `sbom`), so a rebuild of the same image can tell it has one already.
    public static let kindAnnotation = "dev.drydock.attestation"
    public static let provenanceType = "https://slsa.dev/provenance/v1"
    public static let spdxType = "https://spdx.dev/Document"
    public static let buildType = "https://github.com/drydock-build/drydock/dockerfile@v1"

    /// A base image the build used, by the digest it resolved to.
    public struct Material: Sendable, Equatable {
        public let reference: String
        public let digest: String
        public init(reference: String, digest: String) {
            self.reference = reference
            self.digest = digest
        }
    }

    public struct Invocation: Sendable {
        public var buildId: String
        public var projectId: String
        public var builderId: String
        public var platform: String
        public var builderPlatform: String
        public var emulated: Bool
        public var dockerfile: String
        public var target: String?
        /// Build arguments as given (secrets are never build arguments: they are not here).
        public var buildArgs: [String: String]
        public var labels: [String: String]
        public var contextDigest: String
        public var contextURI: String
        public var materials: [Material]
        public var startedOn: Date
        public var finishedOn: Date
        /// `max` only: the Dockerfile's text and the build steps.
        public var dockerfileText: String?
        public var steps: [(instruction: String, cached: Bool, seconds: Double?)]?
    }

    static func iso(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    /// `pkg:docker/NAME@VERSION?platform=…` as buildx names subjects and materials.
    static func purl(_ reference: String, platform: String) -> String {
        var name = reference
        var version = "latest"
        if let at = name.firstIndex(of: "@") {
            version = String(name[name.index(after: at)...])
            name = String(name[..<at])
        } else if let colon = name.lastIndex(of: ":"), !name[colon...].contains("/") {
            version = String(name[name.index(after: colon)...])
            name = String(name[..<colon])
        }
        let encodedPlatform = platform.replacingOccurrences(of: "/", with: "%2F")
        return "pkg:docker/\(name)@\(version)?platform=\(encodedPlatform)"
    }

    static func sha256Map(_ digest: String) -> [String: String] {
        let parts = digest.split(separator: ":", maxSplits: 1)
        return parts.count == 2 ? [String(parts[0]): String(parts[1])] : ["sha256": digest]
    }

    /// The in-toto statement for one platform's image.
    public static func provenance(_ invocation: Invocation, subject: (name: String, digest: String)) throws -> [UInt8] {
        var request: [String: Any] = [
            "frontend": "dockerfile.v0",
            "dockerfile": invocation.dockerfile,
            "platform": invocation.platform,
            "args": invocation.buildArgs,
        ]
        if let target = invocation.target { request["target"] = target }
        if !invocation.labels.isEmpty { request["labels"] = invocation.labels }
        var externalParameters: [String: Any] = [
            "request": request,
            "configSource": ["uri": invocation.contextURI, "digest": sha256Map(invocation.contextDigest), "path": invocation.dockerfile],
        ]
        if let text = invocation.dockerfileText {
            externalParameters["dockerfileSource"] = ["encoding": "base64", "content": Data(text.utf8).base64EncodedString()]
        }
        var dependencies: [[String: Any]] = [["uri": invocation.contextURI, "name": "context", "digest": sha256Map(invocation.contextDigest)]]
        for material in invocation.materials {
            dependencies.append(["uri": purl(material.reference, platform: invocation.platform), "digest": sha256Map(material.digest)])
        }
        var runDetails: [String: Any] = [
            "builder": ["id": invocation.builderId],
            "metadata": [
                "invocationId": invocation.buildId,
                "startedOn": iso(invocation.startedOn),
                "finishedOn": iso(invocation.finishedOn),
            ],
        ]
        if let steps = invocation.steps {
            runDetails["byproducts"] = steps.enumerated().map { index, step -> [String: Any] in
                var entry: [String: Any] = ["name": "step \(index + 1)", "annotations": ["instruction": step.instruction, "cached": step.cached ? "true" : "false"]]
                if let seconds = step.seconds { entry["annotations"] = ["instruction": step.instruction, "cached": step.cached ? "true" : "false", "seconds": String(format: "%.3f", seconds)] }
                return entry
            }
        }
        let statement: [String: Any] = [
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [["name": subject.name, "digest": sha256Map(subject.digest)]],
            "predicateType": provenanceType,
            "predicate": [
                "buildDefinition": [
                    "buildType": buildType,
                    "externalParameters": externalParameters,
                    "internalParameters": ["builderPlatform": invocation.builderPlatform, "emulated": invocation.emulated, "project": invocation.projectId],
                    "resolvedDependencies": dependencies,
                ],
                "runDetails": runDetails,
            ],
        ]
        return Array(try JSONSerialization.data(withJSONObject: statement, options: [.sortedKeys, .withoutEscapingSlashes]))
    }

    // MARK: SBOM

    /// An installed package, as a package database lists it.
    public struct Package: Sendable, Equatable {
        public let ecosystem: String  // deb, apk, rpm, pypi
        public let name: String
        public let version: String
        public let architecture: String?
    }

    /// dpkg's `var/lib/dpkg/status`: paragraphs; only installed packages count.
    public static func dpkgPackages(_ text: String) -> [Package] {
        text.components(separatedBy: "\n\n").compactMap { paragraph in
            var fields: [String: String] = [:]
            for line in paragraph.split(separator: "\n") where !line.hasPrefix(" ") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            guard let name = fields["Package"], let version = fields["Version"], fields["Status"]?.hasSuffix(" installed") ?? true else { return nil }
            return Package(ecosystem: "deb", name: name, version: version, architecture: fields["Architecture"])
        }
    }

    /// apk's `lib/apk/db/installed`: `P:` name, `V:` version, `A:` architecture, blank-line separated.
    public static func apkPackages(_ text: String) -> [Package] {
        text.components(separatedBy: "\n\n").compactMap { block in
            var fields: [Character: String] = [:]
            for line in block.split(separator: "\n") where line.count > 2 && line.dropFirst().first == ":" {
                if let key = line.first, fields[key] == nil { fields[key] = String(line.dropFirst(2)) }
            }
            guard let name = fields["P"], let version = fields["V"] else { return nil }
            return Package(ecosystem: "apk", name: name, version: version, architecture: fields["A"])
        }
    }

    /// A Python distribution's `METADATA` (or `PKG-INFO`): `Name:` and `Version:`.
    public static func pythonPackage(_ text: String) -> Package? {
        var name: String?
        var version: String?
        for line in text.split(separator: "\n") {
            if line.isEmpty { break }
            if line.hasPrefix("Name:") { name = line.dropFirst(5).trimmingCharacters(in: .whitespaces) }
            if line.hasPrefix("Version:") { version = line.dropFirst(8).trimmingCharacters(in: .whitespaces) }
        }
        guard let name, let version else { return nil }
        return Package(ecosystem: "pypi", name: name, version: version, architecture: nil)
    }

    /// Every package the image's filesystem (mounted at `root`) records as installed.
    public static func packages(root: URL) -> [Package] {
        var found: [Package] = []
        let files = FileManager.default
        if let text = try? String(contentsOf: root.appendingPathComponent("var/lib/dpkg/status"), encoding: .utf8) { found += dpkgPackages(text) }
        // dpkg's per-package status files (distroless images): var/lib/dpkg/status.d/*
        if let names = try? files.contentsOfDirectory(atPath: root.appendingPathComponent("var/lib/dpkg/status.d").path) {
            for name in names.sorted() where !name.hasSuffix(".md5sums") {
                if let text = try? String(contentsOf: root.appendingPathComponent("var/lib/dpkg/status.d/\(name)"), encoding: .utf8) { found += dpkgPackages(text) }
            }
        }
        if let text = try? String(contentsOf: root.appendingPathComponent("lib/apk/db/installed"), encoding: .utf8) { found += apkPackages(text) }
        // Python: */site-packages/*.dist-info/METADATA and */dist-packages/… under the usual prefixes.
        for prefix in ["usr/lib", "usr/local/lib", "usr/lib64", "usr/local/lib64", "opt"] {
            let base = root.appendingPathComponent(prefix)
            guard let enumerator = files.enumerator(at: base, includingPropertiesForKeys: nil, options: [.skipsHiddenFiles]) else { continue }
            for case let url as URL in enumerator {
                let components = url.pathComponents
                if components.count - base.pathComponents.count > 5 { enumerator.skipDescendants(); continue }
                if url.lastPathComponent.hasSuffix(".dist-info") || url.lastPathComponent.hasSuffix(".egg-info") {
                    enumerator.skipDescendants()
                    let metadata = url.appendingPathComponent(url.lastPathComponent.hasSuffix(".dist-info") ? "METADATA" : "PKG-INFO")
                    if let text = try? String(contentsOf: metadata, encoding: .utf8), let package = pythonPackage(text) { found.append(package) }
                }
            }
        }
        return found
    }

    static func purl(_ package: Package, distro: String?) -> String {
        switch package.ecosystem {
        case "deb": "pkg:deb/\(distro ?? "debian")/\(package.name)@\(package.version)" + (package.architecture.map { "?arch=\($0)" } ?? "")
        case "apk": "pkg:apk/\(distro ?? "alpine")/\(package.name)@\(package.version)" + (package.architecture.map { "?arch=\($0)" } ?? "")
        case "rpm": "pkg:rpm/\(distro ?? "redhat")/\(package.name)@\(package.version)" + (package.architecture.map { "?arch=\($0)" } ?? "")
        default: "pkg:pypi/\(package.name.lowercased())@\(package.version)"
        }
    }

    /// An SPDX 2.3 JSON document of `packages`.
    public static func spdx(packages: [Package], image: String, platform: String, buildId: String, distro: String?, created: Date) throws -> [UInt8] {
        var seen = Set<String>()
        var entries: [[String: Any]] = []
        var relationships: [[String: Any]] = []
        for package in packages.sorted(by: { ($0.ecosystem, $0.name, $0.version) < ($1.ecosystem, $1.name, $1.version) }) {
            let id = "SPDXRef-Package-\(package.ecosystem)-\(package.name)-\(package.version)"
                .map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? String($0) : "-" }.joined()
            guard seen.insert(id).inserted else { continue }
            entries.append([
                "name": package.name, "SPDXID": id, "versionInfo": package.version,
                "downloadLocation": "NOASSERTION", "filesAnalyzed": false, "supplier": "NOASSERTION",
                "externalRefs": [["referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl(package, distro: distro)]],
            ])
            relationships.append(["spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": id])
        }
        let document: [String: Any] = [
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": "\(image) (\(platform))",
            "documentNamespace": "https://drydock.invalid/spdx/\(buildId)/\(platform.replacingOccurrences(of: "/", with: "-"))/\(UUID().uuidString.lowercased())",
            "creationInfo": ["created": iso(created), "creators": ["Tool: drydock-builder"]],
            "packages": entries,
            "relationships": relationships,
        ]
        return Array(try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes]))
    }

    /// The `ID=` of the image's os-release, to name deb/apk packages' distribution.
    public static func distro(root: URL) -> String? {
        for path in ["etc/os-release", "usr/lib/os-release"] {
            guard let text = try? String(contentsOf: root.appendingPathComponent(path), encoding: .utf8) else { continue }
            for line in text.split(separator: "\n") where line.hasPrefix("ID=") {
                return line.dropFirst(3).trimmingCharacters(in: CharacterSet(charactersIn: "\"' "))
            }
        }
        return nil
    }

    /// An SPDX statement wrapping an SBOM document (the in-toto form buildx attaches).
    public static func sbomStatement(_ document: [UInt8], subject: (name: String, digest: String)) throws -> [UInt8] {
        let predicate = try JSONSerialization.jsonObject(with: Data(document))
        let statement: [String: Any] = [
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [["name": subject.name, "digest": sha256Map(subject.digest)]],
            "predicateType": spdxType,
            "predicate": predicate,
        ]
        return Array(try JSONSerialization.data(withJSONObject: statement, options: [.sortedKeys, .withoutEscapingSlashes]))
    }

    /// `FROM` references of a Dockerfile (already qualified), with ARGs substituted; stage names and
    /// `scratch` left out.
    public static func baseReferences(_ dockerfile: String, buildArgs: [String: String]) -> [String] {
        var globals: [String: String] = [:]
        var stages = Set<String>()
        var references: [String] = []
        var seenFrom = false
        func substitute(_ text: String) -> String {
            var result = text
            for (name, value) in buildArgs.merging(globals, uniquingKeysWith: { given, _ in given }) {
                result = result.replacingOccurrences(of: "${\(name)}", with: value).replacingOccurrences(of: "$\(name)", with: value)
            }
            return result
        }
        for line in dockerfile.split(separator: "\n") {
            let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard let keyword = words.first?.uppercased() else { continue }
            if keyword == "ARG", !seenFrom, words.count > 1 {
                let spec = words[1]
                if let eq = spec.firstIndex(of: "=") {
                    globals[String(spec[..<eq])] = String(spec[spec.index(after: eq)...]).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
                }
            }
            guard keyword == "FROM" else { continue }
            seenFrom = true
            let rest = words.dropFirst().filter { !$0.hasPrefix("--") }
            guard let image = rest.first.map(substitute) else { continue }
            if rest.count >= 3, rest[rest.startIndex + 1].lowercased() == "as" { stages.insert(rest[rest.startIndex + 2].lowercased()) }
            if image.lowercased() == "scratch" || stages.contains(image.lowercased()) || references.contains(image) { continue }
            references.append(image)
        }
        return references
    }
}
