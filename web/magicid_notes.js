// MagicID: what a node left out or did not use (a SEG outside the image, unused pose frames,
// poses with skeletons off) is said on the node itself, not only in the server log. Nodes send
// these as "magicid_notes" in their UI output; they are drawn under the node, one line each.
import { app } from "../../scripts/app.js";

const LINE = 14;
const MAX_LINES = 6;

function wrap(ctx, text, width) {
  const lines = [];
  let line = "";
  for (const word of text.split(" ")) {
    const next = line ? `${line} ${word}` : word;
    if (line && ctx.measureText(next).width > width) {
      lines.push(line);
      line = word;
    } else {
      line = next;
    }
  }
  if (line) lines.push(line);
  return lines;
}

function drawNotes(node, ctx) {
  const notes = node.magicidNotes;
  if (!notes?.length || node.flags?.collapsed) return;
  ctx.save();
  ctx.font = "12px sans-serif";
  ctx.textAlign = "left";
  ctx.textBaseline = "top";
  ctx.fillStyle = "#e8c15a";
  const lines = notes.flatMap((note) => wrap(ctx, `⚠ ${note}`, node.size[0] - 8));
  const top = node.size[1] + 6;
  lines.slice(0, MAX_LINES).forEach((line, i) => ctx.fillText(line, 4, top + i * LINE));
  if (lines.length > MAX_LINES) ctx.fillText(`… ${lines.length - MAX_LINES} more lines`, 4, top + MAX_LINES * LINE);
  ctx.restore();
}

app.registerExtension({
  name: "MagicID.notes",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      if (!output || !("magicid_notes" in output)) return;
      this.magicidNotes = (output.magicid_notes ?? []).map(String);
      this.setDirtyCanvas(true, true);
    };
    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      onDrawForeground?.apply(this, arguments);
      drawNotes(this, ctx);
    };
  },
});
