// WaveSpeed FLUX.1 Kontext [max]: the pack's UI extension (plain ES modules, no build step).
// - the price badge on every paid node before Run, on every frontend: its text comes from web/price.js
//   and the definition the nodes charge by (GET /wavespeed_kontext/prices), and follows the widgets;
// - every node of the pack found by "wavespeed" and "kontext" in the node library (search aliases);
// - one colour for the pack's nodes and default widths that give the prompt box room;
// - plain-word labels (the inputs' display_name) on frontends that show the saved widget names;
// - Batch workflows saved with the older "seed_mode" widget load with the same values (saved_batch.js);
// - a node's last status line stays after the run ("done · 1x 1024x1024 · task 1a2b3c4d…"): frontend
//   1.58 removes every status line when a run ends, so the extension shows the last one again.
// - a running node's prompt box keeps its height beside a preview, its status bar shows progress
//   (node_layout.js).
// Errors are ComfyUI's own to show (its error box carries the node's one-line message): no toast here.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { priceText } from "./price.js";
import { keepBoxHeight, paintProgressBars } from "./node_layout.js";
import { BATCH, upgradeBatchValues } from "./saved_batch.js";

const COLOR = "#1d4f5e"; // title bar
const BGCOLOR = "#18333b"; // body
const MIN_WIDTH = { FluxKontextMaxGenerate: 420, FluxKontextMaxEdit: 420, FluxKontextMaxMultiReference: 420 };
const DEFAULT_MIN_WIDTH = 320;
const SEARCH_ALIASES = ["wavespeed", "kontext", "flux kontext max"];
const BADGE = { fontSize: 12, padding: 6, height: 20, radius: 5, fg: "#ffffff", bg: "#2c6e49" };
const ours = new Set();
const labels = new Map(); // node type -> {input name: plain-word label} (the inputs' display_name)
let prices = null; // the served definition, once fetched

const isOurs = (nodeData) => String(nodeData?.category || "").startsWith("WaveSpeed");

function widgetValues(node) {
  return Object.fromEntries((node.widgets || []).map((w) => [w.name, w.value]));
}

/** The node's price badge, drawn the way the frontend draws its own (LGraphBadge's shape). */
function priceBadge(node) {
  return {
    get text() {
      return (prices && priceText(prices, node.comfyClass, widgetValues(node))) || "";
    },
    height: BADGE.height,
    getWidth(ctx) {
      const text = this.text;
      if (!text) return 0;
      const font = ctx.font;
      ctx.font = `${BADGE.fontSize}px sans-serif`;
      const width = ctx.measureText(text).width + 2 * BADGE.padding;
      ctx.font = font;
      return width;
    },
    draw(ctx, x, y) {
      const text = this.text;
      if (!text) return;
      const { font, fillStyle, textBaseline, textAlign } = ctx;
      const width = this.getWidth(ctx);
      ctx.font = `${BADGE.fontSize}px sans-serif`;
      ctx.fillStyle = BADGE.bg;
      ctx.beginPath();
      if (ctx.roundRect) ctx.roundRect(x, y, width, BADGE.height, BADGE.radius);
      else ctx.rect(x, y, width, BADGE.height);
      ctx.fill();
      ctx.fillStyle = BADGE.fg;
      ctx.textBaseline = "middle";
      ctx.textAlign = "left";
      ctx.fillText(text, x + BADGE.padding, y + BADGE.height / 2 + 1);
      Object.assign(ctx, { font, fillStyle, textBaseline, textAlign });
    },
  };
}

/** Show the badge: among the node's badges where the frontend has them, else above the title bar. */
function addPriceBadge(node) {
  const badge = priceBadge(node);
  node.wavespeedPriceBadge = badge;
  if (Array.isArray(node.badges)) {
    node.badges.push(() => badge);
    return;
  }
  const draw = node.onDrawForeground;
  node.onDrawForeground = function (ctx, ...rest) {
    draw?.call(this, ctx, ...rest);
    const top = -(globalThis.LiteGraph?.NODE_TITLE_HEIGHT ?? 30) - BADGE.height - 2;
    badge.draw(ctx, this.size[0] - badge.getWidth(ctx), top);
  };
}

const STATUS_WIDGET = "$$node-text-preview"; // the frontend's status line under a node
const lastStatus = new Map(); // node id -> the last status line of one of our nodes in this run

function keepStatus({ detail }) {
  const node = detail?.nodeId != null ? app.graph?.getNodeById?.(detail.nodeId) : null;
  if (node && ours.has(node.comfyClass) && detail.text) lastStatus.set(String(detail.nodeId), detail.text);
}

/** After a run: show each of our nodes' last status line again where the frontend removed it. */
function restoreStatus() {
  for (const [nodeId, text] of lastStatus) {
    const node = app.graph?.getNodeById?.(nodeId);
    if (!node || (node.widgets || []).some((w) => w.name === STATUS_WIDGET)) continue;
    api.dispatchCustomEvent?.("progress_text", { nodeId, text });
  }
}

let barsPending = false;
function repaintBars() {
  if (barsPending) return;
  barsPending = true;
  requestAnimationFrame(() => {
    barsPending = false;
    paintProgressBars(app, (node) => ours.has(node.comfyClass));
  });
}

function followStatus() {
  api.addEventListener("execution_start", () => lastStatus.clear());
  for (const event of ["progress", "progress_state", "progress_text", "executing"]) {
    api.addEventListener(event, repaintBars);
  }
  api.addEventListener("progress_text", keepStatus);
  for (const end of ["execution_success", "execution_error", "execution_interrupted"]) {
    api.addEventListener(end, () => setTimeout(restoreStatus, 0)); // after the frontend's own reset
  }
}

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

app.registerExtension({
  name: "wavespeed.kontext",

  async setup() {
    followStatus();
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
    labels.set(nodeData.name, Object.fromEntries(
      Object.entries(specs).map(([name, spec]) => [name, spec?.[1]?.display_name]).filter(([, label]) => label),
    ));
    if (nodeData.name === BATCH) {
      const configure = nodeType.prototype.configure;
      nodeType.prototype.configure = function (info, ...rest) {
        const values = upgradeBatchValues(info?.widgets_values);
        const upgraded = values === info?.widgets_values ? info : { ...info, widgets_values: values };
        return configure.call(this, upgraded, ...rest);
      };
    }
  },

  nodeCreated(node) {
    if (!ours.has(node.comfyClass)) return;
    node.color = COLOR;
    node.bgcolor = BGCOLOR;
    const width = MIN_WIDTH[node.comfyClass] ?? DEFAULT_MIN_WIDTH;
    if (node.size) node.setSize([Math.max(node.size[0], width), node.size[1]]);
    addPriceBadge(node);
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
