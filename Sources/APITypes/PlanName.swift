/// A plan's name, as the contract spells it (`developer`, `startup`, `business`): one typed value
/// for the server's billing, the operator commands and the client.
public typealias PlanName = Components.Schemas.Plan
