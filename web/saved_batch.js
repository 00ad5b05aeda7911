// Batch workflows saved before the Batch node lost its second seed control ("seed_mode") load with the
// same values. widgets_values are positional: the old layout held seed_mode right after the seed's
// "control after generate" value, so without this every later value would shift by one. Pure: the tests
// run this file in node as well as in the browser.

export const BATCH = "FluxKontextMaxBatch";
const SEED = 2; // prompts, variations, seed, control_after_generate, [seed_mode], guidance_scale, ...
const SEED_MODE = 4;
const OLD_LENGTH = 9; // the old layout's values (with seed_mode)
const SEED_MODES = ["increment", "random"];

/** The values of a Batch node in today's layout; "random" becomes seed -1 (the API picks every seed). */
export function upgradeBatchValues(values) {
  if (!Array.isArray(values) || values.length !== OLD_LENGTH || !SEED_MODES.includes(values[SEED_MODE])) {
    return values;
  }
  const upgraded = values.filter((_, i) => i !== SEED_MODE);
  if (values[SEED_MODE] === "random") upgraded[SEED] = -1;
  return upgraded;
}
