/**
 * pasta's tap offloads end to end (issue 16): the tap device is opened with
 * IFF_VNET_HDR, the namespace's kernel hands over TCP frames of up to 64 KiB at
 * any MTU (TSO) with partial checksums, and pasta writes frames whose checksum,
 * and at a small MTU whose segmentation, the namespace's kernel completes.
 *
 * At MTU 1500, byte-exact transfers in both directions and both IP versions
 * between the namespace and the host's loopback (through the gateway mapping)
 * must show, in the tap's own counters inside the namespace, frames larger than
 * the MTU crossing both ways: GSO frames were read and written. With a capture
 * (-p), offloads towards the namespace are off: tcpdump reads the file, every
 * frame towards the namespace fits the MTU and carries checksums tcpdump finds
 * correct, and the frames from the namespace are there as read (larger than the
 * MTU: TSO). At the default MTU the transfer tests of transport_test.ts run over
 * the same device, with checksum offload and no segmentation.
 */

import assert from "node:assert/strict";
import { NET, type Sandbox, withSandbox } from "../sandbox/sandbox.ts";
import {
  IS_C_PASTA,
  needs,
  PASTA,
  pastaSuiteIgnored,
  PYTHON,
  randomFile,
  sha256,
  sha256File,
  shellQuote,
  show,
  shWait,
} from "./_pasta.ts";

const suiteIgnored = pastaSuiteIgnored();
const SIZE = 16 << 20;
/** The largest Ethernet frame at MTU 1500, bytes. */
const FRAME_1500 = 1514;

function offloadTest(name: string, tools: string[], fn: (sb: Sandbox) => Promise<void>): void {
  Deno.test({
    name: `pasta offload: ${name}`,
    // The C pasta 2025-01 opens its tap without IFF_VNET_HDR: nothing to check there.
    ignore: suiteIgnored !== undefined || needs(...tools) !== undefined || IS_C_PASTA,
    fn: () => withSandbox(fn),
  });
}

interface Leg {
  readonly name: string;
  readonly family: 4 | 6;
  readonly way: "up" | "down";
  readonly port: number;
}

const LEGS: readonly Leg[] = [
  { name: "v4-up", family: 4, way: "up", port: 11001 },
  { name: "v4-down", family: 4, way: "down", port: 11002 },
  { name: "v6-up", family: 6, way: "up", port: 11003 },
  { name: "v6-down", family: 6, way: "down", port: 11004 },
];

/** The tap's counters in the namespace, as the script below prints them. */
interface TapCounters {
  rx_bytes: number;
  rx_packets: number;
  tx_bytes: number;
  tx_packets: number;
}

/**
 * Runs the four legs (host servers on the loopback, namespace clients through the
 * gateway mapping) under pasta with `args`; checks every file byte for byte and
 * returns the tap's counters in the namespace after the transfers.
 */
