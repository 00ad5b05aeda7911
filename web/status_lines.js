// The pack's nodes' status lines over a run: frontend 1.58 removes every status line when a run ends,
// so each of our nodes' last line ("done · 1x 1024x1024 · task 1a2b3c4d…") is shown again; and the bar
// beside a running node's line is repainted with its progress as progress events arrive.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { paintProgressBars } from "./node_layout.js";

const STATUS_WIDGET = "$$node-text-preview"; // the frontend's status line under a node

/** Follow the run's events for the nodes `isOurs(node)` accepts. */
export function followStatusLines(isOurs) {
  const lastStatus = new Map(); // node id -> the node's last status line in this run
  let barsPending = false;

  const repaintBars = () => {
    if (barsPending) return;
    barsPending = true;
    requestAnimationFrame(() => {
      barsPending = false;
      paintProgressBars(app, isOurs);
    });
  };
  const keep = ({ detail }) => {
    const node = detail?.nodeId != null ? app.graph?.getNodeById?.(detail.nodeId) : null;
    if (node && isOurs(node) && detail.text) lastStatus.set(String(detail.nodeId), detail.text);
  };
  const restore = () => {
    for (const [nodeId, text] of lastStatus) {
      const node = app.graph?.getNodeById?.(nodeId);
      if (!node || (node.widgets || []).some((w) => w.name === STATUS_WIDGET)) continue;
      api.dispatchCustomEvent?.("progress_text", { nodeId, text });
    }
  };

  api.addEventListener("execution_start", () => lastStatus.clear());
  api.addEventListener("progress_text", keep);
  for (const event of ["progress", "progress_state", "progress_text", "executing"]) {
    api.addEventListener(event, repaintBars);
  }
  for (const end of ["execution_success", "execution_error", "execution_interrupted"]) {
    api.addEventListener(end, () => setTimeout(restore, 0)); // after the frontend's own reset
  }
  return repaintBars;
}
