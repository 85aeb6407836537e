// The notes a MagicID node reports with its result (UI output `magicid_notes`: a list of texts,
// e.g. "no insightface pack found, so auto used dlib ..."), wrapped into lines for the canvas.
// Pure functions: no DOM, no ComfyUI, tested with `node --test tests/js/`.

// The texts of a node's UI output; anything that is not a non-empty string is dropped.
export function notesFromOutput(output) {
  const notes = output?.magicid_notes;
  if (!Array.isArray(notes)) return [];
  return notes.filter((n) => typeof n === "string" && n.trim()).map((n) => n.trim());
}

// Greedy word wrap: each note starts a new line; a line is at most `width` as `measure(text)`
// gives it (a word longer than that stands alone on its line).
export function wrapNotes(notes, width, measure) {
  const lines = [];
  for (const note of notes) {
    let line = "";
    for (const word of note.split(/\s+/)) {
      const next = line ? `${line} ${word}` : word;
      if (line && measure(next) > width) {
        lines.push(line);
        line = word;
      } else {
        line = next;
      }
    }
    if (line) lines.push(line);
  }
  return lines;
}
