/**
 * UDP translation. The end-to-end cases run _udp_probe.ts inside a throwaway
 * user+network namespace (`unshare -rn`) where only `lo` exists, so nothing can
 * leave the machine; they are skipped where unprivileged namespaces are not
 * available. Malformed and refused datagrams need no namespace: they must not
 * open a socket at all.
 */

import assert from "node:assert/strict";
import { FLOW_MAX, FlowType } from "../../src/flow/flow.ts";
import { UdpTranslator } from "../../src/protocols/udp.ts";
import { be16, bytes, eth, ipv4, ipv6, udp4, view } from "./_frames.ts";
import { GUEST_MAC, ip4, ip6, OUR_MAC } from "./_fixtures.ts";
import { GATEWAY4, GATEWAY6, HOST4, HOST6, udpContext } from "./_udp_context.ts";

const PROBE = new URL("./_udp_probe.ts", import.meta.url).pathname;

function canUnshare(): boolean {
  try {
    return new Deno.Command("unshare", { args: ["-rn", "true"] }).outputSync().success;
  } catch {
    return false;
  }
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

interface Parsed {
  v6: boolean;
  ok: boolean;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: string;
}

function assertFrame(f: Parsed, want: Omit<Parsed, "ok">, what: string): void {
  assert.ok(f.ok, `${what}: checksums, lengths and MACs`);
  assert.deepEqual({ ...f, ok: true }, { ...want, ok: true }, what);
}

/** The probe's JSON report: checked field by field below. */
// deno-lint-ignore no-explicit-any
type Report = Record<string, any>;

let probe: Promise<Report> | undefined;
function runProbe(): Promise<Report> {
  probe ??= (async () => {
    const setup = [
      "ip link set lo up",
      "ip addr add 198.51.100.7/32 dev lo",
      "ip -6 addr add 2001:db8:1::7/128 dev lo nodad",
      'exec timeout 60 "$DENO" run -A --quiet "$PROBE"',
    ].join(" && ");
    const out = await new Deno.Command("unshare", {
      args: ["-rn", "sh", "-ec", setup],
      env: { DENO: Deno.execPath(), PROBE },
    }).output();
    assert.ok(out.success, `probe failed: ${new TextDecoder().decode(out.stderr)}`);
    return JSON.parse(new TextDecoder().decode(out.stdout));
  })();
  return probe;
}

const ignore = !canUnshare();
const G4 = hex(GATEWAY4);
const H4 = hex(HOST4);
const G6 = hex(GATEWAY6);
const H6 = hex(HOST6);

Deno.test({
  name: "echo through the gateway mapping keeps the guest's port; replies come from the gateway",
  ignore,
  async fn() {
    const r = await runProbe();
    const [e4, e6] = r.basic.frames as Parsed[];
    assertFrame(e4!, {
      v6: false,
      src: G4,
      dst: H4,
      sport: 7,
      dport: 40001,
      payload: "hello gateway, odd!",
    }, "IPv4 echo");
    assertFrame(e6!, {
      v6: true,
      src: G6,
      dst: H6,
      sport: 7,
      dport: 40002,
      payload: "hello gateway six",
    }, "IPv6 echo");
    // The server saw the guest's own source ports, from the host's loopback.
    assert.deepEqual(r.basic.echo4.peers[0], "7f000001:40001");
    assert.deepEqual(r.basic.echo6.peers, [`${"0".repeat(31)}1:40002`]);
    assert.deepEqual(r.basic.echo6.payloads, ["hello gateway six"]);
    assert.deepEqual(r.reuse, { flows: 4, payload: "again" }, "a flow is reused");
  },
});

Deno.test({
  name: "DNS to the --dns-forward address reaches the first resolver and answers from it",
  ignore,
  async fn() {
    const r = await runProbe();
    const [, , d4, d6] = r.basic.frames as Parsed[];
    assert.equal(r.basic.frames.length, 4, "one frame per datagram, no more");
    assert.deepEqual(r.basic.dns4.payloads, ["query4"]);
    assert.deepEqual(r.basic.dns6.payloads, ["query6"]);
    assertFrame(d4!, {
      v6: false,
      src: hex(ip4("198.51.100.53")),
      dst: H4,
      sport: 53,
      dport: 40003,
      payload: "answer4:query4",
    }, "IPv4 DNS answer");
    assertFrame(d6!, {
      v6: true,
      src: hex(ip6("2001:db8:1::53")),
      dst: H6,
      sport: 53,
      dport: 40004,
      payload: "answer6:query6",
    }, "IPv6 DNS answer");
  },
});

Deno.test({
  name: "10 000 datagrams each way arrive, none lost, every frame valid",
  ignore,
  async fn() {
    const r = await runProbe();
    assert.equal(r.burstUp.received, 10_000, "guest → host");
    assert.deepEqual(r.burstDown, { frames: 10_000, valid: 10_000, distinct: 10_000 });
  },
});

Deno.test({
  name: "forwarded sockets: to the guest's target port from the gateway, replies to the sender",
  ignore,
  async fn() {
    const r = await runProbe();
    const f = r.forwarded;
    assert.equal(f.f4.length, 1);
    assertFrame(f.f4[0], {
      v6: false,
      src: G4,
      dst: H4,
      sport: 6000,
      dport: 8080,
      payload: "ping fwd4",
    }, "IPv4 forwarded");
    assert.deepEqual(f.back4, { text: "pong fwd4", from: "7f000001:5000" });
    // IPv6 from ::1 goes to the guest's link-local address (the source is link-local).
    assertFrame(f.f6[0], {
      v6: true,
      src: G6,
      dst: hex(ip6("fe80::5054:ff:fe12:3456")),
      sport: 6001,
      dport: 8081,
      payload: "ping fwd6",
    }, "IPv6 forwarded");
    assert.deepEqual(f.back6, { text: "pong fwd6", from: `${"0".repeat(31)}1:5001` });
    // A v4 sender on a dual-stack socket becomes an IPv4 frame; the reply goes back.
    assertFrame(f.fm[0], {
      v6: false,
      src: G4,
      dst: H4,
      sport: 6000,
      dport: 8081,
      payload: "ping mapped",
    }, "v4-mapped forwarded");
    assert.deepEqual(f.backMapped, { text: "pong mapped", from: "7f000001:5001" });
  },
});

Deno.test({
  name: "source ports: shared between flows, or remapped when the host holds them",
  ignore,
  async fn() {
    const r = await runProbe();
    assert.deepEqual(r.ports.dnsPeers, ["7f000001:40001"], "second flow from port 40001 keeps it");
    assert.equal(r.ports.echoPeers.length, 1);
    assert.notEqual(r.ports.echoPeers[0], "7f000001:5000", "port 5000 is the forwarded socket's");
    assert.equal(r.ports.portRemapped, 1);
    assert.equal(r.ports.frames[1].dport, 5000, "the reply still reaches the guest's port");
    assert.equal(r.ports.frames[1].payload, "port taken");
  },
});

Deno.test({
  name: "idle flows expire and close their sockets; close() closes everything",
  ignore,
  async fn() {
    const r = await runProbe();
    assert.deepEqual(r.expiry, {
      opened: 3,
      openedSockets: 3,
      atHalf: 3,
      after: 0,
      socketsLeft: 0,
      closed: 3,
    });
    assert.equal(r.flowsAfterClose, 0);
    assert.equal(r.socketsAfterClose, r.socketsBefore, "no socket left open");
    for (const [reason, n] of Object.entries(r.stats.dropped)) assert.equal(n, 0, reason);
  },
});

Deno.test({
  name: "a full flow table: the idlest UDP flows make room, a flow active now stays",
  ignore,
  async fn() {
    const r = await runProbe();
    assert.deepEqual(r.evict, {
      tcpTaken: FLOW_MAX - 1,
      evicted: 2,
      afterFill: { udpFlows: 1, sockets: 1 },
      droppedFull: 1,
    });
  },
});

// --- no namespace needed: nothing here may open a socket ---------------------------

function frame4(dst: Uint8Array, udp: Uint8Array, src = HOST4): Uint8Array {
  return eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4(src, dst, 17, udp));
}

