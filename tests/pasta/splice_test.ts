/**
 * pasta's local fast path (issue 5) end to end: connections to a forwarded port on a
 * loopback address are spliced between the namespaces (src/protocols/tcp_splice.ts)
 * instead of crossing the tap.
 *
 * Each test builds a sandbox (tests/sandbox/) and runs pasta in it as the unprivileged
 * user; "host" is the sandbox's own namespace where pasta runs, "ns" the namespace pasta
 * made. Checked, in both directions (-t: client on the host's 127.0.0.1/::1, server on
 * the namespace's; -T: the reverse): byte-exact socat transfers, big (32 MiB random)
 * and small, IPv4 and IPv6, both ways on the connection; a capture of the tap (-p)
 * holding no TCP frame of those connections (while a control connection through a
 * non-loopback address does show up there, so the capture is known to work);
 * half-closes and resets reaching the other side; 200 concurrent connections, each
 * with its own data. Servers and clients are socat and transport.py.
 * PASTA_UNDER_TEST selects the binary (default ./pasta).
 */

import assert from "node:assert/strict";
import { NET, type Sandbox, sleep, withSandbox } from "../sandbox/sandbox.ts";
import {
  early,
  needs,
  PASTA,
  pastaSuiteIgnored,
  PYTHON,
  randomFile,
  sha256File,
  shellQuote,
  show,
  shWait,
} from "./_pasta.ts";

const suiteIgnored = pastaSuiteIgnored();
if (suiteIgnored) console.error(`tests/pasta ignored: ${suiteIgnored}`);

const HELPER = new URL("./transport.py", import.meta.url).pathname;
/** tcp-sink (prints the peer it saw) and tcp-send, from the contract tests. */
const CONTRACT = new URL("../contracts/contract.py", import.meta.url).pathname;

function spliceTest(name: string, tools: string[], fn: (sb: Sandbox) => Promise<void>): void {
  Deno.test({
    name: `pasta splice: ${name}`,
    ignore: suiteIgnored !== undefined || needs(...tools) !== undefined,
    fn: () => withSandbox(fn),
  });
}

// deno-lint-ignore no-explicit-any
type Json = any;

const BIG = 32 << 20;
const SMALL = 1024;
const LOOPBACK = { 4: "127.0.0.1", 6: "::1" } as const;

// --- helpers -----------------------------------------------------------------------------

async function waitFiles(paths: string[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (const path of paths) {
    for (;;) {
      try {
        await Deno.stat(path);
        break;
      } catch {
        if (Date.now() > deadline) return false;
        await sleep(20);
      }
    }
  }
  return true;
}

function sh(argv: readonly (string | number)[]): string {
  return argv.map(String).map(shellQuote).join(" ");
}

function helper(...args: (string | number)[]): string[] {
  return [PYTHON, HELPER, ...args.map(String)];
}

/** The last JSON line of a file a helper wrote, or a description of what is there. */
async function jsonFile(path: string): Promise<Json> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
    return JSON.parse(text.trim().split("\n").at(-1) ?? "");
  } catch {
    return { unparsable: text, path };
  }
}

function json(stdout: string): Json {
  try {
    return JSON.parse(stdout.trim().split("\n").at(-1) ?? "");
  } catch {
    return { unparsable: stdout };
  }
}

/** Runs pasta (as the sandbox user) with `args` and `-- sh -c script`, in the background. */
function spawnPasta(sb: Sandbox, args: readonly string[], script: string, timeoutMs = 90_000) {
  return sb.spawn([PASTA, ...args, "--", "sh", "-c", script], { user: true, timeoutMs });
}

function runPasta(sb: Sandbox, args: readonly string[], script: string, timeoutMs = 90_000) {
  return sb.run([PASTA, ...args, "--", "sh", "-c", script], { user: true, timeoutMs });
}

/** Waits until TCP `ports` listen in the sandbox's host namespace. */
async function waitHostListening(sb: Sandbox, ports: number[]): Promise<void> {
  const ok = await sb.waitFor(
    async () => {
      const r = await sb.run(["ss", "-Hltn"]);
      return ports.every((p) => new RegExp(`:${p}\\s`).test(r.stdout));
    },
    10_000,
    50,
  );
  assert.ok(ok, `ports ${ports} never listened on the host`);
}

