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
/// uncaught errors, and its console errors too with `consoleErrors` (where no request is
/// expected to be refused). `clipboardFor`: an origin allowed to read and write the clipboard.
export async function launch(shots, { clipboardFor, consoleErrors = false } = {}) {
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
  if (consoleErrors) {
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  }
  return { context, page, errors };
}

/// The checks of a script that stops at its first failure, on what `launch` returned:
/// `fail(message)` saves a screenshot as `failureShot` in `shots`, prints the message and the
/// page's errors, closes the browser and exits 1; `check(cond, message)` fails unless `cond`;
/// `waitFor(fn, arg, message)` waits for `fn(arg)` to hold in the page, else fails;
/// `ready()` waits for the inspector page's first render, else fails.
export function checks({ context, page, errors }, shots, failureShot) {
  const fail = async (message) => {
    await page.screenshot({ path: join(shots, failureShot) }).catch(() => {});
    console.error(`FAIL: ${message}\npage errors: ${JSON.stringify(errors)}`);
    await context.close();
    process.exit(1);
  };
  const check = async (cond, message) => { if (!cond) await fail(message); };
  const waitFor = (fn, arg, message, timeout = 15000) =>
    page.waitForFunction(fn, arg, { timeout }).catch(() => fail(message));
  const ready = () => page.waitForSelector("body[data-ready=true]", { timeout: 15000 }).catch(() => fail("the page never became ready"));
  return { fail, check, waitFor, ready };
}

/// The selector of node `name`'s card.
export const card = (name) => `[data-testid="node-${name}"]`;

/// `url` with one more query parameter (`name=value`).
export const withParam = (url, param) => `${url}${url.includes("?") ? "&" : "?"}${param}`;

/// Resolves once `node`'s card shows a result for `port`. A node's `done` status comes with
/// its event and its outputs with the state fetched just after (inspector/API.md), so an
/// output read right after the status can still be the placeholder.
export const outputShown = (page, node, port, timeout = 10000) =>
  page.waitForFunction(([n, p]) => {
    const v = document.querySelector(`[data-testid="node-${n}"] [data-testid="output-${p}"]`);
    return v && !v.classList.contains("empty");
  }, [node, port], { timeout });
