// MagicID front-end extension: face indices over FaceDetectMasks' preview, a face map
// on MultiIDApply / IDRestore that shows and sets which identity goes to which face, and the
// notes a node reports (e.g. that `auto` found no insightface pack) under the node.
// The logic lives in ./lib (pure, tested with `node --test tests/js/`); this file only
// wires it to ComfyUI's app and canvas.
import { app } from "../../scripts/app.js";
import { faceLabels, facesFromOutput, previewCell } from "./lib/face_overlay.js";
import {
  assignmentChips, chipRects, cycleIdentity, hitChip, identityCount, parseIndices, toggleFace,
} from "./lib/face_indices.js";
import { notesFromOutput, wrapNotes } from "./lib/node_notes.js";

const FACE_NODE = "FaceDetectMasks";
// Which nodes get the face map, what its chips stand for, and the text widget it edits.
const MAP_NODES = {
  MultiIDApply: { kind: "identities", widget: "face_indices" },
  IDRestore: { kind: "faces", widget: "faces_to_restore" },
};
const CHIP = { perRow: 3, height: 22, gap: 4, margin: 10 };
const PREVIEW_WIDGET = "$$canvas-image-preview"; // the front end's image preview widget
const NOTE_NODES = new Set([FACE_NODE, "IdentityFromImages", "SEGSToFaces"]); // nodes whose UI output has magicid_notes
const NOTE = { font: 12, line: 15, pad: 6 };

// Where the front end drew the node's images: one selected image (at most at 1:1 scale) in
// the preview widget's area, or a grid of cells it records in node.imageRects.
function previewCells(node) {
  const widget = node.widgets?.find((w) => w.name === PREVIEW_WIDGET);
  if (node.imageIndex != null && widget) {
    const sizeText = app.extensionManager?.setting?.get?.("Comfy.Node.AllowImageSizeDraw") ? 15 : 0;
    const cell = previewCell(node.size[0], node.size[1], widget.y ?? widget.last_y ?? 0, sizeText);
    return [{ image: node.imageIndex, cell, maxScale: 1 }];
  }
  return (node.imageRects ?? []).map((cell, image) => ({ image, cell, maxScale: Infinity }));
}

function drawFaceLabels(node, ctx) {
  const perImage = node.magicidFaces;
  if (!perImage?.length || !node.imgs?.length) return;
  node.magicidLabels = [];
  ctx.save();
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  previewCells(node).forEach(({ image, cell, maxScale }) => {
    const img = node.imgs[image];
    const faces = perImage[image] ?? [];
    if (!img) return;
    for (const label of faceLabels(faces, img.naturalWidth, img.naturalHeight, cell, { maxScale })) {
      ctx.beginPath();
      ctx.arc(label.x, label.y, label.size * 0.65, 0, 2 * Math.PI);
      ctx.fillStyle = "rgba(0, 0, 0, 0.65)";
      ctx.fill();
      ctx.fillStyle = "#ffd84d";
      ctx.font = `bold ${Math.round(label.size)}px sans-serif`;
      ctx.fillText(label.text, label.x, label.y);
      node.magicidLabels.push(label);
    }
  });
  ctx.restore();
}

// The node's last notes, in a dark box just under the node (drawn over the canvas, not resizing it).
function drawNotes(node, ctx) {
  if (!node.magicidNotes?.length || node.flags?.collapsed) return;
  ctx.save();
  ctx.font = `${NOTE.font}px sans-serif`;
  const width = node.size[0];
  const lines = wrapNotes(node.magicidNotes, width - 2 * NOTE.pad, (t) => ctx.measureText(t).width);
  node.magicidNoteLines = lines; // what was drawn (read by tests/host/web/check_extension.mjs)
  const top = node.size[1] + NOTE.pad;
  ctx.fillStyle = "rgba(0, 0, 0, 0.8)";
  ctx.beginPath();
  ctx.roundRect(0, top, width, lines.length * NOTE.line + 2 * NOTE.pad, 5);
  ctx.fill();
  ctx.fillStyle = "#ffd84d";
  ctx.textAlign = "left";
  ctx.textBaseline = "top";
  lines.forEach((line, i) => ctx.fillText(line, NOTE.pad, top + NOTE.pad + i * NOTE.line));
  ctx.restore();
}

// Nodes 2.0 (the Vue node mode of comfyui-frontend-package 1.5x): nodes are DOM elements and the
// canvas never draws them (no onDrawForeground), so the labels go on a layer over the <img> of
// the node's image preview, placed by the same faceLabels, in the image element's own pixels.
const DOM_LAYER = "magicid-face-labels";

function vueNodesMode() {
  return Boolean(window.LiteGraph?.vueNodesMode);
}

function shownImageIndex(node, img) {
  const index = (node.magicidImages ?? []).findIndex((ref) => img.src.includes(encodeURIComponent(ref.filename)));
  return Math.max(0, index);
}

