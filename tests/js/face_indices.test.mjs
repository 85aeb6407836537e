import assert from "node:assert/strict";
import { test } from "node:test";

import {
  assignmentChips, chipRects, cycleIdentity, formatIndices, hitChip, identityCount, nextFace, parseIndices,
  toggleFace,
} from "../../web/lib/face_indices.js";

test("parseIndices reads lists, auto and all", () => {
  assert.deepEqual(parseIndices("2, 0,-1"), { mode: "list", indices: [2, 0, -1] });
  assert.deepEqual(parseIndices(" 1 3 "), { mode: "list", indices: [1, 3] });
  assert.deepEqual(parseIndices(""), { mode: "auto", indices: [] });
  assert.deepEqual(parseIndices("ALL"), { mode: "all", indices: [] });
});

test("parseIndices explains a bad entry", () => {
  assert.throws(() => parseIndices("0, two"), /"two" is not a face index/);
  assert.throws(() => parseIndices("1.5"), /not a face index/);
});

test("nextFace cycles none -> 0 .. n-1 -> none", () => {
  const seen = [];
  let f = -1;
  for (let i = 0; i < 4; i++) seen.push((f = nextFace(f, 3)));
  assert.deepEqual(seen, [0, 1, 2, -1]);
  assert.equal(nextFace(0, 0), -1);
});

test("cycleIdentity moves one identity and leaves the others", () => {
  assert.equal(cycleIdentity("2, 0", 1, 2, 3), "2, 1");
  assert.equal(cycleIdentity("2, 2", 0, 2, 3), "-1, 2");
  // from auto: start from the identity order, then move identity 1
  assert.equal(cycleIdentity("auto", 1, 3, 4), "0, 2, 2");
  // a shorter list is padded with "nowhere" for the identities it misses
  assert.equal(cycleIdentity("1", 2, 3, 3), "1, -1, 0");
});

test("toggleFace switches one face and folds a full set to all", () => {
  assert.equal(toggleFace("all", 1, 3), "0, 2");
  assert.equal(toggleFace("0, 2", 1, 3), "all");
  assert.equal(toggleFace("0", 0, 3), "0"); // the last face stays: "" would mean all
  assert.equal(toggleFace("0, 7", 2, 3), "0, 2"); // indices past the last face are dropped
});

test("chips describe identities or faces", () => {
  assert.deepEqual(assignmentChips("identities", "1, -1", 2, 3).map((c) => [c.label, c.active]),
    [["ID 0 → face 1", true], ["ID 1 → none", false]]);
  assert.deepEqual(assignmentChips("identities", "auto", 1, 3).map((c) => c.label), ["ID 0 → auto"]);
  assert.deepEqual(assignmentChips("faces", "0, 2", 0, 3).map((c) => c.active), [true, false, true]);
});

test("chip rectangles tile rows and hit testing finds the chip under a point", () => {
  const rects = chipRects(4, 220, { perRow: 2, height: 20, gap: 4, margin: 10 });
  assert.deepEqual(rects[0], [10, 0, 98, 20]);
  assert.deepEqual(rects[3], [112, 24, 98, 20]);
  assert.equal(hitChip(rects, 150, 30), 3);
  assert.equal(hitChip(rects, 109, 10), -1); // in the gap
  assert.equal(formatIndices([3, 1]), "3, 1");
});

test("identityCount follows IdentityFromImages chains and KinIDBlend's output", () => {
  assert.equal(identityCount([]), 0);
  assert.equal(identityCount([{ type: "IdentityFromImages" }, { type: "IdentityFromImages" }]), 2);
  assert.equal(identityCount([{ type: "KinIDBlend", includeParents: true }, { type: "IdentityFromImages" }]), 3);
  assert.equal(identityCount([{ type: "IdentityFromImages" }, { type: "KinIDBlend", includeParents: false }]), 2);
  assert.equal(identityCount([{ type: "Reroute" }, { type: "IdentityFromImages" }]), 0); // unknown: stop
});
