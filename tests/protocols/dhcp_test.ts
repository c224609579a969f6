import assert from "node:assert/strict";
import { type DhcpParams, dhcpReply, newDhcpStats } from "../../src/protocols/dhcp.ts";
import { decodeDomainList, domainListLength } from "../../src/protocols/dns_name.ts";
import { PacketView } from "../../src/protocols/packet.ts";
import {
  assertIpv4UdpChecksums,
  be16,
  dhcpOptions,
  naiveChecksum,
  rd16,
  rd32,
  replyBytes,
  view,
} from "./_frames.ts";
import {
  BCAST_MAC,
  dhcpParams,
  dhcpRequest,
  GUEST4,
  GUEST_MAC,
  ip4,
  OUR_MAC,
  ROUTER4,
  SEARCH,
} from "./_fixtures.ts";

const DISCOVER = 1, REQUEST = 3, DECLINE = 4, RELEASE = 7, INFORM = 8;

/** Runs the server and takes the reply apart, checking checksums and fixed fields. */
function serve(frame: Uint8Array, params: DhcpParams = dhcpParams, capacity = 1600) {
  const out = PacketView.alloc(capacity);
  const stats = newDhcpStats();
  const n = dhcpReply(view(frame), params, out, stats);
  if (n === 0) {
    return { n, stats, frame: new Uint8Array(0), bootp: new Uint8Array(0), opts: new Map() };
  }
  const f = replyBytes(out, n);
  assertIpv4UdpChecksums(f);
  assert.deepEqual(f.subarray(6, 12), OUR_MAC, "Ethernet source: us");
  assert.equal(rd16(f, 12), 0x0800);
  assert.deepEqual(f.subarray(26, 30), ROUTER4, "IPv4 source: server address");
  assert.equal(f[23], 17);
  assert.equal(rd16(f, 34), 67, "UDP source port");
  assert.equal(rd16(f, 36), 68, "UDP destination port");
  const bootp = f.subarray(42);
  assert.ok(bootp.length >= 300, "BOOTP minimum length");
  assert.equal(bootp[0], 2, "BOOTREPLY");
  assert.equal(bootp[1], 1);
  assert.equal(bootp[2], 6);
  assert.equal(rd32(bootp, 4), 0x3903f326, "xid echoed");
  assert.deepEqual(bootp.subarray(28, 34), GUEST_MAC, "chaddr echoed");
  assert.equal(rd32(bootp, 236), 0x63825363);
  return { n, stats, frame: f, bootp, opts: dhcpOptions(bootp) };
}

Deno.test("DHCP: DISCOVER gets an OFFER with every configured option", () => {
  const { frame, bootp, opts, stats } = serve(dhcpRequest(DISCOVER));
  assert.equal(stats.lastReply, "offer");
  assert.deepEqual(frame.subarray(0, 6), GUEST_MAC, "unicast to the client MAC");
  assert.deepEqual(frame.subarray(30, 34), GUEST4, "unicast to yiaddr");
  assert.deepEqual(bootp.subarray(16, 20), GUEST4, "yiaddr");
  assert.deepEqual(bootp.subarray(12, 16), ip4("0.0.0.0"), "ciaddr");
  assert.deepEqual([...opts.get(53)!], [2]);
  assert.deepEqual(opts.get(54), ROUTER4);
  assert.equal(rd32(opts.get(51)!, 0), 3600);
  assert.deepEqual(opts.get(1), ip4("255.255.255.0"));
  assert.deepEqual(opts.get(3), ROUTER4);
  assert.deepEqual([...opts.get(6)!], [192, 0, 2, 53, 198, 51, 100, 53]);
  assert.equal(rd16(opts.get(26)!, 0), 65520);
  assert.equal(opts.get(15), undefined, "no domain name option: the C passt sends none");
  const search = opts.get(119)!;
  assert.deepEqual(decodeDomainList(search, 0, search.length), SEARCH);
  assert.ok(search.length < domainListLength(SEARCH), "search list is compressed");
});

