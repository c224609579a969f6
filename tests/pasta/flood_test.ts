/**
 * Floods from a hostile namespace leave nothing behind (issue #15, item 9):
 *
 * - Echo requests with 3000 distinct ICMP identifiers (IPv4) and 1000 (IPv6)
 *   are all answered; 6 s later (idle by then) 2000 more identifiers are
 *   answered too, which needs the idle flows of the first wave to make room,
 *   and a plain ping of the gateway still gets its reply.
 * - 5000 connects, half to a closed port (refused) and half to an address the
 *   remote end drops without a word: every refused one is refused (the client
 *   waits 8 s for that, its kernel retrying lost SYNs), none of them holds a
 *   socket of pasta's, and pasta's descriptors are back to their baseline once
 *   the handshake timeout (10 s) has passed for the unanswered ones.
 *
 * The floods run in the namespace pasta serves (`flood.py`, raw and plain
 * sockets); pasta's descriptors are counted in /proc from the sandbox.
 */
import assert from "node:assert/strict";
import { NET, type Sandbox, withSandbox } from "../sandbox/sandbox.ts";
import { early, needs, PASTA, pastaSuiteIgnored, PYTHON, shellQuote, shWait } from "./_pasta.ts";

const FLOOD = new URL("./flood.py", import.meta.url).pathname;
const suiteIgnored = pastaSuiteIgnored();

function floodTest(name: string, tools: string[], fn: (sb: Sandbox) => Promise<void>): void {
  Deno.test({
    name: `pasta flood: ${name}`,
    ignore: suiteIgnored !== undefined || needs(...tools) !== undefined,
    fn: () => withSandbox(fn),
  });
}

const NS_READY = [
  shWait(
    `ip -6 addr show dev ${NET.hostIfname} scope global -tentative | grep -q ${NET.host6}`,
    "IPv6 address",
  ),
  shWait("ip -6 route show default | grep -q via", "IPv6 default route"),
  shWait("ip -4 route show default | grep -q via", "IPv4 default route"),
].join("\n");

function flood(...args: (string | number)[]): string {
  return [PYTHON, FLOOD, ...args.map(String)].map(shellQuote).join(" ");
}

/** Waits (bounded) for `path` to exist. */
async function waitFile(sb: Sandbox, path: string, timeoutMs: number): Promise<boolean> {
  return await sb.waitFor(
    async () => (await Deno.stat(path).then(() => true, () => false)),
    timeoutMs,
    100,
  );
}

/** A shell line waiting (at most 60 s) for `path`. */
function shAwait(path: string): string {
  return `i=0; while [ ! -e ${path} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`;
}

/**
 * The process serving the namespace: the worker under the PID of the -P file
 * (ours), or that PID itself (a single-process pasta).
 */
async function servingPid(sb: Sandbox, pidFile: string): Promise<number> {
  const pid = Number((await Deno.readTextFile(pidFile)).trim());
  const ps = await sb.run(["ps", "-eo", "pid=,ppid=,comm="], { timeoutMs: 5000 });
  for (const line of ps.stdout.split("\n")) {
    const m = line.trim().match(/^(\d+)\s+(\d+)\s+(.*)$/);
    if (m && Number(m[2]) === pid && m[3] !== "sh") return Number(m[1]);
  }
  return pid;
}

/** Open descriptors of sandbox PID `pid`. */
async function fdCount(sb: Sandbox, pid: number): Promise<number> {
  const r = await sb.run(["sh", "-c", `ls /proc/${pid}/fd | wc -l`], { timeoutMs: 5000 });
  assert.equal(r.code, 0, `counting descriptors of ${pid}: ${r.stderr}`);
  return Number(r.stdout.trim());
}

async function startPasta(sb: Sandbox, script: string) {
  const pidFile = `${sb.dir}/pasta.pid`;
  const p = await sb.spawn([PASTA, "--config-net", "-P", pidFile, "--", "sh", "-c", script], {
    user: true,
    timeoutMs: 120_000,
  });
  return { p, pidFile };
}

