/**
 * An idle pasta sleeps: holding 1000 open TCP connections that carry nothing,
 * and idle UDP and ICMP echo flows besides (each answered once, so each holds a
 * flow and a socket with its expiry deadline pending), it wakes up fewer than
 * 10 times a second (issue #15: timers are deadlines on one
 * timerfd, not periodic scans; zero windows reopen from socket events; the
 * command's exit comes as a signal). Wake-ups are counted as the voluntary
 * context switches of every thread of every pasta process (/proc/PID/task/*
 * /status) over a few seconds, by wakeups.py inside the sandbox.
 *
 * The connections go from pasta's namespace to a server on the sandbox host's
 * loopback, through the gateway address (TCP translation over the tap: one flow
 * and one host socket each). PASTA_UNDER_TEST selects the binary, so the same
 * test measures the C pasta for comparison.
 */
import assert from "node:assert/strict";
import { NET, type Sandbox, sleep, withSandbox } from "../sandbox/sandbox.ts";
import { early, PASTA, pastaSuiteIgnored, PYTHON, shellQuote, show, shWait } from "./_pasta.ts";

const suiteIgnored = pastaSuiteIgnored();
const HELPER = new URL("./wakeups.py", import.meta.url).pathname;
const CONNECTIONS = 1000;
/** Idle UDP flows (one socket each, one datagram answered by the server). */
const UDP_FLOWS = 300;
/** Idle echo flows (distinct ICMP identifiers, each answered). */
const ECHO_FLOWS = 300;
const PORT = 12500;
/** How long wake-ups are counted (s). */
const MEASURE_S = 5;
/** The limit the issue sets (wake-ups per second). */
const WAKEUPS_MAX = 10;

const helper = (...args: (string | number)[]) => [PYTHON, HELPER, ...args.map(String)];

/** Waits (bounded) until `path` exists. */
async function waitFile(path: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      await Deno.stat(path);
      return true;
    } catch {
      await sleep(50);
    }
  }
  return false;
}

async function idleWakeups(sb: Sandbox) {
  const ready = `${sb.dir}/server.ready`;
  const clientReady = `${sb.dir}/client.ready`;
  const stop = `${sb.dir}/stop`;
  const server = await sb.spawn(
    helper("hold-server", "127.0.0.1", PORT, CONNECTIONS, ready, stop),
    { timeoutMs: 150_000 },
  );
  assert.ok(await waitFile(`${ready}.listening`, 10_000), `server: ${await early(server)}`);
  const script = [
    shWait("ip -4 route show default | grep -q via", "IPv4 default route"),
    helper("hold-client", NET.gateway4, PORT, CONNECTIONS, clientReady, stop, UDP_FLOWS, ECHO_FLOWS)
      .map(shellQuote).join(" "),
  ].join("\n");
  const pasta = await sb.spawn(
    [
      PASTA,
      "--config-net",
      "-t",
      "none",
      "-u",
      "none",
      "-T",
      "none",
      "-U",
      "none",
      "--",
      "sh",
      "-c",
      script,
    ],
    { user: true, timeoutMs: 150_000 },
  );
  try {
    assert.ok(await waitFile(clientReady, 60_000), `client never ready: ${await early(pasta)}`);
    assert.ok(await waitFile(ready, 10_000), "the server did not get every connection");
    await sleep(1000); // let the handshakes' last ACKs and timers settle
    const r = await sb.run(helper("wakeups", pasta.pid, MEASURE_S), { timeoutMs: 30_000 });
    assert.equal(r.code, 0, show(r));
    return JSON.parse(r.stdout);
  } finally {
    await Deno.writeTextFile(stop, "");
    const c = await pasta.result;
    const s = await server.result;
    assert.equal(c.code, 0, show(c));
    assert.match(c.stdout, new RegExp(`"connected": ${CONNECTIONS}\\b`), show(c));
    assert.match(c.stdout, new RegExp(`"udp_answered": ${UDP_FLOWS}\\b`), show(c));
    assert.match(c.stdout, new RegExp(`"echo_answered": ${ECHO_FLOWS}\\b`), show(c));
    assert.match(s.stdout, new RegExp(`"accepted": ${CONNECTIONS}\\b`), show(s));
  }
}

Deno.test({
  name:
    `pasta: idle with ${CONNECTIONS} open connections, ${UDP_FLOWS} UDP and ${ECHO_FLOWS} echo flows, ` +
    `fewer than ${WAKEUPS_MAX} wake-ups a second`,
  ignore: suiteIgnored !== undefined,
  fn: () =>
    withSandbox(async (sb) => {
      const m = await idleWakeups(sb);
      console.error(
        `idle wake-ups (${PASTA}): ${m.per_second.toFixed(1)}/s ` +
          `(${m.switches} in ${MEASURE_S} s, processes ${
            m.processes.join(" ")
          }, ${m.threads} threads)`,
      );
      assert.ok(m.processes.length >= 1 && m.threads >= 1, JSON.stringify(m));
      assert.ok(
        m.per_second < WAKEUPS_MAX,
        `${m.per_second} wake-ups a second: ${JSON.stringify(m)}`,
      );
    }),
});
