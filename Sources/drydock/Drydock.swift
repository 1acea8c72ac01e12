import DrydockCLI

@main
enum Drydock {
    static func main() async {
        await DrydockCommand.runMain()
    }
}
