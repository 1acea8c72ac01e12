/// The dashboard's one stylesheet and one script, served from `/static/` (the
/// Content-Security-Policy allows no inline style or script).
enum DashboardAssets {
    static let css = """
        :root { --fg: #1d232b; --muted: #66707c; --line: #dde2e8; --bg: #f7f8fa; --accent: #1f6feb;
                --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --cached: #8c959f; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
        a { color: var(--accent); text-decoration: none; }
        a:hover { text-decoration: underline; }
        header.top { display: flex; flex-wrap: wrap; align-items: center; gap: 12px 24px; padding: 10px 20px;
                     background: #fff; border-bottom: 1px solid var(--line); }
        header .brand { font-weight: 700; font-size: 18px; color: var(--fg); }
        header nav { display: flex; gap: 16px; flex-wrap: wrap; }
        header .who { margin-left: auto; display: flex; gap: 10px; align-items: center; color: var(--muted); font-size: 13px; overflow-wrap: anywhere; }
        main { max-width: 1180px; margin: 0 auto; padding: 16px 20px 40px; }
        footer { text-align: center; color: var(--muted); font-size: 13px; padding: 20px; }
        h1 { font-size: 24px; margin: 8px 0 4px; overflow-wrap: anywhere; }
        h2 { font-size: 17px; margin: 24px 0 8px; overflow-wrap: anywhere; }
        .muted { color: var(--muted); }
        .crumbs { color: var(--muted); font-size: 13px; margin: 0; }
        table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
        th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
        th { font-size: 12px; text-transform: uppercase; letter-spacing: .03em; color: var(--muted); }
        .scroll { overflow-x: auto; }
        .scroll th, .scroll td { white-space: nowrap; overflow-wrap: normal; }
        .status { white-space: nowrap; }
        code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; overflow-wrap: anywhere; }
        .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: 12px; margin: 12px 0; }
        .card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px; }
        .card h2 { margin: 0 0 4px; font-size: 13px; color: var(--muted); text-transform: uppercase; letter-spacing: .03em; }
        .big { font-size: 22px; margin: 0; }
        progress { width: 100%; height: 10px; }
        progress.warn { accent-color: var(--warn); }
        .status { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; font-weight: 600; background: #eef1f4; }
        .status.succeeded { background: #dafbe1; color: var(--ok); }
        .status.failed { background: #ffebe9; color: var(--bad); }
        .status.running { background: #ddf4ff; color: var(--accent); }
        .status.canceled { color: var(--muted); }
        .error { color: var(--bad); overflow-wrap: anywhere; }
        .warning { color: var(--warn); }
        .flash { background: #dafbe1; border: 1px solid #aceebb; padding: 8px 12px; border-radius: 6px; }
        form.inline { display: inline; margin: 0; }
        form.settings { display: grid; grid-template-columns: minmax(140px, 260px) minmax(0, 360px); gap: 8px 12px; align-items: center;
                        background: #fff; border: 1px solid var(--line); padding: 14px; border-radius: 6px; }
        form.settings button { grid-column: 2; justify-self: start; }
        input, select, button { font: inherit; padding: 5px 8px; border: 1px solid var(--line); border-radius: 5px; max-width: 100%; }
        button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
        button.danger, a.danger { color: var(--bad); }
        button.danger { background: #fff; border-color: var(--bad); }
        .signin { max-width: 520px; margin: 40px auto; background: #fff; border: 1px solid var(--line); padding: 20px 24px; border-radius: 8px; }
        .signin form { display: flex; flex-direction: column; gap: 8px; }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: #fff; border: 1px solid var(--line); padding: 10px 14px; }
        dl.facts dt { color: var(--muted); }
        dl.facts dd { margin: 0; overflow-wrap: anywhere; }
        pre.log { background: #0d1117; color: #e6edf3; padding: 12px; border-radius: 6px; max-height: 520px; overflow: auto;
                  font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre-wrap; overflow-wrap: anywhere; }
        .secret { display: inline-block; background: #fff8c5; padding: 6px 10px; border: 1px solid #d4a72c; border-radius: 5px; }
        tr.revoked td { color: var(--muted); text-decoration: line-through; }
        svg.timeline, svg.bars { background: #fff; border: 1px solid var(--line); border-radius: 6px; }
        svg text { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; fill: var(--fg); }
        svg text.axis, svg text.note { fill: var(--muted); }
        svg .step rect { fill: var(--accent); }
        svg .step.cached rect { fill: var(--cached); }
        svg .step.failed rect { fill: var(--bad); }
        svg .step.running rect { fill: #54aeff; }
        svg .day rect { fill: var(--accent); }
        @media (max-width: 640px) {
          main { padding: 10px; }
          form.settings { grid-template-columns: 1fr; }
          form.settings button { grid-column: 1; }
          th, td { padding: 4px 6px; }
        }
        """

    /// Live updates on a build's page: follows the log (the same JSON Lines the API streams) and
    /// reloads the page once the build has ended. Everything is added as text, never as HTML.
    static let javascript = """
        "use strict";
        (function () {
          var log = document.getElementById("log");
          if (!log || log.dataset.follow !== "true") { return; }
          var buildId = log.dataset.build;
          var offset = parseInt(log.dataset.offset || "0", 10);
          var statusBadge = document.getElementById("build-status");
          var multi = log.dataset.multi === "true";

          function append(text) {
            var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
            log.appendChild(document.createTextNode(text + "\\n"));
            if (atEnd) { log.scrollTop = log.scrollHeight; }
          }

          function show(entry) {
            var prefix = multi && entry.platform ? "[" + entry.platform + "] " : "";
            if (entry.kind === "log" && typeof entry.line === "string") {
              append(prefix + entry.line);
            } else if (entry.kind === "step" && entry.step) {
              var s = entry.step;
              var what = s.cached ? "CACHED" : (s.status === "running" ? "" : s.status.toUpperCase());
              append(prefix + "#" + s.number + " " + (what ? what + " " : "") + s.instruction);
            } else if (entry.kind === "status") {
              statusBadge.textContent = entry.status;
              statusBadge.className = "status " + entry.status;
              document.body.dataset.finished = entry.status;
              window.location.reload();
            }
          }

          function follow() {
            var url = "/builds/" + encodeURIComponent(buildId) + "/log?follow=true&offset=" + offset;
            fetch(url, { credentials: "same-origin", headers: { "Accept": "application/jsonl" } }).then(function (response) {
              if (!response.ok || !response.body) { return; }
              var reader = response.body.getReader();
              var decoder = new TextDecoder();
              var buffer = "";
              function pump() {
                return reader.read().then(function (chunk) {
                  if (chunk.done) { return; }
                  buffer += decoder.decode(chunk.value, { stream: true });
                  var newline;
                  while ((newline = buffer.indexOf("\\n")) >= 0) {
                    var line = buffer.slice(0, newline);
                    buffer = buffer.slice(newline + 1);
                    if (!line.trim()) { continue; }
                    var entry;
                    try { entry = JSON.parse(line); } catch (e) { continue; }
                    if (typeof entry.offset === "number") { offset = entry.offset + 1; }
                    show(entry);
                  }
                  return pump();
                });
              }
              return pump();
            }).catch(function () {
              // The connection dropped (a restart, a proxy's timeout): pick up where it stopped.
              window.setTimeout(follow, 2000);
            });
          }
          follow();
        })();
        """
}
