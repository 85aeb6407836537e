// Drive Debian's chromium against a running ComfyUI: load the real front end, load a
// workflow, queue it, and report what the MagicID extension did. Used by
// tests/host/test_web_host.py, which makes the assertions.
//   node check_extension.mjs <server url> <workflow.json> <screenshot.png> [baseline]
// "baseline" runs the same steps without waiting for MagicID's overlay (the test runs it
// with the extension disabled, to tell the front end's own console errors from ours).
// Prints one JSON object: console errors, registered extensions, per-node overlay state.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { applySettings } from "./front_end_settings.mjs";

const [url, workflowPath, screenshotPath, mode] = process.argv.slice(2);
const baseline = mode === "baseline";
const workflow = JSON.parse(readFileSync(workflowPath, "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
const report = { consoleErrors: [], pageErrors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.on("console", (msg) => {
    if (msg.type() === "error") report.consoleErrors.push(`${msg.text()} @ ${msg.location().url ?? ""}`);
  });
  page.on("pageerror", (err) => report.pageErrors.push(String(err.stack || err)));
  await drive(page);
  await page.screenshot({ path: screenshotPath });
} catch (err) {
  report.failure = String(err?.stack || err);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));

async function drive(page) {
  await applySettings(url);
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => window.app?.graph && window.app.extensions?.length > 0, null, { timeout: 120000 });
  report.extensions = await page.evaluate(() => window.app.extensions.map((e) => e.name));
  report.vueNodes = await page.evaluate(() => Boolean(window.LiteGraph.vueNodesMode));

  await page.evaluate(async (wf) => {
    await window.app.loadGraphData(wf);
    window.app.canvas.ds.scale = 0.6;
    window.app.canvas.ds.offset = [0, 0];
    await window.app.queuePrompt(0, 1);
  }, workflow);
  // Wait for the whole run to reach the page (the preview shows; the front end's own requests
  // after a run, e.g. 1.5x's jobs list, are made in both modes), then for the overlay to be drawn.
  await page.waitForFunction(
    () => ["FaceDetectMasks", "PreviewImage"].every(
      (type) => window.app.graph.nodes.some((n) => n.type === type && n.imgs?.length)),
    null, { timeout: 240000 });
  await page.waitForTimeout(2000);
  if (baseline) return;
  await page.waitForFunction(() => {
    window.app.canvas.setDirty(true, true);
    return window.app.graph.nodes.some((n) => n.magicidLabels?.length);
  }, null, { timeout: 60000, polling: 500 });
  report.nodes = await page.evaluate(() => window.app.graph.nodes.map((n) => ({
    id: n.id,
    type: n.type,
    faces: n.magicidFaces ?? null,
    labels: n.magicidLabels ?? null,
    notes: n.magicidNotes ?? null,
    noteLines: n.magicidNoteLines ?? null,
    noteBox: n.magicidNoteBox ?? null, // Nodes 2.0: the notes' box and the node element's size
    previewBox: n.magicidPreviewBox ?? null, // Nodes 2.0: the preview <img>'s box the labels sit on
    size: [n.size[0], n.size[1]],
    widgets: (n.widgets ?? []).map((w) => ({ name: w.name, type: w.type, y: w.y ?? w.last_y ?? null })),
    serialized: n.serialize().widgets_values ?? null,
  })));
  // The face map: put each node that has one next to FaceDetectMasks, wire its faces,
  // let it draw, and click its first chip as a user would.
  report.faceMaps = await page.evaluate(async () => {
    const { app } = window;
    const detect = app.graph.nodes.find((n) => n.type === "FaceDetectMasks");
    const maps = [];
    for (const type of ["MultiIDApply", "IDRestore"]) {
      if (!window.LiteGraph.registered_node_types[type]) continue;
      const node = window.LiteGraph.createNode(type);
      node.pos = [detect.pos[0] + 420, detect.pos[1] + 300 * maps.length];
      app.graph.add(node);
      detect.connect(0, node, node.inputs.findIndex((i) => i.name === "faces"));
      let identities = 0;
      if (type === "MultiIDApply" && window.LiteGraph.registered_node_types.IdentityFromImages) {
        // two people: IdentityFromImages -> IdentityFromImages -> MultiIDApply.identities
        let previous = null;
        for (let i = 0; i < 2; i++) {
          const person = window.LiteGraph.createNode("IdentityFromImages");
          person.pos = [node.pos[0] - 400, node.pos[1] + 150 * i];
          app.graph.add(person);
          if (previous) previous.connect(0, person, person.inputs.findIndex((s) => s.name === "identities"));
          previous = person;
          identities += 1;
        }
        previous.connect(0, node, node.inputs.findIndex((s) => s.name === "identities"));
      }
      app.canvas.draw(true, true);
      await new Promise((r) => setTimeout(r, 300));
      app.canvas.draw(true, true);
      const map = node.widgets.find((w) => w.name === "magicid_face_map");
      const textName = type === "IDRestore" ? "faces_to_restore" : "face_indices";
      const text = node.widgets.find((w) => w.name === textName);
      if (!map || !text) {
        maps.push({ type, map: !!map, text: !!text });
        continue;
      }
      const before = text.value;
      const clicked = map.mouse({ type: "pointerdown" }, [20, (map.lastY ?? 0) + 5], node);
      // what the map shows once the click is drawn (Nodes 2.0 draws it only when told)
      await new Promise((r) => setTimeout(r, 300));
      app.canvas.draw(true, true);
      const serialized = node.serialize().widgets_values;
      const realWidgets = node.widgets.filter((w) => w.serialize !== false).length;
      maps.push({ type, map: true, text: true, identities, lastY: map.lastY ?? null, before, after: text.value, clicked,
        drawn: map.drawnChips ?? null, serializedCount: serialized.length, realWidgets,
        hasNull: serialized.some((v) => v === null) });
    }
    app.canvas.draw(true, true);
    return maps;
  });
}
