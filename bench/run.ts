/**
 * `make bench`: our pasta against Debian's C pasta and slirp4netns, side by side (issue 9).
 *
 * Everything runs in the throwaway network of tests/sandbox/ (new user, network, mount and
 * PID namespaces): the sandbox's "host" namespace (eth0 192.0.2.2, a veth to the "remote"
 * namespace 192.0.2.1 with 203.0.113.1 beyond) is where each implementation runs, as the
 * sandbox's unprivileged user, giving a namespace of its own to a `sleep`. Clients run in
 * that namespace (nsenter), servers on the host's loopback or in the remote namespace:
 * no packet leaves the sandbox.
 *
 * Figures, each RUNS times (median, min–max), per implementation:
 *   - TCP throughput (iperf3, T s after an OMIT s warm-up that is discarded): namespace →
 *     host (through the tap to the gateway address, which maps to the host's 127.0.0.1),
 *     host → namespace (the same with -R), namespace → remote (203.0.113.1);
 *   - UDP throughput received, namespace → host, 1400-byte datagrams at UDP_RATE;
 *   - TCP request/response latency (1 byte each way) and connections per second (connect,
 *     close), namespace → host, with bench/rr.py;
 *   - CPU time (utime + stime of the implementation's processes) per GB moved, namespace →
 *     host, and the peak RSS (VmHWM, summed over its processes, highest instance);
 *   - start-up: from the command line until `ip addr` in the namespace shows the address.
 * Then, as root and when BENCH_RAISED is not 0, the TCP figures again with the global
 * net.core.wmem_max and rmem_max raised to 64 MiB (restored afterwards, also on SIGINT).
 *
 * The table goes to stdout and to build/bench.md. Environment: BENCH_RUNS (default 3),
 * BENCH_PIN=0 to run unpinned (default: the implementation on CPU 0, clients and servers
 * on CPU 1), BENCH_RAISED=0 to skip the raised-buffer pass, and for quicker partial runs
 * BENCH_ONLY=ours,c,slirp, BENCH_FIGS=tcp,udp,rr,startup, BENCH_UDP_RATE (iperf3 -b).
 */

import { type Sandbox, type SandboxProcess, sleep, withSandbox } from "../tests/sandbox/sandbox.ts";
import { VERSION } from "../src/version.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const RR = new URL("./rr.py", import.meta.url).pathname;
const OUT = `${ROOT}build/bench.md`;
const PYTHON = ["/usr/bin/python3", "/usr/bin/python3.11"].find(exists) ?? "python3";

const RUNS = Number(Deno.env.get("BENCH_RUNS") ?? "3");
const PIN = Deno.env.get("BENCH_PIN") !== "0";
const RAISED = Deno.env.get("BENCH_RAISED") !== "0";
const ONLY = Deno.env.get("BENCH_ONLY")?.split(",");
const GROUPS = Deno.env.get("BENCH_FIGS")?.split(",") ?? ["tcp", "udp", "rr", "startup"];
const SECONDS = 3;
const OMIT = 1;
const RR_SECONDS = 2;
const UDP_RATE = Deno.env.get("BENCH_UDP_RATE") ?? "4G";
const RAISED_BYTES = 64 << 20;
/** The whole benchmark stops starting figures after this (figures left are "n/a"). */
const BUDGET_MS = 9.5 * 60_000;
const IPERF_PORT = 5201;
const RR_PORT = 5301;
const TW_BUCKETS = 256;

interface Impl {
  readonly key: "ours" | "c" | "slirp";
  readonly name: string;
  /** Address in the namespace that reaches the host's 127.0.0.1. */
  readonly toHost: string;
  /** The namespace's IPv4 address once configured. */
  readonly addr: string;
}

