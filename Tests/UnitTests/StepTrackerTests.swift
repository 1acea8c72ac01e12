import DrydockBuilder
import Testing

@Suite("Unit: buildah step parsing")
struct StepTrackerTests {
    @Test("a single-stage build numbers its steps [n/total]; cached steps are marked")
    func singleStage() {
        var tracker = StepTracker()
        var events: [StepTracker.Step] = []
        for line in ["STEP 1/3: FROM busybox", "STEP 2/3: RUN make", "--> Using cache 1234abcd5678", "--> 1234abcd5678",
                     "STEP 3/3: CMD [\"app\"]", "COMMIT localhost/drydock/last-build:latest"] {
            events += tracker.feed(line)
        }
        let finished = events.filter { $0.status == "done" }
        #expect(finished.map(\.label) == ["[1/3]", "[2/3]", "[3/3]"])
        #expect(finished.map(\.cached) == [false, true, false])
        #expect(finished.allSatisfy { $0.stage == nil })
    }

    @Test("a multi-stage build labels steps with the stage's name, and FROM an earlier stage names it, not its image id")
    func multiStage() {
        var tracker = StepTracker()
        var events: [StepTracker.Step] = []
        for line in [
            "[1/3] STEP 1/2: FROM busybox AS deps", "[1/3] STEP 2/2: RUN echo deps", "--> a8dff34f0c2e",
            "[2/3] STEP 1/2: FROM busybox", "[2/3] STEP 2/2: RUN true", "--> 77aa00bb11cc",
            "[3/3] STEP 1/2: FROM a8dff34f0c2e AS test", "[3/3] STEP 2/2: RUN make test", "[3/3] COMMIT app",
        ] {
            events += tracker.feed(line)
        }
        let running = events.filter { $0.status == "running" }
        #expect(running.map(\.label) == ["[deps 1/2]", "[deps 2/2]", "[stage-1 1/2]", "[stage-1 2/2]", "[test 1/2]", "[test 2/2]"])
        #expect(running[4].instruction == "FROM deps AS test")
        #expect(running.map(\.number) == [1, 2, 3, 4, 5, 6], "numbers count across the build")
    }

    @Test("buildah skips a stage the target does not need; the named stage is still found")
    func skippedStage() {
        var tracker = StepTracker()
        var events: [StepTracker.Step] = []
        for line in [
            "[1/3] STEP 1/2: FROM 127.0.0.1:18080/p/busybox:latest AS deps", "Trying to pull 127.0.0.1:18080/p/busybox:latest...",
            "[1/3] STEP 2/2: RUN echo deps > /deps", "--> 2b67efefc39",
            "[3/3] STEP 1/2: FROM 2b67efefc39e661e870697a7f84d83ae7a3d95be2807316a783c65ffb2555ed5 AS test",
            "[3/3] STEP 2/2: RUN make", "subprocess exited with status 2",
        ] {
            events += tracker.feed(line)
        }
        let running = events.filter { $0.status == "running" }
        #expect(running.map(\.label) == ["[deps 1/2]", "[deps 2/2]", "[test 1/2]", "[test 2/2]"])
        #expect(running[2].instruction == "FROM deps AS test")
    }

    @Test("lines that are not step headers are not taken for one", arguments: [
        "STEP", "STEP x/y: RUN a", "[a/b] STEP 1/2: RUN a", "STEPS 1/2: RUN a", "hello STEP 1/2: RUN a",
    ])
    func notSteps(line: String) {
        var tracker = StepTracker()
        #expect(tracker.feed(line).isEmpty)
    }

    @Test("a failure names the step once and the command's exit code, not buildah's quote of the instruction")
    func failureLine() {
        let step = StepTracker.Step(number: 2, total: 3, instruction: "RUN make", cached: false, status: "failed")
        #expect(BuildFailure.describe(step: step, buildahError: #"error building at STEP "RUN make": exit status 2"#, exitCode: 1)
                == "step [2/3] RUN make: the command exited with code 2")
        // A FROM whose image is a build arg given no value: the way out, in the user's words.
        for buildah in ["Error: no FROM statement found", "Error: determining starting point for build: no FROM statement found"] {
            let described = BuildFailure.describe(step: nil, buildahError: buildah, exitCode: 125)
            #expect(described.hasPrefix("the build failed: the Dockerfile names no base image (buildah: no FROM statement found)"), "\(described)")
            #expect(described.contains("--build-arg BASE=IMAGE"), "\(described)")
        }
        #expect(BuildFailure.describe(step: nil, buildahError: "", exitCode: 125) == "the build failed: buildah exited with code 125")
    }
}

@Suite("Unit: short image names")
struct ShortNameTests {
    @Test("short names mean Docker Hub; stages, scratch, ARG-built and registry names stay", arguments: [
        ("FROM busybox", "FROM docker.io/library/busybox"),
        ("FROM busybox:1.36 AS base", "FROM docker.io/library/busybox:1.36 AS base"),
        ("from --platform=$BUILDPLATFORM golang:1.22 as build", "from --platform=$BUILDPLATFORM docker.io/library/golang:1.22 as build"),
        ("FROM team/app@sha256:abc", "FROM docker.io/team/app@sha256:abc"),
        ("FROM scratch", "FROM scratch"),
        ("FROM ${BASE}", "FROM ${BASE}"),
        ("FROM ghcr.io/acme/app:1", "FROM ghcr.io/acme/app:1"),
        ("FROM 127.0.0.1:8080/p/busybox:latest", "FROM 127.0.0.1:8080/p/busybox:latest"),
        ("FROM localhost/app", "FROM localhost/app"),
    ])
    func from(line: String, expected: String) {
        #expect(ShortNames.qualify(line) == expected)
    }

    @Test("a stage named earlier is not an image; COPY --from an image is qualified, --from a stage or index is not")
    func stages() {
        let dockerfile = """
            FROM busybox AS deps
            RUN true
            FROM deps AS test
            COPY --from=deps /a /a
            COPY --from=0 /b /b
            COPY --from=nginx:1 /etc/nginx /etc/nginx
            """
        #expect(ShortNames.qualify(dockerfile) == """
            FROM docker.io/library/busybox AS deps
            RUN true
            FROM deps AS test
            COPY --from=deps /a /a
            COPY --from=0 /b /b
            COPY --from=docker.io/library/nginx:1 /etc/nginx /etc/nginx
            """)
    }
}

@Suite("Unit: stage platforms")
struct StagePlatformTests {
    @Test("with a cross-compiling stage, every other stage names the job's platform; stage references and scratch stay")
    func explicit() {
        let dockerfile = """
            FROM --platform=$BUILDPLATFORM golang AS build
            RUN make
            FROM build AS test
            FROM scratch AS empty
            FROM busybox
            COPY --from=build /app /app
            """
        #expect(StagePlatforms.explicit(dockerfile, target: "linux/arm64") == """
            FROM --platform=$BUILDPLATFORM golang AS build
            RUN make
            FROM build AS test
            FROM scratch AS empty
            FROM --platform=linux/arm64 busybox
            COPY --from=build /app /app
            """)
    }

    @Test("a Dockerfile without any --platform is left as written")
    func untouched() {
        let dockerfile = "FROM busybox\nRUN true\nFROM alpine\n"
        #expect(StagePlatforms.explicit(dockerfile, target: "linux/arm64") == dockerfile)
    }
}
