import assert from "node:assert/strict";
import {
  type Dhcpv6Params,
  dhcpv6Reply,
  isDhcpv6Frame,
  newDhcpv6Stats,
} from "../../src/protocols/dhcpv6.ts";
import { decodeDomainList } from "../../src/protocols/dns_name.ts";
import { formatIpv6 } from "../../src/protocols/ip.ts";
import { PacketView } from "../../src/protocols/packet.ts";
import {
  assertIpv6L4Checksum,
  bytes,
  dhcpv6Options,
  rd16,
  rd32,
  replyBytes,
  view,
} from "./_frames.ts";
import {
  CLIENT_DUID,
  dhcpv6Params,
  dhcpv6Request,
  GUEST6,
  GUEST_LL,
  GUEST_MAC,
  iaNa,
  ip6,
  OUR_LL,
  OUR_MAC,
  SEARCH,
  SERVER_DUID,
  v6opt,
} from "./_fixtures.ts";

const SOLICIT = 1, REQUEST = 3, CONFIRM = 4, RENEW = 5, REBIND = 6, RELEASE = 8;
const INFO_REQUEST = 11;
const XID = 0xabcdef;
const clientId = v6opt(1, CLIENT_DUID);
const serverId = v6opt(2, SERVER_DUID);
const elapsed = v6opt(8, [0, 0]);
const oro = v6opt(6, [0, 23, 0, 24]);

function serve(frame: Uint8Array, params: Dhcpv6Params = dhcpv6Params) {
  const out = PacketView.alloc(1600);
  const stats = newDhcpv6Stats();
  const n = dhcpv6Reply(view(frame), params, out, stats);
  const f = replyBytes(out, n);
  let opts = new Map<number, Uint8Array>();
  if (n > 0) {
    assertIpv6L4Checksum(f);
    assert.deepEqual(f.subarray(0, 6), GUEST_MAC);
    assert.deepEqual(f.subarray(6, 12), OUR_MAC);
    assert.equal(f[20], 17);
    assert.deepEqual(f.subarray(22, 38), OUR_LL, "from our link-local address");
    assert.deepEqual(f.subarray(38, 54), GUEST_LL, "to the client's address");
    assert.equal(rd16(f, 54), 547);
    assert.equal(rd16(f, 56), 546);
    assert.equal(rd16(f, 58), f.length - 54, "UDP length");
    assert.equal((f[63]! << 16) | (f[64]! << 8) | f[65]!, XID, "transaction ID echoed");
    opts = new Map(dhcpv6Options(f.subarray(66)));
    assert.deepEqual(opts.get(2), SERVER_DUID, "server identifier is our DUID-LL");
  }
  return { n, f, type: f[62], opts, stats };
}

function iaAddresses(ia: Uint8Array): [string, number, number][] {
  return dhcpv6Options(ia.subarray(12)).filter(([c]) => c === 5).map((
    [, d],
  ) => [formatIpv6(d), rd32(d, 16), rd32(d, 20)]);
}

Deno.test("DHCPv6: SOLICIT gets an ADVERTISE with IA_NA, DNS and domain list", () => {
  const frame = dhcpv6Request(SOLICIT, XID, clientId, elapsed, oro, iaNa(0x0c0ffee));
  assert.ok(isDhcpv6Frame(view(frame)));
  const { type, opts, stats } = serve(frame);
  assert.equal(type, 2);
  assert.equal(stats.lastReply, "advertise");
  assert.deepEqual(opts.get(1), CLIENT_DUID, "client identifier echoed");
  const ia = opts.get(3)!;
  assert.equal(rd32(ia, 0), 0x0c0ffee, "IAID echoed");
  assert.equal(rd32(ia, 4), 1800, "T1 = preferred / 2");
  assert.equal(rd32(ia, 8), 2880, "T2 = preferred * 0.8");
  assert.deepEqual(iaAddresses(ia), [[formatIpv6(GUEST6), 3600, 7200]]);
  assert.equal(formatIpv6(opts.get(23)!), "2001:db8:53::1");
  const dl = opts.get(24)!;
  assert.deepEqual(decodeDomainList(dl, 0, dl.length), SEARCH);
  assert.equal(opts.has(14), false);
});

Deno.test("DHCPv6: SOLICIT with Rapid Commit gets a REPLY with Rapid Commit", () => {
  const { type, opts } = serve(dhcpv6Request(SOLICIT, XID, clientId, v6opt(14, []), iaNa(1)));
  assert.equal(type, 7);
  assert.deepEqual(opts.get(14), new Uint8Array(0));
  assert.ok(opts.has(3));
});