const IMPLS: readonly Impl[] = ([
  { key: "ours", name: "ours", toHost: "192.0.2.1", addr: "192.0.2.2" },
  { key: "c", name: "C pasta", toHost: "192.0.2.1", addr: "192.0.2.2" },
  { key: "slirp", name: "slirp4netns", toHost: "10.0.2.2", addr: "10.0.2.100" },
] as const).filter((i) => !ONLY || ONLY.includes(i.key));

const OUR_PASTA = `${ROOT}pasta`;
const C_PASTA = "/usr/bin/pasta";

type FigureId =
  | "tcpOut"
  | "tcpIn"
  | "tcpRemote"
  | "udpOut"
  | "rr"
  | "crr"
  | "cpu"
  | "rss"
  | "startup";

interface Figure {
  readonly id: FigureId;
  readonly label: string;
  readonly unit: string;
  readonly digits: number;
}

const FIGURES: readonly Figure[] = [
  { id: "tcpOut", label: "TCP ns → host (tap), IPv4", unit: "Gbit/s", digits: 2 },
  { id: "tcpIn", label: "TCP host → ns (tap, -R), IPv4", unit: "Gbit/s", digits: 2 },
  { id: "tcpRemote", label: "TCP ns → remote, IPv4", unit: "Gbit/s", digits: 2 },
  {
    id: "udpOut",
    label: `UDP ns → host received, 1400 B at ${UDP_RATE}`,
    unit: "Gbit/s",
    digits: 2,
  },
  { id: "rr", label: "TCP 1-byte request/response", unit: "µs/round trip", digits: 1 },
  { id: "crr", label: "TCP connect+close", unit: "conn/s", digits: 0 },
  { id: "cpu", label: "CPU time, TCP ns → host", unit: "s/GB", digits: 2 },
  { id: "rss", label: "peak RSS (VmHWM, all its processes)", unit: "MiB", digits: 1 },
  { id: "startup", label: "start until the address is configured", unit: "ms", digits: 0 },
];

const RAISED_FIGURES: readonly FigureId[] = ["tcpOut", "tcpIn", "tcpRemote", "cpu"];

/** Measured values, with notes (a stall) attached; or why there is none. */
type Cell = { values: number[]; flags?: string[] } | { na: string };
type Table = Map<FigureId, Map<Impl["key"], Cell>>;

const started = Date.now();
const notes: string[] = [];

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function text(cmd: string, args: string[]): string {
  try {
    const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
    return (new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr)).trim();
  } catch {
    return "";
  }
}

const pinImpl = PIN ? ["taskset", "-c", "0"] : [];
const pinTool = PIN ? ["taskset", "-c", "1"] : [];

// --- an implementation's namespace ------------------------------------------------------------

interface Instance {
  /** Sandbox PID of the process in the namespace (nsenter target). */
  readonly nsPid: number;
  /** Sandbox PIDs of the implementation's own processes. */
  readonly pids: number[];
  stop(): Promise<void>;
}

async function children(sb: Sandbox): Promise<Map<number, { ppid: number; comm: string }>> {
  const r = await sb.run(["ps", "-eo", "pid=,ppid=,comm="], { timeoutMs: 5000 });
  const map = new Map<number, { ppid: number; comm: string }>();
  for (const line of r.stdout.split("\n")) {
    const m = line.trim().match(/^(\d+)\s+(\d+)\s+(.*)$/);
    if (m) map.set(Number(m[1]), { ppid: Number(m[2]), comm: m[3]! });
  }
  return map;
}

function descendants(procs: Map<number, { ppid: number }>, root: number): number[] {
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const p = queue.shift()!;
    for (const [pid, info] of procs) {
      if (info.ppid === p) {
        out.push(pid);
        queue.push(pid);
      }
    }
  }
  return out;
}

function inNs(inst: { nsPid: number }, cmd: readonly string[]): string[] {
  return [
    "nsenter",
    "-t",
    String(inst.nsPid),
    "--user",
    "--net",
    "--preserve-credentials",
    "--",
    ...cmd,
  ];
}

