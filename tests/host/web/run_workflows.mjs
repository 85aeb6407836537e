// Open each workflow in the real ComfyUI front end, run it, and report where its nodes are
// once the previews show; optionally screenshot it, cropped to the graph.
//   node run_workflows.mjs <server url> <job.json>
// job.json: {"workflows": [{"name", "path", "screenshot": png path or null, "focus": [node ids] or null}],
//            "substitutes": {real class: stand-in class}, "fast": {input name: value},
//            "fastPerNode": {class: {input name: value}}}
// The prompt is the app's own (graphToPrompt) with the stand-in loaders and the fast settings
// put in, queued under the page's client id so the app shows the results on its nodes as usual.
// Prints one JSON object: per workflow the title height, every node's pos and size, the groups.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { applySettings } from "./front_end_settings.mjs";

const [url, jobPath] = process.argv.slice(2);
const job = JSON.parse(readFileSync(jobPath, "utf8"));
const SCALE = 0.8; // screenshot zoom: above the front end's low-quality threshold, so text is drawn
const MARGIN = 160; // screen px around the graph: room for the app's menus, outside the crop
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
  for (const item of job.workflows) {
    report.workflows[item.name] = await runOne(page, item);
  }
} catch (err) {
  report.failure = String(err?.stack || err);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));

async function runOne(page, item) {
  const workflow = JSON.parse(readFileSync(item.path, "utf8"));
  const promptId = await page.evaluate(async ({ wf, substitutes, fast, fastPerNode }) => {
    const { app } = window;
    await app.loadGraphData(wf);
    const { output } = await app.graphToPrompt();
    for (const node of Object.values(output)) {
      node.class_type = substitutes[node.class_type] ?? node.class_type;
      for (const [name, value] of Object.entries({ ...fast, ...fastPerNode[node.class_type] })) {
        if (name in node.inputs && !Array.isArray(node.inputs[name])) node.inputs[name] = value;
      }
    }
    const response = await fetch("/prompt", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prompt: output, client_id: app.api.clientId }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(`prompt refused: ${JSON.stringify(body).slice(0, 2000)}`);
    return body.prompt_id;
  }, { wf: workflow, substitutes: job.substitutes, fast: job.fast, fastPerNode: job.fastPerNode });

  const status = await page.evaluate(async (id) => {
    for (;;) {
      const history = await (await fetch(`/history/${id}`)).json();
      const entry = history[id];
      if (entry?.status?.completed !== undefined) {
        const shown = Object.entries(entry.outputs).filter(([, out]) => out.images?.length).map(([nid]) => nid);
        // A long run on a busy CPU can drop the websocket, and with it "executed" messages:
        // hand any result the page missed to the app's own "executed" handler, from the history.
        const { app } = window;
        for (const nid of shown) {
          const node = app.graph.getNodeById(Number(nid));
          if (node && !node.imgs?.length) {
            app.api.dispatchCustomEvent("executed", { node: nid, display_node: nid, output: entry.outputs[nid], prompt_id: id });
          }
        }
        return { ...entry.status, shown };
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }, promptId);
  if (status.status_str !== "success") {
    return { failure: `run failed: ${JSON.stringify(status.messages).slice(0, 3000)}` };
  }
  // every node that got images (outputs, LoadImage's own picture) has them loaded and drawn
  const waiting = await page.evaluate(async (shown) => {
    const { app } = window;
    const loaded = (imgs) => imgs.length > 0 && imgs.every((img) => img.complete && img.naturalWidth > 0);
    // Nodes 2.0 (1.5x) shows a batch of images in the node's DOM element and leaves node.imgs empty
    const inDom = (n) => Array.from(document.querySelectorAll(`[data-node-id="${n.id}"] img`));
    const pending = () => app.graph.nodes
      .filter((n) => shown.includes(String(n.id)) || n.type === "LoadImage")
      .filter((n) => !loaded(n.imgs ?? []) && !(window.LiteGraph.vueNodesMode && loaded(inDom(n))));
    for (let i = 0; i < 240 && pending().length; i++) {
      // The app loads a node's images when it draws the node, and it draws only the nodes
      // in view: bring each waiting node into view in turn.
      for (const node of pending()) {
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [100 - node.pos[0], 100 - node.pos[1]];
        app.canvas.setDirty(true, true);
        app.canvas.draw(true, true);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    return pending().map((n) => `${n.id} ${n.type}`);
  }, status.shown);
  if (waiting.length) return { failure: `no preview shown on ${waiting.join(", ")} (results: ${status.shown})` };
  await page.waitForTimeout(800); // let the app size the nodes for their previews
  const measured = await page.evaluate(() => {
    const { app } = window;
    app.canvas.draw(true, true);
    return {
      titleHeight: window.LiteGraph.NODE_TITLE_HEIGHT,
      nodes: app.graph.nodes.map((n) => ({ id: n.id, type: n.type, pos: [n.pos[0], n.pos[1]],
        size: [n.size[0], n.size[1]] })),
      groups: app.graph.groups.map((g) => ({ title: g.title, bounding: Array.from(g._bounding ?? g.boundingRect) })),
    };
  });
  if (item.screenshot) await screenshot(page, measured, item.screenshot, item.focus);
  return measured;
}

// The graph (or only the nodes in `focus`) at SCALE, cropped to it.
async function screenshot(page, measured, path, focus) {
  const shown = focus ? measured.nodes.filter((n) => focus.includes(n.id)) : measured.nodes;
  const boxes = shown.map((n) => [n.pos[0], n.pos[1] - measured.titleHeight, n.size[0],
    n.size[1] + measured.titleHeight]).concat(focus ? [] : measured.groups.map((g) => g.bounding));
  const left = Math.min(...boxes.map((b) => b[0])) - 20;
  const top = Math.min(...boxes.map((b) => b[1])) - 20;
  const width = Math.max(...boxes.map((b) => b[0] + b[2])) - left + 20;
  const height = Math.max(...boxes.map((b) => b[1] + b[3])) - top + 20;
  await page.setViewportSize({ width: Math.ceil(width * SCALE + 2 * MARGIN), height: Math.ceil(height * SCALE + 2 * MARGIN) });
  await page.waitForTimeout(500);
  const rect = await page.evaluate(({ left, top, scale, margin }) => {
    const { app } = window;
    app.canvas.ds.scale = scale;
    app.canvas.ds.offset = [margin / scale - left, margin / scale - top];
    app.canvas.setDirty(true, true);
    app.canvas.draw(true, true);
    const r = app.canvas.canvas.getBoundingClientRect();
    return { x: r.left, y: r.top };
  }, { left, top, scale: SCALE, margin: MARGIN });
  await page.waitForTimeout(800); // DOM widgets (prompt and note text) follow the canvas
  await page.screenshot({ path, clip: { x: rect.x + MARGIN, y: rect.y + MARGIN, width: width * SCALE, height: height * SCALE } });
  await page.setViewportSize({ width: 1600, height: 1000 });
}
