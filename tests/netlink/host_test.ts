/**
 * Host discovery rules on synthetic kernel snapshots (no socket), and the
 * start-up summary lines.
 */

import assert from "node:assert/strict";
import { AF } from "../../src/ffi/layout.ts";
import { parseIp4, parseIp6, parseMac } from "../../src/addr.ts";
import {
  formatStartupSummary,
  type HostSnapshot,
  selectHost,
  SUMMARY_INDENT,
} from "../../src/netlink/host.ts";
import {
  type AddressInfo,
  IFA_F,
  LINK_FLAG,
  type LinkInfo,
  type Nexthop,
  type RouteInfo,
  RT_SCOPE,
  RT_TABLE,
  RTN,
  RTPROT,
} from "../../src/netlink/codec.ts";

const ip4 = (s: string) => parseIp4(s)!;
const ip6 = (s: string) => parseIp6(s)!;

function link(index: number, name: string, extra: Partial<LinkInfo> = {}): LinkInfo {
  return {
    index,
    name,
    flags: LINK_FLAG.UP | LINK_FLAG.LOWER_UP,
    type: 1,
    mtu: 1500,
    mac: new Uint8Array([2, 0, 0, 0, 0, index]),
    ...extra,
  };
}

const LO = link(1, "lo", { flags: LINK_FLAG.UP | LINK_FLAG.LOOPBACK, mac: new Uint8Array(6) });

function addr(ifindex: number, text: string, prefixLength: number, flags = 0): AddressInfo {
  const address = text.includes(":") ? ip6(text) : ip4(text);
  const linkLocal = text.startsWith("fe80") || text.startsWith("169.254");
  return {
    family: address.length === 4 ? AF.INET : AF.INET6,
    ifindex,
    prefixLength,
    scope: linkLocal ? RT_SCOPE.LINK : RT_SCOPE.UNIVERSE,
    flags,
    address,
  };
}

function route(
  dst: string,
  oif: number,
  gateway?: string,
  nexthops: Nexthop[] = [],
): RouteInfo {
  const [net = "", len = "0"] = dst === "default" ? [] : dst.split("/");
  const v6 = dst.includes(":") || (gateway ?? "").includes(":");
  const size = v6 ? 16 : 4;
  const base: RouteInfo = {
    family: v6 ? AF.INET6 : AF.INET,
    table: RT_TABLE.MAIN,
    dst: net === "" ? new Uint8Array(size) : v6 ? ip6(net) : ip4(net),
    dstLength: Number(len),
    oif,
    nexthops,
    priority: 0,
    protocol: RTPROT.BOOT,
    scope: RT_SCOPE.UNIVERSE,
    type: RTN.UNICAST,
    flags: 0,
  };
  if (gateway === undefined) return base;
  return { ...base, gateway: v6 ? ip6(gateway) : ip4(gateway) };
}

function hop(ifindex: number, gateway: string, weight: number): Nexthop {
  return {
    ifindex,
    weight,
    flags: 0,
    gateway: gateway.includes(":") ? ip6(gateway) : ip4(gateway),
  };
}

const ETH0 = link(2, "eth0");
const WLAN0 = link(3, "wlan0", { mtu: 1400 });

const BASE: HostSnapshot = {
  links: [LO, ETH0, WLAN0],
  addresses: [
    addr(1, "127.0.0.1", 8),
    addr(2, "192.0.2.2", 24),
    addr(2, "169.254.1.1", 16),
    addr(2, "fe80::2", 64),
    addr(2, "2001:db8::aaaa", 64, IFA_F.TEMPORARY),
    addr(2, "2001:db8::2", 64),
    addr(3, "198.51.100.3", 24),
    addr(3, "fe80::3", 64),
    addr(3, "2001:db8:1::3", 64),
  ],
  routes4: [
    route("default", 3, "198.51.100.1"),
    route("default", 2, "192.0.2.1"),
    route("192.0.2.0/24", 2),
    route("198.51.100.0/24", 3),
  ],
  routes6: [
    route("2001:db8::/64", 2),
    route("fe80::/64", 2),
    route("fe80::/64", 3),
    route("::1/128", 1),
    route("default", 2, "fe80::1"),
  ],
};

const text = (a: Uint8Array | undefined) => a === undefined ? undefined : [...a].join(",");

