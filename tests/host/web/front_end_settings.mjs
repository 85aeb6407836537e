// Settings the web tests give the front end before they open it: the ones every run needs,
// plus MAGICID_FRONT_END_SETTINGS (a JSON object), e.g. '{"Comfy.VueNodes.Enabled": true}' to
// run them in the "Nodes 2.0" mode of comfyui-frontend-package 1.5x instead of the classic canvas.
const BASE = {
  "Comfy.TutorialCompleted": true, // a first visit opens the template browser over the canvas
  "Comfy.Minimap.Visible": false, // the minimap sits in a corner of the screenshots
};

export function frontEndSettings() {
  return { ...BASE, ...JSON.parse(process.env.MAGICID_FRONT_END_SETTINGS || "{}") };
}

export async function applySettings(url) {
  for (const [id, value] of Object.entries(frontEndSettings())) {
    const response = await fetch(`${url}/settings/${id}`, { method: "POST", body: JSON.stringify(value) });
    if (!response.ok) throw new Error(`setting ${id} refused: ${response.status}`);
  }
}
