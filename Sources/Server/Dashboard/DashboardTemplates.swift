import Mustache

/// The dashboard's pages, as Mustache templates (rendered by `swift-mustache`, which escapes
/// every `{{value}}` for HTML). `{{{…}}}` (not escaped) is used only for SVG the server draws
/// itself (`DashboardCharts`, which escapes every text it puts in). No inline script or style:
/// the Content-Security-Policy forbids both; `/static/dashboard.js` and `.css` are the only ones.
enum DashboardTemplates {
    static func library() throws -> MustacheLibrary {
        var library = MustacheLibrary()
        for (name, text) in all { try library.register(text, named: name) }
        return library
    }

    static let all: [(String, String)] = [
        ("header", header), ("footer", footer), ("signin", signin), ("overview", overview), ("project", project),
        ("build", build), ("registry", registry), ("confirm", confirm), ("usage", usage), ("tokens", tokens),
        ("token", token), ("tokenCreated", tokenCreated), ("members", members), ("memberAdded", memberAdded), ("error", error),
    ]

    static let header = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · Drydock</title>
        <link rel="stylesheet" href="/static/dashboard.css">
        <script src="/static/dashboard.js" defer></script>
        </head>
        <body>
        <header class="top">
          <a class="brand" href="/">Drydock</a>
          {{#nav}}
          <nav>
            <a href="/">Overview</a>
            {{#canUsage}}<a href="/usage">Usage</a>{{/canUsage}}
            <a href="/tokens">Tokens</a>
            {{#canMembers}}<a href="/members">Members</a>{{/canMembers}}
          </nav>
          <div class="who">
            <span>{{who}}</span>
            <form method="post" action="/signout" class="inline">
              <input type="hidden" name="csrf" value="{{csrf}}">
              <button type="submit" id="signout">Sign out</button>
            </form>
          </div>
          {{/nav}}
        </header>
        <main>
        {{#flash}}<p class="flash" role="status">{{flash}}</p>{{/flash}}
        """

    static let footer = """
        </main>
        <footer>Drydock · <a href="/openapi.yaml">API</a></footer>
        </body>
        </html>
        """

    static let signin = """
        {{> header}}
        <section class="signin">
          <h1>Sign in</h1>
          <p>Paste a Drydock token (<code>drydock tokens create</code>, or the one <code>drydock-server init</code> printed).
          The dashboard acts exactly as that token would; signing out ends the session.</p>
          {{#error}}<p class="error" role="alert">{{error}}</p>{{/error}}
          <form method="post" action="/signin">
            <label for="token">Token</label>
            <input type="password" id="token" name="token" autocomplete="off" required placeholder="ddu_…">
            <button type="submit">Sign in</button>
          </form>
        </section>
        {{> footer}}
        """

    static let overview = """
        {{> header}}
        <h1>{{organization}}</h1>
        {{#plan}}<p class="muted">{{plan}} plan</p>{{/plan}}
        {{#usage}}
        <section class="cards">
          <div class="card">
            <h2>Build minutes this month</h2>
            <p class="big">{{minutes}} <span class="muted">of {{included}} included</span></p>
            <progress max="100" value="{{includedPercent}}">{{includedPercent}}%</progress>
          </div>
          <div class="card">
            <h2>Cost so far</h2>
            <p class="big">{{cost}}</p>
            <p class="muted"><a href="/usage">Usage and invoice lines</a></p>
          </div>
          {{#caps}}
          <div class="card">
            <h2>{{name}} cap</h2>
            <p class="big">{{used}} <span class="muted">of {{limit}}</span></p>
            <progress class="{{#warn}}warn{{/warn}}" max="100" value="{{percent}}">{{percent}}%</progress>
          </div>
          {{/caps}}
        </section>
        {{#warnings}}<p class="warning">{{.}}</p>{{/warnings}}
        {{/usage}}
        {{#usageHidden}}<p class="muted">{{usageHidden}}</p>{{/usageHidden}}

        <h2>Running now</h2>
        {{#hasRunning}}
        <div class="scroll">
        <table>
          <thead><tr><th>Build</th><th>Project</th><th>Status</th><th>Platforms</th><th>Started</th></tr></thead>
          <tbody>
          {{#running}}
          <tr><td><a href="/builds/{{id}}">{{id}}</a></td><td><a href="/projects/{{projectId}}">{{projectName}}</a></td>
              <td><span class="status {{status}}">{{status}}</span></td><td>{{platforms}}</td><td>{{started}}</td></tr>
          {{/running}}
          </tbody>
        </table>
        </div>
        {{/hasRunning}}
        {{^running}}<p class="muted">No build is queued or running.</p>{{/running}}

        <h2>Projects</h2>
        <div class="scroll">
        <table>
          <thead><tr><th>Project</th><th>Last build</th><th>Status</th><th>When</th></tr></thead>
          <tbody>
          {{#projects}}
          <tr><td><a href="/projects/{{id}}">{{name}}</a></td>
              <td>{{#lastBuild}}<a href="/builds/{{id}}">{{id}}</a>{{/lastBuild}}{{^lastBuild}}<span class="muted">none yet</span>{{/lastBuild}}</td>
              <td>{{#lastBuild}}<span class="status {{status}}">{{status}}</span>{{/lastBuild}}</td>
              <td>{{#lastBuild}}{{when}}{{/lastBuild}}</td></tr>
          {{/projects}}
          {{^projects}}<tr><td colspan="4" class="muted">No project yet: <code>drydock projects create NAME</code>.</td></tr>{{/projects}}
          </tbody>
        </table>
        </div>
        {{#nextPage}}<p><a href="/?cursor={{nextPage}}">More projects →</a></p>{{/nextPage}}
        {{> footer}}
        """

    static let project = """
        {{> header}}
        <p class="crumbs"><a href="/">Overview</a> › project</p>
        <h1>{{name}}</h1>
        <p class="muted">{{id}} · <a href="/projects/{{id}}/registry">Registry</a></p>

        <h2>Builds</h2>
        <div class="scroll">
        <table class="builds">
          <thead><tr><th>Build</th><th>Status</th><th>Platforms</th><th>Duration</th><th>Cached steps</th><th>Saved</th><th>Started by</th><th>Isolated</th><th>Created</th></tr></thead>
          <tbody>
          {{#builds}}
          <tr><td><a href="/builds/{{id}}">{{id}}</a></td><td><span class="status {{status}}">{{status}}</span></td><td>{{platforms}}</td>
              <td>{{duration}}</td><td>{{cached}}</td><td>{{saved}}</td><td>{{startedBy}}</td><td>{{#isolated}}yes{{/isolated}}{{^isolated}}no{{/isolated}}</td><td>{{created}}</td></tr>
          {{/builds}}
          {{^builds}}<tr><td colspan="9" class="muted">No build yet: <code>drydock build --project {{id}} .</code></td></tr>{{/builds}}
          </tbody>
        </table>
        </div>
        {{#nextPage}}<p><a href="/projects/{{id}}?cursor={{nextPage}}">Older builds →</a></p>{{/nextPage}}

        <h2>Cache</h2>
        <table>
          <thead><tr><th>Platform</th><th>Size</th><th>Images</th><th>Last used</th></tr></thead>
          <tbody>
          {{#caches}}<tr><td>{{platform}}</td><td>{{size}}</td><td>{{images}}</td><td>{{lastUsed}}</td></tr>{{/caches}}
          {{^caches}}<tr><td colspan="4" class="muted">No builder has reported a cache for this project yet.</td></tr>{{/caches}}
          </tbody>
        </table>

        <h2>Settings</h2>
        {{#canWrite}}
        <form method="post" action="/projects/{{id}}/settings" class="settings">
          <input type="hidden" name="csrf" value="{{csrf}}">
          <label for="name">Name</label><input id="name" name="name" value="{{name}}" required maxlength="100">
          <label for="keepGigabytes">Cache kept per platform (GB)</label><input id="keepGigabytes" name="keepGigabytes" type="number" min="1" max="500" value="{{keepGigabytes}}">
          <label for="keepDays">Cache entries unused for (days)</label><input id="keepDays" name="keepDays" type="number" min="1" max="365" value="{{keepDays}}">
          <label for="emulation">Emulation</label>
          <select id="emulation" name="emulation">
            {{#emulations}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{value}}</option>{{/emulations}}
          </select>
          <button type="submit" id="save-settings">Save settings</button>
        </form>
        {{/canWrite}}
        {{^canWrite}}
        <p>Cache: {{keepGigabytes}} GB per platform, entries unused for {{keepDays}} days dropped. Emulation: {{emulation}}.</p>
        {{/canWrite}}
        <h2>Registry retention</h2>
        <ul>
          {{#retention}}<li>{{.}}</li>{{/retention}}
          {{^retention}}<li class="muted">Nothing is deleted by age or count.</li>{{/retention}}
        </ul>
        <p class="muted">Change it with <code>drydock registry retention set --project {{id}}</code>; preview with <code>drydock registry retention preview</code>.</p>
        {{> footer}}
        """

    static let build = """
        {{> header}}
        <p class="crumbs"><a href="/">Overview</a> › <a href="/projects/{{projectId}}">project</a> › build</p>
        <h1>Build {{id}}</h1>
        <p><span class="status {{status}}" id="build-status">{{status}}</span>
           {{#duration}} · {{duration}}{{/duration}} · created {{created}}{{#isolated}} · isolated{{/isolated}}</p>
        {{#error}}<p class="error">{{error}}</p>{{/error}}
        {{#canCancel}}
        <form method="post" action="/builds/{{id}}/cancel" class="inline">
          <input type="hidden" name="csrf" value="{{csrf}}">
          <button type="submit" id="cancel" class="danger">Cancel build</button>
        </form>
        {{/canCancel}}

        <section class="cards">
          <div class="card"><h2>Saved by the cache</h2><p class="big" id="saved">{{saved}}</p>
            <p class="muted">Each cached step's duration the last time it ran without the cache.</p></div>
          <div class="card"><h2>Steps</h2><p class="big">{{cachedSteps}} of {{totalSteps}} cached</p></div>
        </section>

        <h2>Image</h2>
        <dl class="facts">
          <dt>Image</dt><dd><code>{{image}}</code></dd>
          {{#digest}}<dt>Digest</dt><dd><code class="digest">{{digest}}</code></dd>{{/digest}}
          {{#hasTags}}<dt>Tags</dt><dd>{{#tags}}<code>{{.}}</code> {{/tags}}</dd>{{/hasTags}}
          <dt>Dockerfile</dt><dd><code>{{dockerfile}}</code>{{#target}} target <code>{{target}}</code>{{/target}}</dd>
          {{#hasBuildArgs}}<dt>Build arguments</dt><dd>{{#buildArgs}}<code>{{key}}={{value}}</code> {{/buildArgs}}</dd>{{/hasBuildArgs}}
        </dl>

        {{#platforms}}
        <section class="platform">
          <h2>{{platform}}</h2>
          <p class="muted">{{status}}{{#worker}} on {{worker}}{{/worker}}{{#emulated}} (emulated){{/emulated}}{{#duration}} · {{duration}}{{/duration}} · saved {{saved}}</p>
          {{#digest}}<p>Digest <code class="digest">{{digest}}</code></p>{{/digest}}
          {{#jobError}}<p class="error">{{jobError}}</p>{{/jobError}}
          <div class="timeline">{{{timeline}}}</div>
        </section>
        {{/platforms}}

        <h2>Log</h2>
        <pre id="log" class="log" data-build="{{id}}" data-offset="{{logOffset}}"{{#live}} data-follow="true"{{/live}}{{#multi}} data-multi="true"{{/multi}}>{{#logLines}}{{.}}
        {{/logLines}}</pre>
        {{#logTruncated}}<p class="muted">Showing the last {{logShown}} lines; <code>drydock builds logs {{id}}</code> has them all.</p>{{/logTruncated}}
        {{> footer}}
        """

    static let registry = """
        {{> header}}
        <p class="crumbs"><a href="/">Overview</a> › <a href="/projects/{{projectId}}">{{projectName}}</a> › registry</p>
        <h1>Registry of {{projectName}}</h1>
        <p class="muted">Pull with <code>{{host}}/{{projectId}}/NAME:TAG</code>.</p>
        {{#repositories}}
        <section class="repository">
          <h2>{{name}} <span class="muted">{{size}} · {{tagCount}} tag(s) · {{manifestCount}} manifest(s)</span></h2>
          <div class="scroll">
          <table>
            <thead><tr><th>Tag</th><th>Digest</th><th>Size</th><th>Platforms</th><th>Last push</th><th></th></tr></thead>
            <tbody>
            {{#tags}}
            <tr><td>{{tag}}</td><td><code class="digest">{{shortDigest}}</code></td><td>{{size}}</td><td>{{platforms}}</td><td>{{updated}}</td>
                <td>{{#canDelete}}<a class="danger" href="/projects/{{projectId}}/registry/delete?repository={{repositoryQuery}}&amp;tag={{tagQuery}}">Delete…</a>{{/canDelete}}</td></tr>
            {{/tags}}
            {{^tags}}<tr><td colspan="6" class="muted">No tags (untagged manifests only).</td></tr>{{/tags}}
            </tbody>
          </table>
          </div>
        </section>
        {{/repositories}}
        {{^repositories}}<p class="muted">Nothing pushed yet.</p>{{/repositories}}
        {{> footer}}
        """

    static let confirm = """
        {{> header}}
        <h1>{{heading}}</h1>
        <p>{{question}}</p>
        <form method="post" action="{{action}}">
          <input type="hidden" name="csrf" value="{{csrf}}">
          {{#fields}}<input type="hidden" name="{{name}}" value="{{value}}">{{/fields}}
          {{#choices}}<button type="submit" name="what" value="{{value}}" class="danger" id="confirm-{{value}}">{{label}}</button> {{/choices}}
          <a href="{{back}}">Keep it</a>
        </form>
        {{> footer}}
        """

    static let usage = """
        {{> header}}
        <h1>Usage · {{month}}</h1>
        <p><a href="/usage?month={{previous}}">← {{previous}}</a>{{#next}} · <a href="/usage?month={{next}}">{{next}} →</a>{{/next}}
           · <a href="/usage.csv?month={{month}}" id="csv">Download CSV</a></p>
        <section class="cards">
          <div class="card"><h2>Build minutes</h2><p class="big">{{minutes}} <span class="muted">of {{included}} included</span></p></div>
          <div class="card"><h2>Storage</h2><p class="big">{{storage}} GB-months <span class="muted">of {{includedStorage}} GB included</span></p></div>
          <div class="card"><h2>Estimated cost</h2><p class="big">{{total}}</p></div>
        </section>
        {{#warnings}}<p class="warning">{{.}}</p>{{/warnings}}
        <h2>Minutes per day</h2>
        <div class="chart">{{{chart}}}</div>
        <h2>By project</h2>
        <table>
          <thead><tr><th>Project</th><th>Minutes</th><th>Isolated minutes</th><th>Storage (GB-months)</th></tr></thead>
          <tbody>
          {{#byProject}}<tr><td><a href="/projects/{{id}}">{{name}}</a></td><td>{{minutes}}</td><td>{{isolated}}</td><td>{{storage}}</td></tr>{{/byProject}}
          {{^byProject}}<tr><td colspan="4" class="muted">No builds this month.</td></tr>{{/byProject}}
          </tbody>
        </table>
        <h2>Cost</h2>
        <table>
          <thead><tr><th>Item</th><th>Quantity</th><th>Unit price</th><th>Amount</th></tr></thead>
          <tbody>
          {{#lines}}<tr><td>{{item}}</td><td>{{quantity}}</td><td>{{unitPrice}}</td><td>{{amount}}</td></tr>{{/lines}}
          <tr class="total"><td colspan="3">Total</td><td>{{total}}</td></tr>
          </tbody>
        </table>
        <h2>Caps</h2>
        {{#caps}}
        <ul>
          {{#minutesCap}}<li>Build minutes: {{minutesCap}} per month ({{minutesPercent}}% used)</li>{{/minutesCap}}
          {{#spendCap}}<li>Spend: {{spendCap}} per month ({{spendPercent}}% used)</li>{{/spendCap}}
          <li>Warning at {{threshold}}% of a cap</li>
          {{^any}}<li class="muted">No cap set: <code>drydock usage caps set --minutes N</code> (owners and admins).</li>{{/any}}
        </ul>
        {{/caps}}
        {{> footer}}
        """

    static let tokens = """
        {{> header}}
        <h1>Tokens</h1>
        <div class="scroll">
        <table>
          <thead><tr><th>Name</th><th>Kind</th><th>Prefix</th><th>Project</th><th>Created</th><th>Last used</th><th>Expires</th><th></th></tr></thead>
          <tbody>
          {{#tokens}}
          <tr class="{{#revoked}}revoked{{/revoked}}"><td><a href="/tokens/{{id}}">{{name}}</a></td><td>{{kind}}</td><td><code>{{prefix}}</code></td><td>{{project}}</td>
              <td>{{created}}</td><td>{{lastUsed}}</td><td>{{expires}}</td>
              <td>{{#revoked}}revoked{{/revoked}}{{^revoked}}{{#canRevoke}}
                <form method="post" action="/tokens/{{id}}/revoke" class="inline">
                  <input type="hidden" name="csrf" value="{{csrf}}">
                  <button type="submit" class="danger" id="revoke-{{id}}">Revoke</button>
                </form>{{/canRevoke}}{{/revoked}}</td></tr>
          {{/tokens}}
          </tbody>
        </table>
        </div>
        {{#nextPage}}<p><a href="/tokens?cursor={{nextPage}}">More tokens →</a></p>{{/nextPage}}
        {{#canCreate}}
        <h2>Create a token</h2>
        <form method="post" action="/tokens" class="settings">
          <input type="hidden" name="csrf" value="{{csrf}}">
          <label for="token-name">Name</label><input id="token-name" name="name" required maxlength="100" placeholder="ci-main">
          <label for="token-kind">Kind</label>
          <select id="token-kind" name="kind">
            <option value="project">project: build and pull in one project (CI)</option>
            <option value="pull">pull: registry read-only for one project</option>
            <option value="user">user: acts as you</option>
            <option value="organization">organization: automation across the organization</option>
          </select>
          <label for="token-project">Project (project and pull tokens)</label>
          <select id="token-project" name="projectId">
            <option value="">—</option>
            {{#projects}}<option value="{{id}}">{{name}}</option>{{/projects}}
          </select>
          <label for="token-days">Expires after (days, empty: never)</label><input id="token-days" name="expiresInDays" type="number" min="1" max="3650">
          <button type="submit" id="create-token">Create token</button>
        </form>
        {{/canCreate}}
        {{> footer}}
        """

    static let token = """
        {{> header}}
        <p class="crumbs"><a href="/tokens">Tokens</a> › token</p>
        <h1>{{name}}</h1>
        <dl class="facts">
          <dt>Kind</dt><dd>{{kind}}</dd><dt>Prefix</dt><dd><code>{{prefix}}</code></dd>
          {{#project}}<dt>Project</dt><dd><a href="/projects/{{project}}">{{project}}</a></dd>{{/project}}
          <dt>Created</dt><dd>{{created}}</dd><dt>Last used</dt><dd>{{lastUsed}}</dd><dt>Expires</dt><dd>{{expires}}</dd>
          {{#revokedAt}}<dt>Revoked</dt><dd>{{revokedAt}}</dd>{{/revokedAt}}
        </dl>
        {{> footer}}
        """

    static let tokenCreated = """
        {{> header}}
        <h1>Token {{name}} created</h1>
        <p class="warning">Copy the secret now: it is shown on this page only, and Drydock keeps only its hash.</p>
        <p><code class="secret" id="secret">{{secret}}</code></p>
        <p>{{kind}} token{{#project}} for project <a href="/projects/{{project}}">{{project}}</a>{{/project}}{{#expires}}, expires {{expires}}{{/expires}}.</p>
        <p><a href="/tokens">Back to tokens</a></p>
        {{> footer}}
        """

    static let members = """
        {{> header}}
        <h1>Members</h1>
        <table>
          <thead><tr><th>Email</th><th>Role</th><th>Joined</th>{{#isAdmin}}<th>Change role</th><th></th>{{/isAdmin}}</tr></thead>
          <tbody>
          {{#members}}
          <tr><td>{{email}}</td><td>{{role}}</td><td>{{joined}}</td>
            {{#isAdmin}}
            <td><form method="post" action="/members/{{userId}}/role" class="inline">
                  <input type="hidden" name="csrf" value="{{csrf}}">
                  <select name="role" aria-label="role of {{email}}">{{#roles}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{value}}</option>{{/roles}}</select>
                  <button type="submit">Change</button></form></td>
            <td><form method="post" action="/members/{{userId}}/remove" class="inline">
                  <input type="hidden" name="csrf" value="{{csrf}}">
                  <button type="submit" class="danger">Remove</button></form></td>
            {{/isAdmin}}
          </tr>
          {{/members}}
          </tbody>
        </table>
        {{#isAdmin}}
        <h2>Add a member</h2>
        <form method="post" action="/members" class="settings">
          <input type="hidden" name="csrf" value="{{csrf}}">
          <label for="member-email">Email</label><input id="member-email" name="email" type="email" required maxlength="254">
          <label for="member-role">Role</label>
          <select id="member-role" name="role"><option>member</option><option>admin</option><option>owner</option></select>
          <button type="submit">Add member</button>
        </form>
        {{/isAdmin}}
        {{> footer}}
        """

    static let memberAdded = """
        {{> header}}
        <h1>{{email}} added as {{role}}</h1>
        <p class="warning">Their first token is shown on this page only; hand it to them over a safe channel.</p>
        <p><code class="secret">{{secret}}</code></p>
        <p><a href="/members">Back to members</a></p>
        {{> footer}}
        """

    static let error = """
        {{> header}}
        <h1>{{heading}}</h1>
        <p class="error" role="alert">{{message}}</p>
        <p><a href="{{back}}">{{backLabel}}</a></p>
        {{> footer}}
        """
}
