/**
 * Runs inside a throwaway user+network namespace (`unshare -rn`) built by
 * udp_test.ts, never on the host's own network: only `lo` exists there, with
 * 198.51.100.7 and 2001:db8:1::7 added to it. It plays a guest talking through
 * UdpTranslator to servers it runs itself on loopback (echo on port 7, a DNS
 * stub on 127.0.0.53:53 and [::1]:53, a counting sink), drives the event loop
 * (bounded), and prints one JSON object describing what each side saw: frames
 * to the guest as hex, what the servers received, counters.
 */

import { AF, EPOLL, IPPROTO, IPV6_OPT, SO, SOCK, SOL } from "../../src/ffi/layout.ts";
import * as sys from "../../src/ffi/sys.ts";
import { FLOW_MAX, FlowType } from "../../src/flow/flow.ts";
import { UdpTranslator } from "../../src/protocols/udp.ts";
import type { EventLoop } from "../../src/loop.ts";
import { be16, bytes, eth, ipv6, naiveChecksum, udp4, view } from "./_frames.ts";
import { GUEST_MAC, ip4, ip6, OUR_MAC } from "./_fixtures.ts";
import {
  DNS_FWD4,
  DNS_FWD6,
  GATEWAY4,
  GATEWAY6,
  GUEST_LL6,
  HOST4,
  HOST6,
  udpContext,
} from "./_udp_context.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function frame4(src: Uint8Array, dst: Uint8Array, sport: number, dport: number, p: Uint8Array) {
  return eth(OUR_MAC, GUEST_MAC, 0x0800, udp4(src, dst, sport, dport, p));
}

function frame6(src: Uint8Array, dst: Uint8Array, sport: number, dport: number, p: Uint8Array) {
  const u = bytes(be16(sport), be16(dport), be16(8 + p.length), 0, 0, p);
  return eth(OUR_MAC, GUEST_MAC, 0x86dd, ipv6(src, dst, 17, 64, u, 6));
}

function fromGuest(t: UdpTranslator, f: Uint8Array): void {
  if (f[12] === 0x86) t.fromTap6(view(f), 14, 40, f.length - 54);
  else t.fromTap4(view(f), 14, 20, f.length - 34);
}

