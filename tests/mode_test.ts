// Mode selection: by invocation name, or by the first argument in development.
import assert from "node:assert/strict";
import { modeFromName, selectMode } from "../src/mode.ts";

Deno.test("the invocation name selects the mode, paths and suffixes included", () => {
  assert.equal(modeFromName("passt"), "passt");
  assert.equal(modeFromName("/usr/bin/pasta"), "pasta");
  assert.equal(modeFromName("./passt.avx2"), "passt");
  assert.equal(modeFromName("pasta.avx2"), "pasta");
  assert.equal(modeFromName("deno"), undefined);
  assert.equal(modeFromName("passta"), undefined);
});

Deno.test("a compiled binary keeps all its arguments", () => {
  assert.deepEqual(selectMode(["-f", "pasta"], "/usr/bin/passt"), {
    mode: "passt",
    args: ["-f", "pasta"],
  });
});

Deno.test("in development the first argument names the program", () => {
  assert.deepEqual(selectMode(["pasta", "--config-net"], "/usr/bin/deno"), {
    mode: "pasta",
    args: ["--config-net"],
  });
  assert.deepEqual(selectMode(["passt"], "deno"), { mode: "passt", args: [] });
});

Deno.test("any other name is a clear error", () => {
  const r = selectMode(["--help"], "/usr/bin/deno");
  assert.equal(r.mode, undefined);
  assert.ok(r.mode === undefined && r.error.includes("invoke as 'passt' or 'pasta'"));
});