async function transfers(sb: Sandbox, args: readonly string[]): Promise<TapCounters> {
  const hashes = new Map<string, string>();
  const servers = [];
  for (const leg of LEGS) {
    const src = `${sb.dir}/${leg.name}.src`;
    const dst = `${sb.dir}/${leg.name}.dst`;
    hashes.set(leg.name, await randomFile(src, SIZE));
    const bind = leg.family === 4 ? "127.0.0.1" : "[::1]";
    const listen = `TCP${leg.family}-LISTEN:${leg.port},reuseaddr,bind=${bind}`;
    const argv = leg.way === "up"
      ? ["socat", "-u", listen, `CREATE:${dst}`]
      : ["socat", "-u", `OPEN:${src}`, listen];
    servers.push(await sb.spawn(argv, { timeoutMs: 90_000 }));
  }
  const listening = await sb.waitFor(
    async () => {
      const r = await sb.run(["ss", "-Hltn"]);
      return LEGS.every((l) => new RegExp(`:${l.port}\\s`).test(r.stdout));
    },
    10_000,
    50,
  );
  assert.ok(listening, "host servers never listened");

  const lines = [
    shWait(
      `ip -6 addr show dev ${NET.hostIfname} scope global -tentative | grep -q ${NET.host6}`,
      "IPv6 address",
    ),
    shWait("ip -4 route show default | grep -q via", "IPv4 default route"),
  ];
  for (const leg of LEGS) {
    const src = `${sb.dir}/${leg.name}.src`;
    const dst = `${sb.dir}/${leg.name}.dst`;
    const conn = leg.family === 4
      ? `TCP4:${NET.gateway4}:${leg.port},connect-timeout=5`
      : `TCP6:[${NET.gateway6}]:${leg.port},connect-timeout=5`;
    const argv = leg.way === "up"
      ? ["timeout", "30", "socat", "-u", `OPEN:${src}`, conn]
      : ["timeout", "30", "socat", "-u", conn, `CREATE:${dst}`];
    lines.push(`${argv.map(shellQuote).join(" ")} || echo "FAILED ${leg.name}: $?"`);
  }
  // /proc/net/dev is the reader's namespace's (/sys is the sandbox host's).
  lines.push(`grep '^ *${NET.hostIfname}:' /proc/net/dev | sed 's/^/COUNTERS/'`);
  const r = await sb.run([PASTA, "--config-net", ...args, "--", "sh", "-c", lines.join("\n")], {
    user: true,
    timeoutMs: 120_000,
  });
  assert.equal(r.code, 0, show(r));
  assert.doesNotMatch(r.stdout, /FAILED/, show(r));
  const results = await Promise.all(servers.map((s) => s.result));
  results.forEach((res, i) => assert.equal(res.code, 0, `${LEGS[i]!.name}: ${show(res)}`));
  const wrong: string[] = [];
  for (const leg of LEGS) {
    const got = await sha256File(`${sb.dir}/${leg.name}.dst`);
    if (got !== hashes.get(leg.name)) wrong.push(leg.name);
  }
  assert.deepEqual(wrong, [], "transfers whose received file differs");

  // "  eth0: rx_bytes rx_packets errs drop fifo frame compressed multicast tx_bytes tx_packets …"
  const line = r.stdout.split("\n").find((l) => l.startsWith("COUNTERS"));
  const fields = (line ?? "").split(":")[1]?.trim().split(/\s+/).map(Number) ?? [];
  const counters = {
    rx_bytes: fields[0] ?? 0,
    rx_packets: fields[1] ?? 0,
    tx_bytes: fields[8] ?? 0,
    tx_packets: fields[9] ?? 0,
  };
  for (const [name, value] of Object.entries(counters)) {
    assert.ok(value > 0, `counter ${name} missing: ${show(r)}`);
  }
  return counters;
}

/** One frame of a classic pcap file: its bytes as captured and its original length. */
interface CapturedFrame {
  readonly bytes: Uint8Array;
  readonly length: number;
}

/** The frames of the classic pcap file at `path` (little-endian, as pasta writes it). */
async function pcapFrames(path: string): Promise<CapturedFrame[]> {
  const data = await Deno.readFile(path);
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  assert.equal(v.getUint32(0, true), 0xa1b2c3d4, "pcap magic");
  const out: CapturedFrame[] = [];
  let off = 24;
  while (off + 16 <= data.length) {
    const caplen = v.getUint32(off + 8, true);
    const length = v.getUint32(off + 12, true);
    out.push({ bytes: data.subarray(off + 16, off + 16 + caplen), length });
    off += 16 + caplen;
  }
  assert.equal(off, data.length, "pcap file ends inside a record");
  return out;
}

/** Whether `frame` is IPv4 or IPv6 with the namespace's (the host's) address as `which`. */
function hasHostAddress(frame: Uint8Array, which: "src" | "dst"): boolean {
  const type = (frame[12]! << 8) | frame[13]!;
  if (type === 0x0800) {
    const at = 14 + (which === "src" ? 12 : 16);
    return frame.subarray(at, at + 4).join(".") === NET.host4;
  }
  if (type === 0x86dd) {
    // 2001:db8:1::2
    const at = 14 + (which === "src" ? 8 : 24);
    const a = frame.subarray(at, at + 16);
    return a[0] === 0x20 && a[1] === 0x01 && a[2] === 0x0d && a[3] === 0xb8 && a[5] === 1 &&
      a[15] === 2 && a.subarray(6, 15).every((b) => b === 0);
  }
  return false;
}

