/**
 * `make bench`: our pasta against Debian's C pasta and slirp4netns, side by side (issue 9).
 *
 * Everything runs in the throwaway network of tests/sandbox/ (new user, network, mount and
 * PID namespaces): the sandbox's "host" namespace (eth0 192.0.2.2, a veth to the "remote"
 * namespace 192.0.2.1 with 203.0.113.1 beyond) is where each implementation runs, as the
 * sandbox's unprivileged user, giving a namespace of its own to a `sleep`. Clients run in
 * that namespace (nsenter), servers on the host's loopback or in the remote namespace;
 * for the forwarded (-t) figures the other way round: no packet leaves the sandbox.
 *
 * Figures, each RUNS times (median, min–max), per implementation (ours, C pasta,
 * slirp4netns; "n/a" with a footnote where one has no such path):
 *   - TCP throughput (iperf3, SECONDS s after an OMIT s warm-up that is discarded): namespace →
 *     host (through the tap to the gateway address, which maps to the host's 127.0.0.1),
 *     host → namespace (the same with -R), namespace → remote (203.0.113.1);
 *   - TCP throughput, SHORT_SECONDS s runs: namespace → host over IPv6 (the gateway's IPv6
 *     address, which maps to the host's ::1; slirp4netns with --enable-ipv6, fd00::2);
 *     remote → namespace (client in the remote namespace to the host's 192.0.2.2, forwarded
 *     with -t through the tap; not slirp4netns, whose forwarding needs its API socket);
 *     spliced, pasta only: host 127.0.0.1 → namespace 127.0.0.1 through -t, and namespace
 *     127.0.0.1 → host 127.0.0.1 through -T; and once, as a reference in the method notes,
 *     plain loopback in the sandbox's host namespace (the ceiling of the spliced rows);
 *   - UDP throughput received, namespace → host, 1400-byte datagrams at UDP_RATE (SECONDS
 *     s), and 65000-byte datagrams at UDP64_RATE (SHORT_SECONDS s);
 *   - TCP request/response latency (1 byte each way) and connections per second (connect,
 *     close), namespace → host, with bench/rr.py; the latency again spliced (pasta only,
 *     namespace 127.0.0.1 → host 127.0.0.1 through -T);
 *   - CPU time (utime + stime of the implementation's processes) per GB moved, namespace →
 *     host, and the peak RSS (VmHWM, summed over its processes, highest instance);
 *   - start-up: from the command line until `ip addr` in the namespace shows the address;
 *     and joining a namespace as Podman does (--netns PATH from the user namespace that owns
 *     it, going to the background): until the process started exits, configured;
 *   - memory while serving one namespace (`sleep` in it): PSS and RSS summed over the
 *     implementation's processes (smaps_rollup), and the marginal PSS per instance with
 *     MEM_INSTANCES instances serving as many namespaces at once.
 * Then, as root and when BENCH_RAISED is not 0, the TCP tap figures again (not the spliced
 * ones) with the global net.core.wmem_max and rmem_max raised to 64 MiB (restored
 * afterwards, also on SIGINT). A full run takes about 10 minutes (BUDGET_MS stops it
 * starting figures after 12).
 *
 * The table goes to stdout and to build/bench.md. Environment: BENCH_RUNS (default 3),
 * BENCH_PIN=0 to run unpinned (default: the implementation on CPU 0, clients and servers
 * on CPU 1), BENCH_RAISED=0 to skip the raised-buffer pass, and for quicker partial runs
 * BENCH_ONLY=ours,c,slirp, BENCH_FIGS=tcp,tcp6,remote,splice,udp,rr,startup,mem,
 * BENCH_UDP_RATE and BENCH_UDP64_RATE (iperf3 -b); BENCH_C_PASTA names the C pasta binary
 * (default Debian's /usr/bin/pasta; `sh ../shared/ref/build.sh` prints newer builds), and
 * BENCH_OURS ours (default ./pasta); BENCH_PASTA_ARGS adds options to both pastas' command
 * lines ("-m 1500": the namespace's MTU).
 */

import { type Sandbox, type SandboxProcess, sleep, withSandbox } from "../tests/sandbox/sandbox.ts";
import { VERSION } from "../src/version.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const RR = new URL("./rr.py", import.meta.url).pathname;
const OUT = `${ROOT}build/bench.md`;
const PYTHON = ["/usr/bin/python3", "/usr/bin/python3.11"].find(exists) ?? "python3";

