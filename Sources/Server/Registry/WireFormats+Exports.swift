// Digests and repository names are part of the registry's vocabulary everywhere in the server.
@_exported import DrydockWireFormats