Deno.test("DHCP: broadcast flag makes the reply broadcast", () => {
  const { frame, bootp } = serve(dhcpRequest(DISCOVER, [], { flags: 0x8000 }));
  assert.deepEqual(frame.subarray(0, 6), BCAST_MAC);
  assert.deepEqual(frame.subarray(30, 34), ip4("255.255.255.255"));
  assert.equal(rd16(bootp, 10), 0x8000, "flags echoed");
});

Deno.test("DHCP: REQUEST for our address in SELECTING and INIT-REBOOT gets an ACK", () => {
  const selecting = serve(dhcpRequest(REQUEST, [[50, ...GUEST4], [54, ...ROUTER4]]));
  assert.deepEqual([...selecting.opts.get(53)!], [5]);
  assert.deepEqual(selecting.bootp.subarray(16, 20), GUEST4);
  assert.equal(selecting.stats.lastReply, "ack");
  const reboot = serve(dhcpRequest(REQUEST, [[50, ...GUEST4]]));
  assert.deepEqual([...reboot.opts.get(53)!], [5]);
});

Deno.test("DHCP: REQUEST for another address gets a broadcast NAK", () => {
  const { frame, bootp, opts, stats } = serve(dhcpRequest(REQUEST, [[50, 10, 0, 2, 15]]));
  assert.equal(stats.lastReply, "nak");
  assert.deepEqual([...opts.get(53)!], [6]);
  assert.deepEqual(opts.get(54), ROUTER4);
  assert.equal(opts.has(51), false);
  assert.equal(opts.has(1), false);
  assert.deepEqual(bootp.subarray(16, 20), ip4("0.0.0.0"), "no yiaddr in NAK");
  assert.deepEqual(frame.subarray(0, 6), BCAST_MAC);
  assert.deepEqual(frame.subarray(30, 34), ip4("255.255.255.255"));
});

Deno.test("DHCP: REQUEST naming another server gets no reply", () => {
  const { n, stats } = serve(dhcpRequest(REQUEST, [[50, ...GUEST4], [54, 10, 0, 0, 1]]));
  assert.equal(n, 0);
  assert.equal(stats.dropped.otherServer, 1);
});

Deno.test("DHCP: RENEWING uses ciaddr: ACK unicast to it, NAK for a stale address", () => {
  const renew = serve(dhcpRequest(REQUEST, [], { ciaddr: GUEST4, src: GUEST4 }));
  assert.deepEqual([...renew.opts.get(53)!], [5]);
  assert.deepEqual(renew.frame.subarray(0, 6), GUEST_MAC);
  assert.deepEqual(renew.frame.subarray(30, 34), GUEST4);
  const stale = ip4("192.168.1.50");
  const nak = serve(dhcpRequest(REQUEST, [], { ciaddr: stale, src: stale }));
  assert.deepEqual([...nak.opts.get(53)!], [6]);
});

Deno.test("DHCP: INFORM gets an ACK without address or lease time", () => {
  const { frame, bootp, opts, stats } = serve(
    dhcpRequest(INFORM, [], { ciaddr: GUEST4, src: GUEST4 }),
  );
  assert.equal(stats.lastReply, "inform-ack");
  assert.deepEqual([...opts.get(53)!], [5]);
  assert.equal(opts.has(51), false);
  assert.deepEqual(bootp.subarray(16, 20), ip4("0.0.0.0"), "yiaddr 0");
  assert.deepEqual(bootp.subarray(12, 16), GUEST4, "ciaddr echoed");
  assert.deepEqual(frame.subarray(30, 34), GUEST4, "unicast to ciaddr");
  assert.deepEqual(opts.get(6)?.length, 8, "configuration still given");
});

Deno.test("DHCP: DECLINE and RELEASE get no reply", () => {
  assert.equal(serve(dhcpRequest(DECLINE, [[50, ...GUEST4], [54, ...ROUTER4]])).n, 0);
  const r = serve(dhcpRequest(RELEASE, [[54, ...ROUTER4]], { ciaddr: GUEST4 }));
  assert.equal(r.n, 0);
  assert.equal(r.stats.dropped.unhandledType, 1);
});