offloadTest("MTU 1500: GSO frames both ways, IPv4 and IPv6, byte-exact", [
  "socat",
  "ss",
], async (sb) => {
  const c = await transfers(sb, ["-m", "1500"]);
  // From the namespace's side: tx is what its kernel handed us, rx what we wrote.
  const txAverage = c.tx_bytes / c.tx_packets;
  const rxAverage = c.rx_bytes / c.rx_packets;
  assert.ok(
    txAverage > FRAME_1500,
    `the namespace sent no frames above the MTU (TSO towards pasta): ${JSON.stringify(c)}`,
  );
  assert.ok(
    rxAverage > FRAME_1500,
    `pasta wrote no frames above the MTU (GSO towards the namespace): ${JSON.stringify(c)}`,
  );
});

offloadTest("MTU 1500 with a capture: frames as on the interface, readable by tcpdump", [
  "socat",
  "ss",
  "tcpdump",
], async (sb) => {
  const pcap = `${sb.dir}/offload.pcap`;
  const c = await transfers(sb, ["-m", "1500", "-p", pcap]);
  const frames = await pcapFrames(pcap);
  const towardsNs = frames.filter((f) => hasHostAddress(f.bytes, "dst"));
  const fromNs = frames.filter((f) => hasHostAddress(f.bytes, "src"));
  assert.ok(towardsNs.length > 1000 && fromNs.length > 100, `frames: ${frames.length}`);
  // Towards the namespace: segments of the MTU, as without offloads.
  const big = towardsNs.filter((f) => f.length > FRAME_1500);
  assert.equal(big.length, 0, `frames towards the namespace above the MTU: ${big.length}`);
  assert.ok(c.rx_bytes / c.rx_packets <= FRAME_1500, JSON.stringify(c));
  // From the namespace: as read, TSO frames larger than the MTU among them.
  assert.ok(fromNs.some((f) => f.length > FRAME_1500), "no TSO frame from the namespace");

  // Reading a file touches no network: tcpdump runs outside the sandbox.
  const out = await new Deno.Command("tcpdump", { args: ["-n", "-vv", "-r", pcap] }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, `tcpdump -r: ${new TextDecoder().decode(out.stderr)}`);
  const printed = text.split(/^(?=\d\d:\d\d:\d\d\.)/m).filter((f) => f.trim() !== "");
  assert.equal(printed.length, frames.length, "tcpdump printed another number of frames");
  // tcpdump checks TCP checksums over IPv4 and IPv6: every frame we wrote is right.
  const toNs4 = new RegExp(` > ${NET.host4.replaceAll(".", "\\.")}\\.\\d+: `);
  const toNs6 = new RegExp(` > ${NET.host6}\\.\\d+: `);
  const tcpToNs = printed.filter((f) => (toNs4.test(f) || toNs6.test(f)) && /cksum/.test(f));
  assert.ok(tcpToNs.length > 1000, `TCP frames to the namespace in tcpdump: ${tcpToNs.length}`);
  const bad = tcpToNs.filter((f) => /incorrect/.test(f));
  assert.deepEqual(bad.slice(0, 3), [], `${bad.length} frames with a wrong checksum`);
});

/** Datagrams per UDP_SEGMENT send, their size, and sends, in the UDP test. */
const USO_SEGMENTS = 8;
const USO_SIZE = 1000;
const USO_SENDS = 20;

/** The bytes the UDP test sends, in order (send k: bytes (k * per-send + i) % 251). */
function usoPattern(): Uint8Array<ArrayBuffer> {
  const perSend = USO_SEGMENTS * USO_SIZE;
  const out = new Uint8Array(USO_SENDS * perSend);
  for (let i = 0; i < out.length; i++) out[i] = i % 251;
  return out;
}

/** Whether the running kernel has tap UDP segmentation offload (Linux 6.2 on). */
function kernelHasUso(): boolean {
  const [major, minor] = Deno.osRelease().split(".").map((n) => parseInt(n, 10));
  return major! > 6 || (major === 6 && minor! >= 2);
}

