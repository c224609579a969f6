/**
 * Entry point: tells passt from pasta by the name we were invoked under, then
 * hands over to `main`. Nothing else happens here.
 *
 * - A compiled binary (or a link to it) named `passt…` or `pasta…` runs as that
 *   program; the name comes from /proc/self/cmdline, because `Deno.execPath()`
 *   resolves links and cannot tell `pasta` from the `passt` it points to.
 * - In development, `deno run -A mod.ts passt ARGS` / `mod.ts pasta ARGS` names the
 *   program as the first argument (the launchers built by `make` do the same).
 */
import { main } from "./src/main.ts";
import { selectMode } from "./src/mode.ts";

const selected = selectMode(Deno.args);
if (selected.mode === undefined) {
  console.error(selected.error);
  Deno.exit(1);
}
Deno.exit(main(selected.mode, selected.args));
