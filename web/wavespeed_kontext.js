// WaveSpeed FLUX.1 Kontext [max]: the pack's UI extension (plain ES modules, no build step).
// - the price badge on every paid node before Run, on every frontend (price_badge.js, price.js), from
//   the definition the nodes charge by (GET /wavespeed_kontext/prices), following the widgets;
// - every node of the pack found by "wavespeed" and "kontext" in the node library (search aliases);
// - one colour for the pack's nodes and default widths that give the prompt box room;
// - plain-word labels (the inputs' display_name) on frontends that show the saved widget names;
// - Batch workflows saved with the older "seed_mode" widget load with the same values (saved_batch.js);
// - status lines that stay after the run and bars that show progress (status_lines.js), prompt boxes
//   that keep their height beside a preview (node_layout.js).
// Errors are ComfyUI's own to show (its error box carries the node's one-line message): no toast here.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { keepBoxHeight } from "./node_layout.js";
import { addPriceBadge } from "./price_badge.js";
import { BATCH, upgradeBatchValues } from "./saved_batch.js";
import { followStatusLines } from "./status_lines.js";

const COLOR = "#1d4f5e"; // title bar
const BGCOLOR = "#18333b"; // body
const MIN_WIDTH = { FluxKontextMaxGenerate: 420, FluxKontextMaxEdit: 420, FluxKontextMaxMultiReference: 420 };
const DEFAULT_MIN_WIDTH = 320;
const SEARCH_ALIASES = ["wavespeed", "kontext", "flux kontext max"];
const ours = new Set();
const labels = new Map(); // node type -> {input name: plain-word label} (the inputs' display_name)
let prices = null; // the served price definition, once fetched
let repaintBars = () => {};

const isOurs = (nodeData) => String(nodeData?.category || "").startsWith("WaveSpeed");

async function loadPrices() {
  try {
    const reply = await api.fetchApi("/wavespeed_kontext/prices", { cache: "no-store" });
    if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
    prices = await reply.json();
    app.graph?.setDirtyCanvas?.(true, true);
  } catch (error) {
    console.warn("WaveSpeed Kontext: no price definition, so no price badges:", error);
  }
}

/** Batch: an older workflow's values are upgraded before the frontend applies them by position. */
function upgradeSavedValues(nodeType) {
  const configure = nodeType.prototype.configure;
  nodeType.prototype.configure = function (info, ...rest) {
    const values = upgradeBatchValues(info?.widgets_values);
    const upgraded = values === info?.widgets_values ? info : { ...info, widgets_values: values };
    return configure.call(this, upgraded, ...rest);
  };
}

app.registerExtension({
  name: "wavespeed.kontext",

  async setup() {
    repaintBars = followStatusLines((node) => ours.has(node.comfyClass));
    await loadPrices();
  },

  // before the frontend indexes the node library: aliases where the server sent none (ComfyUI 0.3.75)
  async addCustomNodeDefs(defs) {
    for (const def of Object.values(defs || {})) {
      if (isOurs(def) && !def.search_aliases?.length) def.search_aliases = [...SEARCH_ALIASES];
    }
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!isOurs(nodeData)) return;
    ours.add(nodeData.name);
    const specs = { ...nodeData.input?.required, ...nodeData.input?.optional };
    const named = Object.entries(specs).map(([name, spec]) => [name, spec?.[1]?.display_name]);
    labels.set(nodeData.name, Object.fromEntries(named.filter(([, label]) => label)));
    if (nodeData.name === BATCH) upgradeSavedValues(nodeType);
  },

  nodeCreated(node) {
    if (!ours.has(node.comfyClass)) return;
    node.color = COLOR;
    node.bgcolor = BGCOLOR;
    const width = MIN_WIDTH[node.comfyClass] ?? DEFAULT_MIN_WIDTH;
    if (node.size) node.setSize([Math.max(node.size[0], width), node.size[1]]);
    addPriceBadge(node, () => prices);
    const box = (node.widgets || []).find((w) => w.name === "prompts" || w.name === "prompt")?.name;
    const draw = node.onDrawForeground;
    node.onDrawForeground = function (...args) {
      draw?.apply(this, args);
      if (box) keepBoxHeight(this, box);
      if (this.progress != null) repaintBars();
    };
    // plain-word labels where the frontend shows the saved name (1.32.9 ignores display_name)
    for (const widget of node.widgets || []) {
      const label = labels.get(node.comfyClass)?.[widget.name];
      if (label && (!widget.label || widget.label === widget.name)) widget.label = label;
    }
  },
});
