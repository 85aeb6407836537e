import assert from "node:assert/strict";
import { test } from "node:test";

import { notesFromOutput, wrapNotes } from "../../web/lib/node_notes.js";

test("notes come from the UI output; malformed entries are dropped", () => {
  assert.deepEqual(notesFromOutput({ magicid_notes: [" no pack found ", "", 3, null, "Ann: dlib"] }),
    ["no pack found", "Ann: dlib"]);
  assert.deepEqual(notesFromOutput({ images: [] }), []);
  assert.deepEqual(notesFromOutput(undefined), []);
});

test("notes wrap at word boundaries within the width, each note on a new line", () => {
  const measure = (text) => text.length; // one unit a character
  const lines = wrapNotes(["looked in /a/models/antelopev2 and /b", "second"], 12, measure);
  assert.deepEqual(lines, ["looked in", "/a/models/antelopev2", "and /b", "second"]);
  assert.ok(lines.every((l) => measure(l) <= 12 || !l.includes(" ")));
});