async function stopAll(sb: Sandbox, procs: SandboxProcess[], pids: number[]): Promise<void> {
  for (const p of procs) await p.kill("TERM").catch(() => {});
  const done = Promise.allSettled(procs.map((p) => p.result));
  if (await Promise.race([done.then(() => true), sleep(3000).then(() => false)]) === false) {
    await sb.run(["kill", "-KILL", ...pids.map(String)], { timeoutMs: 3000 });
    for (const p of procs) await p.kill("KILL").catch(() => {});
  }
  await Promise.race([done, sleep(3000)]);
}

async function start(sb: Sandbox, impl: Impl): Promise<Instance> {
  const hold = ["sleep", "900"];
  const opts = { user: true, timeoutMs: 900_000 };
  let nsPid = 0;
  let pids: number[] = [];
  const procs: SandboxProcess[] = [];
  const ready = () =>
    sb.waitFor(
      async () => {
        if (!nsPid) return false;
        const r = await sb.run(
          ["nsenter", "-t", String(nsPid), "--net", "ip", "-4", "-o", "addr"],
          {
            timeoutMs: 5000,
          },
        );
        return r.stdout.includes(`inet ${impl.addr}/`);
      },
      30_000,
      50,
    );
  if (impl.key === "slirp") {
    const ns = await sb.spawn(["unshare", "-rn", ...hold], opts);
    procs.push(ns);
    nsPid = ns.pid;
    // Wait until the namespace exists before slirp4netns joins it.
    await sb.waitFor(
      async () => {
        const r = await sb.run(["readlink", `/proc/${nsPid}/ns/net`, "/proc/1/ns/net"]);
        const [a, b] = r.stdout.split("\n");
        return a !== undefined && a !== b;
      },
      5000,
      20,
    );
    const slirp = await sb.spawn(
      [...pinImpl, "slirp4netns", "--configure", "--mtu=65520", String(nsPid), "tap0"],
      opts,
    );
    procs.push(slirp);
    pids = [slirp.pid];
  } else {
    const bin = impl.key === "ours" ? OUR_PASTA : C_PASTA;
    const p = await sb.spawn([...pinImpl, bin, "--config-net", "--", ...hold], opts);
    procs.push(p);
    await sb.waitFor(
      async () => {
        const procs = await children(sb);
        const tree = descendants(procs, p.pid);
        const held = tree.find((pid) => procs.get(pid)?.comm === "sleep");
        if (held === undefined) return false;
        nsPid = held;
        pids = [p.pid, ...tree.filter((pid) => pid !== held)];
        return true;
      },
      30_000,
      50,
    );
  }
  const inst: Instance = { nsPid, pids, stop: () => stopAll(sb, procs, [...pids, nsPid]) };
  if (!nsPid || !(await ready())) {
    const outs = await Promise.race([
      Promise.all(procs.map((p) => p.result)),
      sleep(100).then(() => []),
    ]);
    await inst.stop();
    throw new Error(
      `${impl.name}: namespace not configured within 30 s ${outs.map((o) => o.stderr).join(" ")}`,
    );
  }
  return inst;
}

/** Sum of utime + stime, in seconds, of `pids`. */
async function cpuSeconds(sb: Sandbox, pids: number[]): Promise<number> {
  const r = await sb.run(["sh", "-c", `cat ${pids.map((p) => `/proc/${p}/stat`).join(" ")}`]);
  let ticks = 0;
  for (const line of r.stdout.split("\n")) {
    const rest = line.slice(line.lastIndexOf(")") + 2).split(" ");
    // After ") ": state is field 3; utime and stime are fields 14 and 15.
    ticks += Number(rest[11] ?? 0) + Number(rest[12] ?? 0);
  }
  return ticks / CLK_TCK;
}

const CLK_TCK = Number(text("getconf", ["CLK_TCK"])) || 100;