/** Frames of the capture `pcap` matching `filter`, as tcpdump lists them. */
async function frames(sb: Sandbox, pcap: string, filter: string): Promise<string> {
  const r = await sb.run(["tcpdump", "-nr", pcap, ...(filter ? [filter] : [])], { user: true });
  assert.equal(r.code, 0, show(r));
  return r.stdout;
}

/** TCP frames of `ports` in the capture `pcap`. */
function tcpFrames(sb: Sandbox, pcap: string, ports: number[]): Promise<string> {
  return frames(sb, pcap, `tcp and (${ports.map((p) => `port ${p}`).join(" or ")})`);
}

// --- byte-exact transfers ----------------------------------------------------------------

interface Transfer {
  readonly name: string;
  /** "up": the client sends the file to the server; "down": the reverse. */
  readonly way: "up" | "down";
  readonly size: number;
  readonly family: 4 | 6;
  readonly port: number;
}

function matrix(prefix: string, base: number): Transfer[] {
  const out: Transfer[] = [];
  let port = base;
  for (const family of [4, 6] as const) {
    for (const way of ["up", "down"] as const) {
      for (const [label, size] of [["big", BIG], ["small", SMALL]] as const) {
        out.push({ name: `${prefix}-v${family}-${way}-${label}`, way, size, family, port: port++ });
      }
    }
  }
  return out;
}

function files(sb: Sandbox, t: Transfer) {
  return { src: `${sb.dir}/${t.name}.src`, dst: `${sb.dir}/${t.name}.dst` };
}

/** socat server bound to the loopback address of the transfer's family. */
function server(sb: Sandbox, t: Transfer, bind = LOOPBACK[t.family] as string): string[] {
  const { src, dst } = files(sb, t);
  const b = t.family === 4 ? bind : `[${bind}]`;
  const listen = `TCP${t.family}-LISTEN:${t.port},reuseaddr,bind=${b}`;
  return t.way === "up"
    ? ["socat", "-u", listen, `CREATE:${dst}`]
    : ["socat", "-u", `OPEN:${src}`, listen];
}

function client(sb: Sandbox, t: Transfer, addr = LOOPBACK[t.family] as string): string[] {
  const { src, dst } = files(sb, t);
  const a = t.family === 4 ? addr : `[${addr}]`;
  const conn = `TCP${t.family}:${a}:${t.port},connect-timeout=5`;
  return t.way === "up"
    ? ["socat", "-u", `OPEN:${src}`, conn]
    : ["socat", "-u", conn, `CREATE:${dst}`];
}

async function prepare(sb: Sandbox, transfers: readonly Transfer[]) {
  const hashes = new Map<string, string>();
  for (const t of transfers) hashes.set(t.name, await randomFile(files(sb, t).src, t.size));
  return hashes;
}

async function verify(sb: Sandbox, transfers: readonly Transfer[], hashes: Map<string, string>) {
  const wrong: string[] = [];
  for (const t of transfers) {
    const got = await sha256File(files(sb, t).dst);
    if (got !== hashes.get(t.name)) wrong.push(`${t.name}: ${got}`);
  }
  assert.deepEqual(wrong, [], "transfers whose received file differs");
}

