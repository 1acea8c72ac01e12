import Foundation

/// Field rules shared by the handlers and `bootstrap`; messages name the field and the rule.
public enum Validation {
    /// Organization and project names: 1-64 of [A-Za-z0-9._-], starting with a letter or digit.
    public static func name(_ value: String, field: String = "name") throws -> String {
        guard (1...64).contains(value.count) else {
            throw DomainError.invalidField(field, "must be 1 to 64 characters long (got \(value.count))")
        }
        let allowed = value.unicodeScalars.allSatisfy { s in
            (s.isASCII && (CharacterSet.alphanumerics.contains(s))) || s == "." || s == "_" || s == "-"
        }
        guard allowed, let first = value.unicodeScalars.first, first.isASCII, CharacterSet.alphanumerics.contains(first) else {
            throw DomainError.invalidField(field, "may contain only letters, digits, '.', '_' and '-', and must start with a letter or digit")
        }
        return value
    }

    /// Token names are labels for people: 1-100 printable characters.
    public static func tokenName(_ value: String) throws -> String {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        guard (1...100).contains(trimmed.count) else {
            throw DomainError.invalidField("name", "must be 1 to 100 characters long")
        }
        guard !trimmed.unicodeScalars.contains(where: { CharacterSet.controlCharacters.contains($0) }) else {
            throw DomainError.invalidField("name", "must not contain control characters")
        }
        return trimmed
    }

    public static func email(_ value: String, field: String = "email") throws -> String {
        let v = value.trimmingCharacters(in: .whitespaces).lowercased()
        let parts = v.split(separator: "@", omittingEmptySubsequences: false)
        guard v.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
              !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
              !v.unicodeScalars.contains(where: { CharacterSet.whitespacesAndNewlines.contains($0) || CharacterSet.controlCharacters.contains($0) })
        else {
            throw DomainError.invalidField(field, "must be an email address like someone@example.com")
        }
        return v
    }

    public static func range(_ value: Int?, _ range: ClosedRange<Int>, field: String) throws -> Int? {
        guard let value else { return nil }
        guard range.contains(value) else {
            throw DomainError.invalidField(field, "must be between \(range.lowerBound) and \(range.upperBound) (got \(value))")
        }
        return value
    }
}