Deno.test("DHCPv6: REQUEST, RENEW and REBIND get a REPLY with the address", () => {
  for (
    const frame of [
      dhcpv6Request(REQUEST, XID, clientId, serverId, iaNa(7, GUEST6)),
      dhcpv6Request(RENEW, XID, clientId, serverId, iaNa(7, GUEST6)),
      dhcpv6Request(REBIND, XID, clientId, iaNa(7, GUEST6)),
    ]
  ) {
    const { type, opts } = serve(frame);
    assert.equal(type, 7);
    assert.deepEqual(iaAddresses(opts.get(3)!), [[formatIpv6(GUEST6), 3600, 7200]]);
  }
});

Deno.test("DHCPv6: RENEW of a foreign address returns it with zero lifetimes", () => {
  const stale = ip6("2001:db8::99");
  const { opts } = serve(dhcpv6Request(RENEW, XID, clientId, serverId, iaNa(7, stale)));
  assert.deepEqual(iaAddresses(opts.get(3)!), [
    [formatIpv6(GUEST6), 3600, 7200],
    ["2001:db8::99", 0, 0],
  ]);
});

Deno.test("DHCPv6: REQUEST for another server gets no reply", () => {
  const other = v6opt(2, bytes(0, 3, 0, 1, 1, 2, 3, 4, 5, 6));
  const { n, stats } = serve(dhcpv6Request(REQUEST, XID, clientId, other, iaNa(7)));
  assert.equal(n, 0);
  assert.equal(stats.dropped.serverIdMismatch, 1);
});

Deno.test("DHCPv6: CONFIRM says Success on-link, NotOnLink otherwise", () => {
  const ok = serve(dhcpv6Request(CONFIRM, XID, clientId, iaNa(7, GUEST6)));
  assert.equal(ok.type, 7);
  assert.deepEqual([...ok.opts.get(13)!], [0, 0]);
  assert.equal(ok.opts.has(3), false);
  const off = serve(dhcpv6Request(CONFIRM, XID, clientId, iaNa(7, ip6("2001:db8::1"))));
  assert.deepEqual([...off.opts.get(13)!], [0, 4]);
  const none = serve(dhcpv6Request(CONFIRM, XID, clientId, iaNa(7)));
  assert.equal(none.n, 0);
});

Deno.test("DHCPv6: INFORMATION-REQUEST gets a REPLY without IA", () => {
  const { type, opts, stats } = serve(dhcpv6Request(INFO_REQUEST, XID, clientId, oro));
  assert.equal(type, 7);
  assert.equal(stats.lastReply, "reply-info");
  assert.equal(opts.has(3), false);
  assert.ok(opts.has(23) && opts.has(24));
  const noClient = serve(dhcpv6Request(INFO_REQUEST, XID, oro));
  assert.equal(noClient.type, 7);
  assert.equal(noClient.opts.has(1), false);
});

Deno.test("DHCPv6: RELEASE gets a Success status", () => {
  const { type, opts } = serve(dhcpv6Request(RELEASE, XID, clientId, serverId, iaNa(7, GUEST6)));
  assert.equal(type, 7);
  assert.deepEqual([...opts.get(13)!], [0, 0]);
});

Deno.test("DHCPv6: no address configured means NoAddrsAvail in the IA_NA", () => {
  const { opts } = serve(dhcpv6Request(SOLICIT, XID, clientId, iaNa(7)), {
    ...dhcpv6Params,
    guestAddr: ip6("::"),
  });
  const sub = dhcpv6Options(opts.get(3)!.subarray(12));
  assert.deepEqual(sub.map(([c, d]) => [c, [...d]]), [[13, [0, 2]]]);
});

Deno.test("DHCPv6: options without a value are left out", () => {
  const { opts } = serve(dhcpv6Request(SOLICIT, XID, clientId, iaNa(7)), {
    ...dhcpv6Params,
    dns: [],
    search: [],
  });
  assert.deepEqual([...opts.keys()], [2, 1, 3]);
});

