// The face-number texts of MultiIDApply (`face_indices`) and IDRestore (`faces_to_restore`),
// as the face map widget edits them.
// MultiIDApply: entry i is the face that identity i goes to ("2, 0, -1"; -1 = nowhere;
// "auto" = matched by similarity). IDRestore: the faces to repair ("0, 2" or "all").
// Pure functions: no DOM, no ComfyUI, tested with `node --test tests/js/`.

export const NONE = -1;

// "0, 2,1" -> {mode: "list", indices: [0, 2, 1]}; "", "auto", "all" -> that mode.
// Throws with a message a user understands when the text is not a list of integers.
export function parseIndices(text) {
  const t = String(text ?? "").trim().toLowerCase();
  if (t === "" || t === "auto" || t === "all") return { mode: t || "auto", indices: [] };
  const parts = t.split(/[\s,;]+/).filter(Boolean);
  const indices = parts.map((p) => {
    if (!/^-?\d+$/.test(p)) throw new Error(`"${p}" is not a face index (use numbers like "0, 2")`);
    return Number(p);
  });
  return { mode: "list", indices };
}

export function formatIndices(indices) {
  return indices.join(", ");
}

// Next face for one identity when its chip is clicked: -1 (none), 0, 1, ... n-1, then -1.
export function nextFace(face, nFaces) {
  if (nFaces <= 0) return NONE;
  return face + 1 >= nFaces ? NONE : face + 1;
}

// MultiIDApply: the text after clicking identity `identity`'s chip. "auto" first becomes
// the identity order (identity i -> face i), the default the node itself uses.
export function cycleIdentity(text, identity, nIdentities, nFaces) {
  const { mode, indices } = parseIndices(text);
  const list = mode === "list" ? [...indices] : [...Array(nIdentities).keys()];
  while (list.length < nIdentities) list.push(NONE);
  list[identity] = nextFace(list[identity], nFaces);
  return formatIndices(list);
}

// IDRestore: the text after switching face `face` on or off; every face on is "all".
// The last face stays on: IDRestore reads an empty text as "all", not as "none".
export function toggleFace(text, face, nFaces) {
  const { mode, indices } = parseIndices(text);
  const on = new Set(mode === "list" ? indices : [...Array(nFaces).keys()]);
  if (on.has(face)) on.delete(face);
  else on.add(face);
  const sorted = [...on].filter((i) => i >= 0 && i < nFaces).sort((a, b) => a - b);
  if (sorted.length === 0) return String(text);
  return sorted.length === nFaces ? "all" : formatIndices(sorted);
}

// Chips to draw: MultiIDApply shows one per identity ("ID 0 → 2"), IDRestore one per face.
export function assignmentChips(kind, text, nIdentities, nFaces) {
  const { mode, indices } = parseIndices(text);
  if (kind === "identities") {
    return [...Array(nIdentities).keys()].map((i) => {
      if (mode !== "list") return { key: i, label: `ID ${i} → auto`, active: true };
      const face = indices[i] ?? NONE;
      return { key: i, label: `ID ${i} → ${face === NONE ? "none" : `face ${face}`}`, active: face !== NONE };
    });
  }
  const on = new Set(mode === "list" ? indices : [...Array(nFaces).keys()]);
  return [...Array(nFaces).keys()].map((f) => ({ key: f, label: `face ${f}`, active: on.has(f) }));
}

// Chip rectangles in rows of `perRow`, and which chip a point hits (or -1).
export function chipRects(count, width, { perRow = 3, height = 22, gap = 4, margin = 10 } = {}) {
  const w = (width - 2 * margin - (perRow - 1) * gap) / perRow;
  return [...Array(count).keys()].map((i) => [
    margin + (i % perRow) * (w + gap), Math.floor(i / perRow) * (height + gap), w, height,
  ]);
}

export function hitChip(rects, x, y) {
  return rects.findIndex(([rx, ry, rw, rh]) => x >= rx && x <= rx + rw && y >= ry && y <= ry + rh);
}

// How many identities reach a node, from the nodes up its IDENTITIES chain, nearest first:
// each IdentityFromImages appends one person and passes on what came before; KinIDBlend
// starts a new list: the child, or both parents and the child.
export function identityCount(chain) {
  let count = 0;
  for (const step of chain) {
    if (step.type === "IdentityFromImages") count += 1;
    else if (step.type === "KinIDBlend") return count + (step.includeParents ? 3 : 1);
    else break;
  }
  return count;
}
