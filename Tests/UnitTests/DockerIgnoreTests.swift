@testable import DrydockBuildContext
import Foundation
import Testing

@Suite("Unit: .dockerignore")
struct DockerIgnoreTests {
    @Test(".dockerignore matches as Docker does: *, **, ?, [..], ! exceptions, last match wins, directories")
    func dockerignore() {
        let ignore = DockerIgnore("""
            # comment
            *.log
            !keep.log
            build/
            !build/keep.o
            **/node_modules
            /secret?.txt
            docs/[a-c]*.md
            """)
        #expect(ignore.excludes("app.log"))
        #expect(!ignore.excludes("keep.log"))
        #expect(!ignore.excludes("src/app.log"), "'*.log' matches only at the top, as in Docker")
        #expect(ignore.excludes("build"))
        #expect(ignore.excludes("build/out.o"))
        #expect(!ignore.excludes("build/keep.o"))
        #expect(ignore.mayReinclude(under: "build"))
        #expect(!ignore.mayReinclude(under: "docs"))
        #expect(ignore.excludes("node_modules/x/y.js"))
        #expect(ignore.excludes("a/b/node_modules"))
        #expect(ignore.excludes("secret1.txt"))
        #expect(!ignore.excludes("secret12.txt"))
        #expect(ignore.excludes("docs/about.md"))
        #expect(!ignore.excludes("docs/zebra.md"))
        #expect(!ignore.excludes("Dockerfile"))
        let everything = DockerIgnore("**\n!src\n")
        #expect(everything.excludes("README.md"))
        #expect(!everything.excludes("src/main.c"))
    }

    @Test("component globs", arguments: [
        ("*.log", "app.log", true), ("*.log", "app.txt", false), ("a*b*c", "aXXbYYc", true), ("a*b*c", "aXXbYY", false),
        ("?x", "ax", true), ("?x", "x", false), ("[a-c]*", "beta", true), ("[!a-c]*", "beta", false), ("[^a-c]*", "zeta", true),
        ("\\*", "*", true), ("\\*", "a", false), ("[abc", "a", false), ("*", "", true), ("", "", true), ("a**b", "aXb", true),
    ])
    func components(pattern: String, name: String, matches: Bool) {
        #expect(DockerIgnore.matchComponent(Array(pattern.utf8)[...], Array(name.utf8)[...]) == matches)
    }

    /// Inputs the fuzzer turned up: with recursive backtracking these took minutes (exponential
    /// in the number of stars); each must now answer at once.
    @Test("patterns with many stars answer at once")
    func pathologicalPatterns() {
        let started = ContinuousClock.now
        let stars = String(repeating: "*a", count: 30) + "*b"
        #expect(!DockerIgnore.matchComponent(Array(stars.utf8)[...], Array(String(repeating: "a", count: 200).utf8)[...]))
        let deep = DockerIgnore(String(repeating: "**/", count: 30) + "x")
        #expect(!deep.excludes(Array(repeating: "d", count: 60).joined(separator: "/")))
        #expect(deep.excludes(Array(repeating: "d", count: 60).joined(separator: "/") + "/x"))
        // Minutes before; a loaded machine's stalls stay far below this.
        #expect(ContinuousClock.now - started < .seconds(20))
    }
}
