/**
 * Imports point down: every module of src/ belongs to one layer, and imports only
 * from its own layer or the ones below. The order, bottom first, is the one the
 * README's Layout section draws; a new file outside every layer fails too, so the
 * list stays complete.
 */
import { strict as assert } from "node:assert";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Layers, bottom first: path prefixes relative to the repository root. */
export const LAYERS: readonly (readonly [name: string, prefixes: readonly string[]])[] = [
  // libc, logging, the version string, IP and MAC address text and tests
  ["base", ["src/ffi/", "src/log.ts", "src/version.ts", "src/addr.ts"]],
  // rtnetlink: the codec, host discovery, interface configuration requests
  ["netlink", ["src/netlink/"]],
  // command line → Config, and the addressing planned from it and the host
  ["config", ["src/config/"]],
  // the epoll loop, and the per-object deadlines behind its one timerfd
  ["loop", ["src/loop.ts", "src/timers.ts"]],
  // the bounds-checked frame view that flows and protocols read frames through
  ["packet", ["src/protocols/packet.ts"]],
  // the flow table, NAT, forwarding, the context the protocols share
  ["flow", ["src/flow/"]],
  // one file per protocol
  ["protocols", ["src/protocols/"]],
  // frames in and out, and their dispatch to the protocols
  ["tap", ["src/tap/"]],
  // wiring of one data path: tap, protocols, flows, loop
  ["datapath", ["src/datapath.ts"]],
  // process life: starting workers, the sandbox, isolation
  ["process", ["src/process/"]],
  // the two roles
  ["roles", ["src/passt.ts", "src/pasta/"]],
  // argv[0] → a role
  ["entry", ["src/main.ts", "src/mode.ts", "mod.ts"]],
];

/** The layer index of `path` (relative to the root), longest prefix first; -1 if none. */
export function layerOf(path: string): number {
  let best = -1;
  let bestLength = -1;
  LAYERS.forEach(([, prefixes], i) => {
    for (const p of prefixes) {
      const match = p.endsWith("/") ? path.startsWith(p) : path === p;
      if (match && p.length > bestLength) {
        best = i;
        bestLength = p.length;
      }
    }
  });
  return best;
}

const IMPORT_RE =
  /(?:^|\n)\s*(?:import|export)\s+(?:type\s+)?(?:[^"';]*?\s+from\s+)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|new URL\(\s*["']([^"']+)["']\s*,\s*import\.meta\.url/g;

/** The relative module specifiers `source` imports (static, dynamic, worker URLs). */
export function importsOf(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (spec !== undefined && spec.startsWith(".")) found.push(spec);
  }
  return found;
}

/** "from → to (layer → layer)" for every import of `source` (at `path`) that goes up. */
export function upwardImports(path: string, source: string): string[] {
  const from = layerOf(path);
  const bad: string[] = [];
  for (const spec of importsOf(source)) {
    const target = join(dirname(path), spec);
    const to = layerOf(target);
    if (to > from) bad.push(`${path} → ${target} (${LAYERS[from]?.[0]} → ${LAYERS[to]?.[0]})`);
  }
  return bad;
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(join(ROOT, dir))) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...sourceFiles(p));
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out.sort();
}

Deno.test("layers: every module of src/ is in a layer and imports only downwards", () => {
  const files = ["mod.ts", ...sourceFiles("src")];
  const unplaced = files.filter((f) => layerOf(f) < 0);
  assert.deepEqual(unplaced, [], "modules in no layer (add them to LAYERS and the README)");
  const bad: string[] = [];
  for (const f of files) bad.push(...upwardImports(f, Deno.readTextFileSync(join(ROOT, f))));
  assert.deepEqual(bad, [], `imports that go up:\n${bad.join("\n")}`);
  assert.ok(files.length > 50, `only ${files.length} modules found under ${relative(".", ROOT)}`);
});

Deno.test("layers: the checker sees static, type-only, re-export, dynamic and worker imports", () => {
  const source = [
    `import { a } from "../tap/tap.ts";`,
    `import type { B } from "../pasta/pasta.ts";`,
    `export { c } from "../datapath.ts";`,
    `import {\n  d,\n  e,\n} from "../process/process.ts";`,
    `const m = await import("../main.ts");`,
    `new Worker(new URL("../pasta/ns_worker.ts", import.meta.url).href);`,
    `import { f } from "./udp.ts";`,
    `import { g } from "../flow/flow.ts";`,
    `import { h } from "node:path";`,
  ].join("\n");
  assert.deepEqual(upwardImports("src/protocols/udp.ts", source), [
    "src/protocols/udp.ts → src/tap/tap.ts (protocols → tap)",
    "src/protocols/udp.ts → src/pasta/pasta.ts (protocols → roles)",
    "src/protocols/udp.ts → src/datapath.ts (protocols → datapath)",
    "src/protocols/udp.ts → src/process/process.ts (protocols → process)",
    "src/protocols/udp.ts → src/main.ts (protocols → entry)",
    "src/protocols/udp.ts → src/pasta/ns_worker.ts (protocols → roles)",
  ]);
  // The frame view sits below the flows; the rest of protocols/ above them.
  assert.ok(layerOf("src/protocols/packet.ts") < layerOf("src/flow/flow.ts"));
  assert.ok(layerOf("src/flow/flow.ts") < layerOf("src/protocols/tcp.ts"));
  assert.ok(layerOf("src/netlink/host.ts") < layerOf("src/config/network.ts"));
});
