import assert from "node:assert/strict";
import { decodeDomainList } from "../../src/protocols/dns_name.ts";
import { formatIpv6 } from "../../src/protocols/ip.ts";
import {
  isNdpFrame,
  linkLocalFromMac,
  type NdpParams,
  ndpReply,
  ndpRouterAdvertisement,
  newNdpStats,
} from "../../src/protocols/ndp.ts";
import { PacketView } from "../../src/protocols/packet.ts";
import {
  assertIpv6L4Checksum,
  bytes,
  ndpOptions,
  rd16,
  rd32,
  replyBytes,
  view,
} from "./_frames.ts";
import {
  GUEST6,
  GUEST_LL,
  GUEST_MAC,
  ip6,
  mac,
  ndpFrame,
  ndpParams,
  neighborSolicit,
  OUR_LL,
  OUR_MAC,
  routerSolicit,
  SEARCH,
} from "./_fixtures.ts";

function serve(frame: Uint8Array, params: NdpParams = ndpParams) {
  const out = PacketView.alloc(1600);
  const stats = newNdpStats();
  const n = ndpReply(view(frame), params, out, stats);
  const f = replyBytes(out, n);
  if (n > 0) {
    assertIpv6L4Checksum(f);
    assert.deepEqual(f.subarray(6, 12), OUR_MAC);
    assert.equal(rd16(f, 12), 0x86dd);
    assert.equal(f[20], 58, "next header ICMPv6");
    assert.equal(f[21], 255, "hop limit 255");
  }
  return { n, f, icmp: f.subarray(54), stats };
}

Deno.test("NDP: linkLocalFromMac builds the modified EUI-64 address", () => {
  assert.equal(formatIpv6(linkLocalFromMac(mac("52:54:00:12:34:56"))), "fe80::5054:ff:fe12:3456");
});

Deno.test("NDP: NS for the gateway gets a solicited NA with our MAC", () => {
  assert.ok(isNdpFrame(view(neighborSolicit(GUEST_LL, OUR_LL))));
  const { n, f, icmp, stats } = serve(neighborSolicit(GUEST_LL, OUR_LL));
  assert.equal(n, 86);
  assert.equal(stats.lastReply, "na");
  assert.deepEqual(f.subarray(0, 6), GUEST_MAC, "to the soliciting MAC");
  assert.deepEqual(f.subarray(22, 38), OUR_LL, "from the target address");
  assert.deepEqual(f.subarray(38, 54), GUEST_LL, "to the soliciting address");
  assert.equal(icmp[0], 136);
  assert.equal(icmp[1], 0);
  assert.equal(rd32(icmp, 4), 0xe0000000, "router, solicited, override");
  assert.deepEqual(icmp.subarray(8, 24), OUR_LL, "target");
  assert.deepEqual([...icmp.subarray(24, 32)], [2, 1, ...OUR_MAC], "target link-layer option");
});

Deno.test("NDP: NS for any other off-guest address is answered", () => {
  const target = ip6("2a02:6d40:3ca5:2001::1");
  const { n, icmp } = serve(neighborSolicit(GUEST6, target));
  assert.equal(n, 86);
  assert.deepEqual(icmp.subarray(8, 24), target);
});

Deno.test("NDP: DAD, the guest's own address and self-solicitations are not answered", () => {
  const dad = serve(neighborSolicit(ip6("::"), GUEST_LL));
  assert.equal(dad.n, 0);
  assert.equal(dad.stats.dropped.dad, 1);
  const own = serve(neighborSolicit(GUEST_LL, GUEST6));
  assert.equal(own.n, 0);
  assert.equal(own.stats.dropped.guestAddress, 1);
  const self = serve(neighborSolicit(GUEST_LL, GUEST_LL));
  assert.equal(self.stats.dropped.selfTarget, 1);
});

Deno.test("NDP: RS gets an RA with prefix, MTU, RDNSS, DNSSL and source link-layer options", () => {
  const { n, f, icmp, stats } = serve(routerSolicit(GUEST_LL));
  assert.ok(n > 0);
  assert.equal(stats.lastReply, "ra");
  assert.deepEqual(f.subarray(0, 6), GUEST_MAC);
  assert.deepEqual(f.subarray(22, 38), OUR_LL, "from our link-local address");
  assert.deepEqual(f.subarray(38, 54), GUEST_LL, "to the soliciting address");
  assert.equal(icmp[0], 134);
  assert.equal(icmp[4], 64, "cur hop limit");
  assert.equal(icmp[5], 0xc0, "M and O flags");
  assert.equal(rd16(icmp, 6), 1800, "router lifetime");
  const opts = new Map(ndpOptions(icmp, 16));
  assert.deepEqual([...opts.get(1)!], [1, 1, ...OUR_MAC]);
  const mtu = opts.get(5)!;
  assert.equal(rd32(mtu, 4), 65520);
  const pio = opts.get(3)!;
  assert.equal(pio.length, 32);
  assert.equal(pio[2], 64, "prefix length");
  assert.equal(pio[3], 0xc0, "L and A flags");
  assert.equal(rd32(pio, 4), 3600);
  assert.equal(rd32(pio, 8), 3600);
  assert.equal(formatIpv6(pio, 16), "2a02:6d40:3ca5:2001::");
  const rdnss = opts.get(25)!;
  assert.equal(rdnss[1], 5);
  assert.equal(rd32(rdnss, 4), 3600);
  assert.equal(formatIpv6(rdnss, 8), "2001:db8:53::1");
  assert.equal(formatIpv6(rdnss, 24), "2001:db8:53::2");
  const dnssl = opts.get(31)!;
  assert.equal(dnssl.length % 8, 0);
  let end = dnssl.length;
  while (dnssl[end - 1] === 0 && dnssl[end - 2] === 0) end--; // strip padding
  assert.deepEqual(decodeDomainList(dnssl, 8, end - 8), SEARCH);
});

