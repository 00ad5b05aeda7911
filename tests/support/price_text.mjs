// Runs web/price.js, the very file the browser loads, in node: one JSON request a line on stdin, one
// JSON answer a line on stdout. The file is imported as a data: URL (always an ES module, whatever
// node's package rules say of a .js file), so its bytes are exactly those the browser gets.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";

const [, , file] = process.argv;
const source = readFileSync(file, "utf-8");
const price = await import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`);

for await (const line of createInterface({ input: process.stdin })) {
  let answer;
  try {
    const { definition, node, widgets } = JSON.parse(line);
    answer = { text: price.priceText(definition, node, widgets) };
  } catch (error) {
    answer = { error: String(error?.stack || error) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
