import assert from "node:assert/strict";
import { test } from "node:test";

import { faceLabels, facesFromOutput, fitRect, previewCell } from "../../web/lib/face_overlay.js";

test("fitRect letterboxes a wide image in a square cell", () => {
  // 200x100 into 100x100 at (10, 20): scale 0.5, 100x50, centred vertically.
  assert.deepEqual(fitRect(200, 100, [10, 20, 100, 100]), { x: 10, y: 45, w: 100, h: 50, scale: 0.5 });
});

test("fitRect refuses empty sizes instead of dividing by zero", () => {
  assert.equal(fitRect(0, 100, [0, 0, 50, 50]), null);
  assert.equal(fitRect(100, 100, [0, 0, 0, 50]), null);
});

test("labels sit on the top centre of each face box, scaled into the cell", () => {
  const faces = [{ index: 0, box: [100, 40, 140, 90] }, { index: 3, box: [10, 0, 30, 20] }];
  const [a, b] = faceLabels(faces, 200, 100, [0, 0, 100, 100]);
  assert.equal(a.text, "0");
  assert.equal(a.x, 60); // (100 + 140) / 2 * 0.5
  assert.equal(a.y, 25 + 20); // letterbox offset 25 + 40 * 0.5
  assert.equal(b.text, "3");
  // a face touching the image top is pushed down so the label stays inside the picture
  assert.equal(b.y, 25 + b.size / 2);
});

test("label size follows the drawn face within bounds", () => {
  const big = faceLabels([{ index: 1, box: [0, 0, 1000, 1000] }], 1000, 1000, [0, 0, 1000, 1000])[0];
  const small = faceLabels([{ index: 1, box: [0, 0, 2, 2] }], 1000, 1000, [0, 0, 1000, 1000])[0];
  assert.equal(big.size, 32);
  assert.equal(small.size, 14);
});

test("facesFromOutput keeps well-formed faces per image and drops the rest", () => {
  const out = facesFromOutput({
    magicid_faces: [
      [{ index: 0, box: [1, 2, 3, 4] }, { index: 1, box: [5, 5, 5, 9] }, { index: "2", box: [0, 0, 1, 1] }],
      "not a list",
    ],
  });
  assert.deepEqual(out, [[{ index: 0, box: [1, 2, 3, 4] }], []]);
  assert.deepEqual(facesFromOutput({ images: [] }), []);
  assert.deepEqual(facesFromOutput(undefined), []);
});

test("a single preview is not drawn larger than the image", () => {
  // 100x50 image in a 400x400 cell below a widget at y=40: kept at 1:1, centred.
  assert.deepEqual(fitRect(100, 50, previewCell(400, 455, 40, 15), 1), { x: 150, y: 215, w: 100, h: 50, scale: 1 });
});
