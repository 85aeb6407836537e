// Drive Debian's chromium against a running ComfyUI: load the real front end, load a
// workflow, queue it, and report what the MagicID extension did. Used by
// tests/host/test_web_host.py, which makes the assertions.
//   node check_extension.mjs <server url> <workflow.json> <screenshot.png>
// Prints one JSON object: console errors, registered extensions, per-node overlay state.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [url, workflowPath, screenshotPath] = process.argv.slice(2);
const workflow = JSON.parse(readFileSync(workflowPath, "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
const report = { consoleErrors: [], pageErrors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.on("console", (msg) => msg.type() === "error" && report.consoleErrors.push(msg.text()));
  page.on("pageerror", (err) => report.pageErrors.push(String(err)));
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => window.app?.graph && window.app.extensions?.length > 0, null, { timeout: 120000 });
  report.extensions = await page.evaluate(() => window.app.extensions.map((e) => e.name));

  await page.evaluate(async (wf) => {
    await window.app.loadGraphData(wf);
    window.app.canvas.ds.scale = 0.6;
    window.app.canvas.ds.offset = [0, 0];
    await window.app.queuePrompt(0, 1);
  }, workflow);
  // Wait for the FaceDetectMasks run to reach the node, then for the overlay to be drawn.
  await page.waitForFunction(
    () => window.app.graph.nodes.some((n) => n.type === "FaceDetectMasks" && n.magicidFaces?.length),
    null, { timeout: 240000 });
  await page.waitForFunction(() => {
    window.app.canvas.setDirty(true, true);
    return window.app.graph.nodes.some((n) => n.magicidLabels?.length);
  }, null, { timeout: 60000, polling: 500 });
  report.nodes = await page.evaluate(() => window.app.graph.nodes.map((n) => ({
    id: n.id,
    type: n.type,
    faces: n.magicidFaces ?? null,
    labels: n.magicidLabels ?? null,
    widgets: (n.widgets ?? []).map((w) => ({ name: w.name, type: w.type, value: w.value ?? null })),
    serialized: n.serialize().widgets_values ?? null,
  })));
  // The face map: click each chip of the first node that has one, as a user would.
  report.faceMapClicks = await page.evaluate(() => {
    const node = window.app.graph.nodes.find((n) => n.widgets?.some((w) => w.name === "magicid_face_map"));
    if (!node) return null;
    const map = node.widgets.find((w) => w.name === "magicid_face_map");
    const text = node.widgets.find((w) => w.name === "face_indices");
    const before = text.value;
    const clicked = map.mouse({ type: "pointerdown" }, [20, (map.lastY ?? 0) + 5], node);
    return { before, after: text.value, clicked };
  });
  await page.screenshot({ path: screenshotPath });
} catch (err) {
  report.failure = String(err?.stack || err);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