const RUNS = Number(Deno.env.get("BENCH_RUNS") ?? "3");
/** BENCH_PASTA_ARGS: options for both pastas, space-separated (e.g. "-m 1500"). */
const PASTA_ARGS = (Deno.env.get("BENCH_PASTA_ARGS") ?? "").split(" ").filter((a) => a !== "");
const PIN = Deno.env.get("BENCH_PIN") !== "0";
const RAISED = Deno.env.get("BENCH_RAISED") !== "0";
const ONLY = Deno.env.get("BENCH_ONLY")?.split(",");
const GROUPS = Deno.env.get("BENCH_FIGS")?.split(",") ??
  ["tcp", "tcp6", "remote", "splice", "udp", "rr", "startup", "mem"];
/** Instances started at once for the marginal memory figure. */
const MEM_INSTANCES = 10;
const SECONDS = 3;
/** iperf3 time of the figures added later (IPv6, remote → ns, spliced, UDP 65000 B). */
const SHORT_SECONDS = 2;
const OMIT = 1;
const RR_SECONDS = 2;
const UDP_RATE = Deno.env.get("BENCH_UDP_RATE") ?? "4G";
/** iperf3 -b for 65000-byte datagrams: 0, unthrottled (20G was reached at once by both pastas). */
const UDP64_RATE = Deno.env.get("BENCH_UDP64_RATE") ?? "0";
const UDP64_LEN = 65000;
const RAISED_BYTES = 64 << 20;
/** The whole benchmark stops starting figures after this (figures left are "n/a"). */
const BUDGET_MS = 12 * 60_000;
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
  /** Address in the namespace that reaches the host's ::1 (tap), if any. */
  readonly toHost6?: string;
  /** The namespace's IPv6 address once configured (with toHost6). */
  readonly addr6?: string;
  /** Has port forwarding from the command line and a spliced loopback path. */
  readonly pasta: boolean;
}

const IMPLS: readonly Impl[] = ([
  {
    key: "ours",
    name: "ours",
    toHost: "192.0.2.1",
    addr: "192.0.2.2",
    toHost6: "2001:db8:1::1",
    addr6: "2001:db8:1::2",
    pasta: true,
  },
  {
    key: "c",
    name: "C pasta",
    toHost: "192.0.2.1",
    addr: "192.0.2.2",
    toHost6: "2001:db8:1::1",
    addr6: "2001:db8:1::2",
    pasta: true,
  },
  {
    key: "slirp",
    name: "slirp4netns",
    toHost: "10.0.2.2",
    addr: "10.0.2.100",
    toHost6: "fd00::2",
    addr6: "fd00::",
    pasta: false,
  },
] as const).filter((i) => !ONLY || ONLY.includes(i.key));

/** Our pasta: ./pasta as `make` built it, or BENCH_OURS (another build, to compare). */
const OUR_PASTA = Deno.env.get("BENCH_OURS") ?? `${ROOT}pasta`;
/** The C pasta to compare with: Debian's, or BENCH_C_PASTA (a build of sh ../shared/ref/build.sh). */
const C_PASTA = Deno.env.get("BENCH_C_PASTA") ?? "/usr/bin/pasta";

type FigureId =
  | "tcpOut"
  | "tcpOut6"
  | "tcpIn"
  | "tcpRemote"
  | "tcpRemoteIn"
  | "tcpSpliceIn"
  | "tcpSpliceOut"
  | "udpOut"
  | "udp64"
  | "rr"
  | "rrSplice"
  | "crr"
  | "cpu"
  | "rss"
  | "startup"
  | "startJoin"
  | "pss1"
  | "rss1"
  | "pss10";

interface Figure {
  readonly id: FigureId;
  readonly label: string;
  readonly unit: string;
  readonly digits: number;
}

