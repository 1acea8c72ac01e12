import DrydockBuildContext
import Testing

/// `drydock build --lint`: buildx's Dockerfile-only check rules, each on a Dockerfile that breaks
/// it and not on one that does not.
@Suite("Unit: Dockerfile lint")
struct DockerfileLintTests {
    func rules(_ text: String) -> [String] { DockerfileLint.check(text).map(\.rule) }

    @Test("a clean Dockerfile has no findings (continuations, heredocs, automatic and global ARGs)")
    func clean() {
        let text = """
            # syntax=docker/dockerfile:1
            ARG BASE=busybox
            FROM --platform=$BUILDPLATFORM $BASE AS build
            RUN echo one \\
                # a comment inside a continuation
                && echo two
            RUN <<EOF
            from this line nothing is an instruction
            MAINTAINER not me
            EOF
            ENV PATH=/usr/bin
            FROM ${BASE}
            COPY --from=build /x /x
            CMD ["/bin/sh"]
            """
        #expect(DockerfileLint.check(text) == [])
    }

    @Test("each rule fires on its own case, with its line")
    func each() {
        #expect(rules("FROM $IMAGE\n") == ["UndefinedArgInFrom"])
        #expect(DockerfileLint.check("FROM busybox\nMAINTAINER me\n").first?.line == 2)
        #expect(rules("FROM busybox\nMAINTAINER me\n") == ["MaintainerDeprecated"])
        #expect(rules("FROM busybox\nCMD echo hi\n") == ["JSONArgsRecommended"])
        #expect(rules("FROM busybox\nENTRYPOINT /bin/sh\n") == ["JSONArgsRecommended"])
        #expect(rules("FROM busybox\nRUN true\nrun true\nRUN true\n") == ["ConsistentInstructionCasing"])
        #expect(rules("FROM busybox as build\n") == ["FromAsCasing"])
        #expect(rules("FROM busybox AS Build\n") == ["StageNameCasing"])
        #expect(rules("FROM busybox AS a\nFROM busybox AS a\n") == ["DuplicateStageName"])
        #expect(rules("FROM busybox AS scratch\n") == ["ReservedStageName"])
        #expect(rules("FROM --platform=linux/amd64 busybox\n") == ["FromPlatformFlagConstDisallowed"])
        #expect(rules("FROM busybox\nENV A 1\n") == ["LegacyKeyValueFormat"])
        #expect(rules("FROM busybox\nARG GITHUB_TOKEN\n") == ["SecretsUsedInArgOrEnv"])
        #expect(rules("FROM busybox\nCMD [\"a\"]\nCMD [\"b\"]\n") == ["MultipleInstructionsDisallowed"])
        #expect(rules("FROM busybox\nFETCH x\n") == ["UnknownInstruction"])
        #expect(rules("RUN true\n") == ["NoFromInstruction"])
    }

    @Test("severities: rule findings are warnings with buildx's page; a broken Dockerfile is an error")
    func severities() {
        let warning = DockerfileLint.check("FROM busybox\nMAINTAINER me\n")[0]
        #expect(warning.severity == .warning)
        #expect(warning.url == "https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/")
        let error = DockerfileLint.check("FROM busybox\nFETCH x\n")[0]
        #expect(error.severity == .error && error.url == nil)
        #expect(DockerfileLint.Severity.warning < .error)
    }

    @Test("an escape directive changes the continuation character")
    func escapeDirective() {
        let text = "# escape=`\nFROM busybox\nRUN echo a `\n    && echo b\nMAINTAINER x\n"
        #expect(DockerfileLint.check(text).map(\.line) == [5])
    }
}