/** Sum of VmHWM of `pids`, in MiB. */
async function peakRss(sb: Sandbox, pids: number[]): Promise<number> {
  const r = await sb.run(["sh", "-c", `cat ${pids.map((p) => `/proc/${p}/status`).join(" ")}`]);
  let kb = 0;
  for (const m of r.stdout.matchAll(/^VmHWM:\s+(\d+) kB/gm)) kb += Number(m[1]);
  return kb / 1024;
}

// --- servers ----------------------------------------------------------------------------------

async function listening(sb: Sandbox, port: number, remote: boolean): Promise<boolean> {
  return await sb.waitFor(
    async () => {
      const r = await sb.run(["ss", "-Hltn", `sport = :${port}`], { remote, timeoutMs: 5000 });
      return r.stdout.trim() !== "";
    },
    5000,
    50,
  );
}

async function server(
  sb: Sandbox,
  cmd: readonly string[],
  port: number,
  remote = false,
): Promise<SandboxProcess> {
  const p = await sb.spawn([...pinTool, ...cmd], { remote, timeoutMs: 600_000 });
  if (!(await listening(sb, port, remote))) {
    await p.kill("KILL");
    throw new Error(`${cmd.join(" ")} is not listening`);
  }
  return p;
}

// --- figures ----------------------------------------------------------------------------------

// deno-lint-ignore no-explicit-any
type Json = any;

interface IperfRun {
  /** Received bits per second. */
  bps: number;
  /** Bytes moved including the warm-up. */
  bytes: number;
  /** Each interval's Gbit/s, warm-up included, for the log. */
  intervals: string;
  /** Some interval after the warm-up moved nothing. */
  stalled: boolean;
}

async function iperf(sb: Sandbox, inst: Instance, dst: string, extra: string[]): Promise<IperfRun> {
  const args = ["iperf3", "-c", dst, "-p", String(IPERF_PORT), "-t", String(SECONDS)];
  args.push("-O", String(OMIT), "-J", "--connect-timeout", "3000", ...extra);
  const limit = (SECONDS + OMIT) * 1000 + 10_000;
  const r = await sb.run(inNs(inst, [...pinTool, ...args]), { timeoutMs: limit });
  if (r.timedOut) throw new Error(`iperf3 did not finish within ${limit / 1000} s (stalled)`);
  let j: Json;
  try {
    j = JSON.parse(r.stdout);
  } catch {
    throw new Error(`iperf3 failed: ${(r.stderr || r.stdout).trim().slice(0, 200)}`);
  }
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  const bytes = (j.intervals as Json[]).reduce((n, i) => n + i.sum.bytes, 0);
  const stalled = (j.intervals as Json[]).some((i) => !i.sum.omitted && i.sum.bytes === 0);
  const intervals = (j.intervals as Json[]).map((i) => (i.sum.bits_per_second / 1e9).toFixed(2))
    .join(" ");
  if (extra.includes("-u")) {
    const recv = j.end.sum_received ?? j.end.sum;
    const bps = j.end.sum_received
      ? recv.bits_per_second
      : recv.bits_per_second * (1 - recv.lost_percent / 100);
    return { bps, bytes, intervals, stalled };
  }
  return { bps: j.end.sum_received.bits_per_second, bytes, intervals, stalled };
}

async function rrProbe(sb: Sandbox, inst: Instance, dst: string, mode: "rr" | "crr") {
  const cmd = [...pinTool, PYTHON, RR, mode, dst, String(RR_PORT), String(RR_SECONDS)];
  const r = await sb.run(inNs(inst, cmd), { timeoutMs: RR_SECONDS * 1000 + 15_000 });
  if (r.code !== 0) {
    throw new Error(`rr.py ${mode} failed (${r.code}): ${r.stderr.trim().split("\n").pop()}`);
  }
  const j = JSON.parse(r.stdout);
  if (j.error) throw new Error(`connect failed after ${j.count} connections: ${j.error}`);
  return mode === "rr" ? (j.seconds / j.count) * 1e6 : j.count / j.seconds;
}