function placeDomLabels(node) {
  const img = document.querySelector(`[data-node-id="${node.id}"] .image-preview img`);
  const faces = node.magicidFaces?.[img ? shownImageIndex(node, img) : 0];
  if (!img || !faces || !img.complete || !img.naturalWidth) return false;
  const holder = img.parentElement;
  if (getComputedStyle(holder).position === "static") holder.style.position = "relative";
  let layer = holder.querySelector(`:scope > .${DOM_LAYER}`);
  if (!layer) {
    layer = document.createElement("div");
    layer.className = DOM_LAYER;
    Object.assign(layer.style, { position: "absolute", inset: "0", pointerEvents: "none" });
    holder.appendChild(layer);
    new ResizeObserver(() => placeDomLabels(node)).observe(img);
  }
  const box = [img.offsetLeft, img.offsetTop, img.offsetWidth, img.offsetHeight];
  const labels = faceLabels(faces, img.naturalWidth, img.naturalHeight, box);
  layer.replaceChildren(...labels.map((label) => {
    const badge = document.createElement("span");
    badge.textContent = label.text;
    Object.assign(badge.style, {
      position: "absolute", left: `${label.x}px`, top: `${label.y}px`, transform: "translate(-50%, -50%)",
      width: `${label.size * 1.3}px`, height: `${label.size * 1.3}px`, borderRadius: "50%",
      background: "rgba(0, 0, 0, 0.65)", color: "#ffd84d", font: `bold ${Math.round(label.size)}px sans-serif`,
      display: "flex", alignItems: "center", justifyContent: "center",
    });
    return badge;
  }));
  node.magicidLabels = labels;
  node.magicidPreviewBox = box;
  return true;
}

// The node's preview is rendered after its output arrives: try until it is there (about 10 s).
function placeDomLabelsSoon(node, tries = 40) {
  if (!placeDomLabels(node) && tries > 0) setTimeout(() => placeDomLabelsSoon(node, tries - 1), 250);
}

// Nodes 2.0: the notes in a dark box just under the node's element, as wide as the node; the
// browser wraps the text. Returns false while the node has no element yet.
const DOM_NOTES = "magicid-notes";

function placeDomNotes(node) {
  const element = document.querySelector(`[data-node-id="${node.id}"]`);
  if (!element) return false;
  let box = element.querySelector(`:scope > .${DOM_NOTES}`);
  if (!node.magicidNotes?.length) {
    box?.remove();
    node.magicidNoteLines = [];
    return true;
  }
  if (!box) {
    box = document.createElement("div");
    box.className = DOM_NOTES;
    Object.assign(box.style, {
      position: "absolute", left: "0", right: "0", top: `calc(100% + ${NOTE.pad}px)`, pointerEvents: "none",
      padding: `${NOTE.pad}px`, borderRadius: "5px", background: "rgba(0, 0, 0, 0.8)", color: "#ffd84d",
      font: `${NOTE.font}px/${NOTE.line}px sans-serif`, whiteSpace: "normal", overflowWrap: "anywhere",
    });
    element.appendChild(box);
  }
  box.replaceChildren(...node.magicidNotes.map((note) => {
    const line = document.createElement("div");
    line.textContent = note;
    return line;
  }));
  node.magicidNoteLines = box.innerText.split("\n"); // what was drawn (read by tests/host/web/check_extension.mjs)
  node.magicidNoteBox = [box.offsetLeft, box.offsetTop, box.offsetWidth, box.offsetHeight, element.offsetWidth,
    element.offsetHeight];
  return true;
}

function placeDomNotesSoon(node, tries = 40) {
  if (!placeDomNotes(node) && tries > 0) setTimeout(() => placeDomNotesSoon(node, tries - 1), 250);
}

function linkedNode(node, inputName) {
  const input = node.inputs?.find((i) => i.name === inputName || i.type === inputName);
  if (input?.link == null) return null;
  const graph = node.graph ?? app.graph;
  const link = graph.getLink?.(input.link) ?? graph.links?.[input.link];
  return link ? graph.getNodeById(link.origin_id) : null;
}

// Faces the upstream FaceDetectMasks found in its last run (the most of any image).
function faceCount(node) {
  const source = linkedNode(node, "faces");
  const perImage = source?.type === FACE_NODE ? source.magicidFaces ?? [] : [];
  return Math.max(0, ...perImage.map((faces) => faces.length));
}

// The nodes up a node's IDENTITIES input, nearest first (for identityCount).
function identityChain(node) {
  const chain = [];
  const seen = new Set();
  for (let source = linkedNode(node, "IDENTITIES"); source && !seen.has(source.id);
    source = linkedNode(source, "IDENTITIES")) {
    seen.add(source.id);
    const includeParents = source.widgets?.find((w) => w.name === "include_parents")?.value;
    chain.push({ type: source.type, includeParents: includeParents !== false });
  }
  return chain;
}

