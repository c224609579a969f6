/**
 * Throughput of pasta's local fast path (issue 5), measured in the test sandbox:
 *
 *   deno run -A tests/pasta/splice_bench.ts [GiB per run, default 2] [runs, default 3]
 *
 * Not part of `make check` (deno test only picks *_test.ts files). It prints Gbit/s,
 * the best of the runs, for one TCP stream moving zeros through:
 * - plain loopback in the sandbox's host namespace (the ceiling);
 * - our pasta, -t: client on the host's 127.0.0.1, server in the namespace (any address);
 * - our pasta, -T: client on the namespace's 127.0.0.1, server on the host's;
 * - Debian's C pasta (/usr/bin/pasta), the same two, when it is installed.
 * The sender writes 1 MiB blocks and the receiver reads 1 MiB at a time (Python,
 * whose per-call cost is small at that size); time runs from connect to the
 * receiver's byte count coming back, so everything in flight is counted.
 */

import { type Sandbox, sleep, withSandbox } from "../sandbox/sandbox.ts";
import { PYTHON } from "./_pasta.ts";

const OURS = new URL("../../pasta", import.meta.url).pathname;
const C_PASTA = "/usr/bin/pasta";

const SCRIPT = `
import json, socket, sys, time
mode = sys.argv[1]
fam = socket.AF_INET6 if ":" in sys.argv[2] else socket.AF_INET
if mode == "server":
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[2], int(sys.argv[3])))
    s.listen(8)
    open(sys.argv[4], "w").close()
    c, _ = s.accept()
    buf = bytearray(1 << 20)
    n = 0
    while True:
        r = c.recv_into(buf)
        if not r:
            break
        n += r
    c.sendall(str(n).encode())
    c.close()
else:
    total = int(sys.argv[4])
    c = socket.create_connection((sys.argv[2], int(sys.argv[3])))
    data = bytes(1 << 20)
    t = time.monotonic()
    sent = 0
    while sent < total:
        c.sendall(data)
        sent += len(data)
    c.shutdown(socket.SHUT_WR)
    got = int(c.recv(100) or b"0")
    el = time.monotonic() - t
    print(json.dumps({"bytes": got, "seconds": el, "gbps": got * 8 / el / 1e9}))
`;

const gib = Number(Deno.args[0] ?? 2);
const runs = Number(Deno.args[1] ?? 3);
const TOTAL = Math.round(gib * (1 << 30));

async function waitFile(path: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    try {
      await Deno.stat(path);
      return;
    } catch {
      await sleep(20);
    }
  }
  throw new Error(`${path} never appeared`);
}

function gbps(stdout: string): number {
  try {
    const r = JSON.parse(stdout.trim().split("\n").at(-1) ?? "");
    return r.bytes === TOTAL ? r.gbps : NaN;
  } catch {
    return NaN;
  }
}

let serial = 0;

/** Plain loopback inside the sandbox's host namespace. */
async function plain(sb: Sandbox, py: string, addr: string): Promise<number> {
  const ready = `${sb.dir}/ready-${serial++}`;
  const port = 20000 + serial;
  const server = await sb.spawn([PYTHON, py, "server", addr, String(port), ready]);
  await waitFile(ready);
  const r = await sb.run([PYTHON, py, "client", addr, String(port), String(TOTAL)], {
    timeoutMs: 120_000,
  });
  await server.result;
  return gbps(r.stdout);
}

/** -t: client on the host, server in the namespace. */
async function inbound(sb: Sandbox, pasta: string, py: string, addr: string): Promise<number> {
  const ready = `${sb.dir}/ready-${serial++}`;
  const port = 20000 + serial;
  const p = await sb.spawn([
    pasta,
    "--config-net",
    "-t",
    String(port),
    "--",
    PYTHON,
    py,
    "server",
    // -t from the host's loopback reaches the namespace's own address (ours, and
    // the C pasta since 2024) or its loopback (older C pastas): listen on any.
    addr.includes(":") ? "::" : "0.0.0.0",
    String(port),
    ready,
  ], { user: true, timeoutMs: 120_000 });
  await waitFile(ready);
  const r = await sb.run([PYTHON, py, "client", addr, String(port), String(TOTAL)], {
    timeoutMs: 120_000,
  });
  await p.result;
  return gbps(r.stdout);
}

/** -T: client in the namespace, server on the host. */
async function outbound(sb: Sandbox, pasta: string, py: string, addr: string): Promise<number> {
  const ready = `${sb.dir}/ready-${serial++}`;
  const port = 20000 + serial;
  const server = await sb.spawn([PYTHON, py, "server", addr, String(port), ready]);
  await waitFile(ready);
  const r = await sb.run([
    pasta,
    "--config-net",
    "-T",
    String(port),
    "--",
    PYTHON,
    py,
    "client",
    addr,
    String(port),
    String(TOTAL),
  ], { user: true, timeoutMs: 120_000 });
  await server.result;
  return gbps(r.stdout);
}

async function best(f: () => Promise<number>): Promise<string> {
  let top = NaN;
  for (let i = 0; i < runs; i++) {
    const v = await f();
    if (!(v <= top)) top = v;
  }
  return Number.isNaN(top) ? "failed" : `${top.toFixed(2)} Gbit/s`;
}

function installed(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  await withSandbox(async (sb) => {
    const py = `${sb.dir}/bench.py`;
    await Deno.writeTextFile(py, SCRIPT);
    console.log(`one TCP stream, ${gib} GiB per run, best of ${runs}`);
    for (const addr of ["127.0.0.1", "::1"]) {
      console.log(`plain loopback ${addr}: ${await best(() => plain(sb, py, addr))}`);
      for (const [name, bin] of [["ours", OURS], ["C pasta", C_PASTA]]) {
        if (!installed(bin!)) continue;
        console.log(`${name} -t ${addr}: ${await best(() => inbound(sb, bin!, py, addr))}`);
        console.log(`${name} -T ${addr}: ${await best(() => outbound(sb, bin!, py, addr))}`);
      }
    }
  });
}
