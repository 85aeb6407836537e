// Open workflows in a front end whose server has none of their model files, and report what
// the app offers for the missing files: per workflow the page's text once the app has listed
// them (comfyui-frontend-package 1.2x: its "Missing Models" dialog; 1.5x: the issues panel behind
// "View details"), and the labels and links of its buttons. Used by tests/host/test_web_host.py.
//   node missing_models.mjs <server url> <workflow.json>...
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { applySettings } from "./front_end_settings.mjs";

const [url, ...paths] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
const report = { workflows: {} };
try {
  await applySettings(url);
  for (const path of paths) {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    await page.goto(url, { waitUntil: "load" });
    await page.waitForFunction(() => window.app?.graph && window.app.extensions?.length > 0, null, { timeout: 120000 });
    const workflow = JSON.parse(readFileSync(path, "utf8"));
    await page.evaluate(async (wf) => { await window.app.loadGraphData(wf); }, workflow);
    const details = page.getByText("View details").first();
    try {
      await details.waitFor({ timeout: 15000 });
      await details.click();
    } catch {
      // 1.2x shows its dialog at once
    }
    await page.waitForTimeout(3000);
    report.workflows[path] = await page.evaluate(() => ({
      text: document.body.innerText,
      buttons: Array.from(document.querySelectorAll("button, a")).map((b) => ({
        label: (b.innerText || b.getAttribute("aria-label") || b.title || "").trim(), href: b.href ?? null })),
    }));
    await page.close();
  }
} catch (err) {
  report.failure = String(err?.stack || err);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
