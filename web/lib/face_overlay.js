// Where to draw each face's index over a FaceDetectMasks preview. Pure functions: no DOM,
// no ComfyUI, tested with `node --test tests/js/`.

// The rectangle an image of imgW x imgH occupies when fitted ("contain") and centred in a
// cell, as ComfyUI's front end draws previews: scale = min(cellW / imgW, cellH / imgH),
// and at most `maxScale` (a single preview is never drawn larger than the image).
export function fitRect(imgW, imgH, [cellX, cellY, cellW, cellH], maxScale = Infinity) {
  if (!(imgW > 0 && imgH > 0 && cellW > 0 && cellH > 0)) return null;
  const scale = Math.min(cellW / imgW, cellH / imgH, maxScale);
  const w = imgW * scale;
  const h = imgH * scale;
  return { x: cellX + (cellW - w) / 2, y: cellY + (cellH - h) / 2, w, h, scale };
}

// The faces a FaceDetectMasks run reported, from its UI output
// ({magicid_faces: [[{index, box: [x0, y0, x1, y1]}, ...] per image]}).
// Anything malformed is dropped rather than drawn in the wrong place.
export function facesFromOutput(output) {
  const perImage = output?.magicid_faces;
  if (!Array.isArray(perImage)) return [];
  return perImage.map((faces) =>
    (Array.isArray(faces) ? faces : []).filter(
      (f) => Number.isInteger(f?.index) && Array.isArray(f.box) && f.box.length === 4 &&
        f.box.every(Number.isFinite) && f.box[2] > f.box[0] && f.box[3] > f.box[1],
    ),
  );
}

// One label per face: its index, centred on the top edge of its box, in canvas units.
// The font grows with the drawn face, within [minSize, maxSize].
export function faceLabels(faces, imgW, imgH, cell, { minSize = 14, maxSize = 32, maxScale = Infinity } = {}) {
  const rect = fitRect(imgW, imgH, cell, maxScale);
  if (!rect) return [];
  return faces.map(({ index, box: [x0, y0, x1] }) => {
    const size = Math.max(minSize, Math.min(maxSize, (x1 - x0) * rect.scale * 0.35));
    return {
      text: String(index),
      x: rect.x + ((x0 + x1) / 2) * rect.scale,
      y: Math.max(rect.y + size / 2, rect.y + y0 * rect.scale),
      size,
    };
  });
}

// The cell a single preview is fitted into: the node's width, from the preview widget's
// top down to the node's bottom, less the line where the image size may be written.
export function previewCell(nodeW, nodeH, widgetY, sizeTextH = 0) {
  return [0, widgetY, nodeW, nodeH - widgetY - sizeTextH];
}