Deno.test("the first default route decides the interface and the gateway", () => {
  const host = selectHost(BASE);
  assert.equal(host.ipv4?.ifname, "wlan0");
  assert.equal(host.ipv4?.chosenBy, "default-route");
  assert.equal(text(host.ipv4?.gateway), "198,51,100,1");
  assert.equal(text(host.ipv4?.address), "198,51,100,3");
  assert.equal(host.ipv4?.mtu, 1400);
  assert.equal(text(host.mac), "2,0,0,0,0,3");
  assert.equal(host.ipv6?.ifname, "eth0");
  assert.equal(text(host.ipv6?.gateway), text(ip6("fe80::1")));
});

Deno.test("link-local addresses are not assigned; IPv6 notes its link-local one", () => {
  const host = selectHost(BASE, { ifname4: "eth0" });
  assert.deepEqual(host.ipv4?.addresses.map((a) => text(a.address)), ["192,0,2,2"]);
  assert.equal(host.ipv4?.prefixLength, 24);
  assert.equal(text(host.ipv6?.linkLocal), text(ip6("fe80::2")));
  // The temporary (privacy) address is listed but a stable one is preferred.
  assert.equal(host.ipv6?.addresses.length, 2);
  assert.equal(text(host.ipv6?.address), text(ip6("2001:db8::2")));
});

Deno.test("an explicit interface wins over the default route, gateway from its own route", () => {
  const host = selectHost(BASE, { ifname4: "eth0" });
  assert.equal(host.ipv4?.ifname, "eth0");
  assert.equal(host.ipv4?.chosenBy, "option");
  assert.equal(text(host.ipv4?.gateway), "192,0,2,1");
  assert.deepEqual(host.ipv4?.routes.map((r) => r.dstLength), [0, 24]);
  assert.throws(() => selectHost(BASE, { ifname6: "eth7" }), /IPv6 interface eth7 does not exist/);
});

Deno.test("multipath: the first nexthop with the highest weight", () => {
  const snapshot: HostSnapshot = {
    ...BASE,
    routes4: [
      route("default", 0, undefined, [
        hop(2, "192.0.2.1", 1),
        hop(3, "198.51.100.1", 5),
        hop(2, "192.0.2.9", 5),
      ]),
    ],
  };
  const host = selectHost(snapshot);
  assert.equal(host.ipv4?.ifname, "wlan0");
  assert.equal(text(host.ipv4?.gateway), "198,51,100,1");
  // Asked for eth0: the best of eth0's own paths.
  const eth0 = selectHost(snapshot, { ifname4: "eth0" });
  assert.equal(text(eth0.ipv4?.gateway), "192,0,2,9");
  assert.equal(eth0.ipv4?.routes.length, 1);
});

Deno.test("no default route: the only interface with routes; loopback and fe80:: don't count", () => {
  const snapshot: HostSnapshot = {
    ...BASE,
    routes4: [route("192.0.2.0/24", 2), route("127.0.0.0/8", 1)],
    routes6: [route("2001:db8::/64", 2), route("fe80::/64", 2), route("fe80::/64", 3)],
  };
  const host = selectHost(snapshot);
  assert.equal(host.ipv4?.ifname, "eth0");
  assert.equal(host.ipv4?.chosenBy, "only-route");
  assert.equal(host.ipv4?.gateway, undefined);
  assert.equal(host.ipv6?.ifname, "eth0");
  assert.equal(host.ipv6?.chosenBy, "only-route");
});

Deno.test("no default route and two routed interfaces: that version is disabled", () => {
  const snapshot: HostSnapshot = {
    ...BASE,
    routes4: [route("192.0.2.0/24", 2), route("198.51.100.0/24", 3)],
  };
  const host = selectHost(snapshot);
  assert.equal(host.ipv4, undefined);
  assert.match(host.disabledReason.ipv4 ?? "", /2 interfaces have routes/);
  assert.equal(host.ipv6?.ifname, "eth0");
  assert.equal(text(host.mac), "2,0,0,0,0,2"); // from the IPv6 interface then
});

Deno.test("unreachable or blackhole default routes are not default routes", () => {
  const blackhole = { ...route("default", 0), type: RTN.BLACKHOLE };
  const host = selectHost({ ...BASE, routes4: [blackhole, route("192.0.2.0/24", 2)] });
  assert.equal(host.ipv4?.ifname, "eth0");
  assert.equal(host.ipv4?.chosenBy, "only-route");
});

