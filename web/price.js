// The price a node of this pack charges, as the badge's text ("$0.32/Run"), from the definition the
// Python side serves (GET /wavespeed_kontext/prices: nodes/shared/pricing.py, the same unit prices and
// multiplier widgets the nodes charge by; a unit price per model family, following the model widget).
// Pure: no DOM, no ComfyUI; the tests run this very file in node.

/** The prompts a text sends: lines (split where pricing.LINE_BREAK breaks) holding a NOT_BLANK character. */
export function promptCount(text, definition) {
  const lineBreak = new RegExp(definition.line_break); // no flags: read as Python's re reads it
  const notBlank = new RegExp(definition.not_blank);
  return String(text ?? "").split(lineBreak).filter((line) => notBlank.test(line)).length;
}

/** How many tasks a node with this rule sends for these widget values. */
export function tasksOf(rule, widgets, definition) {
  let tasks = 1;
  for (const name of rule.per) {
    const value = widgets[name];
    const kind = definition.multipliers[name];
    tasks *= kind === "lines" ? promptCount(value, definition) : Math.max(0, Math.trunc(Number(value) || 0));
  }
  return tasks;
}

/** The price of one task: the model chosen in the node's model widget, else the default model's. */
export function unitOf(rule, widgets) {
  const chosen = rule.unit_by_model?.[widgets?.[rule.model_input]];
  return typeof chosen === "number" ? chosen : rule.unit_usd;
}

/** The badge's text for a node of type `nodeType`, or null when the pack does not price it. */
export function priceText(definition, nodeType, widgets) {
  const rule = definition?.nodes?.[nodeType];
  if (!rule) return null;
  const cents = Math.round(unitOf(rule, widgets) * 100) * tasksOf(rule, widgets, definition); // whole cents: exact
  return `$${(cents / 100).toFixed(2)}/Run`;
}
