import DrydockCLI

await DrydockCommand.main()