async function startupOnce(sb: Sandbox, impl: Impl): Promise<number> {
  const wait = `until ip -4 -o addr | grep -q 'inet ${impl.addr}/'; do :; done; date +%s%N`;
  const pin = pinImpl.join(" ");
  const script = impl.key === "slirp"
    ? `s=$(date +%s%N); unshare -rn sh -c "${wait}" > "$0" & ns=$!
       ${pin} slirp4netns --configure --mtu=65520 $ns tap0 >/dev/null 2>&1 & slirp=$!
       wait $ns; kill $slirp; wait $slirp; echo $s; cat "$0"`
    : `s=$(date +%s%N); ${pin} ${impl.key === "ours" ? OUR_PASTA : C_PASTA} --config-net \
         -- sh -c "${wait}" > "$0"; echo $s; cat "$0"`;
  const out = `${sb.dir}/startup.out`;
  const r = await sb.run(["sh", "-c", script, out], { user: true, timeoutMs: 30_000 });
  const [s, e] = r.stdout.trim().split("\n").map(Number);
  if (r.timedOut || !s || !e) throw new Error(`start-up run failed: ${r.stderr.trim()}`);
  return (e - s) / 1e6;
}

// --- running ----------------------------------------------------------------------------------

function set(table: Table, fig: FigureId, impl: Impl, cell: Cell): void {
  if (!table.has(fig)) table.set(fig, new Map());
  table.get(fig)!.set(impl.key, cell);
}

function push(table: Table, fig: FigureId, impl: Impl, value: number, flag?: string): void {
  let cell = table.get(fig)?.get(impl.key);
  if (cell && "values" in cell) cell.values.push(value);
  else set(table, fig, impl, cell = { values: [value] });
  if (flag && "values" in cell && !cell.flags?.includes(flag)) {
    cell.flags = [...(cell.flags ?? []), flag];
  }
}

const STALL = "the transfer stalled in at least one run: some 1 s interval after the warm-up " +
  "moved no data (the per-interval rates are in the log)";

function na(table: Table, fig: FigureId, impl: Impl, why: string): void {
  set(table, fig, impl, { na: why });
  console.error(`  ${impl.name} ${fig}: n/a: ${why}`);
}

function overBudget(): boolean {
  return Date.now() - started > BUDGET_MS;
}

/** One figure group for one implementation: a fresh instance, RUNS runs, then its RSS. */
async function measure(
  sb: Sandbox,
  table: Table,
  impl: Impl,
  figs: FigureId[],
  body: (inst: Instance) => Promise<void>,
): Promise<void> {
  if (overBudget()) {
    for (const f of figs) na(table, f, impl, "time budget of the benchmark exhausted");
    return;
  }
  let inst: Instance;
  try {
    inst = await start(sb, impl);
  } catch (e) {
    for (const f of figs) na(table, f, impl, (e as Error).message);
    return;
  }
  try {
    await body(inst);
    const rss = await peakRss(sb, inst.pids);
    const cell = table.get("rss")?.get(impl.key);
    if (!cell) set(table, "rss", impl, { values: [rss] });
    else if ("values" in cell) cell.values[0] = Math.max(cell.values[0]!, rss);
  } finally {
    await inst.stop();
  }
}