function frame6(dst: Uint8Array, udp: Uint8Array, src = HOST6): Uint8Array {
  return eth(OUR_MAC, GUEST_MAC, 0x86dd, ipv6(src, dst, 17, 64, udp, 6));
}

function withTranslator(fn: (t: UdpTranslator, ctx: ReturnType<typeof udpContext>) => void) {
  const ctx = udpContext();
  const t = new UdpTranslator(ctx);
  try {
    fn(t, ctx);
    assert.equal(ctx.flows.count, 0, "no flow");
    assert.equal(t.stats.flowsOpened, 0, "no socket opened");
    assert.equal(t.stats.fromGuest, 0);
    assert.equal(ctx.tap.count, 0);
  } finally {
    t.close();
    ctx.loop.close();
  }
}

const UDP_OK = bytes(be16(40000), be16(7), be16(12), 0, 0, 1, 2, 3, 4);

Deno.test("malformed UDP headers are dropped and counted", () => {
  withTranslator((t) => {
    // Truncated header: 6 bytes of UDP.
    const short = frame4(GATEWAY4, bytes(be16(40000), be16(7), be16(8)));
    t.fromTap4(view(short), 14, 20, 6);
    // The IP payload claims more than the frame holds.
    const f = frame4(GATEWAY4, UDP_OK);
    t.fromTap4(view(f), 14, 20, 400);
    assert.equal(t.stats.dropped.truncated, 2);
    // UDP length larger than the IP payload, and smaller than a header.
    t.fromTap4(
      view(frame4(GATEWAY4, bytes(be16(40000), be16(7), be16(13), 0, 0, 1, 2, 3, 4))),
      14,
      20,
      12,
    );
    t.fromTap4(
      view(frame4(GATEWAY4, bytes(be16(40000), be16(7), be16(7), 0, 0, 1, 2, 3, 4))),
      14,
      20,
      12,
    );
    const long6 = frame6(GATEWAY6, bytes(be16(40000), be16(7), be16(200), 0, 0, 1, 2, 3, 4));
    t.fromTap6(view(long6), 14, 40, 12);
    assert.equal(t.stats.dropped.length, 3);
    // Port zero on either side.
    t.fromTap4(
      view(frame4(GATEWAY4, bytes(be16(0), be16(7), be16(12), 0, 0, 1, 2, 3, 4))),
      14,
      20,
      12,
    );
    t.fromTap4(
      view(frame4(GATEWAY4, bytes(be16(9), be16(0), be16(12), 0, 0, 1, 2, 3, 4))),
      14,
      20,
      12,
    );
    assert.equal(t.stats.dropped.port, 2);
    // IPv6 with a zero checksum (forbidden for UDP over IPv6).
    const zero = frame6(GATEWAY6, UDP_OK);
    zero[60] = 0;
    zero[61] = 0;
    t.fromTap6(view(zero), 14, 40, 12);
    assert.equal(t.stats.dropped.checksum, 1);
    assert.equal(t.stats.totalDropped(), 8);
  });
});