const FIGURES: readonly Figure[] = [
  { id: "tcpOut", label: "TCP ns → host (tap), IPv4", unit: "Gbit/s", digits: 2 },
  { id: "tcpOut6", label: "TCP ns → host (tap), IPv6", unit: "Gbit/s", digits: 2 },
  { id: "tcpIn", label: "TCP host → ns (tap, -R), IPv4", unit: "Gbit/s", digits: 2 },
  { id: "tcpRemote", label: "TCP ns → remote, IPv4", unit: "Gbit/s", digits: 2 },
  {
    id: "tcpRemoteIn",
    label: "TCP remote → ns (tap, -t to the host's address), IPv4",
    unit: "Gbit/s",
    digits: 2,
  },
  {
    id: "tcpSpliceIn",
    label: "TCP host → ns (spliced, -t, loopback), IPv4",
    unit: "Gbit/s",
    digits: 2,
  },
  {
    id: "tcpSpliceOut",
    label: "TCP ns → host (spliced, -T, loopback), IPv4",
    unit: "Gbit/s",
    digits: 2,
  },
  {
    id: "udpOut",
    label: `UDP ns → host received, 1400 B at ${UDP_RATE}`,
    unit: "Gbit/s",
    digits: 2,
  },
  {
    id: "udp64",
    label: `UDP ns → host received, ${UDP64_LEN} B ${
      UDP64_RATE === "0" ? "unthrottled" : `at ${UDP64_RATE}`
    }`,
    unit: "Gbit/s",
    digits: 2,
  },
  { id: "rr", label: "TCP 1-byte request/response", unit: "µs/round trip", digits: 1 },
  {
    id: "rrSplice",
    label: "TCP 1-byte request/response, spliced (-T, loopback)",
    unit: "µs/round trip",
    digits: 1,
  },
  { id: "crr", label: "TCP connect+close", unit: "conn/s", digits: 0 },
  { id: "cpu", label: "CPU time, TCP ns → host", unit: "s/GB", digits: 2 },
  { id: "rss", label: "peak RSS (VmHWM, all its processes)", unit: "MiB", digits: 1 },
  { id: "startup", label: "start until the address is configured", unit: "ms", digits: 0 },
  {
    id: "startJoin",
    label: "start until configured, joining (--netns PATH, background)",
    unit: "ms",
    digits: 0,
  },
  { id: "pss1", label: "PSS serving one namespace (all its processes)", unit: "MiB", digits: 1 },
  { id: "rss1", label: "RSS serving one namespace (all its processes)", unit: "MiB", digits: 1 },
  {
    id: "pss10",
    label: `marginal PSS per instance, ${MEM_INSTANCES} instances at once`,
    unit: "MiB",
    digits: 1,
  },
];

const RAISED_FIGURES: readonly FigureId[] = [
  "tcpOut",
  "tcpOut6",
  "tcpIn",
  "tcpRemote",
  "tcpRemoteIn",
  "cpu",
];

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