spliceTest(
  "-t --host-lo-to-ns-lo: host loopback → namespace loopback, byte-exact, no TCP frame on the tap",
  ["socat", "ss", "tcpdump"],
  async (sb) => {
    const transfers = matrix("lo-in", 11000);
    const hashes = await prepare(sb, transfers);
    const pcap = `${sb.dir}/in.pcap`;
    const ready = `${sb.dir}/ns-ready`;
    const ports = transfers.map((t) => t.port);
    const script = [
      "pids=",
      ...transfers.map((t) => `${sh(server(sb, t))} & pids="$pids $!"`),
      shWait(
        `[ "$(ss -Hltn | grep -cE ':(${ports.join("|")})\\s')" -ge ${ports.length} ]`,
        "listeners",
      ),
      `touch ${ready}`,
      "status=0; for pid in $pids; do wait $pid || status=1; done; exit $status",
    ].join("\n");
    const p = await spawnPasta(
      sb,
      ["--config-net", "--host-lo-to-ns-lo", "-p", pcap, "-t", ports.join(",")],
      script,
    );
    assert.ok(
      await waitFiles([ready], 30_000),
      `namespace servers never started: ${await early(p)}`,
    );
    const failed: string[] = [];
    for (const t of transfers) {
      const r = await sb.run(client(sb, t), { timeoutMs: 60_000 });
      if (r.code !== 0) failed.push(`${t.name}: ${show(r)}`);
    }
    const ended = await sb.waitFor(async () => !(await p.alive()), 30_000, 100);
    const left = ended ? "" : (await sb.run(["ps", "-eo", "pid,args"])).stdout;
    const r = await p.result;
    assert.deepEqual(failed, [], "clients that failed");
    await verify(sb, transfers, hashes);
    assert.equal(r.code, 0, `${show(r)}\n--- still running 30 s after the clients:\n${left}`);
    assert.equal(await tcpFrames(sb, pcap, transfers.map((t) => t.port)), "");
    // The capture works: the namespace's own traffic (ARP, NDP, DHCP…) is in it.
    assert.notEqual(await frames(sb, pcap, ""), "", "nothing captured at all");
  },
);

spliceTest(
  "-T: namespace loopback → host loopback, byte-exact, no TCP frame on the tap",
  ["socat", "ss", "tcpdump"],
  async (sb) => {
    const transfers = matrix("lo-out", 11100);
    // Control: from the namespace to the gateway address, mapped to the host's
    // loopback through the tap (not a -T port).
    const control: Transfer = { name: "tap-out", way: "up", size: SMALL, family: 4, port: 11199 };
    const hashes = await prepare(sb, [...transfers, control]);
    const servers = [];
    for (const t of [...transfers, control]) servers.push(await sb.spawn(server(sb, t)));
    await waitHostListening(sb, [...transfers, control].map((t) => t.port));
    const pcap = `${sb.dir}/out.pcap`;
    const script = [
      ...transfers.map((t) => `${sh(client(sb, t))} || echo "FAILED ${t.name}: $?"`),
      `${sh(client(sb, control, NET.gateway4))} || echo "FAILED control: $?"`,
    ].join("\n");
    const r = await runPasta(sb, [
      "--config-net",
      "-p",
      pcap,
      "-T",
      transfers.map((t) => t.port).join(","),
    ], script);
    assert.equal(r.code, 0, show(r));
    assert.doesNotMatch(r.stdout, /FAILED/, show(r));
    const results = await Promise.all(servers.map((s) => s.result));
    results.forEach((res) => assert.equal(res.code, 0, show(res)));
    await verify(sb, [...transfers, control], hashes);
    assert.equal(await tcpFrames(sb, pcap, transfers.map((t) => t.port)), "");
    assert.notEqual(await tcpFrames(sb, pcap, [control.port]), "", "control not captured");
  },
);

// --- half-close, reset, many connections -----------------------------------------------

/** One helper exchange: the server's and the client's command (transport.py). */
interface Exchange {
  readonly name: string;
  readonly family: 4 | 6;
  readonly port: number;
  readonly server: (bind: string, ready: string) => string[];
  readonly client: (addr: string) => string[];
  readonly check: (server: Json, client: Json) => void;
}

