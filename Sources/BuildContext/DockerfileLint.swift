import Foundation

/// The Dockerfile checks of `docker build --check` (buildx's rules) that need nothing but the
/// Dockerfile: run by `drydock build --lint` before anything is uploaded.
public enum DockerfileLint {
    public enum Severity: String, Sendable, Comparable {
        case warning, error
        public static func < (a: Severity, b: Severity) -> Bool { a == .warning && b == .error }
    }

    public struct Finding: Sendable, Equatable, CustomStringConvertible {
        public let rule: String
        public let line: Int
        public let message: String
        public let severity: Severity

        /// buildx's page for the rule (errors have none).
        public var url: String? {
            guard severity == .warning else { return nil }
            let kebab = rule.reduce(into: "") { text, character in
                if character.isUppercase, !text.isEmpty { text.append("-") }
                text.append(character.lowercased())
            }
            return "https://docs.docker.com/go/dockerfile/rule/\(kebab)/"
        }

        public var description: String {
            "\(severity == .error ? "ERROR" : "WARN"): \(rule) (line \(line)): \(message)" + (url.map { "\n  \($0)" } ?? "")
        }
    }

    /// One instruction: its keyword as written, its arguments, and the line it starts on.
    struct Instruction {
        let keyword: String
        let arguments: String
        let line: Int
        var upper: String { keyword.uppercased() }
    }

    static let known: Set = ["FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
                             "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"]
    /// Arguments every build has without declaring them.
    static let automatic: Set = ["BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT", "TARGETPLATFORM", "TARGETOS", "TARGETARCH",
                                 "TARGETVARIANT", "TARGETSTAGE", "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY",
                                 "http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"]

