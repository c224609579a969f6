/**
 * pasta's processes over its life, as the user sees them from outside: in spawn mode
 * the PID the user started (and finds in the -P file) is a waiter, not a second Deno
 * runtime; its exit status is the command's; SIGTERM to it ends pasta and the command;
 * Ctrl-C (SIGINT to the whole process group) leaves the decision to the command; and a
 * worker killed outright is reported, with a non-zero status.
 *
 * Everything runs in tests/sandbox/ as its unprivileged user. Only the exit status test
 * runs against the C pasta (PASTA_UNDER_TEST): the C pasta 2025-01 dies of SIGINT
 * itself (status 130, whatever the command does) and leaves its command running after
 * SIGTERM, where ours follows its man page.
 */

import assert from "node:assert/strict";
import { type Sandbox, sleep, withSandbox } from "../sandbox/sandbox.ts";
import { early, IS_C_PASTA, needs, PASTA, pastaSuiteIgnored, show } from "./_pasta.ts";

const suiteIgnored = pastaSuiteIgnored();

function lifecycleTest(name: string, fn: (sb: Sandbox) => Promise<void>, ours = true): void {
  Deno.test({
    name: `pasta lifecycle: ${name}`,
    ignore: suiteIgnored !== undefined || needs("ps", "setsid") !== undefined ||
      (ours && IS_C_PASTA),
    fn: () => withSandbox(fn),
  });
}

/** PID, parent PID and command name of every process in the sandbox. */
async function processes(sb: Sandbox): Promise<{ pid: number; ppid: number; comm: string }[]> {
  const r = await sb.run(["ps", "-eo", "pid=,ppid=,comm="], { timeoutMs: 5000 });
  const out = [];
  for (const line of r.stdout.split("\n")) {
    const m = line.trim().match(/^(\d+)\s+(\d+)\s+(.*)$/);
    if (m) out.push({ pid: Number(m[1]), ppid: Number(m[2]), comm: m[3]! });
  }
  return out;
}

/** Starts `pasta --config-net -P FILE -- CMD…`; resolves once the PID file is written. */
async function startPasta(sb: Sandbox, cmd: string[], prefix: string[] = []) {
  const pidFile = `${sb.dir}/pasta.pid`;
  await Deno.remove(pidFile).catch(() => {});
  const p = await sb.spawn([...prefix, PASTA, "--config-net", "-P", pidFile, "--", ...cmd], {
    user: true,
    timeoutMs: 60_000,
  });
  const readPid = async () => Number((await Deno.readTextFile(pidFile).catch(() => "")).trim());
  assert.ok(
    await sb.waitFor(async () => (await readPid()) > 0, 15_000),
    `nothing written to ${pidFile}: ${await early(p)}`,
  );
  return { p, pid: await readPid() };
}

/** Waits until the process tree under `pid` holds a process named `comm`; returns it. */
async function descendantNamed(sb: Sandbox, pid: number, comm: string): Promise<number> {
  let found = 0;
  await sb.waitFor(async () => {
    const all = await processes(sb);
    const tree = new Set([pid]);
    for (let round = 0; round < 8; round++) {
      for (const q of all) if (tree.has(q.ppid)) tree.add(q.pid);
    }
    found = all.find((q) => tree.has(q.pid) && q.pid !== pid && q.comm === comm)?.pid ?? 0;
    return found !== 0;
  }, 15_000);
  assert.ok(found, `no ${comm} under PID ${pid}`);
  return found;
}

/** Resolves with the result once `p` ends, or undefined after `ms`. */
function endsWithin<T>(result: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([result, sleep(ms).then(() => undefined)]);
}

lifecycleTest("the command's exit status is pasta's", async (sb) => {
  const r = await sb.run([PASTA, "--config-net", "--", "sh", "-c", "exit 7"], {
    user: true,
    timeoutMs: 30_000,
  });
  assert.equal(r.code, 7, show(r));
}, false);

lifecycleTest("one Deno runtime: the PID the user started waits in /bin/sh", async (sb) => {
  const { p, pid } = await startPasta(sb, ["sleep", "30"]);
  assert.equal(pid, p.pid);
  const sleeper = await descendantNamed(sb, pid, "sleep");
  const all = await processes(sb);
  const starter = all.find((q) => q.pid === pid);
  assert.ok(starter, "the starter is gone");
  assert.equal(starter.comm, "sh", "the starter still runs a Deno runtime");
  // Under the waiter: the worker, and under it the command; nothing else.
  const workers = all.filter((q) => q.ppid === pid);
  assert.equal(workers.length, 1, JSON.stringify(all));
  const underWorker = all.filter((q) => q.ppid === workers[0]!.pid).map((q) => q.pid);
  assert.deepEqual(underWorker, [sleeper], JSON.stringify(all));
  await p.kill("KILL");
});

lifecycleTest("SIGTERM to the PID in the -P file ends pasta and its command", async (sb) => {
  const { p, pid } = await startPasta(sb, ["sleep", "30"]);
  const sleeper = await descendantNamed(sb, pid, "sleep");
  await sb.run(["kill", "-TERM", String(pid)]);
  const r = await endsWithin(p.result, 10_000);
  assert.ok(r, "pasta still runs 10 s after SIGTERM");
  assert.equal(r.code, 128 + 15, `the command's status (killed by SIGTERM): ${show(r)}`);
  assert.ok(!(await sb.alive(sleeper)), "the command outlived pasta");
});

lifecycleTest("Ctrl-C (SIGINT to the process group): the command decides", async (sb) => {
  // setsid: pasta leads a process group of its own, as a shell's foreground job does.
  const script = 'trap "exit 42" INT; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done';
  const { p, pid } = await startPasta(sb, ["sh", "-c", script], ["setsid"]);
  await descendantNamed(sb, pid, "sleep");
  await sb.run(["kill", "-INT", "--", `-${pid}`]);
  const r = await endsWithin(p.result, 10_000);
  assert.ok(r, "pasta still runs 10 s after its command trapped SIGINT and exited");
  assert.equal(r.code, 42, show(r));
});

lifecycleTest("a worker killed with SIGKILL: the starter says so, exits 1", async (sb) => {
  const { p, pid } = await startPasta(sb, ["sleep", "30"]);
  await descendantNamed(sb, pid, "sleep");
  const all = await processes(sb);
  const worker = all.find((q) => q.ppid === pid);
  assert.ok(worker, `no worker under ${pid}`);
  const sleeper = all.find((q) => q.ppid === worker.pid)?.pid;
  await sb.run(["kill", "-KILL", String(worker.pid)]);
  assert.ok(
    await sb.waitFor(async () => !(await p.alive()), 10_000),
    "the starter still runs 10 s after its worker was killed",
  );
  // The command, orphaned, still holds the output pipes the result is read from.
  if (sleeper !== undefined) await sb.run(["kill", "-KILL", String(sleeper)]);
  const r = await endsWithin(p.result, 10_000);
  assert.ok(r, "no result");
  assert.equal(r.code, 1, show(r));
  assert.match(r.stderr, /ended without an exit status/);
});