function exchanges(base: number): Exchange[] {
  const out: Exchange[] = [];
  let port = base;
  for (const family of [4, 6] as const) {
    for (const mode of ["client-first", "server-first"]) {
      const halfPort = port++;
      out.push({
        name: `half-close ${mode} v${family}`,
        family,
        port: halfPort,
        server: (bind, ready) => helper("half-server", bind, halfPort, mode, ready),
        client: (addr) => helper("half-client", addr, halfPort, mode),
        check: (s, c) => {
          assert.equal(s.received_ok, true, JSON.stringify(s));
          assert.equal(c.received_ok, true, JSON.stringify(c));
        },
      });
    }
    const rstPort = port++;
    out.push({
      name: `server reset v${family}`,
      family,
      port: rstPort,
      server: (bind, ready) => helper("rst-server", bind, rstPort, "server-rst", ready),
      client: (addr) => helper("rst-client", addr, rstPort, "server-rst"),
      check: (s, c) => {
        assert.equal(s.hello, "hello", JSON.stringify(s));
        assert.equal(c.seen, "reset", JSON.stringify(c));
      },
    });
    const crstPort = port++;
    out.push({
      name: `client reset v${family}`,
      family,
      port: crstPort,
      server: (bind, ready) => helper("rst-server", bind, crstPort, "client-rst", ready),
      client: (addr) => helper("rst-client", addr, crstPort, "client-rst"),
      check: (s, c) => {
        assert.equal(c.got, "ready", JSON.stringify(c));
        assert.equal(s.seen, "reset", JSON.stringify(s));
      },
    });
    const manyPort = port++;
    out.push({
      name: `200 concurrent connections v${family}`,
      family,
      port: manyPort,
      server: (bind, ready) => helper("many-server", bind, manyPort, 200, ready),
      client: (addr) => helper("many-client", addr, manyPort, 200, 65536),
      check: (s, c) => {
        assert.deepEqual(s.bad, [], JSON.stringify(s));
        assert.equal(s.ok, 200, JSON.stringify(s));
        assert.equal(c.ok, 200, JSON.stringify(c));
      },
    });
  }
  return out;
}

function checkAll(list: readonly Exchange[], servers: Json[], clients: Json[]): void {
  const failures: string[] = [];
  list.forEach((x, i) => {
    try {
      x.check(servers[i], clients[i]);
    } catch (e) {
      failures.push(`${x.name}: ${e instanceof Error ? e.message : e}`);
    }
  });
  assert.deepEqual(failures, [], "exchanges that went wrong");
}

spliceTest(
  "-t --host-lo-to-ns-lo: half-close, resets and 200 concurrent connections reach the namespace",
  [],
  async (sb) => {
    const list = exchanges(11200);
    const readies = list.map((_, i) => `${sb.dir}/ready-${i}`);
    const outs = list.map((_, i) => `${sb.dir}/server-${i}.json`);
    const script = [
      "pids=",
      ...list.map((x, i) =>
        `${sh(x.server(LOOPBACK[x.family], readies[i]!))} > ${outs[i]} & pids="$pids $!"`
      ),
      "status=0; for pid in $pids; do wait $pid || status=1; done; exit $status",
    ].join("\n");
    const p = await spawnPasta(
      sb,
      ["--config-net", "--host-lo-to-ns-lo", "-t", list.map((x) => x.port).join(",")],
      script,
    );
    assert.ok(await waitFiles(readies, 30_000), `servers never started: ${await early(p)}`);
    const clients = await Promise.all(
      list.map((x) => sb.run(x.client(LOOPBACK[x.family]), { timeoutMs: 60_000 })),
    );
    const r = await p.result;
    assert.equal(r.code, 0, show(r));
    checkAll(list, await Promise.all(outs.map(jsonFile)), clients.map((c) => json(c.stdout)));
  },
);

spliceTest(
  "-T: half-close, resets and 200 concurrent connections reach the host",
  [],
  async (sb) => {
    const list = exchanges(11300);
    const readies = list.map((_, i) => `${sb.dir}/ready-${i}`);
    const servers = [];
    for (const [i, x] of list.entries()) {
      servers.push(await sb.spawn(x.server(LOOPBACK[x.family], readies[i]!)));
    }
    assert.ok(await waitFiles(readies, 30_000), "host servers never started");
    const outs = list.map((_, i) => `${sb.dir}/client-${i}.json`);
    const script = [
      "pids=",
      ...list.map((x, i) => `${sh(x.client(LOOPBACK[x.family]))} > ${outs[i]} & pids="$pids $!"`),
      "for pid in $pids; do wait $pid; done",
    ].join("\n");
    const r = await runPasta(sb, ["--config-net", "-T", list.map((x) => x.port).join(",")], script);
    assert.equal(r.code, 0, show(r));
    const serverResults = await Promise.all(servers.map((s) => s.result));
    checkAll(list, serverResults.map((s) => json(s.stdout)), await Promise.all(outs.map(jsonFile)));
  },
);

