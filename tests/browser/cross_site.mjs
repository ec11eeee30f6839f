// Cross-site requests against the inspector, from a real Chromium (playwright-core, Debian's
// chromium). Usage: node cross_site.mjs <inspector url> <screenshot dir>; env DAGGR_PLAYWRIGHT
// = path to playwright-core.
// This script serves an "attacker" page itself, on another loopback port, and opens it twice:
// as http://127.0.0.1:<other port> (same site as the inspector, another origin) and as
// http://localhost:<other port> (another site). Each time the page tries what a page of
// another origin can do without the user: forms (text/plain, urlencoded, multipart) posting
// JSON-looking bodies, `no-cors` fetches (text/plain, a typeless Blob, no body) and `cors`
// fetches with application/json (preflighted). The Rust side (tests/inspector_browser.rs)
// then checks through the API that nothing changed. Last, the inspector's own page sets an
// input with a same-origin fetch, which must work (the check does not refuse everything).
// Prints one JSON line of findings; exits 1 on the first failed check.
import { checks, launch } from "./launch.mjs";
import { createServer } from "node:http";
import { join } from "node:path";

const [url, shots] = process.argv.slice(2);
const target = new URL(url);
const browser = await launch(shots);
const { context, page } = browser;
const { fail } = checks(browser, shots, "failure-cross-site.png");

// The attacker's page: forms posting into hidden frames, then fetches. It reports, per
// attempt, whether the browser let the page see an answer (it never should for no-cors).
const attacker = (inspector) => `<!doctype html><meta charset="utf-8"><title>attacker</title>
<body><script>
const base = ${JSON.stringify(inspector)};
const sheet = base + "/api/sheets/default";
const forms = [
  // enctype text/plain with one field: name + "=" + value, a JSON object on the wire.
  ["text/plain", sheet + "/run", '{"scope":"all","x":"', '"}'],
  ["text/plain", sheet + "/inputs", '{"node":"count","port":"min","value":99,"x":"', '"}'],
  ["text/plain", base + "/api/sheets", '{"name":"evil-form","x":"', '"}'],
  ["text/plain", sheet + "/cancel", "x", "y"],
  ["application/x-www-form-urlencoded", base + "/api/sheets", "name", "evil-urlencoded"],
  ["multipart/form-data", base + "/api/blobs", "file", "evil"],
];
const sent = [];
forms.forEach(([enctype, action, name, value], i) => {
  const frame = document.createElement("iframe");
  frame.name = "f" + i;
  document.body.appendChild(frame);
  const form = document.createElement("form");
  form.method = "POST";
  form.enctype = enctype;
  form.action = action;
  form.target = frame.name;
  const input = document.createElement("input");
  input.name = name;
  input.value = value;
  form.appendChild(input);
  document.body.appendChild(form);
  form.submit();
  sent.push("form " + enctype + " " + action);
});
const json = (o) => JSON.stringify(o);
const attempts = [
  ["no-cors", "POST", sheet + "/run", json({ scope: "all" })],
  ["no-cors", "POST", sheet + "/inputs", json({ node: "count", port: "min", value: 98 })],
  ["no-cors", "POST", base + "/api/sheets", json({ name: "evil-no-cors" })],
  ["no-cors", "POST", sheet + "/run", new Blob([json({ scope: "all" })])],
  ["no-cors", "POST", base + "/api/sheets", new Blob([json({ name: "evil-blob" })])],
  ["no-cors", "POST", sheet + "/cancel", undefined],
  ["cors", "POST", sheet + "/run", json({ scope: "all" }), "application/json"],
  ["cors", "POST", sheet + "/inputs", json({ node: "count", port: "min", value: 97 }), "application/json"],
  ["cors", "POST", base + "/api/sheets", json({ name: "evil-cors" }), "application/json"],
  ["cors", "DELETE", sheet, undefined],
];
window.results = Promise.all(attempts.map(async ([mode, method, url, body, type]) => {
  const headers = type ? { "content-type": type } : {};
  try {
    const r = await fetch(url, { mode, method, body, headers, credentials: "include" });
    return { mode, method, url, seen: r.type !== "opaque", status: r.status };
  } catch (e) {
    return { mode, method, url, blocked: String(e) };
  }
})).then((fetches) => ({ forms: sent, fetches }));
</script></body>`;

const server = createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(attacker(`${target.protocol}//${target.host}`));
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const port = server.address().port;
if (String(port) === target.port) await fail("the attacker's port is the inspector's");

const findings = { attacker_port: port };
for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
  await page.goto(`${origin}/`);
  const results = await page.evaluate(() => window.results);
  // Give the form posts (into their frames) time to reach the server.
  await page.waitForTimeout(1500);
  const readable = results.fetches.filter((f) => f.seen && f.status < 400);
  if (readable.length) await fail(`${origin}: a cross-origin answer was readable: ${JSON.stringify(readable)}`);
  findings[origin] = { forms: results.forms.length, fetches: results.fetches.map((f) => f.blocked ? `${f.mode} ${f.method}: blocked` : `${f.mode} ${f.method}: ${f.status}`) };
}

// The inspector's own page: same origin, JSON, so it must work.
await page.goto(url);
await page.waitForSelector("body[data-ready=true]", { timeout: 30000 }).catch(() => fail("the inspector page is not ready"));
const own = await page.evaluate(async () => {
  const r = await fetch("/api/sheets/default/inputs", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ node: "count", port: "min", value: 5 }),
  });
  return r.status;
});
if (own !== 200) await fail(`the page's own request was refused: ${own}`);
findings.same_origin_status = own;
await page.screenshot({ path: join(shots, "9-cross-site.png") });
server.close();
console.log(JSON.stringify(findings));
await context.close();
