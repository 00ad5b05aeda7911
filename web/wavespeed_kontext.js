// WaveSpeed FLUX.1 Kontext [max]: small UI polish for this pack's nodes (no build step).
// - one colour for every node of the pack (category "WaveSpeed..."), so the API nodes stand out;
// - sensible default widths for freshly added nodes (the prompt box needs room);
// - a short toast with the node's one-line error when one of our nodes fails.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const COLOR = "#1d4f5e"; // title bar
const BGCOLOR = "#18333b"; // body
const MIN_WIDTH = { FluxKontextMaxGenerate: 420, FluxKontextMaxEdit: 420, FluxKontextMaxMultiReference: 420 };
const DEFAULT_MIN_WIDTH = 320;
const ours = new Set();

function firstLine(text) {
  const line = String(text || "").trim().split("\n")[0];
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

app.registerExtension({
  name: "wavespeed.kontext",

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (String(nodeData?.category || "").startsWith("WaveSpeed")) ours.add(nodeData.name);
  },

  nodeCreated(node) {
    if (!ours.has(node.comfyClass)) return;
    node.color = COLOR;
    node.bgcolor = BGCOLOR;
    const width = MIN_WIDTH[node.comfyClass] ?? DEFAULT_MIN_WIDTH;
    if (node.size) node.setSize([Math.max(node.size[0], width), node.size[1]]);
  },

  setup() {
    api.addEventListener("execution_error", ({ detail }) => {
      if (!detail || !ours.has(detail.node_type)) return;
      const node = app.graph?.getNodeById?.(detail.node_id);
      app.extensionManager?.toast?.add({
        severity: "error",
        summary: node?.title || detail.node_type,
        detail: firstLine(detail.exception_message) || "failed",
        life: 15000,
      });
    });
  },
});