spliceTest(
  "-t/-u: host loopback reaches the namespace's own address; its loopback stays private",
  ["tcpdump"],
  async (sb) => {
    // Public (wildcard) and loopback-only services in the namespace, per IP version.
    const [pub, priv] = [11500, 11510];
    const readies: string[] = [];
    const lines: string[] = [];
    for (const family of [4, 6] as const) {
      const any = family === 4 ? "0.0.0.0" : "::";
      const ready = (tag: string) => {
        readies.push(`${sb.dir}/${tag}${family}`);
        return readies.at(-1)!;
      };
      lines.push(
        `${
          sh([PYTHON, CONTRACT, "tcp-sink", any, pub + family, ready("pub")])
        } > ${sb.dir}/pub${family}.json &`,
        `${sh([PYTHON, CONTRACT, "tcp-sink", LOOPBACK[family], priv + family, ready("priv")])} &`,
        `${sh(helper("udp-echo", any, pub + family, ready("udp")))} &`,
        `${sh(helper("udp-echo", LOOPBACK[family], priv + family, ready("udpp")))} &`,
      );
    }
    const pcap = `${sb.dir}/ext.pcap`;
    const ports = [4, 6].flatMap((f) => [pub + f, priv + f]).join(",");
    const p = await spawnPasta(
      sb,
      ["--config-net", "-p", pcap, "-t", ports, "-u", ports],
      [...lines, "sleep 30"].join("\n"),
    );
    assert.ok(await waitFiles(readies, 30_000), `servers never started: ${await early(p)}`);
    for (const family of [4, 6] as const) {
      const send = (port: number, size: number) =>
        sb.run([PYTHON, CONTRACT, "tcp-send", LOOPBACK[family], String(port), String(size)]);
      const sent = await send(pub + family, 4096);
      assert.equal(json(sent.stdout).ok, true, `v${family} to the public port: ${show(sent)}`);
      const out = `${sb.dir}/pub${family}.json`;
      await sb.waitFor(async () => (await jsonFile(out)).peer !== undefined, 5000, 50);
      const seen = await jsonFile(out);
      assert.equal(seen.peer, family === 4 ? NET.host4 : NET.host6, "from the namespace's address");
      const closed = await send(priv + family, 16);
      assert.equal(json(closed.stdout).ok, false, `v${family}: loopback-only service reached`);
      const udp = json((await sb.run(helper("udp-ping", LOOPBACK[family], pub + family))).stdout);
      assert.equal(udp.same, true, `v${family} UDP to the public port: ${JSON.stringify(udp)}`);
      const udpPriv = json(
        (await sb.run(helper("udp-ping", LOOPBACK[family], priv + family))).stdout,
      );
      assert.notEqual(udpPriv.same, true, `v${family}: loopback-only UDP service reached`);
    }
    await p.kill("KILL");
    assert.equal(await tcpFrames(sb, pcap, [4, 6].map((f) => pub + f)), "", "spliced, not tapped");
  },
);

