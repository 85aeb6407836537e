// Load each given workflow into the real ComfyUI front end, as opening the file does, and
// report what the app made of it: node types, links and each node's widget values after a
// save. Used by tests/host/test_web_host.py.
//   node load_workflows.mjs <server url> <workflow.json>...
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { applySettings } from "./front_end_settings.mjs";

const [url, ...paths] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
const report = { workflows: {}, errors: [] };
try {
  await applySettings(url);
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.on("console", (msg) => {
    if (msg.type() === "error") report.errors.push(`${msg.text()} @ ${msg.location().url ?? ""}`);
  });
  page.on("pageerror", (err) => report.errors.push(String(err.stack || err)));
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => window.app?.graph && window.app.extensions?.length > 0, null, { timeout: 120000 });
  for (const path of paths) {
    const workflow = JSON.parse(readFileSync(path, "utf8"));
    report.workflows[path] = await page.evaluate(async (wf) => {
      await window.app.loadGraphData(wf);
      const saved = window.app.graph.serialize();
      return {
        nodes: saved.nodes.map((n) => ({ id: n.id, type: n.type, widgets_values: n.widgets_values ?? null,
          inputs: (n.inputs ?? []).map((i) => i.name) })),
        links: saved.links.map((l) => (Array.isArray(l) ? l.slice(0, 6) : [l.id, l.origin_id, l.origin_slot,
          l.target_id, l.target_slot, l.type])),
        // node types the app does not know (1.5x also flags loaders whose model file is missing: not this)
        missing: window.app.graph.nodes.filter((n) => !window.LiteGraph.registered_node_types[n.type])
          .map((n) => n.type),
      };
    }, workflow);
  }
} catch (err) {
  report.failure = String(err?.stack || err);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
