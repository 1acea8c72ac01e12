/// Lines buildah and its image library print that say nothing the user caused or can act on:
/// they stay out of the build's log (the builder still sees them, and a failed push quotes its
/// own last lines in its error).
public enum LogNoise {
    static let prefixes = [
        "Getting image source signatures", "Copying blob ", "Copying config ", "Writing manifest to image destination",
        "Storing signatures", "COMMIT localhost/drydock/", "Successfully tagged localhost/drydock/", "(UNHANDLED LOGLEVEL) &imagebuilder.",
        // buildah's image ids after each step and stage: the progress shows steps and CACHED instead.
        "--> ",
        // A failing RUN: buildah says so twice, then quotes the whole instruction again; the
        // build's error names the step and the exit code once.
        "subprocess exited with status ", "subprocess exited on ", "Error: building at STEP ", "error building at STEP ",
    ]
    /// Build arguments buildah sets itself; a warning that only these went unused is noise.
    static let automaticArguments: Set<Substring> = [
        "TARGETARCH", "TARGETOS", "TARGETPLATFORM", "TARGETVARIANT", "BUILDARCH", "BUILDOS", "BUILDPLATFORM", "BUILDVARIANT",
    ]

    public static func isNoise(_ line: String) -> Bool {
        // Multi-stage builds prefix their lines with the stage, `[2/2] COMMIT …`.
        var text = Substring(line)
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") { text = text[text.index(after: close)...].drop { $0 == " " } }
        if prefixes.contains(where: { text.hasPrefix($0) }) || text == "COMMIT" { return true }
        // The builder machine's CNI setup (podman's bridge config without the CNI plugins, say):
        // buildah checks it at every start, but chroot isolation runs steps on the host's network
        // and never uses it.
        if text.hasPrefix("time="), text.contains(" level=warning msg=\"Error validating CNI config file ") { return true }
        // Stopping a canceled build's RUN container (its process group and the container were
        // stopped first): the runtime, asked to kill what is already gone, says so twice.
        if text.hasPrefix("time="), text.hasSuffix(" level=error msg=\"container not running\"")
            || text.hasSuffix(" level=error msg=\"exit status 1 sending SIGKILL\"") { return true }
        let marker = "build args were not consumed: ["
        if line.hasPrefix("[Warning] one or more "), let range = line.range(of: marker) {
            let names = line[range.upperBound...].prefix { $0 != "]" }.split(separator: " ")
            return !names.isEmpty && names.allSatisfy { automaticArguments.contains($0) }
        }
        return false
    }
}
