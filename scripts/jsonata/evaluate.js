// Evaluate price badges as ComfyUI frontend 1.49.6 does, for tests/nodes/paid/test_badge_properties.py.
//
//   node scripts/jsonata/evaluate.js ENGINE_DIR     (ENGINE_DIR: where scripts/jsonata_engine.sh installed
//                                                    jsonata, .cache/jsonata by default)
//
// One long-lived process: one JSON request per stdin line, one JSON reply per stdout line, so a
// property test can try hundreds of inputs without starting node for each.
//   {"op": "badge", "price_badge": {...as /object_info serves it...}, "widgets": {"name": raw value}}
//      -> {"label": "$0.16/Run"}: the frontend's widget normalisation, JSONata, then its formatting
//   {"op": "normalise", "values": [...], "type": "STRING"} -> {"values": [...]}
//   {"op": "version"} -> {"version": "2.2.1"}
// Any failure -> {"error": "..."} (the frontend shows an empty badge then).
//
// normalizeWidgetValue, asFiniteNumber and the text branch of formatPricingResult are copied from
// the frontend's src/composables/node/useNodePricing.ts (1.49.6, in the package's source map);
// tests/nodes/paid/test_badge_properties.py checks that the shipped frontend still holds those lines.
"use strict";

const path = require("path");
const readline = require("readline");

const dir = path.resolve(process.argv[2] || path.join(__dirname, "..", "..", ".cache", "jsonata"));
const jsonata = require(path.join(dir, "node_modules", "jsonata"));
const { version } = require(path.join(dir, "node_modules", "jsonata", "package.json"));

const asFiniteNumber = (v) => {
  if (v === null || v === undefined) return null;
  if (typeof v === "number") return Number.isFinite(v) ? v : null;
  if (typeof v === "string") {
    const t = v.trim();
    if (t === "") return null;
    const n = Number(t);
    return Number.isFinite(n) ? n : null;
  }
  return null;
};

const normalizeWidgetValue = (raw, declaredType) => {
  if (raw === undefined || raw === null) return null;
  const upperType = declaredType.toUpperCase();
  if (upperType === "INT" || upperType === "FLOAT") return asFiniteNumber(raw);
  if (upperType === "BOOLEAN") {
    if (typeof raw === "boolean") return raw;
    if (typeof raw === "string") {
      const ls = raw.trim().toLowerCase();
      if (ls === "true") return true;
      if (ls === "false") return false;
    }
    return null;
  }
  if (upperType === "COMBO") {
    if (typeof raw === "number") return raw;
    if (typeof raw === "boolean") return raw;
    return String(raw).trim().toLowerCase();
  }
  return String(raw).trim().toLowerCase();
};

const compiled = new Map();

async function badge(priceBadge, values) {
  let expr = compiled.get(priceBadge.expr);
  if (!expr) {
    expr = jsonata(priceBadge.expr);
    compiled.set(priceBadge.expr, expr);
  }
  const dependsOn = priceBadge.depends_on || {};
  const widgets = {};
  for (const dep of dependsOn.widgets || []) widgets[dep.name] = normalizeWidgetValue(values[dep.name], dep.type);
  const inputs = {};
  for (const name of dependsOn.inputs || []) inputs[name] = { connected: false };
  const inputGroups = {};
  for (const name of dependsOn.input_groups || []) inputGroups[name] = 0;
  const result = await expr.evaluate({ widgets, inputs, inputGroups });
  if (!result || result.type !== "text") throw new Error(`not a text badge: ${JSON.stringify(result)}`);
  return result.text ?? "";
}

async function handle(request) {
  if (request.op === "version") return { version };
  if (request.op === "normalise") return { values: request.values.map((v) => normalizeWidgetValue(v, request.type)) };
  if (request.op === "badge") return { label: await badge(request.price_badge, request.widgets) };
  throw new Error(`unknown op ${request.op}`);
}

// Requests are answered strictly in order (the caller waits for each reply).
let chain = Promise.resolve();
readline.createInterface({ input: process.stdin, crlfDelay: Infinity }).on("line", (line) => {
  chain = chain.then(async () => {
    let reply;
    try {
      reply = await handle(JSON.parse(line));
    } catch (e) {
      reply = { error: String((e && e.message) || e) };
    }
    process.stdout.write(JSON.stringify(reply) + "\n");
  });
});
