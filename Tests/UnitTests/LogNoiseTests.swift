import DrydockBuilder
import Testing

@Suite("Unit: build log noise")
struct LogNoiseTests {
    @Test("lines the user did not cause are left out", arguments: [
        "Getting image source signatures", "Copying blob sha256:ce5f36caba03 done", "Copying config sha256:1234 done",
        "Writing manifest to image destination", "COMMIT localhost/drydock/last-build:latest",
        "[2/2] COMMIT localhost/drydock/last-build:latest", "Successfully tagged localhost/drydock/last-build:latest",
        "[Warning] one or more build args were not consumed: [TARGETARCH TARGETOS TARGETPLATFORM]",
        "(UNHANDLED LOGLEVEL) &imagebuilder.Step{Env:[] Command:\"runn\"}",
    ])
    func noise(line: String) {
        #expect(LogNoise.isNoise(line))
    }

    @Test("what the user did stays", arguments: [
        "[Warning] one or more build args were not consumed: [VERSION]",
        "[Warning] one or more build args were not consumed: [TARGETARCH VERSION]",
        "hello from RUN", "error building at STEP \"RUN exit 7\": exit status 7", "COMMIT app:1",
    ])
    func kept(line: String) {
        #expect(!LogNoise.isNoise(line))
    }
}