Deno.test("DHCPv6: malformed or misdirected messages get no reply and no exception", () => {
  const stats = newDhcpv6Stats();
  const out = PacketView.alloc(1600);
  const run = (f: Uint8Array) => dhcpv6Reply(view(f), dhcpv6Params, out, stats);
  const good = dhcpv6Request(SOLICIT, XID, clientId, iaNa(7, GUEST6));
  assert.ok(run(good) > 0);
  for (let len = 0; len < good.length; len++) assert.equal(run(good.subarray(0, len)), 0);
  const cases: [string, Uint8Array][] = [
    ["SOLICIT without client id", dhcpv6Request(SOLICIT, XID, iaNa(7))],
    ["SOLICIT with server id", dhcpv6Request(SOLICIT, XID, clientId, serverId)],
    ["REQUEST without server id", dhcpv6Request(REQUEST, XID, clientId, iaNa(7))],
    ["REBIND with server id", dhcpv6Request(REBIND, XID, clientId, serverId, iaNa(7))],
    ["INFORMATION-REQUEST with IA", dhcpv6Request(INFO_REQUEST, XID, clientId, iaNa(7))],
    ["ADVERTISE from a client", dhcpv6Request(2, XID, clientId)],
    ["two client ids", dhcpv6Request(SOLICIT, XID, clientId, clientId)],
    ["client id too short", dhcpv6Request(SOLICIT, XID, v6opt(1, [0]))],
    ["IA_NA too short", dhcpv6Request(SOLICIT, XID, clientId, v6opt(3, [0, 0, 0, 1]))],
    [
      "IAADDR too short",
      dhcpv6Request(SOLICIT, XID, clientId, v6opt(3, bytes(new Uint8Array(12), v6opt(5, [1])))),
    ],
    ["elapsed time length 3", dhcpv6Request(SOLICIT, XID, clientId, v6opt(8, [0, 0, 0]))],
    ["rapid commit with data", dhcpv6Request(SOLICIT, XID, clientId, v6opt(14, [1]))],
    ["odd ORO", dhcpv6Request(SOLICIT, XID, clientId, v6opt(6, [0, 23, 0]))],
    ["option header cut", bytes(dhcpv6Request(SOLICIT, XID, clientId).subarray(0, 0))],
  ];
  for (const [what, f] of cases) assert.equal(run(f), 0, what);

  const overrun = Uint8Array.from(good);
  overrun[66 + 3] = 200; // client id length past the message (UDP checksum not checked)
  assert.equal(run(overrun), 0);
  const wrongPort = Uint8Array.from(good);
  wrongPort[57] = 0x24;
  assert.equal(run(wrongPort), 0);
  const badUdpLen = Uint8Array.from(good);
  badUdpLen[58] = 0xff;
  assert.equal(run(badUdpLen), 0);
  const unspecSrc = Uint8Array.from(good);
  unspecSrc.fill(0, 22, 38);
  assert.equal(run(unspecSrc), 0);
  for (
    const reason of [
      "truncated",
      "badOptions",
      "noClientId",
      "serverIdMismatch",
      "unexpectedServerId",
      "unexpectedIa",
      "unhandledType",
      "notServerPort",
      "badUdpLength",
      "badSource",
    ] as const
  ) {
    assert.ok(stats.dropped[reason] > 0, `counted ${reason}`);
  }
  assert.equal(stats.replies, 1);
});

Deno.test("DHCPv6: --fqdn gives option 39; flag O answers a client asking for updates (S)", () => {
  const params = { ...dhcpv6Params, fqdn: "guest1.example.org." };
  const plain = serve(dhcpv6Request(SOLICIT, XID, clientId, iaNa(1)), params).opts.get(39)!;
  assert.equal(plain[0], 0, "flags: none");
  assert.deepEqual(decodeDomainList(plain, 1, plain.length - 1), ["guest1.example.org"]);
  for (const type of [REQUEST, RENEW, INFO_REQUEST]) {
    const ids = type === INFO_REQUEST ? [clientId] : [clientId, serverId, iaNa(1)];
    const { opts } = serve(dhcpv6Request(type, XID, ...ids, v6opt(39, [0x01, 0])), params);
    const fqdn = opts.get(39)!;
    assert.equal(fqdn[0], 0x02, `${type}: we won't update the AAAA record: O`);
    assert.deepEqual(decodeDomainList(fqdn, 1, fqdn.length - 1), ["guest1.example.org"]);
  }
  assert.equal(serve(dhcpv6Request(SOLICIT, XID, clientId, iaNa(1))).opts.has(39), false);
  const bad = serve(dhcpv6Request(SOLICIT, XID, clientId, v6opt(39, [])), params);
  assert.equal(bad.n, 0, "an empty client FQDN option is malformed");
});
