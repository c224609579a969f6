/**
 * EventLoop.addSignals (src/loop.ts): SIGHUP, SIGINT, SIGTERM and SIGCHLD arrive
 * through the loop's signalfd, with their sender, instead of acting on the process.
 *
 * The signals must be blocked in every thread of the process, and this test
 * runner's threads don't block them, so each case runs _loop_signals_probe.ts in
 * its own `deno run`, which blocks them and re-executes itself
 * (ensureLoopSignalsBlocked) as passt and pasta do. Every wait is bounded: the
 * probe is killed after 30 s, with SIGKILL, since it blocks SIGTERM. (Timers and
 * readiness: tests/ffi/sys_test.ts.)
 */
import assert from "node:assert/strict";
import { SIG } from "../src/ffi/layout.ts";

const PROBE = new URL("./_loop_signals_probe.ts", import.meta.url).pathname;
const TIMEOUT_MS = 30_000;

interface Report {
  pid: number;
  threads: number;
  threadsBlocking: number;
  received: { signo: number; pid: number }[];
  childPid: number;
  childStatus: number;
  events: number;
}

/**
 * Run `_loop_signals_probe.ts mode` to its end, or kill it after TIMEOUT_MS; `act`
 * gets its first line of output as soon as it is printed. Returns the exit code,
 * stderr and the last line of output, parsed.
 */
async function runProbe(
  mode: string,
  act?: (firstLine: string, pid: number) => void,
): Promise<{ code: number; stderr: string; report: Report }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", PROBE, mode],
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const kill = () => {
    try {
      child.kill("SIGKILL"); // not SIGTERM (Deno.Command's `signal`): the probe blocks it
    } catch { /* already gone */ }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, TIMEOUT_MS);
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.getReader();
  const dec = new TextDecoder();
  let out = "";
  let acted = act === undefined;
  try {
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      out += dec.decode(chunk.value, { stream: true });
      if (!acted && out.includes("\n")) {
        acted = true;
        act?.(out.slice(0, out.indexOf("\n")), child.pid);
      }
    }
  } catch (e) {
    kill();
    await reader.cancel();
    throw e;
  } finally {
    await Promise.all([child.status, stderr]);
    clearTimeout(timer);
  }
  const { code } = await child.status;
  const err = await stderr;
  const last = out.trimEnd().split("\n").at(-1) ?? "";
  const what = timedOut ? `killed after ${TIMEOUT_MS} ms` : `exit status ${code}`;
  assert.ok(acted && last.startsWith("{"), `probe ${mode} (${what}) printed "${out}"; ${err}`);
  return { code, stderr: err, report: JSON.parse(last) };
}

Deno.test("signals sent to the process arrive through the loop's signalfd, with the sender", async () => {
  const { code, stderr, report } = await runProbe("sent", (line, pid) => {
    // Blocking the signals re-executes the probe: same process, same PID.
    assert.deepEqual(JSON.parse(line), { ready: pid });
    Deno.kill(pid, "SIGHUP");
    Deno.kill(pid, "SIGINT");
    Deno.kill(pid, "SIGTERM");
  });
  // None of them killed it (the default action of all three): the loop got them.
  assert.equal(code, 0, stderr);
  assert.equal(report.threadsBlocking, report.threads, "every thread blocks the loop signals");
  const byUs = report.received.filter((s) => s.signo !== SIG.CHLD);
  assert.deepEqual(
    byUs.map((s) => s.signo).sort((a, b) => a - b),
    [SIG.HUP, SIG.INT, SIG.TERM],
  );
  for (const s of byUs) assert.equal(s.pid, Deno.pid, `sender of signal ${s.signo}`);
  // Then the probe started a child: its exit came as SIGCHLD naming it, and it was reaped.
  assert.deepEqual(report.received.at(-1), { signo: SIG.CHLD, pid: report.childPid });
  assert.equal(report.received.length, 4);
  assert.equal(report.childStatus, 0);
});

Deno.test("signals pending before the loop runs are all delivered in its first turn", async () => {
  const { code, stderr, report } = await runProbe("pending");
  assert.equal(code, 0, stderr);
  // One readiness event of the signalfd; the handler drains it: lowest signal first.
  assert.equal(report.events, 1);
  assert.deepEqual(report.received, [
    { signo: SIG.HUP, pid: report.pid },
    { signo: SIG.INT, pid: report.pid },
    { signo: SIG.TERM, pid: report.pid },
    { signo: SIG.CHLD, pid: report.childPid },
  ]);
  assert.equal(report.childStatus, 0);
});