    /// Joins continued lines, drops comments and heredoc bodies.
    static func instructions(_ text: String) -> [Instruction] {
        let lines = text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n")
        var escape: Character = "\\"
        // Parser directives: only at the very top, before any instruction or other comment.
        for line in lines {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("#"), let eq = trimmed.firstIndex(of: "=") else { break }
            let name = trimmed.dropFirst().prefix { $0 != "=" }.trimmingCharacters(in: .whitespaces).lowercased()
            if name == "escape", let value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces).first {
                escape = value
            }
        }
        var result: [Instruction] = []
        var index = 0
        while index < lines.count {
            let start = index
            var text = lines[index]
            index += 1
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            // Continuations: comment lines inside are skipped, as the Dockerfile parser does.
            while text.trimmingCharacters(in: .whitespaces).last == escape, index < lines.count {
                text = String(text.trimmingCharacters(in: .whitespaces).dropLast())
                while index < lines.count, lines[index].trimmingCharacters(in: .whitespaces).hasPrefix("#") { index += 1 }
                if index < lines.count {
                    text += " " + lines[index]
                    index += 1
                }
            }
            let body = text.trimmingCharacters(in: .whitespaces)
            let keyword = String(body.prefix { !$0.isWhitespace })
            let arguments = body.dropFirst(keyword.count).trimmingCharacters(in: .whitespaces)
            result.append(Instruction(keyword: keyword, arguments: arguments, line: start + 1))
            // Heredocs (RUN <<EOF … EOF): their bodies are not instructions.
            for marker in heredocMarkers(arguments) {
                while index < lines.count {
                    let line = lines[index]
                    index += 1
                    if line.trimmingCharacters(in: .whitespaces) == marker { break }
                }
            }
        }
        return result
    }

    static func heredocMarkers(_ arguments: String) -> [String] {
        var markers: [String] = []
        var rest = Substring(arguments)
        while let range = rest.range(of: "<<") {
            var word = rest[range.upperBound...].drop { $0 == "-" }
            word = word.prefix { !$0.isWhitespace && $0 != ">" && $0 != "|" && $0 != ";" && $0 != "&" }
            let name = word.trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            if !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) { markers.append(name) }
            rest = rest[range.upperBound...]
        }
        return markers
    }

    /// `$NAME` and `${NAME…}` references in a word.
    static func variables(in text: String) -> [String] {
        var names: [String] = []
        var characters = Array(text)[...]
        while let dollar = characters.firstIndex(of: "$") {
            var rest = characters[(dollar + 1)...]
            if rest.first == "{" { rest = rest.dropFirst() }
            let name = String(rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" })
            if !name.isEmpty { names.append(name) }
            characters = rest
        }
        return names
    }

    static let secretWords = ["password", "passwd", "secret", "token", "apikey", "api_key", "access_key", "private_key", "credential"]

    public static func check(_ text: String) -> [Finding] {
        var findings: [Finding] = []
        func add(_ rule: String, _ line: Int, _ message: String, _ severity: Severity = .warning) {
            findings.append(Finding(rule: rule, line: line, message: message, severity: severity))
        }
        let all = instructions(text)
        guard let first = all.first(where: { $0.upper != "ARG" }), first.upper == "FROM" else {
            add("NoFromInstruction", all.first?.line ?? 1, "a Dockerfile must begin with FROM (only ARG may come before it)", .error)
            return findings
        }
        // Casing: all upper or all lower; the majority decides which line is out of line.
        let upperCount = all.filter { $0.keyword == $0.upper }.count
        let lowerCount = all.filter { $0.keyword == $0.keyword.lowercased() }.count
        let majorityUpper = upperCount >= lowerCount
        var globalArgs: Set<String> = []
        var stageNames: [String: Int] = [:]
        var inStage = false
        var stageCounts: [String: Int] = [:]
        for instruction in all {
            let upper = instruction.upper
            guard known.contains(upper) else {
                add("UnknownInstruction", instruction.line, "unknown instruction: \(instruction.keyword)", .error)
                continue
            }
            if majorityUpper ? instruction.keyword != upper : instruction.keyword != instruction.keyword.lowercased() {
                add("ConsistentInstructionCasing", instruction.line,
                    "Command '\(instruction.keyword)' should match the case of the command majority (\(majorityUpper ? "uppercase" : "lowercase"))")
            }
            switch upper {
            case "ARG":
                let name = String(instruction.arguments.prefix { $0 != "=" && !$0.isWhitespace })
                if !inStage { globalArgs.insert(name) }
                if secretWords.contains(where: { name.lowercased().contains($0) }) {
                    add("SecretsUsedInArgOrEnv", instruction.line, "Do not use ARG or ENV instructions for sensitive data (ARG \"\(name)\"); use RUN --mount=type=secret")
                }
            case "ENV":
                let words = instruction.arguments.split(separator: " ", omittingEmptySubsequences: true)
                if let key = words.first, !key.contains("=") {
                    add("LegacyKeyValueFormat", instruction.line, "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format")
                }
                for word in words where word.contains("=") {
                    let name = String(word.prefix { $0 != "=" })
                    if secretWords.contains(where: { name.lowercased().contains($0) }) {
                        add("SecretsUsedInArgOrEnv", instruction.line, "Do not use ARG or ENV instructions for sensitive data (ENV \"\(name)\"); use RUN --mount=type=secret")
                    }
                }
            case "LABEL":
                let words = instruction.arguments.split(separator: " ", omittingEmptySubsequences: true)
                if let key = words.first, !key.contains("=") {
                    add("LegacyKeyValueFormat", instruction.line, "\"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format")
                }
            case "MAINTAINER":
                add("MaintainerDeprecated", instruction.line, "The MAINTAINER instruction is deprecated, use a label instead to define an image author")
            case "CMD", "ENTRYPOINT":
                if !instruction.arguments.hasPrefix("[") {
                    add("JSONArgsRecommended", instruction.line,
                        "JSON arguments recommended for \(upper) to prevent unintended behavior related to OS signals")
                }
                stageCounts[upper, default: 0] += 1
                if stageCounts[upper, default: 0] == 2 {
                    add("MultipleInstructionsDisallowed", instruction.line, "Multiple \(upper) instructions should not be used in the same stage because only the last one will be used")
                }
            case "HEALTHCHECK":
                stageCounts[upper, default: 0] += 1
                if stageCounts[upper, default: 0] == 2 {
                    add("MultipleInstructionsDisallowed", instruction.line, "Multiple HEALTHCHECK instructions should not be used in the same stage because only the last one will be used")
                }
            case "FROM":
                inStage = true
                stageCounts = [:]
                var words = instruction.arguments.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                var platform: String?
                while let flag = words.first, flag.hasPrefix("--") {
                    if flag.hasPrefix("--platform=") { platform = String(flag.dropFirst("--platform=".count)) }
                    words.removeFirst()
                }
                if let platform, !platform.contains("$") {
                    add("FromPlatformFlagConstDisallowed", instruction.line, "FROM --platform flag should not use constant value \"\(platform)\"")
                }
                if let image = words.first {
                    for name in variables(in: image) + (platform.map { variables(in: $0) } ?? []) where !globalArgs.contains(name) && !automatic.contains(name) {
                        add("UndefinedArgInFrom", instruction.line, "FROM argument '\(name)' is not declared")
                    }
                }
                if words.count >= 3 {
                    let asWord = words[1]
                    let stage = words[2]
                    if asWord.lowercased() == "as" {
                        let keywordUpper = instruction.keyword == upper
                        if (keywordUpper && asWord != "AS") || (!keywordUpper && asWord != "as") {
                            add("FromAsCasing", instruction.line, "'\(asWord)' and '\(instruction.keyword)' keywords' casing do not match")
                        }
                        if stage != stage.lowercased() {
                            add("StageNameCasing", instruction.line, "Stage name '\(stage)' should be lowercase")
                        }
                        if ["scratch", "context"].contains(stage.lowercased()) {
                            add("ReservedStageName", instruction.line, "Stage name should not use the same name as reserved stage \"\(stage.lowercased())\"")
                        }
                        if let previous = stageNames[stage.lowercased()] {
                            add("DuplicateStageName", instruction.line, "Duplicate stage name \"\(stage)\", stage names should be unique (first on line \(previous))")
                        } else {
                            stageNames[stage.lowercased()] = instruction.line
                        }
                    }
                }
            default:
                break
            }
        }
        return findings
    }
}
