import assert from "node:assert/strict";
import { usage } from "../../src/config/help.ts";
import { optionNames, OPTIONS } from "../../src/config/options.ts";

function longOptionsIn(text: string): Set<string> {
  return new Set([...text.matchAll(/--([a-z0-9][a-z0-9-]*[a-z0-9])/g)].map((m) => m[1]!));
}

Deno.test("each mode's help names exactly the long options that mode accepts", () => {
  for (const mode of ["passt", "pasta"] as const) {
    assert.deepEqual([...longOptionsIn(usage(mode))].sort(), optionNames(mode).sort(), mode);
  }
});

Deno.test("each mode's help shows the short letter of every option that has one", () => {
  for (const mode of ["passt", "pasta"] as const) {
    const text = usage(mode);
    for (const o of OPTIONS) {
      if (o.short === undefined || !o.modes.includes(mode)) continue;
      assert.ok(text.includes(`-${o.short}, --${o.long}`), `${mode}: -${o.short}, --${o.long}`);
    }
  }
});

Deno.test("help starts with the synopsis and fits in 80 columns", () => {
  assert.ok(usage("passt").startsWith("Usage: passt [OPTION]...\n"));
  assert.ok(usage("pasta").startsWith("Usage: pasta [OPTION]... [COMMAND [ARG]...]\n"));
  assert.ok(usage("pasta").includes("pasta [OPTION]... PID\n"));
  for (const mode of ["passt", "pasta"] as const) {
    const text = usage(mode);
    assert.ok(text.endsWith("\n"));
    for (const line of text.split("\n")) assert.ok(line.length <= 79, `${mode}: ${line}`);
  }
});