Deno.test("a host with no usable IP version is a clear error", () => {
  const empty: HostSnapshot = { links: [LO, ETH0], addresses: [], routes4: [], routes6: [] };
  assert.throws(
    () => selectHost(empty),
    /no usable host interface for IPv4 \(no IPv4 routes\) or IPv6 \(no IPv6 routes\)/,
  );
  const v6only: HostSnapshot = { ...BASE, routes4: [] };
  assert.throws(() => selectHost(v6only, { ipv4Only: true }), /IPv4 requested/);
  assert.equal(selectHost(v6only).ipv4, undefined);
});

Deno.test("-4 and -6 leave the other version out", () => {
  const host = selectHost(BASE, { ipv4Only: true });
  assert.equal(host.ipv6, undefined);
  assert.equal(host.disabledReason.ipv6, "IPv4 only");
  assert.equal(selectHost(BASE, { ipv6Only: true }).ipv4, undefined);
});

Deno.test("the result is frozen and does not share buffers with the snapshot", () => {
  const host = selectHost(BASE);
  assert.ok(Object.isFrozen(host));
  assert.ok(Object.isFrozen(host.ipv4));
  assert.ok(Object.isFrozen(host.ipv4?.addresses));
  host.ipv4!.address![0] = 0;
  assert.equal(BASE.addresses[6]!.address[0], 198);
});

Deno.test("start-up summary: passt's lines as in the man page", () => {
  const lines = formatStartupSummary({
    outboundIf4: "eth0",
    outboundIf6: "eth0",
    arpAddress: parseMac("28:16:ad:39:a9:ea")!,
    dhcp: {
      assign: ip4("192.168.1.118"),
      prefixLength: 24,
      router: ip4("192.168.1.1"),
      search: ["redhat.com"],
    },
    ndp: {
      assign: ip6("2a02:6d40:3ca5:2001:b81d:fa4a:8cdd:cf17"),
      router: ip6("fe80::62e3:27ff:fe33:2b01"),
      search: ["redhat.com"],
    },
  });
  const i = SUMMARY_INDENT;
  assert.deepEqual(lines, [
    "Outbound interface: eth0",
    "ARP:",
    `${i}address: 28:16:ad:39:a9:ea`,
    "DHCP:",
    `${i}assign: 192.168.1.118`,
    `${i}mask: 255.255.255.0`,
    `${i}router: 192.168.1.1`,
    `${i}search:`,
    `${i}${i}redhat.com`,
    "NDP/DHCPv6:",
    `${i}assign: 2a02:6d40:3ca5:2001:b81d:fa4a:8cdd:cf17`,
    `${i}router: fe80::62e3:27ff:fe33:2b01`,
    `${i}search:`,
    `${i}${i}redhat.com`,
  ]);
  // With indentation stripped, the man page's EXAMPLES text.
  assert.deepEqual(lines.slice(0, 7).map((l) => l.trim()), [
    "Outbound interface: eth0",
    "ARP:",
    "address: 28:16:ad:39:a9:ea",
    "DHCP:",
    "assign: 192.168.1.118",
    "mask: 255.255.255.0",
    "router: 192.168.1.1",
  ]);
});

Deno.test("start-up summary: pasta names the namespace interface; sections are optional", () => {
  const lines = formatStartupSummary({
    outboundIf4: "eth0",
    namespaceIf: "eth0",
    ndp: { router: ip6("fe80::1") },
  });
  assert.deepEqual(lines.map((l) => l.trim()), [
    "Outbound interface: eth0, namespace interface: eth0",
    "NDP/DHCPv6:",
    "router: fe80::1",
  ]);
  const split = formatStartupSummary({ outboundIf4: "eth0", outboundIf6: "wlan0" });
  assert.deepEqual(split, ["Outbound interface (IPv4): eth0, Outbound interface (IPv6): wlan0"]);
  const dns = formatStartupSummary({
    dhcp: { assign: ip4("192.0.2.2"), prefixLength: 20, dns: [ip4("192.0.2.53")] },
  });
  assert.deepEqual(dns.map((l) => l.trim()), [
    "DHCP:",
    "assign: 192.0.2.2",
    "mask: 255.255.240.0",
    "DNS:",
    "192.0.2.53",
  ]);
});
