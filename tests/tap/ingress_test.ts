/**
 * Ingress dispatch: which service or transport handler a guest frame reaches, and
 * with which offsets, for IPv4, plain IPv6 and IPv6 behind extension headers
 * (hop-by-hop, routing with no segments left, destination options). Fragments,
 * No Next Header and malformed chains are dropped and counted.
 */
import assert from "node:assert/strict";
import type { NetworkPlan } from "../../src/config/network.ts";
import type { TransportHandler } from "../../src/flow/context.ts";
import { initialGuestState } from "../../src/flow/guest.ts";
import type { PacketView } from "../../src/protocols/packet.ts";
import { type EchoHandler, Ingress } from "../../src/tap/ingress.ts";
import { be16, bytes, eth, ipv4, ipv6, view } from "../protocols/_frames.ts";
import {
  CLIENT_DUID,
  dhcpv6Request,
  GUEST4,
  GUEST6,
  GUEST_LL,
  GUEST_MAC,
  iaNa,
  ip6,
  neighborSolicit,
  OUR_LL,
  OUR_MAC,
  ROUTER4,
  v6opt,
} from "../protocols/_fixtures.ts";
import { FakeTap } from "../protocols/_udp_context.ts";

const HOP_BY_HOP = 0, TCP = 6, UDP = 17, ROUTING = 43, FRAGMENT = 44, ICMPV6 = 58;
const NO_NEXT = 59, DEST_OPTS = 60, ESP = 50;
const REMOTE6 = ip6("2001:db8:9::1");

/** What a transport or echo handler was given. */
interface Call {
  readonly kind: string;
  readonly ipOffset: number;
  readonly headersLength: number;
  readonly l4Length: number;
  /** The first 4 bytes at the upper-layer header (ports, or ICMP type and code). */
  readonly l4Head: number[];
}

function recorder(kind: string, calls: Call[]): TransportHandler & EchoHandler {
  const record = (pkt: PacketView, ipOffset: number, headersLength: number, l4Length: number) => {
    const l4 = ipOffset + headersLength;
    calls.push({
      kind,
      ipOffset,
      headersLength,
      l4Length,
      l4Head: [pkt.u8(l4), pkt.u8(l4 + 1), pkt.u8(l4 + 2), pkt.u8(l4 + 3)],
    });
  };
  return { fromTap4: record, fromTap6: record };
}

function setUp() {
  const plan: NetworkPlan = {
    ourMac: OUR_MAC,
    ip4: {
      hostIfname: "eth0",
      hostIfindex: 2,
      address: GUEST4,
      prefixLength: 24,
      gateway: ROUTER4,
      hostAddresses: [{ address: GUEST4, prefixLength: 24 }],
      hostRoutes: [],
      mapHostLoopback: ROUTER4,
      mapGuestAddr: undefined,
      dnsForward: undefined,
      dns: [],
      resolvers: [],
    },
    ip6: {
      hostIfname: "eth0",
      hostIfindex: 2,
      address: GUEST6,
      prefixLength: 64,
      gateway: OUR_LL,
      hostAddresses: [{ address: GUEST6, prefixLength: 64 }],
      hostRoutes: [],
      mapHostLoopback: OUR_LL,
      mapGuestAddr: undefined,
      dnsForward: undefined,
      dns: [ip6("2001:db8:53::1")],
      resolvers: [],
      ourLinkLocal: OUR_LL,
    },
    search: [],
    mtu: 65520,
    hostname: "",
    fqdn: "",
    dhcp: false,
    ndp: true,
    ra: true,
    dhcpv6: true,
  };
  const tap = new FakeTap();
  const replies: Uint8Array[] = [];
  tap.onFrame = (f) => replies.push(f);
  const ingress = new Ingress(plan, initialGuestState(GUEST4, GUEST6), tap);
  const calls: Call[] = [];
  ingress.setTcp(recorder("tcp", calls));
  ingress.setUdp(recorder("udp", calls));
  ingress.setEcho(recorder("echo", calls));
  return { ingress, calls, replies };
}