Deno.test("NDP: RS from :: gets an RA to all nodes", () => {
  const { f } = serve(routerSolicit(ip6("::")));
  assert.deepEqual(f.subarray(0, 6), mac("33:33:00:00:00:01"));
  assert.equal(formatIpv6(f, 38), "ff02::1");
});

Deno.test("NDP: RA leaves out options that are not configured", () => {
  const params: NdpParams = {
    ...ndpParams,
    mtu: 0,
    dns: [],
    search: [],
    managed: false,
    otherConfig: false,
    guestAddr: ip6("::"),
  };
  const { icmp } = serve(routerSolicit(GUEST_LL), params);
  assert.equal(icmp[5], 0);
  assert.deepEqual(ndpOptions(icmp, 16).map(([t]) => t), [1]);
});

Deno.test("NDP: unsolicited RA goes to ff02::1 from our link-local address", () => {
  const out = PacketView.alloc(1600);
  const n = ndpRouterAdvertisement(ndpParams, out);
  const f = replyBytes(out, n);
  assertIpv6L4Checksum(f);
  assert.deepEqual(f.subarray(0, 6), mac("33:33:00:00:00:01"));
  assert.deepEqual(f.subarray(22, 38), OUR_LL);
  assert.equal(formatIpv6(f, 38), "ff02::1");
  assert.equal(f[21], 255);
  assert.equal(f[54], 134);
});

Deno.test("NDP: RA stays within 1280 bytes, dropping DNS options that do not fit", () => {
  const search = Array.from({ length: 60 }, (_, i) => `host-group-${i}.example.com`);
  const out = PacketView.alloc(9000);
  const stats = newNdpStats();
  const n = ndpRouterAdvertisement({ ...ndpParams, search }, out, stats);
  assert.ok(n > 0 && n - 14 <= 1280);
  assert.equal(stats.omitted, 1);
  const types = ndpOptions(replyBytes(out, n).subarray(54), 16).map(([t]) => t);
  assert.deepEqual(types, [1, 5, 3, 25]);
});

Deno.test("NDP: --no-ra means no reply to RS", () => {
  const r = serve(routerSolicit(GUEST_LL), { ...ndpParams, raEnabled: false });
  assert.equal(r.n, 0);
  assert.equal(r.stats.dropped.raDisabled, 1);
});

Deno.test("NDP: malformed messages get no reply and no exception", () => {
  const stats = newNdpStats();
  const out = PacketView.alloc(1600);
  const run = (f: Uint8Array) => ndpReply(view(f), ndpParams, out, stats);
  const ns = neighborSolicit(GUEST_LL, OUR_LL);
  assert.ok(run(ns) > 0);
  for (let len = 0; len < ns.length; len++) assert.equal(run(ns.subarray(0, len)), 0);

  const nsBody = ns.slice(54);
  const rs = routerSolicit(GUEST_LL).slice(54);
  const cases: [string, Uint8Array][] = [
    ["hop limit 64", ndpFrame(GUEST_LL, OUR_LL, nsBody, 64)],
    ["code 1", ndpFrame(GUEST_LL, OUR_LL, bytes(nsBody.subarray(0, 1), 1, nsBody.subarray(2)))],
    [
      "zero-length option",
      ndpFrame(GUEST_LL, OUR_LL, bytes(nsBody.subarray(0, 24), 1, 0, 0, 0, 0, 0, 0, 0)),
    ],
    [
      "option past end",
      ndpFrame(GUEST_LL, OUR_LL, bytes(nsBody.subarray(0, 24), 1, 2, ...GUEST_MAC)),
    ],
    ["NS too short", ndpFrame(GUEST_LL, OUR_LL, nsBody.subarray(0, 20))],
    ["multicast target", ndpFrame(GUEST_LL, OUR_LL, bytes(nsBody.subarray(0, 8), ip6("ff02::1")))],
    ["RS from :: with SLLA", ndpFrame(ip6("::"), ip6("ff02::2"), rs)],
    ["multicast source", ndpFrame(ip6("ff02::1"), ip6("ff02::2"), rs.subarray(0, 8))],
    ["NA is not answered", ndpFrame(GUEST_LL, OUR_LL, bytes(136, nsBody.subarray(1)))],
    ["echo request", ndpFrame(GUEST_LL, OUR_LL, bytes(128, 0, 0, 0, 0, 0, 0, 0))],
  ];
  for (const [what, f] of cases) assert.equal(run(f), 0, what);

  const badSum = Uint8Array.from(ns);
  badSum[57]! ^= 0xff;
  assert.equal(run(badSum), 0);
  const badPlen = Uint8Array.from(ns);
  badPlen[19] = 200;
  assert.equal(run(badPlen), 0);
  const extHeader = Uint8Array.from(ns);
  extHeader[20] = 0; // hop-by-hop
  assert.equal(run(extHeader), 0);
  for (
    const reason of [
      "truncated",
      "badHopLimit",
      "badCode",
      "badOptions",
      "multicastTarget",
      "badSource",
      "notHandled",
      "badChecksum",
      "badIpHeader",
      "notIcmpv6",
    ] as const
  ) {
    assert.ok(stats.dropped[reason] > 0, `counted ${reason}`);
  }
  assert.equal(stats.replies, 1);
});
