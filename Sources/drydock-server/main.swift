import DrydockServerCommands

await DrydockServerCommand.launch()
