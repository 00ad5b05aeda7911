// The price badge of a paid node, drawn the way the frontend draws its own badges (LGraphBadge's
// shape: a function in node.badges returning something with text, height, getWidth and draw); where a
// frontend has no node.badges, drawn above the title bar. Its text is web/price.js's, from the price
// definition the Python side serves, re-read on every draw so it follows the widgets.
import { priceText } from "./price.js";

const BADGE = { fontSize: 12, padding: 6, height: 20, radius: 5, fg: "#ffffff", bg: "#2c6e49" };

function widgetValues(node) {
  return Object.fromEntries((node.widgets || []).map((w) => [w.name, w.value]));
}

function priceBadge(node, definition) {
  return {
    get text() {
      const prices = definition();
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

/** Give `node` its price badge; `definition()` is the served price definition (null until fetched). */
export function addPriceBadge(node, definition) {
  const badge = priceBadge(node, definition);
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
