/**
 * Runs inside a throwaway user+network namespace (`unshare -rn`) built by
 * icmp_test.ts, never on the host's own network: only `lo` exists there, with the
 * documentation addresses 198.51.100.7 and 2001:db8:1::7 added to it, and the
 * namespace's ping_group_range lets us open ping sockets.
 *
 * It plays a guest that pings the loopback addresses, the mapped gateway
 * addresses and the mapped guest addresses through IcmpEcho, runs the event loop
 * (bounded) until every reply has come back, and prints one JSON object: the
 * frames passed to tapSend (hex), the counters, and what expiry and a full table
 * did.
 */

import { formatIp4, formatIp6, parseIp4, parseIp6, parseMac } from "../../src/addr.ts";
import { IcmpEcho, type IcmpParams } from "../../src/protocols/icmp.ts";
import { PacketView } from "../../src/protocols/packet.ts";
import { EventLoop } from "../../src/loop.ts";
import { be16, bytes, eth, ipv4, ipv6, naiveChecksum, view } from "./_frames.ts";

function ip4(s: string): Uint8Array {
  return parseIp4(s)!;
}
function ip6(s: string): Uint8Array {
  return parseIp6(s)!;
}

const OUR_MAC = parseMac("9a:55:9a:55:9a:55")!;
const GUEST_MAC = parseMac("52:54:00:12:34:56")!;
const GUEST4 = ip4("192.0.2.100");
const GUEST6 = ip6("2001:db8::100");

const params: IcmpParams = {
  ourMac: OUR_MAC,
  guest: {
    mac: GUEST_MAC,
    addr4: GUEST4,
    addr6: GUEST6,
    addr6LinkLocal: ip6("fe80::5054:ff:fe12:3456"),
    seen: true,
  },
  ipv4: true,
  ipv6: true,
  mapHostLoopback4: ip4("192.0.2.1"),
  mapHostLoopback6: ip6("fe80::1"),
  mapGuestAddr4: ip4("192.0.2.2"),
  mapGuestAddr6: ip6("2001:db8::2"),
  guestAssigned4: ip4("198.51.100.7"),
  guestAssigned6: ip6("2001:db8:1::7"),
  // Outbound binding applies to the non-loopback targets (the mapped guest address).
  outboundAddr4: ip4("198.51.100.7"),
  outboundAddr6: ip6("2001:db8:1::7"),
  outboundIf4: "lo",
  outboundIf6: "lo",
};

function echo4(dst: Uint8Array, id: number, seq: number, payload: Uint8Array): Uint8Array {
  const icmp = bytes(8, 0, 0, 0, be16(id), be16(seq), payload);
  const c = naiveChecksum(icmp);
  icmp[2] = c >> 8;
  icmp[3] = c & 0xff;
  return eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4(GUEST4, dst, 1, icmp));
}

function echo6(dst: Uint8Array, id: number, seq: number, payload: Uint8Array): Uint8Array {
  const icmp = bytes(128, 0, 0, 0, be16(id), be16(seq), payload);
  return eth(OUR_MAC, GUEST_MAC, 0x86dd, ipv6(GUEST6, dst, 58, 64, icmp, 2));
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
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

const payload = (text: string) => new TextEncoder().encode(text);

/**
 * Requests: [label, frame, v6], all sent before any reply is read. The loopback
 * and gateway flows both end at 127.0.0.1 (::1) with the same identifier, so the
 * second must get a socket identifier of its own, or the replies would mix up.
 */
const requests: [string, Uint8Array, boolean][] = [
  ["v4-loopback", echo4(ip4("127.0.0.1"), 0x1234, 1, payload("hello 127.0.0.1")), false],
  ["v4-gateway", echo4(ip4("192.0.2.1"), 0x1234, 2, payload("hello gateway")), false],
  ["v4-guestaddr", echo4(ip4("192.0.2.2"), 0x2222, 3, payload("hello mapped guest")), false],
  ["v4-loopback-again", echo4(ip4("127.0.0.1"), 0x1234, 4, payload("again")), false],
  ["v6-loopback", echo6(ip6("::1"), 0x4321, 5, payload("hello ::1, odd")), true],
  ["v6-gateway", echo6(ip6("fe80::1"), 0x4321, 6, payload("hello fe80::1")), true],
  ["v6-guestaddr", echo6(ip6("2001:db8::2"), 0x6666, 7, payload("hello mapped guest6")), true],
];

const socketsBefore = socketFds();
const loop = new EventLoop();
const frames: string[] = [];
const icmp = new IcmpEcho(loop, params, (frame: PacketView) => {
  frames.push(hex(frame.bytes.slice(frame.start, frame.start + frame.length)));
});

const sent: Record<string, boolean> = {};
for (const [label, frame, v6] of requests) {
  const pkt = view(frame);
  const l4 = frame.length - 14 - (v6 ? 40 : 20);
  sent[label] = v6 ? icmp.fromTap6(pkt, 14, 40, l4) : icmp.fromTap4(pkt, 14, 20, l4);
}

const deadline = Date.now() + 5000;
while (frames.length < requests.length && Date.now() < deadline) loop.run(100, 1);
// Give stray extra frames (there should be none) a chance to show up.
loop.run(100, 2);

const flowsBeforeExpiry = icmp.flowCount;
icmp.tick(30_000);
const flowsAfterHalfTimeout = icmp.flowCount;
icmp.tick(30_000);
const flowsAfterTimeout = icmp.flowCount;
const socketsAfterExpiry = socketFds();

// A table of one flow: a second conversation is refused, and counted.
const small = new IcmpEcho(loop, { ...params, capacity: 1 }, () => {});
const first = small.fromTap4(view(echo4(ip4("127.0.0.1"), 7, 1, payload("x"))), 14, 20, 9);
const second = small.fromTap4(view(echo4(ip4("127.0.0.2"), 7, 1, payload("x"))), 14, 20, 9);
const fullCount = small.stats.dropped.full;
const smallFlows = small.flowCount;
small.close();
const socketsAfterClose = socketFds();
icmp.close();
loop.close();

console.log(JSON.stringify({
  guest4: formatIp4(GUEST4),
  guest6: formatIp6(GUEST6),
  sent,
  frames,
  stats: icmp.stats,
  flowsBeforeExpiry,
  flowsAfterHalfTimeout,
  flowsAfterTimeout,
  socketsBefore,
  socketsAfterExpiry,
  socketsAfterClose,
  full: { first, second, fullCount, smallFlows },
}));