/** Starts `impl` with `extra` options (pasta's port forwarding; slirp4netns' --enable-ipv6). */
async function start(sb: Sandbox, impl: Impl, extra: readonly string[] = []): Promise<Instance> {
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
      [...pinImpl, "slirp4netns", "--configure", "--mtu=65520", ...extra, String(nsPid), "tap0"],
      opts,
    );
    procs.push(slirp);
    pids = [slirp.pid];
  } else {
    const bin = impl.key === "ours" ? OUR_PASTA : C_PASTA;
    const p = await sb.spawn(
      [...pinImpl, bin, "--config-net", ...PASTA_ARGS, ...extra, "--", ...hold],
      opts,
    );
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

/** Where a client or server runs: the host, the remote namespace, or an instance's namespace. */
interface At {
  readonly remote?: boolean;
  readonly inst?: Instance;
}

function at(where: At, cmd: readonly string[]): string[] {
  return where.inst ? inNs(where.inst, cmd) : [...cmd];
}

async function listening(sb: Sandbox, port: number, where: At): Promise<boolean> {
  return await sb.waitFor(
    async () => {
      const r = await sb.run(at(where, ["ss", "-Hltn", `sport = :${port}`]), {
        remote: where.remote === true,
        timeoutMs: 5000,
      });
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
  where: At = {},
): Promise<SandboxProcess> {
  const p = await sb.spawn(at(where, [...pinTool, ...cmd]), {
    remote: where.remote === true,
    timeoutMs: 600_000,
  });
  if (!(await listening(sb, port, where))) {
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

async function iperf(
  sb: Sandbox,
  where: At,
  dst: string,
  extra: string[],
  seconds = SECONDS,
): Promise<IperfRun> {
  const args = ["iperf3", "-c", dst, "-p", String(IPERF_PORT), "-t", String(seconds)];
  args.push("-O", String(OMIT), "-J", "--connect-timeout", "3000", ...extra);
  const limit = (seconds + OMIT) * 1000 + 10_000;
  const r = await sb.run(at(where, [...pinTool, ...args]), {
    remote: where.remote === true,
    timeoutMs: limit,
  });
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

async function rrProbe(sb: Sandbox, where: At, dst: string, mode: "rr" | "crr") {
  const cmd = [...pinTool, PYTHON, RR, mode, dst, String(RR_PORT), String(RR_SECONDS)];
  const r = await sb.run(at(where, cmd), { timeoutMs: RR_SECONDS * 1000 + 15_000 });
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

/**
 * Start-up joining an existing namespace as Podman does: pasta runs in the user namespace
 * that owns the network namespace (unshare -r), with --netns PATH, and goes to the
 * background once the namespace is configured: the time until the process started exits
 * 0. The address is checked afterwards; the worker is then ended through its PID file.
 */
async function startJoinOnce(sb: Sandbox, impl: Impl): Promise<number> {
  const bin = impl.key === "ours" ? OUR_PASTA : C_PASTA;
  const pin = pinImpl.join(" ");
  const script = `unshare --net sleep 30 & h=$!
    i=0; while [ "$(readlink /proc/$h/ns/net)" = "$(readlink /proc/self/ns/net)" ] && \
      [ $i -lt 500 ]; do i=$((i+1)); done
    s=$(date +%s%N); ${pin} ${bin} --config-net -q -P "$0.pid" --netns /proc/$h/ns/net || exit 9
    e=$(date +%s%N)
    nsenter --net=/proc/$h/ns/net ip -4 -o addr | grep -q 'inet ${impl.addr}/' || echo unconfigured
    kill $(cat "$0.pid") $h; echo $s; echo $e`;
  const r = await sb.run([
    "unshare",
    "--user",
    "--map-root-user",
    "sh",
    "-c",
    script,
    sb.dir + "/join",
  ], {
    user: true,
    timeoutMs: 30_000,
  });
  if (r.stdout.includes("unconfigured")) throw new Error("joined namespace not configured");
  const [s, e] = r.stdout.trim().split("\n").map(Number);
  if (r.timedOut || r.code !== 0 || !s || !e) {
    throw new Error(`joining start-up run failed (${r.code}): ${r.stderr.trim()}`);
  }
  return (e - s) / 1e6;
}

/** Sums of Pss, Rss and private (clean + dirty) memory of `pids`, in MiB. */
async function memoryOf(
  sb: Sandbox,
  pids: number[],
): Promise<{ pss: number; rss: number; priv: number }> {
  const files = pids.map((p) => `/proc/${p}/smaps_rollup`).join(" ");
  const r = await sb.run(["sh", "-c", `cat ${files} 2>/dev/null`], { timeoutMs: 5000 });
  const sum = (re: RegExp) => [...r.stdout.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
  return {
    pss: sum(/^Pss:\s+(\d+) kB/gm) / 1024,
    rss: sum(/^Rss:\s+(\d+) kB/gm) / 1024,
    priv: (sum(/^Private_Clean:\s+(\d+) kB/gm) + sum(/^Private_Dirty:\s+(\d+) kB/gm)) / 1024,
  };
}

/**
 * Memory while serving: one instance (PSS and RSS summed over its processes, the held
 * command excluded), then MEM_INSTANCES at once: (PSS of all − PSS of one) / (N − 1).
 */
async function memoryFigures(sb: Sandbox, table: Table, impl: Impl): Promise<void> {
  if (!impl.pasta) {
    for (const fig of ["pss1", "rss1", "pss10"] as const) na(table, fig, impl, "pasta only");
    return;
  }
  const insts: Instance[] = [];
  try {
    for (let run = 0; run < RUNS; run++) {
      const one = await start(sb, impl);
      insts.push(one);
      await sleep(1000);
      const m = await memoryOf(sb, one.pids);
      push(table, "pss1", impl, m.pss);
      push(table, "rss1", impl, m.rss);
      console.error(
        `  ${impl.name} one instance: PSS ${m.pss.toFixed(1)} MiB, RSS ${m.rss.toFixed(1)} MiB, ` +
          `private ${m.priv.toFixed(1)} MiB`,
      );
      if (run < RUNS - 1) await insts.pop()!.stop();
    }
    for (let i = 1; i < MEM_INSTANCES; i++) insts.push(await start(sb, impl));
    await sleep(1000);
    const single = await memoryOf(sb, insts[0]!.pids);
    const all = await memoryOf(sb, insts.flatMap((i) => i.pids));
    const marginal = (all.pss - single.pss) / (MEM_INSTANCES - 1);
    push(table, "pss10", impl, marginal);
    console.error(
      `  ${impl.name} ${MEM_INSTANCES} instances: PSS ${all.pss.toFixed(1)} MiB in all, ` +
        `marginal ${marginal.toFixed(1)} MiB, private ${(all.priv / MEM_INSTANCES).toFixed(1)} ` +
        "MiB each",
    );
  } catch (e) {
    na(table, "pss10", impl, (e as Error).message);
  } finally {
    for (const inst of insts) await inst.stop();
  }
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
  extra: readonly string[] = [],
): Promise<void> {
  if (overBudget()) {
    for (const f of figs) na(table, f, impl, "time budget of the benchmark exhausted");
    return;
  }
  let inst: Instance;
  try {
    inst = await start(sb, impl, extra);
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
    { remote },
  );
  try {
    await measure(sb, table, impl, fig === "tcpOut" ? [fig, "cpu"] : [fig], async (inst) => {
      for (let i = 0; i < RUNS; i++) {
        try {
          const cpu0 = await cpuSeconds(sb, inst.pids);
          const run = await iperf(sb, { inst }, dst, fig === "tcpIn" ? ["-R"] : []);
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
    await measure(sb, table, impl, ["udpOut", "udp64"], async (inst) => {
      const udp = ["-u", "-b", UDP_RATE, "-l", "1400", "-w", "4M"];
      await iperfRuns(sb, table, "udpOut", impl, { inst }, impl.toHost, udp, SECONDS);
      await iperfRuns(sb, table, "udp64", impl, { inst }, impl.toHost, [
        "-u",
        "-b",
        UDP64_RATE,
        "-l",
        String(UDP64_LEN),
        "-w",
        "4M",
      ]);
    });
  } finally {
    await srv.kill("KILL");
  }
}

/** RUNS iperf3 runs of `fig` (from `where` to `dst`), or "n/a" with the first failure. */
async function iperfRuns(
  sb: Sandbox,
  table: Table,
  fig: FigureId,
  impl: Impl,
  where: At,
  dst: string,
  extra: string[],
  seconds = SHORT_SECONDS,
): Promise<void> {
  for (let i = 0; i < RUNS; i++) {
    try {
      const run = await iperf(sb, where, dst, extra, seconds);
      push(table, fig, impl, run.bps / 1e9, run.stalled ? STALL : undefined);
      console.error(
        `  ${impl.name} ${fig}: ${(run.bps / 1e9).toFixed(3)} Gbit/s [${run.intervals}]`,
      );
    } catch (e) {
      na(table, fig, impl, (e as Error).message);
      break;
    }
  }
}

/** Starts an iperf3 server in the instance's namespace; "n/a" for `fig` if it fails. */
async function nsServer(
  sb: Sandbox,
  table: Table,
  fig: FigureId,
  impl: Impl,
  inst: Instance,
  bind: string[],
): Promise<SandboxProcess | undefined> {
  try {
    return await server(sb, ["iperf3", "-s", ...bind, "-p", String(IPERF_PORT)], IPERF_PORT, {
      inst,
    });
  } catch (e) {
    na(table, fig, impl, (e as Error).message);
    return undefined;
  }
}

const PORT = String(IPERF_PORT);
const NO_OTHER_FORWARDS = ["-u", "none", "-U", "none"];

/** TCP ns → host over IPv6: the gateway's IPv6 address maps to the host's ::1. */
async function tcp6Figure(sb: Sandbox, table: Table, impl: Impl): Promise<void> {
  const dst = impl.toHost6;
  if (!dst) {
    na(table, "tcpOut6", impl, "no IPv6 address standing for the host's loopback");
    return;
  }
  const srv = await server(sb, ["iperf3", "-s", "-B", "::1", "-p", PORT], IPERF_PORT);
  try {
    await measure(sb, table, impl, ["tcpOut6"], async (inst) => {
      // The IPv6 address may still be tentative (duplicate address detection).
      const ready = await sb.waitFor(
        async () => {
          const r = await sb.run(inNs(inst, ["ip", "-6", "-o", "addr", "show", "scope", "global"]));
          return r.stdout.includes(`inet6 ${impl.addr6}`) && !r.stdout.includes("tentative");
        },
        10_000,
        50,
      );
      if (!ready) na(table, "tcpOut6", impl, "no IPv6 address in the namespace within 10 s");
      else await iperfRuns(sb, table, "tcpOut6", impl, { inst }, dst, []);
    }, impl.key === "slirp" ? ["--enable-ipv6"] : []);
  } finally {
    await srv.kill("KILL");
  }
}

/** TCP from the remote namespace to the host's address, forwarded (-t) through the tap. */
async function remoteInFigure(sb: Sandbox, table: Table, impl: Impl): Promise<void> {
  if (!impl.pasta) {
    na(table, "tcpRemoteIn", impl, "port forwarding only through its API socket, not set up here");
    return;
  }
  await measure(sb, table, impl, ["tcpRemoteIn"], async (inst) => {
    const srv = await nsServer(sb, table, "tcpRemoteIn", impl, inst, []);
    if (!srv) return;
    try {
      await iperfRuns(sb, table, "tcpRemoteIn", impl, { remote: true }, "192.0.2.2", []);
    } finally {
      await srv.kill("KILL");
    }
  }, ["-t", PORT, "-T", "none", ...NO_OTHER_FORWARDS]);
}

/** Plain loopback in the host namespace, no implementation: the spliced figures' ceiling. */
const loopback: number[] = [];

async function spliceFigures(sb: Sandbox, table: Table, impl: Impl): Promise<void> {
  if (!impl.pasta) {
    for (const f of ["tcpSpliceIn", "tcpSpliceOut", "rrSplice"] as const) {
      na(table, f, impl, "no spliced loopback path (nor -t/-T)");
    }
    return;
  }
  // host 127.0.0.1 → -t → the namespace
  await measure(sb, table, impl, ["tcpSpliceIn"], async (inst) => {
    // Any address: -t from the host's loopback reaches the namespace's own address
    // (ours and the C pasta since 2024), or its loopback (older C pastas).
    const srv = await nsServer(sb, table, "tcpSpliceIn", impl, inst, []);
    if (!srv) return;
    try {
      await iperfRuns(sb, table, "tcpSpliceIn", impl, {}, "127.0.0.1", []);
    } finally {
      await srv.kill("KILL");
    }
  }, ["-t", PORT, "-T", "none", ...NO_OTHER_FORWARDS]);
  // the namespace's 127.0.0.1 → -T → the host's 127.0.0.1, throughput then request/response
  const srv = await server(sb, ["iperf3", "-s", "-B", "127.0.0.1", "-p", PORT], IPERF_PORT);
  const rrSrv = await server(sb, [PYTHON, RR, "server", "127.0.0.1", String(RR_PORT)], RR_PORT);
  try {
    await measure(sb, table, impl, ["tcpSpliceOut", "rrSplice"], async (inst) => {
      await iperfRuns(sb, table, "tcpSpliceOut", impl, { inst }, "127.0.0.1", []);
      for (let i = 0; i < RUNS; i++) {
        try {
          const v = await rrProbe(sb, { inst }, "127.0.0.1", "rr");
          push(table, "rrSplice", impl, v);
          console.error(`  ${impl.name} rrSplice: ${v.toFixed(1)}`);
        } catch (e) {
          na(table, "rrSplice", impl, (e as Error).message);
          break;
        }
      }
    }, ["-t", "none", "-T", `${PORT},${RR_PORT}`, ...NO_OTHER_FORWARDS]);
  } finally {
    await srv.kill("KILL");
    await rrSrv.kill("KILL");
  }
}

async function loopbackReference(sb: Sandbox): Promise<void> {
  const srv = await server(sb, ["iperf3", "-s", "-B", "127.0.0.1", "-p", PORT], IPERF_PORT);
  try {
    for (let i = 0; i < RUNS; i++) {
      const run = await iperf(sb, {}, "127.0.0.1", [], SHORT_SECONDS);
      loopback.push(run.bps / 1e9);
      console.error(`  plain loopback: ${(run.bps / 1e9).toFixed(3)} Gbit/s [${run.intervals}]`);
    }
  } catch (e) {
    console.error(`  plain loopback failed: ${(e as Error).message}`);
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
            const v = await rrProbe(sb, { inst }, impl.toHost, mode);
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
  if (!impl.pasta) {
    na(table, "startJoin", impl, "pasta only");
    return;
  }
  for (let i = 0; i < RUNS; i++) {
    try {
      const ms = await startJoinOnce(sb, impl);
      push(table, "startJoin", impl, ms);
      console.error(`  ${impl.name} startup joining: ${ms.toFixed(0)} ms`);
    } catch (e) {
      na(table, "startJoin", impl, (e as Error).message);
      break;
    }
  }
}

async function runPass(sb: Sandbox, raised: boolean): Promise<Table> {
  const table: Table = new Map();
  if (GROUPS.includes("splice") && !raised) {
    console.error("plain loopback (no implementation):");
    await loopbackReference(sb);
  }
  for (const impl of IMPLS) {
    console.error(`${impl.name}${raised ? " (wmem_max/rmem_max 64 MiB)" : ""}:`);
    for (const fig of ["tcpOut", "tcpIn", "tcpRemote"] as const) {
      if (GROUPS.includes("tcp")) await tcpFigure(sb, table, impl, fig);
    }
    if (GROUPS.includes("tcp6")) await tcp6Figure(sb, table, impl);
    if (GROUPS.includes("remote")) await remoteInFigure(sb, table, impl);
    if (GROUPS.includes("splice") && !raised) await spliceFigures(sb, table, impl);
    if (raised) continue;
    if (GROUPS.includes("udp")) await udpFigure(sb, table, impl);
    if (GROUPS.includes("rr")) await rrFigures(sb, table, impl);
    if (GROUPS.includes("mem")) await memoryFigures(sb, table, impl);
    if (!GROUPS.includes("startup")) continue;
    if (!overBudget()) await startupFigure(sb, table, impl);
    else na(table, "startup", impl, "time budget of the benchmark exhausted");
  }
  if (raised) { for (const fig of ["rss", "pss1", "rss1", "pss10"] as const) table.delete(fig); }
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
    // No ratio to a C median of 0 (a transfer that stalled throughout).
    const ratio = ours && c && "values" in ours && "values" in c && median(c.values) > 0
      ? `${(median(ours.values) / median(c.values)).toFixed(2)}×${stalled ? " (stalls)" : ""}`
      : stalled
      ? "– (stalls)"
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
    "the gateway address (192.0.2.1, slirp4netns 10.0.2.2) that maps to the host's 127.0.0.1, " +
    "over IPv6 to 2001:db8:1::1 (slirp4netns with --enable-ipv6: fd00::2), which maps to ::1; " +
    "remote → ns runs the client in the remote namespace, to the host's address 192.0.2.2 " +
    "forwarded with -t; the spliced rows go between the host's and the namespace's " +
    "127.0.0.1 with -t (client on the host) or -T (client in the namespace). " +
    `The rows added later (IPv6, remote → ns, spliced, UDP ${UDP64_LEN} B) and the plain ` +
    `loopback reference use ${SHORT_SECONDS} s iperf3 runs to keep the whole under 13 ` +
    "minutes. Differences under ~15% between separate invocations are noise.",
    `- plain loopback, the ceiling of the spliced rows (iperf3 over 127.0.0.1 in the ` +
    `sandbox's host namespace, no implementation, client and server as above): ${
      loopback.length
        ? `${median(loopback).toFixed(2)} (${Math.min(...loopback).toFixed(2)}–${
          Math.max(...loopback).toFixed(2)
        }) Gbit/s`
        : "not measured"
    }`,
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
      "implementation's processes (ours: the /bin/sh waiter that started it, and the worker). " +
      "PSS counts shared pages in proportion: other Deno processes on the machine lower ours.",
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