spliceTest(
  "--no-splice: host loopback -t/-u go through the tap, from the gateway address",
  ["tcpdump"],
  async (sb) => {
    const base = 11520;
    const readies: string[] = [];
    const lines: string[] = [];
    for (const family of [4, 6] as const) {
      const any = family === 4 ? "0.0.0.0" : "::";
      readies.push(`${sb.dir}/tcp${family}`, `${sb.dir}/udp${family}`);
      lines.push(
        `${
          sh([PYTHON, CONTRACT, "tcp-sink", any, base + family, readies.at(-2)!])
        } > ${sb.dir}/sink${family}.json &`,
        `${sh(helper("udp-echo", any, base + family, readies.at(-1)!))} &`,
      );
    }
    const pcap = `${sb.dir}/nosplice.pcap`;
    const ports = `${base + 4},${base + 6}`;
    const p = await spawnPasta(
      sb,
      ["--config-net", "--no-splice", "-p", pcap, "-t", ports, "-u", ports],
      [...lines, "sleep 30"].join("\n"),
    );
    assert.ok(await waitFiles(readies, 30_000), `servers never started: ${await early(p)}`);
    for (const family of [4, 6] as const) {
      const port = base + family;
      const sent = await sb.run([
        PYTHON,
        CONTRACT,
        "tcp-send",
        LOOPBACK[family],
        `${port}`,
        "4096",
      ]);
      assert.equal(json(sent.stdout).ok, true, `v${family} TCP: ${show(sent)}`);
      const out = `${sb.dir}/sink${family}.json`;
      await sb.waitFor(async () => (await jsonFile(out)).peer !== undefined, 5000, 50);
      const seen = await jsonFile(out);
      const gateway = family === 4 ? NET.gateway4 : NET.gateway6;
      assert.equal(seen.peer, gateway, `v${family}: the host's loopback as the gateway`);
      const udp = json((await sb.run(helper("udp-ping", LOOPBACK[family], port))).stdout);
      assert.equal(udp.same, true, `v${family} UDP: ${JSON.stringify(udp)}`);
    }
    await p.kill("KILL");
    const tapped = await tcpFrames(sb, pcap, [base + 4, base + 6]);
    for (const family of [4, 6] as const) {
      assert.match(tapped, new RegExp(`\\.${base + family}: Flags \\[S\\]`), `v${family} SYN`);
    }
    const udpTapped = await frames(sb, pcap, `udp and (port ${base + 4} or port ${base + 6})`);
    assert.notEqual(udpTapped, "", "UDP went through the tap");
  },
);

spliceTest(
  "--splice-only: no tap device; -t reaches the namespace's loopback, -T the host's",
  [],
  async (sb) => {
    const [inPort, outPort, udpPort] = [11530, 11531, 11532];
    const hostReady = `${sb.dir}/host-sink`;
    const hostSink = await sb.spawn([
      PYTHON,
      CONTRACT,
      "tcp-sink",
      "127.0.0.1",
      `${outPort}`,
      hostReady,
    ]);
    assert.ok(await waitFiles([hostReady], 10_000), "host sink never started");
    const [nsReady, udpReady] = [`${sb.dir}/ns-sink`, `${sb.dir}/ns-udp`];
    const script = [
      `ip -o link show | cut -d: -f2 | tr -d ' ' > ${sb.dir}/links`,
      `${sh([PYTHON, CONTRACT, "tcp-sink", "127.0.0.1", inPort, nsReady])} > ${sb.dir}/ns.json &`,
      `${sh(helper("udp-echo", "127.0.0.1", udpPort, udpReady))} &`,
      `${sh([PYTHON, CONTRACT, "tcp-send", "127.0.0.1", outPort, 65536])} > ${sb.dir}/send.json`,
      "sleep 30",
    ].join("\n");
    const p = await spawnPasta(
      sb,
      ["--splice-only", "-t", `${inPort}`, "-u", `${udpPort}`, "-T", `${outPort}`, "-U", "none"],
      script,
    );
    assert.ok(await waitFiles([nsReady, udpReady], 30_000), `ns never ready: ${await early(p)}`);
    const sent = await sb.run([PYTHON, CONTRACT, "tcp-send", "127.0.0.1", `${inPort}`, "65536"]);
    assert.equal(json(sent.stdout).ok, true, `host → namespace: ${show(sent)}`);
    const udp = json((await sb.run(helper("udp-ping", "127.0.0.1", udpPort))).stdout);
    assert.equal(udp.same, true, `UDP host → namespace: ${JSON.stringify(udp)}`);
    await sb.waitFor(
      async () => (await jsonFile(`${sb.dir}/send.json`)).ok !== undefined,
      10_000,
      50,
    );
    assert.equal((await jsonFile(`${sb.dir}/send.json`)).ok, true, "namespace → host");
    assert.deepEqual(await jsonFile(`${sb.dir}/ns.json`), { received: 65536, peer: "127.0.0.1" });
    assert.deepEqual(json((await hostSink.result).stdout), { received: 65536, peer: "127.0.0.1" });
    const links = (await Deno.readTextFile(`${sb.dir}/links`)).trim().split("\n");
    assert.deepEqual(links, ["lo"], "no tap device in the namespace");
    await p.kill("KILL");
  },
);

