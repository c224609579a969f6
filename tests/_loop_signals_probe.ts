/**
 * Run by loop_test.ts with `deno run`: an EventLoop taking the loop signals
 * (SIGHUP, SIGINT, SIGTERM, SIGCHLD) through its signalfd, in a process where
 * every thread blocks them, as passt and pasta run. ensureLoopSignalsBlocked
 * blocks them and re-executes this script, so that Deno's threads all start with
 * the mask; then the script reports which of its threads block them.
 *
 * Usage: _loop_signals_probe.ts CASE
 *   sent     prints {"ready": PID} and waits for SIGHUP, SIGINT and SIGTERM from
 *            outside; once all three are in, starts /bin/true and waits for its SIGCHLD.
 *   pending  sends itself SIGHUP, SIGINT and SIGTERM and lets a child exit before the
 *            loop runs, then runs one turn of it.
 * Either way the last line is a JSON object with what the handler saw. Every wait
 * is bounded: the loop gives up after 10 s.
 */
import { SIG, WAIT } from "../src/ffi/layout.ts";
import * as sys from "../src/ffi/sys.ts";
import { EventLoop, type SignalInfo } from "../src/loop.ts";
import { ensureLoopSignalsBlocked, LOOP_SIGNALS } from "../src/process/process.ts";

ensureLoopSignalsBlocked(); // returns only once the mask is in place (after a re-exec)

/** SigBlk of every thread of this process, as read from /proc. */
function threadMasks(): bigint[] {
  const masks: bigint[] = [];
  for (const task of Deno.readDirSync("/proc/self/task")) {
    const status = Deno.readTextFileSync(`/proc/self/task/${task.name}/status`);
    masks.push(BigInt(`0x${/^SigBlk:\s+([0-9a-f]+)$/m.exec(status)?.[1] ?? "0"}`));
  }
  return masks;
}

/** Start /bin/true; its exit brings a SIGCHLD. */
function startChild(): number {
  return sys.posixSpawn("/bin/true", ["true"], sys.environment());
}

const mode = Deno.args[0];
const loopBits = LOOP_SIGNALS.reduce((bits, s) => bits | (1n << BigInt(s - 1)), 0n);
const masks = threadMasks();
const report = {
  pid: sys.getpid(),
  threads: masks.length,
  threadsBlocking: masks.filter((m) => (m & loopBits) === loopBits).length,
  received: [] as SignalInfo[],
  childPid: 0,
  childStatus: -1,
  /** Events the loop dispatched: the handler drains every pending signal per event. */
  events: 0,
};

const loop = new EventLoop();
const external = new Set<number>();
loop.addSignals(LOOP_SIGNALS, (info) => {
  report.received.push({ signo: info.signo, pid: info.pid }); // info is reused: copy it
  if (info.signo === SIG.CHLD) {
    const { pid, status } = sys.waitpid(report.childPid, WAIT.NOHANG);
    if (pid === report.childPid) report.childStatus = sys.exitCodeOf(status);
    if (mode === "sent") loop.stop(0);
  } else if (mode === "sent") {
    external.add(info.signo);
    if (external.size === 3) report.childPid = startChild();
  }
});

if (mode === "sent") {
  console.log(JSON.stringify({ ready: report.pid }));
  loop.run(200, 50);
} else if (mode === "pending") {
  for (const signal of [SIG.HUP, SIG.INT, SIG.TERM]) sys.kill(report.pid, signal);
  report.childPid = startChild();
  // Wait (bounded) until the child is a zombie: its SIGCHLD is pending then.
  for (let i = 0; i < 500; i++) {
    const stat = Deno.readTextFileSync(`/proc/${report.childPid}/stat`);
    if (/^\d+ \(.*\) Z /.test(stat)) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  loop.run(200, 1);
} else {
  throw new Error(`unknown case ${mode}`);
}
report.events = loop.stats.events;
loop.close();
console.log(JSON.stringify(report));
