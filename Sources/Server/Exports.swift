// The shared vocabulary of the whole server: digests and repository names (wire formats), and
// the typed values of the contract (Platform, PlanName).
@_exported import DrydockAPITypes
@_exported import DrydockWireFormats