/** An extension header of 8 bytes: `next`, length 0, then a PadN option (or zeros). */
function ext(type: number, segmentsLeft = 0): number[] {
  if (type === ROUTING) return [0, 0, 4, segmentsLeft, 0, 0, 0, 0];
  if (type === FRAGMENT) return [0, 0, 0, 0, 0, 0, 0x12, 0x34];
  return [0, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop / destination options: PadN
}

/**
 * `frame` (Ethernet + IPv6, no extension headers) with `chain` inserted after the
 * fixed header: each entry is [type, bytes]; the last one carries the original
 * next header. The transport checksum stays valid (its pseudo-header has the
 * upper-layer length and protocol).
 */
function withExtensions(frame: Uint8Array, chain: [number, number[]][]): Uint8Array {
  const ip = 14;
  const upper = frame[ip + 6]!;
  const headers = chain.map(([, b], i) => {
    const h = [...b];
    h[0] = i + 1 < chain.length ? chain[i + 1]![0] : upper;
    return h;
  });
  const extBytes = headers.reduce((n, h) => n + h.length, 0);
  const out = bytes(frame.subarray(0, ip + 40), ...headers, frame.subarray(ip + 40));
  out[ip + 6] = chain[0]![0];
  const plen = (frame[ip + 4]! << 8 | frame[ip + 5]!) + extBytes;
  out[ip + 4] = plen >> 8;
  out[ip + 5] = plen & 0xff;
  return out;
}

function tcp6(): Uint8Array {
  const seg = bytes(
    be16(40000),
    be16(80),
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    0,
    0x50,
    0x02,
    0xff,
    0xff,
    0,
    0,
    0,
    0,
  );
  return eth(OUR_MAC, GUEST_MAC, 0x86dd, ipv6(GUEST6, REMOTE6, TCP, 64, seg, 16));
}

function udp6(payload = bytes(1, 2, 3)): Uint8Array {
  const dgram = bytes(be16(40001), be16(53), be16(8 + payload.length), 0, 0, payload);
  return eth(OUR_MAC, GUEST_MAC, 0x86dd, ipv6(GUEST6, REMOTE6, UDP, 64, dgram, 6));
}

function echo6(): Uint8Array {
  const icmp = bytes(128, 0, 0, 0, be16(0x77), be16(1), bytes(9, 9, 9, 9));
  return eth(OUR_MAC, GUEST_MAC, 0x86dd, ipv6(GUEST6, REMOTE6, ICMPV6, 64, icmp, 2));
}

function dhcpv6Solicit(): Uint8Array {
  return dhcpv6Request(1, 0xabcdef, v6opt(1, CLIENT_DUID), v6opt(8, be16(0)), iaNa(7));
}

Deno.test("ingress: plain IPv4 and IPv6 reach TCP, UDP and echo with the bare header lengths", () => {
  const { ingress, calls } = setUp();
  const udp4 = bytes(be16(40002), be16(53), be16(9), 0, 0, 7);
  ingress.handle(view(eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4(GUEST4, ROUTER4, UDP, udp4))));
  ingress.handle(view(tcp6()));
  ingress.handle(view(udp6()));
  ingress.handle(view(echo6()));
  assert.deepEqual(calls.map((c) => [c.kind, c.ipOffset, c.headersLength, c.l4Length]), [
    ["udp", 14, 20, 9],
    ["tcp", 14, 40, 20],
    ["udp", 14, 40, 11],
    ["echo", 14, 40, 12],
  ]);
  assert.deepEqual(calls[1]!.l4Head, [0x9c, 0x40, 0, 80], "TCP ports at the upper-layer offset");
  assert.deepEqual(calls[3]!.l4Head.slice(0, 2), [128, 0], "an echo request at its offset");
  assert.equal(ingress.stats.dropped, 0);
});

Deno.test("ingress: TCP, UDP and echo behind hop-by-hop, routing and destination options", () => {
  const { ingress, calls } = setUp();
  ingress.handle(view(withExtensions(tcp6(), [[HOP_BY_HOP, ext(HOP_BY_HOP)]])));
  ingress.handle(view(withExtensions(udp6(), [[DEST_OPTS, ext(DEST_OPTS)]])));
  ingress.handle(view(withExtensions(echo6(), [
    [HOP_BY_HOP, ext(HOP_BY_HOP)],
    [ROUTING, ext(ROUTING)],
    [DEST_OPTS, ext(DEST_OPTS)],
  ])));
  // A longer header: destination options with length 1 (16 bytes).
  const long = [0, 1, 1, 12, ...new Array(12).fill(0)];
  ingress.handle(view(withExtensions(tcp6(), [[DEST_OPTS, long]])));
  assert.deepEqual(calls.map((c) => [c.kind, c.headersLength, c.l4Length, c.l4Head[0]]), [
    ["tcp", 48, 20, 0x9c],
    ["udp", 48, 11, 0x9c],
    ["echo", 64, 12, 128],
    ["tcp", 56, 20, 0x9c],
  ]);
  assert.deepEqual(calls[0]!.l4Head, [0x9c, 0x40, 0, 80], "TCP ports at the upper-layer offset");
  assert.equal(ingress.stats.tcp, 2);
  assert.equal(ingress.stats.udp, 1);
  assert.equal(ingress.stats.icmp, 1);
  assert.equal(ingress.stats.dropped, 0);
});