async function tcpFigure(
  sb: Sandbox,
  table: Table,
  impl: Impl,
  fig: "tcpOut" | "tcpIn" | "tcpRemote",
): Promise<void> {
  const remote = fig === "tcpRemote";
  const bind = remote ? "203.0.113.1" : "127.0.0.1";
  const dst = remote ? "203.0.113.1" : impl.toHost;
  const srv = await server(
    sb,
    ["iperf3", "-s", "-B", bind, "-p", String(IPERF_PORT)],
    IPERF_PORT,
    remote,
  );
  try {
    await measure(sb, table, impl, fig === "tcpOut" ? [fig, "cpu"] : [fig], async (inst) => {
      for (let i = 0; i < RUNS; i++) {
        try {
          const cpu0 = await cpuSeconds(sb, inst.pids);
          const run = await iperf(sb, inst, dst, fig === "tcpIn" ? ["-R"] : []);
          const cpu1 = await cpuSeconds(sb, inst.pids);
          push(table, fig, impl, run.bps / 1e9, run.stalled ? STALL : undefined);
          if (fig === "tcpOut") push(table, "cpu", impl, (cpu1 - cpu0) / (run.bytes / 1e9));
          console.error(
            `  ${impl.name} ${fig}: ${(run.bps / 1e9).toFixed(3)} Gbit/s [${run.intervals}]`,
          );
        } catch (e) {
          na(table, fig, impl, (e as Error).message);
          if (fig === "tcpOut") na(table, "cpu", impl, "no completed TCP ns → host run");
          break;
        }
      }
    });
  } finally {
    await srv.kill("KILL");
  }
}

async function udpFigure(sb: Sandbox, table: Table, impl: Impl): Promise<void> {
  const srv = await server(
    sb,
    ["iperf3", "-s", "-B", "127.0.0.1", "-p", String(IPERF_PORT)],
    IPERF_PORT,
  );
  try {
    await measure(sb, table, impl, ["udpOut"], async (inst) => {
      for (let i = 0; i < RUNS; i++) {
        try {
          const run = await iperf(sb, inst, impl.toHost, [
            "-u",
            "-b",
            UDP_RATE,
            "-l",
            "1400",
            "-w",
            "4M",
          ]);
          push(table, "udpOut", impl, run.bps / 1e9, run.stalled ? STALL : undefined);
          console.error(
            `  ${impl.name} udpOut: ${(run.bps / 1e9).toFixed(3)} Gbit/s [${run.intervals}]`,
          );
        } catch (e) {
          na(table, "udpOut", impl, (e as Error).message);
          break;
        }
      }
    });
  } finally {
    await srv.kill("KILL");
  }
}

async function rrFigures(sb: Sandbox, table: Table, impl: Impl): Promise<void> {
  const srv = await server(sb, [PYTHON, RR, "server", "127.0.0.1", String(RR_PORT)], RR_PORT);
  try {
    await measure(sb, table, impl, ["rr", "crr"], async (inst) => {
      // TIME_WAIT sockets of the connection-rate loop, in the namespace (per netns).
      await sb.run(inNs(inst, ["sysctl", "-qw", `net.ipv4.tcp_max_tw_buckets=${TW_BUCKETS}`]));
      for (const mode of ["rr", "crr"] as const) {
        for (let i = 0; i < RUNS; i++) {
          try {
            const v = await rrProbe(sb, inst, impl.toHost, mode);
            push(table, mode, impl, v);
            console.error(`  ${impl.name} ${mode}: ${v.toFixed(1)}`);
          } catch (e) {
            na(table, mode, impl, (e as Error).message);
            break;
          }
        }
      }
    });
  } finally {
    await srv.kill("KILL");
  }
}

async function startupFigure(sb: Sandbox, table: Table, impl: Impl): Promise<void> {
  for (let i = 0; i < RUNS; i++) {
    try {
      const ms = await startupOnce(sb, impl);
      push(table, "startup", impl, ms);
      console.error(`  ${impl.name} startup: ${ms.toFixed(0)} ms`);
    } catch (e) {
      na(table, "startup", impl, (e as Error).message);
      break;
    }
  }
}