Deno.test("DHCP: client identifier is echoed", () => {
  const id = [1, ...GUEST_MAC];
  const { opts } = serve(dhcpRequest(DISCOVER, [[61, ...id]]));
  assert.deepEqual([...opts.get(61)!], id);
});

Deno.test("DHCP: options without a value are left out (mtu 0, no DNS, no search, no router)", () => {
  const params: DhcpParams = { ...dhcpParams, mtu: 0, dns: [], search: [], router: ip4("0.0.0.0") };
  const { opts } = serve(dhcpRequest(DISCOVER), params);
  assert.deepEqual([...opts.keys()].sort((a, b) => a - b), [1, 51, 53, 54]);
});

Deno.test("DHCP: prefix length maps to the subnet mask", () => {
  for (
    const [len, mask] of [[8, "255.0.0.0"], [20, "255.255.240.0"], [32, "255.255.255.255"]] as const
  ) {
    const { opts } = serve(dhcpRequest(DISCOVER), { ...dhcpParams, prefixLength: len });
    assert.deepEqual(opts.get(1), ip4(mask));
  }
});

const LONG_SEARCH = Array.from(
  { length: 24 },
  (_, i) => `department-${i}.corp${i % 3}.example.com`,
);

Deno.test("DHCP: reply fits a 576-byte client, leaving out a search list that does not fit", () => {
  const params = { ...dhcpParams, search: LONG_SEARCH };
  const { frame, opts, stats } = serve(dhcpRequest(DISCOVER), params);
  assert.ok(frame.length - 14 <= 576, `IP datagram ${frame.length - 14} bytes`);
  assert.equal(opts.has(119), false);
  assert.ok(opts.has(6), "DNS still sent");
  assert.ok(stats.omitted >= 1);
});

Deno.test("DHCP: with a larger max message size, a long search list spans several options", () => {
  const params = { ...dhcpParams, search: LONG_SEARCH };
  const { frame, bootp, opts } = serve(dhcpRequest(DISCOVER, [[57, ...be16(1500)]]), params);
  assert.ok(frame.length - 14 <= 1500);
  const search = opts.get(119)!;
  assert.ok(search.length > 255);
  assert.deepEqual(decodeDomainList(search, 0, search.length), LONG_SEARCH);
  let count = 0;
  for (let o = 240; bootp[o] !== 255; o += bootp[o] === 0 ? 1 : 2 + bootp[o + 1]!) {
    if (bootp[o] === 119) count++;
  }
  assert.ok(count >= 2, `${count} option 119 instances`);
});

Deno.test("DHCP: max message size below 576 is treated as 576", () => {
  const { frame } = serve(dhcpRequest(DISCOVER, [[57, ...be16(100)]]));
  assert.ok(frame.length > 0 && frame.length - 14 <= 576);
});

/** Recomputes the IPv4 header checksum after a test edits the header. */
function fixIpChecksum(f: Uint8Array): Uint8Array {
  f[24] = 0;
  f[25] = 0;
  const c = naiveChecksum(f.subarray(14, 34));
  f[24] = c >> 8;
  f[25] = c & 0xff;
  return f;
}