function socketFds(): number {
  let n = 0;
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${e.name}`).startsWith("socket:")) n++;
    } catch {
      // the directory's own descriptor is gone by now
    }
  }
  return n;
}

/** Checks a frame to the guest with naive checksums; returns its fields. */
function parse(f: Uint8Array) {
  const v6 = f[12] === 0x86 && f[13] === 0xdd;
  let ok = true;
  let udp: Uint8Array;
  let src: Uint8Array;
  let dst: Uint8Array;
  if (v6) {
    const plen = (f[18]! << 8) | f[19]!;
    ok &&= plen === f.length - 54 && f[20] === 17;
    src = f.slice(22, 38);
    dst = f.slice(38, 54);
    udp = f.subarray(54);
    const pseudo = bytes(src, dst, 0, 0, be16(udp.length), 0, 0, 0, 17);
    ok &&= naiveChecksum(bytes(pseudo, udp)) === 0;
  } else {
    ok &&= naiveChecksum(f.subarray(14, 34)) === 0; // IPv4 header checksum
    ok &&= ((f[16]! << 8) | f[17]!) === f.length - 14 && f[23] === 17;
    src = f.slice(26, 30);
    dst = f.slice(30, 34);
    udp = f.subarray(34);
    const pseudo = bytes(src, dst, 0, 17, be16(udp.length));
    ok &&= ((udp[6]! << 8) | udp[7]!) !== 0 && naiveChecksum(bytes(pseudo, udp)) === 0;
  }
  ok &&= ((udp[4]! << 8) | udp[5]!) === udp.length;
  ok &&= f.subarray(0, 6).every((b, i) => b === GUEST_MAC[i]);
  ok &&= f.subarray(6, 12).every((b, i) => b === OUR_MAC[i]);
  return {
    v6,
    ok,
    src: hex(src),
    dst: hex(dst),
    sport: (udp[0]! << 8) | udp[1]!,
    dport: (udp[2]! << 8) | udp[3]!,
    payload: udp.slice(8),
  };
}

/** What a test server saw. */
interface Server {
  fd: number;
  received: number;
  peers: string[];
  payloads: string[];
  peerSa: Uint8Array<ArrayBuffer>;
  peerLen: number;
}

/** A UDP server on `addr`:`port`; `answer` builds the reply (undefined: none). */
function server(
  loop: EventLoop,
  v6: boolean,
  addr: Uint8Array,
  port: number,
  answer: ((p: Uint8Array) => Uint8Array | undefined) | undefined,
  keep = true,
): Server {
  const fd = sys.socket(v6 ? AF.INET6 : AF.INET, SOCK.DGRAM | SOCK.NONBLOCK, IPPROTO.UDP);
  sys.trySetsockoptInt(fd, SOL.SOCKET, SO.RCVBUFFORCE, 8 << 20);
  const sa = new Uint8Array(new ArrayBuffer(28));
  const len = v6 ? sys.encodeSockaddrIn6(sa, addr, port) : sys.encodeSockaddrIn(sa, addr, port);
  sys.bind(fd, sa, len);
  const s: Server = {
    fd,
    received: 0,
    peers: [],
    payloads: [],
    peerSa: new Uint8Array(new ArrayBuffer(28)),
    peerLen: 0,
  };
  const buf = sys.pinnedBuffer(65536);
  const alen = sys.pinnedBuffer(4);
  const kind = loop.defineKind(`server:${port}`, () => {
    for (;;) {
      new DataView(alen.buffer).setUint32(0, 28, true);
      const n = sys.recvfrom(fd, buf, 65536, 0x40, s.peerSa, alen);
      if (n < 0) return;
      s.peerLen = new DataView(alen.buffer).getUint32(0, true);
      s.received++;
      if (keep) {
        const p = (s.peerSa[2]! << 8) | s.peerSa[3]!;
        const a = v6 ? hex(s.peerSa.slice(8, 24)) : hex(s.peerSa.slice(4, 8));
        s.peers.push(`${a}:${p}`);
        s.payloads.push(dec.decode(buf.slice(0, n)));
      }
      const reply = answer?.(buf.slice(0, n));
      if (reply !== undefined) {
        const out = sys.pinnedBuffer(reply.length);
        out.set(reply);
        sys.sendto(fd, out, reply.length, 0, s.peerSa, s.peerLen);
      }
    }
  });
  loop.add(fd, kind, 0, EPOLL.IN);
  return s;
}

function runUntil(loop: EventLoop, done: () => boolean, ms = 5000): void {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) loop.run(20, 1);
}

const result: Record<string, unknown> = { socketsBefore: socketFds() };
const ctx = udpContext();
const loop = ctx.loop;
const udp = new UdpTranslator(ctx);
const frames: Uint8Array[] = [];
ctx.tap.onFrame = (f) => frames.push(f);

// --- echo through the gateway mapping, and DNS forwarding --------------------------
const echo4 = server(loop, false, ip4("127.0.0.1"), 7, (p) => p);
const echo6 = server(loop, true, ip6("::1"), 7, (p) => p);
const dns4 = server(loop, false, ip4("127.0.0.53"), 53, (p) => bytes(enc.encode("answer4:"), p));
const dns6 = server(loop, true, ip6("::1"), 53, (p) => bytes(enc.encode("answer6:"), p));

const payload4 = enc.encode("hello gateway, odd!");
const payload6 = enc.encode("hello gateway six");
fromGuest(udp, frame4(HOST4, GATEWAY4, 40001, 7, payload4));
fromGuest(udp, frame6(HOST6, GATEWAY6, 40002, 7, payload6));
fromGuest(udp, frame4(HOST4, DNS_FWD4, 40003, 53, enc.encode("query4")));
fromGuest(udp, frame6(HOST6, DNS_FWD6, 40004, 53, enc.encode("query6")));
runUntil(loop, () => frames.length >= 4);
loop.run(50, 2); // anything extra would show up now
result.basic = {
  frames: frames.map(parse).map((p) => ({ ...p, payload: dec.decode(p.payload) })),
  echo4: { peers: [...echo4.peers], payloads: [...echo4.payloads] },
  echo6: { peers: [...echo6.peers], payloads: [...echo6.payloads] },
  dns4: { peers: [...dns4.peers], payloads: [...dns4.payloads] },
  dns6: { peers: [...dns6.peers], payloads: [...dns6.payloads] },
  flows: ctx.flows.count,
};
frames.length = 0;

// --- a second datagram on the same flow reuses it; the echo comes back again ---------
fromGuest(udp, frame4(HOST4, GATEWAY4, 40001, 7, enc.encode("again")));
runUntil(loop, () => frames.length >= 1);
result.reuse = { flows: ctx.flows.count, payload: dec.decode(parse(frames[0]!).payload) };
frames.length = 0;

// --- burst: 10 000 datagrams guest → host, then 10 000 host → guest ------------------
const BURST = 10_000;
const CHUNK = 100;
const sink = server(loop, false, ip4("127.0.0.1"), 9, undefined, false);
for (let i = 0; i < BURST; i += CHUNK) {
  for (let j = i; j < i + CHUNK; j++) {
    fromGuest(udp, frame4(HOST4, GATEWAY4, 40009, 9, enc.encode(`datagram ${j} `.padEnd(64, "x"))));
  }
  runUntil(loop, () => sink.received >= i + CHUNK, 2000);
}
result.burstUp = { received: sink.received, fromGuest: udp.stats.fromGuest };

let valid = 0;
const seen = new Set<number>();
ctx.tap.onFrame = (f) => {
  const p = parse(f);
  const m = /^down (\d+) /.exec(dec.decode(p.payload));
  if (
    p.ok && m !== null && p.sport === 9 && p.dport === 40009 && p.src === hex(GATEWAY4) &&
    p.dst === hex(HOST4) && p.payload.length === 200
  ) {
    valid++;
    seen.add(Number(m[1]));
  }
};
const down = sys.pinnedBuffer(200);
const before = ctx.tap.count;
for (let i = 0; i < BURST; i += CHUNK) {
  for (let j = i; j < i + CHUNK; j++) {
    down.fill(0x2e);
    down.set(enc.encode(`down ${j} `));
    sys.sendto(sink.fd, down, 200, 0, sink.peerSa, sink.peerLen);
  }
  runUntil(loop, () => ctx.tap.count - before >= i + CHUNK, 2000);
}
result.burstDown = { frames: ctx.tap.count - before, valid, distinct: seen.size };
ctx.tap.onFrame = (f) => frames.push(f);

// --- forwarded sockets ----------------------------------------------------------------
function boundSocket(v6: boolean, addr: Uint8Array, port: number, v6only = false): number {
  const fd = sys.socket(v6 ? AF.INET6 : AF.INET, SOCK.DGRAM | SOCK.NONBLOCK, IPPROTO.UDP);
  if (v6) sys.setsockoptInt(fd, SOL.IPV6, IPV6_OPT.V6ONLY, v6only ? 1 : 0);
  const sa = new Uint8Array(new ArrayBuffer(28));
  const len = v6 ? sys.encodeSockaddrIn6(sa, addr, port) : sys.encodeSockaddrIn(sa, addr, port);
  sys.bind(fd, sa, len);
  return fd;
}
function sendFrom(fd: number, v6: boolean, addr: Uint8Array, port: number, text: string): void {
  const sa = new Uint8Array(new ArrayBuffer(28));
  const len = v6 ? sys.encodeSockaddrIn6(sa, addr, port) : sys.encodeSockaddrIn(sa, addr, port);
  const b = sys.pinnedBuffer(text.length);
  b.set(enc.encode(text));
  sys.sendto(fd, b, b.length, 0, sa, len);
}
function recvText(fd: number): { text: string; from: string } | undefined {
  const buf = sys.pinnedBuffer(2048);
  const sa = sys.pinnedBuffer(28);
  const alen = sys.pinnedBuffer(4);
  new DataView(alen.buffer).setUint32(0, 28, true);
  for (let i = 0; i < 100; i++) {
    const n = sys.recvfrom(fd, buf, 2048, 0x40, sa, alen);
    if (n >= 0) {
      const port = (sa[2]! << 8) | sa[3]!;
      const a = sa[0] === AF.INET6 ? hex(sa.slice(8, 24)) : hex(sa.slice(4, 8));
      return { text: dec.decode(buf.slice(0, n)), from: `${a}:${port}` };
    }
    loop.run(10, 1);
  }
  return undefined;
}

const fwd4 = boundSocket(false, ip4("0.0.0.0"), 5000);
const fwd6 = boundSocket(true, ip6("::"), 5001); // dual-stack: v4 senders appear v4-mapped
udp.addForwardedSocket(fwd4, 8080, false);
udp.addForwardedSocket(fwd6, 8081, true);
const remote4 = boundSocket(false, ip4("127.0.0.1"), 6000);
const remote6 = boundSocket(true, ip6("::1"), 6001, true);

sendFrom(remote4, false, ip4("127.0.0.1"), 5000, "ping fwd4");
runUntil(loop, () => frames.length >= 1);
const f4 = frames.map(parse).map((p) => ({ ...p, payload: dec.decode(p.payload) }));
frames.length = 0;
fromGuest(udp, frame4(HOST4, GATEWAY4, 8080, 6000, enc.encode("pong fwd4")));
const back4 = recvText(remote4);

sendFrom(remote6, true, ip6("::1"), 5001, "ping fwd6");
runUntil(loop, () => frames.length >= 1);
const f6 = frames.map(parse).map((p) => ({ ...p, payload: dec.decode(p.payload) }));
frames.length = 0;
fromGuest(udp, frame6(GUEST_LL6, GATEWAY6, 8081, 6001, enc.encode("pong fwd6")));
const back6 = recvText(remote6);

sendFrom(remote4, false, ip4("127.0.0.1"), 5001, "ping mapped");
runUntil(loop, () => frames.length >= 1);
const fm = frames.map(parse).map((p) => ({ ...p, payload: dec.decode(p.payload) }));
frames.length = 0;
fromGuest(udp, frame4(HOST4, GATEWAY4, 8081, 6000, enc.encode("pong mapped")));
const backMapped = recvText(remote4);
result.forwarded = { f4, back4, f6, back6, fm, backMapped };

// --- source ports: shared by two flows; taken on the host (the forwarded socket's) ----
echo4.peers.length = 0;
dns4.peers.length = 0;
fromGuest(udp, frame4(HOST4, DNS_FWD4, 40001, 53, enc.encode("same port, other peer")));
fromGuest(udp, frame4(HOST4, GATEWAY4, 5000, 7, enc.encode("port taken")));
runUntil(loop, () => frames.length >= 2);
result.ports = {
  dnsPeers: dns4.peers,
  echoPeers: echo4.peers,
  frames: frames.map(parse).map((p) => ({ ...p, payload: dec.decode(p.payload) })),
  portRemapped: udp.stats.portRemapped,
};
frames.length = 0;

result.stats = udp.stats;
result.flowsBeforeClose = ctx.flows.count;
udp.close();
result.flowsAfterClose = ctx.flows.count;
for (const s of [echo4, echo6, dns4, dns6, sink]) sys.close(s.fd);
sys.close(remote4);
sys.close(remote6);
loop.close();
result.socketsAfterClose = socketFds();

// --- expiry, with a short timeout --------------------------------------------------
{
  const ctx2 = udpContext();
  const socketsBefore = socketFds();
  const t = new UdpTranslator(ctx2, { flowTimeoutMs: 1000, clockResolutionMs: 100 });
  for (let i = 0; i < 3; i++) {
    fromGuest(t, frame4(HOST4, GATEWAY4, 41000 + i, 9, enc.encode("expire me")));
  }
  const opened = ctx2.flows.count;
  const socketsOpen = socketFds();
  const start = Date.now();
  while (Date.now() - start < 400) ctx2.loop.run(50, 1);
  const atHalf = ctx2.flows.count;
  while (Date.now() - start < 1600) ctx2.loop.run(50, 1);
  result.expiry = {
    opened,
    openedSockets: socketsOpen - socketsBefore,
    atHalf,
    after: ctx2.flows.count,
    socketsLeft: socketFds() - socketsBefore,
    closed: t.stats.flowsClosed,
  };
  t.close();
  ctx2.loop.close();
}

// --- a full table: the idlest UDP flows make room, active ones stay -----------------
{
  const ctx3 = udpContext();
  const socketsBefore = socketFds();
  const t = new UdpTranslator(ctx3, { flowTimeoutMs: 60_000, clockResolutionMs: 100 });
  for (let i = 0; i < 2; i++) {
    fromGuest(t, frame4(HOST4, GATEWAY4, 42000 + i, 9, enc.encode("old")));
  }
  const start = Date.now();
  while (Date.now() - start < 300) ctx3.loop.run(50, 1);
  fromGuest(t, frame4(HOST4, GATEWAY4, 42002, 9, enc.encode("fresh")));
  // TCP takes the rest of the table: full, the two old flows go, the fresh one stays.
  const taken: number[] = [];
  for (let i = 0; i < FLOW_MAX + 8; i++) {
    const index = ctx3.flows.alloc(FlowType.TCP);
    if (index < 0) break;
    taken.push(index);
  }
  const udpFlows = () => ctx3.flows.type.filter((type) => type === FlowType.UDP).length;
  const afterFill = { udpFlows: udpFlows(), sockets: socketFds() - socketsBefore };
  // Nothing idle is left: a new flow is dropped, counted.
  fromGuest(t, frame4(HOST4, GATEWAY4, 42003, 9, enc.encode("no room")));
  result.evict = {
    tcpTaken: taken.length,
    evicted: t.stats.flowsEvicted,
    afterFill,
    droppedFull: t.stats.dropped.full,
  };
  for (const index of taken) ctx3.flows.free(index);
  t.close();
  ctx3.loop.close();
}

console.log(JSON.stringify(result));