function addFaceMap(node, { kind, widget: widgetName }) {
  const text = node.widgets?.find((w) => w.name === widgetName);
  if (!text) return; // a node version without that widget: nothing to edit
  const chipsNow = (width) => {
    const nFaces = faceCount(node);
    let nIdentities = identityCount(identityChain(node));
    if (kind === "identities") {
      const { mode, indices } = safeParse(text.value);
      nIdentities = Math.max(nIdentities, mode === "list" ? indices.length : 0);
    }
    // no faces known yet (FaceDetectMasks has not run): no chips, just a hint
    const chips = nFaces ? assignmentChips(kind, safeText(text.value), nIdentities, nFaces) : [];
    return { chips, rects: chipRects(chips.length, width, CHIP), nFaces, nIdentities };
  };
  const widget = {
    name: "magicid_face_map",
    type: "magicid_face_map",
    value: null,
    serialize: false, // drawn from the text widget; saving it would shift widgets_values
    options: { serialize: false },
    draw(ctx, _node, width, y) {
      this.lastY = y;
      this.lastWidth = width; // Nodes 2.0 draws it on its own canvas, narrower than the node
      const { chips, rects, nFaces } = chipsNow(width);
      ctx.save();
      ctx.font = "12px sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      if (!chips.length) {
        ctx.fillStyle = "#999";
        const hint = nFaces ? "connect identities to place them" : "run FaceDetectMasks to see the faces";
        ctx.fillText(hint, width / 2, y + CHIP.height / 2);
      }
      this.drawnChips = chips.map(({ label, active }) => ({ label, active })); // read by tests/host/web
      chips.forEach((chip, i) => {
        const [x, cy, w, h] = rects[i];
        ctx.fillStyle = chip.active ? "#2d5a88" : "#3a3a3a";
        ctx.beginPath();
        ctx.roundRect(x, y + cy, w, h, 5);
        ctx.fill();
        ctx.fillStyle = chip.active ? "#fff" : "#aaa";
        ctx.fillText(chip.label, x + w / 2, y + cy + h / 2);
      });
      ctx.restore();
    },
    mouse(event, pos) {
      if (event.type !== "pointerdown") return false;
      const { chips, rects, nFaces, nIdentities } = chipsNow(this.lastWidth ?? node.size[0]);
      const hit = hitChip(rects, pos[0], pos[1] - (this.lastY ?? 0));
      if (hit < 0 || nFaces === 0) return false;
      const value = kind === "identities"
        ? cycleIdentity(safeText(text.value), chips[hit].key, nIdentities, nFaces)
        : toggleFace(safeText(text.value), chips[hit].key, nFaces);
      text.value = value;
      text.callback?.(value);
      redrawFaceMap(node);
      return true;
    },
    computeSize(width) {
      const count = Math.max(1, chipsNow(width).chips.length);
      return [width, Math.ceil(count / CHIP.perRow) * (CHIP.height + CHIP.gap) + 4];
    },
  };
  node.addCustomWidget(widget);
  // typing in the text widget, or rewiring faces or identities, changes the chips
  after(node, "onConnectionsChange", () => redrawFaceMap(node));
  const typed = text.callback;
  text.callback = function (...args) {
    const result = typed?.apply(this, args);
    redrawFaceMap(node);
    return result;
  };
}

// The canvas redraws every widget when it is dirty; Nodes 2.0 draws a canvas widget on its own
// canvas, again only when told (widget.triggerDraw, set by the front end's WidgetLegacy).
function redrawFaceMap(node) {
  node.widgets?.find((w) => w.name === "magicid_face_map")?.triggerDraw?.();
  node.setDirtyCanvas(true, true);
}

function redrawFaceMaps(graph) {
  for (const node of graph?.nodes ?? []) if (MAP_NODES[node.type]) redrawFaceMap(node);
}

// A typo in the text must not break drawing; the node itself reports it on run.
function safeParse(value) {
  try {
    return parseIndices(value);
  } catch {
    return { mode: "auto", indices: [] };
  }
}

function safeText(value) {
  try {
    parseIndices(value);
    return String(value ?? "");
  } catch {
    return "auto";
  }
}

// Runs fn(node, ...arguments) after the method of a node type (its prototype) or of one node.
function after(target, method, fn) {
  const owner = target.prototype ?? target;
  const original = owner[method];
  owner[method] = function (...args) {
    const result = original?.apply(this, args);
    fn(this, ...args);
    return result;
  };
}

app.registerExtension({
  name: "MagicID.faces",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name === FACE_NODE) {
      after(nodeType, "onExecuted", (node, output) => {
        node.magicidFaces = facesFromOutput(output);
        node.magicidImages = Array.isArray(output?.images) ? output.images : [];
        if (vueNodesMode()) placeDomLabelsSoon(node);
        redrawFaceMaps(node.graph); // the face maps downstream now know the faces
        node.setDirtyCanvas(true, true);
      });
      after(nodeType, "onDrawForeground", drawFaceLabels);
    }
    if (NOTE_NODES.has(nodeData.name)) {
      after(nodeType, "onExecuted", (node, output) => {
        node.magicidNotes = notesFromOutput(output);
        if (vueNodesMode()) placeDomNotesSoon(node);
        node.setDirtyCanvas(true, true);
      });
      after(nodeType, "onDrawForeground", drawNotes);
    }
    const map = MAP_NODES[nodeData.name];
    if (map) after(nodeType, "onNodeCreated", (node) => addFaceMap(node, map));
  },
});