Deno.test("DHCP: malformed requests get no reply and no exception", () => {
  const good = dhcpRequest(DISCOVER, [[61, 1, ...GUEST_MAC]]);
  const stats = newDhcpStats();
  const out = PacketView.alloc(1600);
  const run = (f: Uint8Array) => dhcpReply(view(f), dhcpParams, out, stats);
  assert.ok(run(good) > 0);
  for (let len = 0; len < good.length - 1; len++) {
    assert.equal(run(good.subarray(0, len)), 0, `truncated to ${len}`);
  }
  const edits: [string, (f: Uint8Array) => void][] = [
    ["bad IP checksum", (f) => (f[24]! ^= 1)],
    ["IP version 5", (f) => (f[14] = 0x55, fixIpChecksum(f))],
    ["IHL 4", (f) => (f[14] = 0x44, fixIpChecksum(f))],
    ["total length past frame", (f) => (f[16] = 0xff, fixIpChecksum(f))],
    ["fragment", (f) => (f[20] = 0x20, fixIpChecksum(f))],
    ["TCP", (f) => (f[23] = 6, fixIpChecksum(f))],
    ["UDP length past IP", (f) => (f[38] = 0xff)],
    ["UDP length below header", (f) => (f[38] = 0, f[39] = 4)],
    ["wrong port", (f) => (f[37] = 69)],
    ["BOOTREPLY", (f) => (f[42] = 2)],
    ["htype 6", (f) => (f[43] = 6)],
    ["hlen 16", (f) => (f[44] = 16)],
    ["multicast chaddr", (f) => (f[42 + 28] = 1)],
    ["bad cookie", (f) => (f[42 + 239] = 0)],
    ["message type length 2", (f) => (f[42 + 241] = 2)],
    ["option overruns message", (f) => (f[42 + 244] = 200)],
    ["client id too short", (f) => (f[42 + 244] = 1)],
    ["no message type", (f) => (f[42 + 240] = 0, f[42 + 241] = 0, f[42 + 242] = 0)],
  ];
  for (const [what, edit] of edits) {
    const f = Uint8Array.from(good);
    edit(f);
    assert.equal(run(f), 0, what);
  }
  for (
    const reason of [
      "truncated",
      "badIpHeader",
      "fragment",
      "notUdp",
      "badUdpLength",
      "notServerPort",
      "notRequest",
      "badHardware",
      "badCookie",
      "badOptions",
      "noMessageType",
    ] as const
  ) {
    assert.ok(stats.dropped[reason] > 0, `counted ${reason}`);
  }
  assert.equal(stats.replies, 1);
});

Deno.test("DHCP: output buffer too small means no reply", () => {
  const stats = newDhcpStats();
  const n = dhcpReply(view(dhcpRequest(DISCOVER)), dhcpParams, PacketView.alloc(200), stats);
  assert.equal(n, 0);
  assert.equal(stats.dropped.noRoom, 1);
});

Deno.test("DHCP: -H and --fqdn give options 12 and 81 (flags E, RCODEs 255, wire-format name)", () => {
  const params = { ...dhcpParams, hostname: "guest1", fqdn: "guest1.example.org" };
  for (const type of [DISCOVER, REQUEST, INFORM]) {
    const { opts } = serve(dhcpRequest(type, type === REQUEST ? [[50, ...GUEST4]] : []), params);
    assert.equal(new TextDecoder().decode(opts.get(12)), "guest1", `${type}: host name`);
    const fqdn = opts.get(81)!;
    assert.deepEqual([...fqdn.subarray(0, 3)], [0x04, 255, 255], `${type}: flags, RCODE1/2`);
    assert.deepEqual(decodeDomainList(fqdn, 3, fqdn.length - 3), ["guest1.example.org"]);
    assert.equal(fqdn.length, 3 + 20, "uncompressed name");
  }
  const none = serve(dhcpRequest(DISCOVER));
  assert.equal(none.opts.has(12), false, "no -H, no option 12");
  assert.equal(none.opts.has(81), false, "no --fqdn, no option 81");
  const nak = serve(dhcpRequest(REQUEST, [[50, 192, 0, 2, 99]]), params);
  assert.equal(nak.opts.has(12), false, "a NAK carries no configuration");
});

Deno.test("DHCP: a host name that does not fit a 576-byte reply is left out and counted", () => {
  const params = { ...dhcpParams, search: [], hostname: "h".repeat(250), fqdn: "f".repeat(60) };
  const { frame, opts, stats } = serve(dhcpRequest(DISCOVER), params);
  assert.ok(frame.length - 14 <= 576);
  assert.equal(opts.get(12)?.length, 250);
  assert.equal(opts.has(81), false);
  assert.equal(stats.omitted, 1);
});