offloadTest("MTU 1500: UDP_SEGMENT datagrams from the namespace, IPv4 and IPv6", [
  "ss",
], async (sb) => {
  const expected = await sha256(usoPattern());
  const receiver = (family: 4 | 6, port: number) =>
    [
      "import socket, hashlib, json",
      `s = socket.socket(socket.AF_INET${family === 6 ? "6" : ""}, socket.SOCK_DGRAM)`,
      "s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)",
      `s.bind(("${family === 4 ? "127.0.0.1" : "::1"}", ${port}))`,
      "s.settimeout(30)",
      "h = hashlib.sha256(); sizes = []",
      `while len(sizes) < ${USO_SEGMENTS * USO_SENDS}:`,
      "    try: d = s.recv(65536)",
      "    except socket.timeout: break",
      "    sizes.append(len(d)); h.update(d); s.settimeout(3)",
      "print(json.dumps({'sizes': sorted(set(sizes)), 'count': len(sizes), 'sha': h.hexdigest()}))",
    ].join("\n");
  const sender = (family: 4 | 6, port: number) =>
    [
      "import socket, time",
      `s = socket.socket(socket.AF_INET${family === 6 ? "6" : ""}, socket.SOCK_DGRAM)`,
      `s.setsockopt(17, 103, ${USO_SIZE})  # SOL_UDP, UDP_SEGMENT`,
      `s.connect(("${family === 4 ? NET.gateway4 : NET.gateway6}", ${port}))`,
      `per = ${USO_SEGMENTS * USO_SIZE}`,
      `for k in range(${USO_SENDS}):`,
      "    s.send(bytes((k * per + i) % 251 for i in range(per)))",
      "    time.sleep(0.01)",
    ].join("\n");
  const ports = { 4: 11011, 6: 11012 } as const;
  const receivers = [];
  for (const family of [4, 6] as const) {
    receivers.push(
      await sb.spawn([PYTHON, "-c", receiver(family, ports[family])], {
        timeoutMs: 90_000,
      }),
    );
  }
  const listening = await sb.waitFor(
    async () => {
      const r = await sb.run(["ss", "-Hlun"]);
      return [11011, 11012].every((p) => new RegExp(`:${p}\\s`).test(r.stdout));
    },
    10_000,
    50,
  );
  assert.ok(listening, "host receivers never bound");
  const script = [
    shWait(
      `ip -6 addr show dev ${NET.hostIfname} scope global -tentative | grep -q ${NET.host6}`,
      "IPv6 address",
    ),
    shWait("ip -4 route show default | grep -q via", "IPv4 default route"),
    `${shellQuote(PYTHON)} -c ${shellQuote(sender(4, ports[4]))} || echo FAILED v4`,
    `${shellQuote(PYTHON)} -c ${shellQuote(sender(6, ports[6]))} || echo FAILED v6`,
    `grep '^ *${NET.hostIfname}:' /proc/net/dev | sed 's/^/COUNTERS/'`,
  ].join("\n");
  const r = await sb.run([PASTA, "--config-net", "-m", "1500", "--", "sh", "-c", script], {
    user: true,
    timeoutMs: 60_000,
  });
  assert.equal(r.code, 0, show(r));
  assert.doesNotMatch(r.stdout, /FAILED/, show(r));
  for (const [i, p] of receivers.entries()) {
    const res = await p.result;
    const got = JSON.parse(res.stdout.trim().split("\n").at(-1) ?? "{}");
    assert.deepEqual(
      got,
      { sizes: [USO_SIZE], count: USO_SEGMENTS * USO_SENDS, sha: expected },
      `IPv${i === 0 ? 4 : 6}: ${show(res)}`,
    );
  }
  if (kernelHasUso()) {
    const line = r.stdout.split("\n").find((l) => l.startsWith("COUNTERS")) ?? "";
    const f = line.split(":")[1]?.trim().split(/\s+/).map(Number) ?? [];
    assert.ok(
      f[8]! / f[9]! > FRAME_1500,
      `no frame of several datagrams from the namespace: ${line}`,
    );
  }
});
