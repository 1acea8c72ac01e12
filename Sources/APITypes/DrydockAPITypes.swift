/// The types of the Drydock management API, generated at build time from `openapi.yaml` and
/// shared by the server and the client.
public enum DrydockAPI {
    /// The prefix of every management operation's path.
    public static let pathPrefix = "/api/v1"
}
