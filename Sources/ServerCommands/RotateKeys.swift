import ArgumentParser
import DrydockProcess
import DrydockServer

struct RotateKeys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-keys",
        abstract: "Add a new version of the keys that sign registry tokens and seal build secrets.",
        discussion: HelpText.reflow("""
            Every replica signs and seals with the newest version once it restarts, and verifies
            and opens with every version kept (the three newest), so tokens and secrets made before
            stay good until they expire. Works whether servers are running or not.
            """))
    @OptionGroup var storage: StorageOptions

    func run() async throws {
        try await storage.runOperatorCommand { configuration, logger in
            try await ServerRunner.rotateKeys(configuration, logger: logger)
        }
        print("Added a new version of each server key; restart the servers to sign with it.")
    }
}
