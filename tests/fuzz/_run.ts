/**
 * Runs the tap fuzzer (tests/fuzz/_driver.ts) inside a fresh test sandbox, so that
 * the sockets the fuzzed data path opens can reach nothing but the sandbox's fake
 * remote. Used by tap_fuzz_test.ts (a bounded run in `make check`) and, run as a
 * script, by `make fuzz` (FUZZ_RUNS, FUZZ_SEED, FUZZ_PATH, FUZZ_STEPS and FUZZ_STRICT_ICMP
 * pass through).
 *
 * fast-check comes from npm: it is fetched here, outside the sandbox (which has no
 * way out), into Deno's cache, which the driver then reads with --cached-only.
 */
import { type RunResult, withSandbox } from "../sandbox/sandbox.ts";

const DRIVER = new URL("./_driver.ts", import.meta.url).pathname;

/** Deno's cache directory, where fast-check is kept for the sandboxed driver. */
function denoDir(): string {
  const out = new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).outputSync();
  return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir as string;
}

/**
 * Fetch the driver's dependencies (fast-check) into Deno's cache. Returns why
 * that failed (offline, no npm registry), or undefined when they are there.
 */
export function fetchDependencies(): string | undefined {
  const out = new Deno.Command(Deno.execPath(), {
    args: ["cache", "--quiet", DRIVER],
    stdout: "null",
    stderr: "piped",
  }).outputSync();
  if (out.success) return undefined;
  return `cannot fetch npm:fast-check: ${new TextDecoder().decode(out.stderr).trim()}`;
}

/** What the fuzz run is given. */
export interface FuzzOptions {
  /** Fuzz cases. */
  runs: number;
  /** fast-check seed (printed by the driver for replay). */
  seed: number;
  /** A counterexample path to replay (with its seed). */
  path?: string;
  /** Most steps per case. */
  steps?: number;
  /** Time limit for the whole run (ms). */
  timeoutMs: number;
}

/** Run the driver in a new sandbox; its output and exit status. */
export function runFuzz(opts: FuzzOptions): Promise<RunResult> {
  const env: Record<string, string> = {
    DENO_DIR: denoDir(),
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
    FUZZ_RUNS: String(opts.runs),
    FUZZ_SEED: String(opts.seed),
  };
  if (opts.path !== undefined) env.FUZZ_PATH = opts.path;
  if (opts.steps !== undefined) env.FUZZ_STEPS = String(opts.steps);
  const strict = Deno.env.get("FUZZ_STRICT_ICMP");
  if (strict !== undefined) env.FUZZ_STRICT_ICMP = strict;
  return withSandbox((sb) =>
    sb.run(
      [Deno.execPath(), "run", "--allow-all", "--no-prompt", "--cached-only", DRIVER],
      { env, timeoutMs: opts.timeoutMs },
    )
  );
}

/** A random seed in fast-check's range. */
export function randomSeed(): number {
  return crypto.getRandomValues(new Int32Array(1))[0]!;
}

if (import.meta.main) {
  const why = fetchDependencies();
  if (why !== undefined) {
    console.error(why);
    Deno.exit(1);
  }
  const get = (name: string) => Deno.env.get(name);
  const runs = Number(get("FUZZ_RUNS") ?? 200_000);
  const seed = get("FUZZ_SEED") !== undefined ? Number(get("FUZZ_SEED")) : randomSeed();
  const path = get("FUZZ_PATH");
  const steps = get("FUZZ_STEPS");
  console.log(`make fuzz: ${runs} cases in the sandbox, FUZZ_SEED=${seed}`);
  const r = await runFuzz({
    runs,
    seed,
    ...(path === undefined ? {} : { path }),
    ...(steps === undefined ? {} : { steps: Number(steps) }),
    // Generous: about 10 ms a case, shrinking on top.
    timeoutMs: Number(get("FUZZ_TIMEOUT_MS") ?? Math.max(120_000, runs * 20)),
  });
  Deno.stdout.writeSync(new TextEncoder().encode(r.stdout));
  Deno.stderr.writeSync(new TextEncoder().encode(r.stderr));
  if (r.timedOut) console.error(`make fuzz: timed out (FUZZ_SEED=${seed})`);
  Deno.exit(r.code);
}