// --- UDP ---------------------------------------------------------------------------------

const UDP_PORTS = { 4: 11400, 6: 11401 } as const;

/** A udp-ping reply must be the datagram itself, from the loopback port it was sent to. */
function checkPing(reply: Json, family: 4 | 6): void {
  const what = `v${family}: ${JSON.stringify(reply)}`;
  assert.equal(reply.same, true, what);
  assert.equal(reply.from, LOOPBACK[family], what);
  assert.equal(reply.port, UDP_PORTS[family], what);
}

/** UDP frames of the local-path ports in the capture. */
function udpFrames(sb: Sandbox, pcap: string): Promise<string> {
  return frames(sb, pcap, `udp and (port ${UDP_PORTS[4]} or port ${UDP_PORTS[6]})`);
}

spliceTest(
  "-u --host-lo-to-ns-lo: UDP request and reply host loopback ↔ namespace loopback, not on the tap",
  ["tcpdump"],
  async (sb) => {
    const pcap = `${sb.dir}/udp-in.pcap`;
    const readies = [`${sb.dir}/echo4`, `${sb.dir}/echo6`];
    const script = [
      `${sh(helper("udp-echo", LOOPBACK[4], UDP_PORTS[4], readies[0]!))} &`,
      `${sh(helper("udp-echo", LOOPBACK[6], UDP_PORTS[6], readies[1]!))} &`,
      "wait",
    ].join("\n");
    const ports = `${UDP_PORTS[4]},${UDP_PORTS[6]}`;
    const p = await spawnPasta(
      sb,
      ["--config-net", "--host-lo-to-ns-lo", "-p", pcap, "-u", ports],
      script,
    );
    assert.ok(await waitFiles(readies, 30_000), `echo servers never started: ${await early(p)}`);
    for (const family of [4, 6] as const) {
      const r = await sb.run(helper("udp-ping", LOOPBACK[family], UDP_PORTS[family]), {
        timeoutMs: 20_000,
      });
      assert.equal(r.code, 0, show(r));
      checkPing(json(r.stdout), family);
    }
    const r = await p.result;
    assert.equal(r.code, 0, show(r));
    assert.equal(await udpFrames(sb, pcap), "", "UDP of the local path crossed the tap");
    assert.notEqual(await frames(sb, pcap, ""), "", "nothing captured at all");
  },
);

spliceTest(
  "-U: UDP request and reply namespace loopback ↔ host loopback, no UDP frame on the tap",
  ["tcpdump"],
  async (sb) => {
    const pcap = `${sb.dir}/udp-out.pcap`;
    const readies = [`${sb.dir}/echo4`, `${sb.dir}/echo6`];
    const servers = [];
    for (const [i, family] of ([4, 6] as const).entries()) {
      servers.push(
        await sb.spawn(helper("udp-echo", LOOPBACK[family], UDP_PORTS[family], readies[i]!)),
      );
    }
    assert.ok(await waitFiles(readies, 30_000), "host echo servers never started");
    const outs = [`${sb.dir}/ping4.json`, `${sb.dir}/ping6.json`];
    const script = [
      `${sh(helper("udp-ping", LOOPBACK[4], UDP_PORTS[4]))} > ${outs[0]}`,
      `${sh(helper("udp-ping", LOOPBACK[6], UDP_PORTS[6]))} > ${outs[1]}`,
    ].join("\n");
    const ports = `${UDP_PORTS[4]},${UDP_PORTS[6]}`;
    const r = await runPasta(sb, ["--config-net", "-p", pcap, "-U", ports], script);
    assert.equal(r.code, 0, show(r));
    checkPing(await jsonFile(outs[0]!), 4);
    checkPing(await jsonFile(outs[1]!), 6);
    for (const s of servers) assert.equal((await s.result).code, 0);
    assert.equal(await udpFrames(sb, pcap), "", "UDP of the local path crossed the tap");
  },
);