async function runPass(sb: Sandbox, raised: boolean): Promise<Table> {
  const table: Table = new Map();
  for (const impl of IMPLS) {
    console.error(`${impl.name}${raised ? " (wmem_max/rmem_max 64 MiB)" : ""}:`);
    for (const fig of ["tcpOut", "tcpIn", "tcpRemote"] as const) {
      if (GROUPS.includes("tcp")) await tcpFigure(sb, table, impl, fig);
    }
    if (raised) continue;
    if (GROUPS.includes("udp")) await udpFigure(sb, table, impl);
    if (GROUPS.includes("rr")) await rrFigures(sb, table, impl);
    if (!GROUPS.includes("startup")) continue;
    if (!overBudget()) await startupFigure(sb, table, impl);
    else na(table, "startup", impl, "time budget of the benchmark exhausted");
  }
  if (raised) table.delete("rss");
  return table;
}

// --- the report -------------------------------------------------------------------------------

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function footnote(why: string): string {
  let i = notes.indexOf(why);
  if (i < 0) i = notes.push(why) - 1;
  return `[${i + 1}]`;
}

function fmtCell(fig: Figure, cell: Cell | undefined): string {
  if (!cell) return "n/a " + footnote("not measured");
  if ("na" in cell) return `n/a ${footnote(cell.na)}`;
  const d = fig.digits;
  const v = cell.values;
  const marks = (cell.flags ?? []).map((f) => ` ${footnote(f)}`).join("");
  if (v.length === 1) return v[0]!.toFixed(d) + marks;
  const range = `${Math.min(...v).toFixed(d)}–${Math.max(...v).toFixed(d)}`;
  return `${median(v).toFixed(d)} (${range})${marks}`;
}

function renderTable(table: Table, only?: readonly FigureId[]): string {
  const head = ["figure", "unit", ...IMPLS.map((i) => i.name), "ours/C"];
  const rows = [head, head.map(() => "---")];
  for (const fig of FIGURES) {
    if (only && !only.includes(fig.id)) continue;
    const cells = table.get(fig.id) ?? new Map<Impl["key"], Cell>();
    const ours = cells.get("ours");
    const c = cells.get("c");
    const stalled = [ours, c].some((x) => x && "values" in x && x.flags?.length);
    const ratio = ours && c && "values" in ours && "values" in c
      ? `${(median(ours.values) / median(c.values)).toFixed(2)}×${stalled ? " (stalls)" : ""}`
      : "–";
    rows.push([
      fig.label,
      fig.unit,
      ...IMPLS.map((i) => fmtCell(fig, cells.get(i.key))),
      ratio,
    ]);
  }
  return rows.map((r) => `| ${r.join(" | ")} |`).join("\n");
}

function sysctlValue(name: string): string {
  return text("sysctl", ["-n", name]);
}