floodTest("3000 + 1000 echo identifiers, then 2000 more, then a plain ping", [
  "ping",
  "ps",
], async (sb) => {
  const d = sb.dir;
  const script = [
    NS_READY,
    `touch ${d}/ready`,
    shAwait(`${d}/go`),
    `${flood("echo", NET.gateway4, NET.gateway6, 3000, 1000, 1)} > ${d}/wave1.json`,
    `touch ${d}/wave1`,
    // Past one sweep interval of the echo flows' clock (5 s): the first wave is idle.
    "sleep 6",
    `${flood("echo", NET.gateway4, NET.gateway6, 2000, 0, 3001)} > ${d}/wave2.json`,
    `ping -c 1 -W 5 ${NET.gateway4} > ${d}/ping4.txt 2>&1; echo $? > ${d}/ping4.rc`,
    `ping -6 -c 1 -W 5 ${NET.gateway6} > ${d}/ping6.txt 2>&1; echo $? > ${d}/ping6.rc`,
    `touch ${d}/done`,
    "sleep 60",
  ].join("\n");
  const { p, pidFile } = await startPasta(sb, script);
  try {
    assert.ok(await waitFile(sb, `${d}/ready`, 30_000), `namespace never ready: ${await early(p)}`);
    const serving = await servingPid(sb, pidFile);
    const baseline = await fdCount(sb, serving);
    await Deno.writeTextFile(`${d}/go`, "");
    assert.ok(await waitFile(sb, `${d}/done`, 90_000), `floods never ended: ${await early(p)}`);
    const after = await fdCount(sb, serving);
    const wave1 = JSON.parse(await Deno.readTextFile(`${d}/wave1.json`));
    const wave2 = JSON.parse(await Deno.readTextFile(`${d}/wave2.json`));
    const read = (f: string) => Deno.readTextFile(`${d}/${f}`).catch(() => "(missing)");
    console.error(
      `echo flood: wave 1 ${JSON.stringify(wave1)}, wave 2 ${JSON.stringify(wave2)}, ` +
        `descriptors ${baseline} before, ${after} after`,
    );
    assert.equal(wave1.answered4, 3000, "every IPv4 identifier of the first wave answered");
    assert.equal(wave1.answered6, 1000, "every IPv6 identifier of the first wave answered");
    assert.equal(wave2.answered4, 2000, "the second wave answered: idle flows made room");
    assert.equal((await read("ping4.rc")).trim(), "0", `ping: ${await read("ping4.txt")}`);
    assert.equal((await read("ping6.rc")).trim(), "0", `ping -6: ${await read("ping6.txt")}`);
    // One socket per echo flow, a quarter of the flow table at most.
    assert.ok(after <= baseline + 4096 + 16, `descriptors: ${baseline} before, ${after} after`);
  } finally {
    await p.kill("KILL");
  }
});

floodTest("5000 connects to closed and to silent ports release every socket", [
  "ps",
], async (sb) => {
  // 198.51.100.0/24 goes nowhere: the remote end drops it without a word.
  const bh = await sb.runRemote(["ip", "route", "add", "blackhole", "198.51.100.0/24"]);
  assert.equal(bh.code, 0, bh.stderr);
  const d = sb.dir;
  const script = [
    NS_READY,
    `touch ${d}/ready`,
    shAwait(`${d}/go`),
    // Nothing listens on port 9 of the remote end beyond the gateway.
    `${flood("connect", "203.0.113.1", 9, "198.51.100.7", 9, 2500, 0)} > ${d}/connect.json`,
    `touch ${d}/done`,
    "sleep 60",
  ].join("\n");
  const { p, pidFile } = await startPasta(sb, script);
  try {
    assert.ok(await waitFile(sb, `${d}/ready`, 30_000), `namespace never ready: ${await early(p)}`);
    const serving = await servingPid(sb, pidFile);
    const baseline = await fdCount(sb, serving);
    const started = Date.now();
    await Deno.writeTextFile(`${d}/go`, "");
    assert.ok(await waitFile(sb, `${d}/done`, 60_000), `flood never ended: ${await early(p)}`);
    const atEnd = await fdCount(sb, serving);
    const result = JSON.parse(await Deno.readTextFile(`${d}/connect.json`));
    let now = atEnd;
    const back = await sb.waitFor(
      async () => (now = await fdCount(sb, serving)) <= baseline + 8,
      30_000,
      500,
    );
    const elapsed = Date.now() - started;
    console.error(
      `connect flood: ${JSON.stringify(result)}; descriptors ${baseline} before, ` +
        `${atEnd} when the client closed, ${now} after ${elapsed} ms`,
    );
    assert.equal(result.total, 5000);
    assert.equal(result.refused, 2500, "every connect to the closed port refused");
    // The refused connects hold nothing: at most the unanswered half is left.
    assert.ok(
      atEnd <= baseline + 2500 + 16,
      `refused connects still hold sockets: ${baseline} before, ${atEnd} after`,
    );
    assert.ok(back, `descriptors ${now}, baseline ${baseline}, ${elapsed} ms after the flood`);
    // The client's 8 s for answers, then pasta's handshake timeout (10 s) at most.
    assert.ok(elapsed < 30_000, `back to baseline only after ${elapsed} ms`);
  } finally {
    await p.kill("KILL");
  }
});
