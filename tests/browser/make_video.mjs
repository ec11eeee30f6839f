// Records a short WebM (VP8) in headless Chromium from a canvas, for the inspector's video
// preview test: the test machine has no ffmpeg, and no pure-Rust crate writes a video the
// browser plays without pulling in an encoder; Chromium's MediaRecorder is already here.
// Usage: node make_video.mjs <out.webm>; env DAGGR_PLAYWRIGHT = path to playwright-core.
// 15 frames of 64x48 in changing colours, about half a second.
import { launch } from "./launch.mjs";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [out] = process.argv.slice(2);
const { context, page } = await launch(join(tmpdir(), "daggr-make-video"));
await page.setContent('<canvas id="c" width="64" height="48"></canvas>');
const base64 = await page.evaluate(async () => {
  const canvas = document.getElementById("c");
  const ctx = canvas.getContext("2d");
  const recorder = new MediaRecorder(canvas.captureStream(30), { mimeType: "video/webm;codecs=vp8" });
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  recorder.start();
  for (let i = 0; i < 15; i++) {
    ctx.fillStyle = `hsl(${i * 24}, 80%, 50%)`;
    ctx.fillRect(0, 0, 64, 48);
    await new Promise((r) => setTimeout(r, 33));
  }
  recorder.stop();
  await new Promise((r) => (recorder.onstop = r));
  const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
});
writeFileSync(out, Buffer.from(base64, "base64"));
await context.close();
