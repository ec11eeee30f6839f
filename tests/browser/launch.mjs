// Starting Debian's chromium through playwright-core, as every browser test here does.
// env DAGGR_PLAYWRIGHT = path to playwright-core (scripts/setup/browser.sh installs it).
import { createRequire } from "node:module";
import { execSync } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.DAGGR_PLAYWRIGHT);

const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/// A fresh headless browser profile with a 1280x800 page; `errors` collects the page's
/// uncaught errors. `clipboardFor`: an origin allowed to read and write the clipboard.
export async function launch(shots, { clipboardFor } = {}) {
  mkdirSync(shots, { recursive: true });
  const executablePath = execSync("command -v chromium", { shell: "/bin/bash" }).toString().trim();
  const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "daggr-ui-")), {
    executablePath, headless: true, args: ARGS, viewport: { width: 1280, height: 800 } });
  if (clipboardFor) {
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: clipboardFor });
  }
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  return { context, page, errors };
}

/// Resolves once `node`'s card shows a result for `port`. A node's `done` status comes with
/// its event and its outputs with the state fetched just after (inspector/API.md), so an
/// output read right after the status can still be the placeholder.
export const outputShown = (page, node, port, timeout = 10000) =>
  page.waitForFunction(([n, p]) => {
    const v = document.querySelector(`[data-testid="node-${n}"] [data-testid="output-${p}"]`);
    return v && !v.classList.contains("empty");
  }, [node, port], { timeout });