function loadavg(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

const LOAD_START = loadavg();

function header(): string {
  const model = Deno.readTextFileSync("/proc/cpuinfo").match(/^model name\s*:\s*(.*)$/m)?.[1];
  const cPkg = text("dpkg-query", ["-W", "-f", "${Version}", "passt"]);
  const slirp = text("slirp4netns", ["--version"]).split("\n");
  const libslirp = slirp.find((l) => l.startsWith("libslirp"));
  return [
    `# pasta benchmark, ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
    "",
    `- machine: ${text("nproc", [])} CPUs, ${model ?? "unknown CPU"}, Linux ${
      text("uname", ["-r"])
    }; net.core.wmem_max ${sysctlValue("net.core.wmem_max")}, rmem_max ${
      sysctlValue("net.core.rmem_max")
    }`,
    `- load average at the start: ${LOAD_START}, at the end: ${loadavg()} (other work on the ` +
    "machine shows up as noise)",
    `- ours: ${VERSION} (${
      text(OUR_PASTA, ["--version"]).split("\n")[0]
    }), Deno ${Deno.version.deno}`,
    `- C pasta: \`${text(C_PASTA, ["--version"]).split("\n")[0]}\` (Debian passt ${cPkg})`,
    `- slirp4netns: ${slirp[0]}${libslirp ? `, ${libslirp}` : ""}`,
    `- method: ${RUNS} runs per figure, median (min–max); iperf3 ${SECONDS} s after a ${OMIT} s ` +
    `discarded warm-up; ${
      PIN ? "implementation pinned to CPU 0, clients and servers to CPU 1" : "unpinned"
    }; ` +
    "each implementation runs as an unprivileged user in tests/sandbox/; ns → host goes to " +
    "the gateway address (192.0.2.1, slirp4netns 10.0.2.2) that maps to the host's 127.0.0.1. " +
    "Differences under ~15% between separate invocations are noise.",
  ].join("\n");
}

function check(): void {
  const missing = ["iperf3", "slirp4netns", "taskset", "ss"].filter((t) =>
    !["/usr/bin", "/usr/sbin", "/bin", "/sbin"].some((d) => exists(`${d}/${t}`))
  );
  if (!exists(C_PASTA)) missing.push("pasta");
  if (missing.length) {
    const pkgs = missing.map((t) =>
      ({ pasta: "passt", ss: "iproute2", taskset: "util-linux" })[t] ?? t
    );
    console.error(
      `missing: ${missing.join(", ")}; install with: apt-get install ${pkgs.join(" ")}`,
    );
    Deno.exit(2);
  }
}

async function raiseBuffers<T>(fn: () => Promise<T>): Promise<T | undefined> {
  if (Deno.uid() !== 0) {
    notes.push("raised-buffer pass skipped: net.core.[rw]mem_max can only be raised as root");
    return undefined;
  }
  const names = ["net.core.wmem_max", "net.core.rmem_max"];
  const saved = names.map((n) => [n, sysctlValue(n)] as const);
  const restore = () => {
    for (const [n, v] of saved) text("sysctl", ["-qw", `${n}=${v}`]);
  };
  const onSignal = () => {
    restore();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    for (const n of names) text("sysctl", ["-qw", `${n}=${RAISED_BYTES}`]);
    return await fn();
  } finally {
    restore();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    console.error(`restored ${saved.map(([n, v]) => `${n}=${v}`).join(", ")}`);
  }
}

async function main(): Promise<void> {
  check();
  const [base, raised] = await withSandbox(async (sb) => {
    // TIME_WAIT of pasta's and slirp4netns' host-side sockets (per netns).
    await sb.run(["sysctl", "-qw", `net.ipv4.tcp_max_tw_buckets=${TW_BUCKETS}`]);
    const base = await runPass(sb, false);
    const raised = RAISED && !overBudget()
      ? await raiseBuffers(() => runPass(sb, true))
      : undefined;
    return [base, raised] as const;
  });
  const sections = [
    header(),
    "",
    `## Machine defaults (net.core.wmem_max ${sysctlValue("net.core.wmem_max")})`,
    "",
    renderTable(base),
  ];
  if (raised) {
    sections.push(
      "",
      `## net.core.wmem_max and rmem_max raised to ${RAISED_BYTES >> 20} MiB`,
      "",
      renderTable(raised, RAISED_FIGURES),
    );
  } else if (RAISED) {
    notes.push("raised-buffer pass skipped (not root, or out of time)");
  }
  sections.push(
    "",
    "Higher is better for Gbit/s and conn/s, lower for µs, s/GB, MiB and ms. Peak RSS is the " +
      "highest over the instances started (one per figure group), summed over the " +
      "implementation's processes (ours: the Deno launcher process and its worker).",
  );
  if (notes.length) {
    sections.push("", ...notes.map((n, i) => `[${i + 1}] ${n}  `));
  }
  sections.push(`\nTotal time: ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const md = sections.join("\n") + "\n";
  await Deno.mkdir(`${ROOT}build`, { recursive: true });
  await Deno.writeTextFile(OUT, md);
  console.log(md);
  console.error(`written to ${OUT}`);
}

await main();