Deno.test("ingress: NDP and DHCPv6 behind a hop-by-hop header are answered", () => {
  const { ingress, replies } = setUp();
  ingress.handle(view(withExtensions(neighborSolicit(GUEST_LL, OUR_LL), [[HOP_BY_HOP, ext(0)]])));
  assert.equal(ingress.stats.ndp, 1);
  assert.equal(replies.length, 1, "a neighbor advertisement");
  const na = replies[0]!;
  assert.equal(na[14 + 6], ICMPV6, "ICMPv6 right after the IPv6 header");
  assert.equal(na[54], 136, "neighbor advertisement");
  assert.deepEqual(na.subarray(62, 78), OUR_LL, "for our link-local address");

  const solicit = withExtensions(dhcpv6Solicit(), [[HOP_BY_HOP, ext(0)], [DEST_OPTS, ext(0)]]);
  ingress.handle(view(solicit));
  assert.equal(ingress.stats.dhcpv6, 1);
  assert.equal(replies.length, 2, "a DHCPv6 advertise");
  const adv = replies[1]!;
  assert.equal(adv[14 + 6], UDP);
  assert.equal(adv[54]! << 8 | adv[55]!, 547, "from the server port");
  assert.equal(adv[56]! << 8 | adv[57]!, 546, "to the client port");
  assert.equal(adv[62], 2, "ADVERTISE");
  assert.equal(ingress.stats.dropped, 0);
});

Deno.test("ingress: fragments, No Next Header and malformed chains are dropped and counted", () => {
  const { ingress, calls, replies } = setUp();
  // A fragment header, in front of TCP and behind a hop-by-hop header.
  ingress.handle(view(withExtensions(tcp6(), [[FRAGMENT, ext(FRAGMENT)]])));
  ingress.handle(view(withExtensions(udp6(), [[HOP_BY_HOP, ext(0)], [FRAGMENT, ext(FRAGMENT)]])));
  assert.equal(ingress.stats.fragments, 2);
  // No Next Header, right away and after destination options.
  const none = eth(OUR_MAC, GUEST_MAC, 0x86dd, ipv6(GUEST6, REMOTE6, NO_NEXT, 64, bytes(1, 2, 3)));
  ingress.handle(view(none));
  ingress.handle(view(withExtensions(none, [[DEST_OPTS, ext(DEST_OPTS)]])));
  assert.equal(ingress.stats.noNextHeader, 2);
  // Malformed: hop-by-hop not first, a header running past the payload, a routing
  // header with segments left (we are no router), an unknown upper layer (ESP).
  ingress.handle(view(withExtensions(tcp6(), [[DEST_OPTS, ext(0)], [HOP_BY_HOP, ext(0)]])));
  const overlong = withExtensions(udp6(), [[DEST_OPTS, [0, 9, 1, 4, 0, 0, 0, 0]]]);
  ingress.handle(view(overlong));
  ingress.handle(view(withExtensions(echo6(), [[ROUTING, ext(ROUTING, 1)]])));
  ingress.handle(
    view(eth(OUR_MAC, GUEST_MAC, 0x86dd, ipv6(GUEST6, REMOTE6, ESP, 64, bytes(0, 0, 0, 1)))),
  );
  // Only the fixed header and a truncated extension header in the payload.
  const cut = withExtensions(udp6(), [[HOP_BY_HOP, ext(0)]]).subarray(0, 14 + 40 + 4);
  cut[14 + 4] = 0;
  cut[14 + 5] = 4;
  ingress.handle(view(cut));
  assert.deepEqual(calls, [], "no handler saw any of them");
  assert.deepEqual(replies, []);
  assert.equal(ingress.stats.dropped, 9);
  assert.equal(ingress.stats.tcp + ingress.stats.udp + ingress.stats.icmp, 0);
});