Deno.test("with verifyChecksum, a wrong UDP checksum is dropped; a zero IPv4 one is not checked", () => {
  const ctx = udpContext();
  const t = new UdpTranslator(ctx, { verifyChecksum: true });
  try {
    const bad = eth(OUR_MAC, GUEST_MAC, 0x0800, udp4(HOST4, GATEWAY4, 40000, 7, bytes(1, 2, 3)));
    bad[41]! ^= 0x40;
    t.fromTap4(view(bad), 14, 20, 11);
    const bad6 = frame6(GATEWAY6, UDP_OK);
    bad6[61]! ^= 0x01;
    t.fromTap6(view(bad6), 14, 40, 12);
    assert.equal(t.stats.dropped.checksum, 2);
    assert.equal(ctx.flows.count, 0);
  } finally {
    t.close();
    ctx.loop.close();
  }
});

Deno.test("loops, multicast and broadcast destinations are refused without a socket", () => {
  withTranslator((t) => {
    const send4 = (dst: Uint8Array, src = HOST4) => {
      const f = frame4(dst, UDP_OK, src);
      t.fromTap4(view(f), 14, 20, 12);
    };
    const send6 = (dst: Uint8Array, src = HOST6) => {
      const f = frame6(dst, UDP_OK, src);
      t.fromTap6(view(f), 14, 40, 12);
    };
    send4(HOST4); // to itself
    send4(ip4("10.0.0.1"), ip4("10.0.0.1")); // source = destination
    send6(HOST6);
    send6(ip6("fe80::5054:ff:fe12:3456")); // its own link-local address
    assert.equal(t.stats.dropped.loop, 4);
    send4(ip4("224.0.0.251")); // mDNS
    send4(ip4("239.255.255.250")); // SSDP
    send4(ip4("255.255.255.255"));
    send4(ip4("198.51.100.255")); // directed broadcast of the assigned /24
    send6(ip6("ff02::fb"));
    assert.equal(t.stats.dropped.multicast, 5);
    send4(GATEWAY4, ip4("0.0.0.0"));
    send4(ip4("0.0.0.0"));
    send6(GATEWAY6, ip6("::"));
    send6(GATEWAY6, ip6("ff02::1"));
    assert.equal(t.stats.dropped.address, 4);
  });
});

Deno.test("a full flow table drops the datagram, counted, without a socket", () => {
  withTranslator((t, ctx) => {
    const taken: number[] = [];
    for (let i = 0; i < FLOW_MAX; i++) taken.push(ctx.flows.alloc(FlowType.TCP));
    assert.equal(ctx.flows.alloc(FlowType.UDP), -1);
    const f = frame4(GATEWAY4, UDP_OK);
    t.fromTap4(view(f), 14, 20, 12);
    t.fromTap4(view(f), 14, 20, 12);
    assert.equal(t.stats.dropped.full, 2);
    for (const i of taken) ctx.flows.free(i);
  });
});
