// How the pack's nodes look while they run, beyond what the frontend does on its own:
// - a node's prompt box keeps its height when the status line and a preview image appear (the frontend
//   gave them the room the box had, and a Batch's prompts shrank to two lines): the node grows instead;
// - the bar the frontend shows beside a running node's status line (frontends 1.49+, an animated
//   placeholder that looked empty and stuck beside "2/4 done") shows the node's progress.

const BAR_FILL = "#2c6e49";
const BAR_TRACK = "rgba(255, 255, 255, 0.12)";

/** Grow `node` so its multiline widget `name` keeps the height it had on the idle node once the
 * frontend adds its status line and preview image (measured on the widget's own element: the frontend
 * shares the node's room between them; each draw grows the node by what the box still lacks). */
export function keepBoxHeight(node, name) {
  const element = node.widgets?.find((w) => w.name === name)?.element;
  const height = element?.offsetHeight;
  if (!height || !node.size) return;
  // the frontend's own widgets ("$$node-text-preview": the status line, "$$canvas-image-preview")
  const extras = node.imgs?.length || node.widgets.some((w) => w.name?.startsWith("$$"));
  if (!extras) {
    node.wavespeedBoxHeight = height; // what the box has on the idle node
    return;
  }
  const missing = (node.wavespeedBoxHeight ?? height) - height;
  if (missing > 2) {
    node.setSize([node.size[0], node.size[1] + missing]);
    node.setDirtyCanvas?.(true, true); // the DOM widgets follow on the next draw
  }
}

/** The screen box of a node (title bar included) on `canvas`. */
function screenBox(canvas, node) {
  const rect = canvas.canvas.getBoundingClientRect();
  const { offset, scale } = canvas.ds;
  const title = globalThis.LiteGraph?.NODE_TITLE_HEIGHT ?? 30;
  const left = rect.left + (node.pos[0] + offset[0]) * scale;
  const top = rect.top + (node.pos[1] - title + offset[1]) * scale;
  return { left, top, right: left + node.size[0] * scale, bottom: top + (node.size[1] + title) * scale };
}

/** Fill the frontend's placeholder bar beside each running node's status line with its progress. */
export function paintProgressBars(app, isOurs) {
  const canvas = app.canvas;
  const nodes = (app.graph?._nodes || []).filter((n) => isOurs(n) && typeof n.progress === "number");
  if (!canvas?.ds || !nodes.length) return;
  for (const bar of document.querySelectorAll('.dom-widget .p-skeleton, .dom-widget [data-testid="skeleton"]')) {
    const r = bar.getBoundingClientRect();
    const [x, y] = [r.left + r.width / 2, r.top + r.height / 2];
    const node = nodes.find((n) => {
      const b = screenBox(canvas, n);
      return x >= b.left && x <= b.right && y >= b.top && y <= b.bottom;
    });
    if (!node) continue;
    const percent = Math.round(Math.max(0, Math.min(1, node.progress)) * 100);
    bar.dataset.wavespeedProgress = String(percent);
    bar.style.animation = "none";
    bar.style.background = `linear-gradient(to right, ${BAR_FILL} ${percent}%, ${BAR_TRACK} ${percent}%)`;
  }
}
