#!/usr/bin/env node
// Screenshots of the page against the stub server, in Debian's chromium through playwright-core
// (never `npx playwright install`). Also fails on page errors.
//   node dev/shots.mjs [out dir]   (default /tmp/inspector-shots)
import { spawn, execSync } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] || "/tmp/inspector-shots";
mkdirSync(out, { recursive: true });
const executablePath = execSync("command -v chromium", { shell: "/bin/bash" }).toString().trim();
const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

function stub(graph, extra = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, "stub-server.mjs"), "--graph", graph, "--port", "0", ...extra], { stdio: ["ignore", "pipe", "inherit"] });
    child.stdout.on("data", (d) => {
      const m = String(d).match(/http:\/\/\S+/);
      if (m) resolve({ url: m[0], stop: () => child.kill() });
    });
    child.on("exit", (code) => reject(new Error(`stub exited ${code}`)));
  });
}

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "inspector-shots-")), {
  executablePath, headless: true, args, viewport: { width: 1280, height: 800 } });
const errors = [];
const page = context.pages()[0] || (await context.newPage());
page.on("pageerror", (e) => errors.push(String(e)));
// A stopped stub cuts the event stream: that is not a page error.
page.on("console", (m) => m.type() === "error" && !m.text().includes("ERR_INCOMPLETE_CHUNKED_ENCODING") && errors.push(m.text()));
const shot = (name) => page.screenshot({ path: join(out, `${name}.png`) });
const runAll = async () => {
  await page.click('[data-testid="run-all"]');
  await page.waitForFunction(() => document.body.classList.contains("is-running"));
};
const settled = () => page.waitForFunction(() => document.body.dataset.ready === "true" && !document.body.classList.contains("is-running"), null, { timeout: 30000 });

const only = process.env.ONLY || "";
if (!only || only === "demo") {
  const s = await stub("demo");
  await page.emulateMedia({ colorScheme: "light" });
  await page.goto(s.url);
  await page.waitForSelector("body[data-ready=true]");
  await shot("demo-1280-light-initial");
  await runAll();
  await page.waitForFunction(() => document.querySelector('[data-testid="node-caption"]')?.dataset.status === "running");
  await page.waitForTimeout(500);
  await shot("demo-1280-light-running");
  await settled();
  await page.waitForTimeout(300);
  await shot("demo-1280-light-done");
  await page.fill('[data-testid="input-prompt-value"]', "a lighthouse at night");
  await page.press('[data-testid="input-prompt-value"]', "Enter");
  await page.waitForFunction(() => document.querySelector('[data-testid="node-caption"]')?.dataset.status === "stale");
  await page.click('[data-testid="timeline-toggle"]');
  await page.waitForTimeout(200);
  await shot("demo-1280-light-stale-timeline");
  await page.click('[data-testid="timeline-toggle"]');
  await page.click('[data-testid="play-stats"]');
  await page.hover('[data-testid="run-to-stats"]');
  await page.waitForTimeout(100);
  await shot("demo-1280-light-runmenu");
  await page.keyboard.press("Escape");
  await page.click('[data-testid="node-generate"] .name');
  await page.waitForTimeout(200);
  await shot("demo-1280-light-open-card");
  await runAll();
  await settled();
  await page.click('[data-testid="history-generate"] .counter');
  await page.waitForTimeout(200);
  await shot("demo-1280-light-history");
  await page.keyboard.press("Escape");
  await page.emulateMedia({ colorScheme: "dark" });
  await page.waitForTimeout(200);
  await shot("demo-1280-dark");
  await page.setViewportSize({ width: 640, height: 360 });
  await page.click('[data-testid="fit"]');
  await page.waitForTimeout(200);
  await shot("demo-640-dark");
  await page.emulateMedia({ colorScheme: "light" });
  await page.waitForTimeout(200);
  await shot("demo-640-light");
  await page.goto(`${s.url}?node=variations`);
  await page.waitForSelector("body[data-ready=true]");
  await page.waitForTimeout(300);
  await shot("demo-640-light-deeplink-variations");
  await page.emulateMedia({ colorScheme: "dark" });
  await page.goto(`${s.url}?node=caption`);
  await page.waitForSelector("body[data-ready=true]");
  await page.waitForTimeout(300);
  await shot("demo-640-dark-deeplink-caption");
  await page.setViewportSize({ width: 1280, height: 800 });
  s.stop();
}
if (!only || only === "many") {
  const s = await stub("many");
  await page.emulateMedia({ colorScheme: "light" });
  const t = Date.now();
  await page.goto(s.url);
  await page.waitForSelector("body[data-ready=true]", { timeout: 60000 });
  const load = Date.now() - t;
  await runAll();
  await settled();
  await page.waitForTimeout(300);
  await page.click('[data-testid="fit"]');
  await page.waitForTimeout(200);
  await shot("many-1280-fit");
  await page.mouse.move(640, 400);
  for (let i = 0; i < 6; i++) await page.mouse.wheel(0, -200);
  await page.waitForTimeout(200);
  await shot("many-1280-zoomed");
  await page.emulateMedia({ colorScheme: "dark" });
  await page.waitForTimeout(200);
  await shot("many-1280-zoomed-dark");
  console.log(`500 nodes: ready in ${load} ms`);
  s.stop();
}
console.log(errors.length ? `page errors: ${JSON.stringify(errors)}` : "no page errors");
await context.close();
process.exit(errors.length ? 1 : 0);
