/**
 * rtnetlink against a real kernel, safely: every case builds its own throwaway
 * user+network namespace with `unshare -rn`, sets it up with iproute2, runs
 * ns_probe.ts inside it, and compares what our code found (or configured) with
 * what `ip -j` reports from the same namespace. The host's own interfaces and
 * routes are never touched. Only documentation prefixes are used (192.0.2.0/24,
 * 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).
 */

import assert from "node:assert/strict";

const PROBE = new URL("./ns_probe.ts", import.meta.url).pathname;

function canUnshare(): boolean {
  try {
    const out = new Deno.Command("unshare", { args: ["-rn", "ip", "link", "show"] }).outputSync();
    return out.success;
  } catch {
    return false;
  }
}
const ignore = !canUnshare();

// deno-lint-ignore no-explicit-any
type Json = any;

/** Run `setup` (shell commands) then the probe with `args` in a fresh namespace. */
async function inNamespace(setup: readonly string[], ...args: string[]): Promise<Json> {
  const script = [...setup, `exec "$DENO" run -A --quiet "$PROBE" "$@"`].join(" && ");
  const out = await new Deno.Command("unshare", {
    args: ["-rn", "sh", "-ec", script, "sh", ...args],
    env: { DENO: Deno.execPath(), PROBE },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `namespace run failed: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const VETH01 = [
  "ip link add veth0 type veth peer name veth1",
  "ip link set veth0 up",
  "ip link set veth1 up",
];
const VETH23 = [
  "ip link add veth2 type veth peer name veth3",
  "ip link set veth2 up",
  "ip link set veth3 up",
];
const ADDRS0 = [
  "ip addr add 192.0.2.2/24 dev veth0",
  "ip -6 addr add 2001:db8::2/64 dev veth0 nodad",
];
const ADDRS2 = [
  "ip addr add 198.51.100.2/24 dev veth2",
  "ip -6 addr add 2001:db8:1::2/64 dev veth2 nodad",
];
const DUAL = [
  ...VETH01,
  ...ADDRS0,
  "ip route add default via 192.0.2.1",
  "ip route add 198.51.100.0/24 via 192.0.2.1 metric 50",
  "ip -6 route add default via 2001:db8::1",
];
const MULTIPATH = [
  ...VETH01,
  ...VETH23,
  ...ADDRS0,
  ...ADDRS2,
  "ip route add default nexthop via 192.0.2.1 dev veth0 weight 1 " +
  "nexthop via 198.51.100.1 dev veth2 weight 3",
  "ip -6 route add default nexthop via 2001:db8::1 dev veth0 weight 2 " +
  "nexthop via 2001:db8:1::1 dev veth2 weight 2",
];

// --- reading ip -j output -----------------------------------------------------------------

function ipLink(state: Json, name: string): Json {
  const link = state.link.find((l: Json) => l.ifname === name);
  assert.ok(link, `ip -j link has no ${name}`);
  return link;
}

function ipAddrs(state: Json, name: string, family: "inet" | "inet6"): Json[] {
  const entry = state.addr.find((l: Json) => l.ifname === name);
  return (entry?.addr_info ?? []).filter((a: Json) => a.family === family);
}

/** ip -j route entries through `dev`, normalized to what the probe prints. */
function ipRoutes(routes: Json[], dev: string, v6: boolean): Json[] {
  const full = (dst: string) =>
    dst === "default" || dst.includes("/") ? dst : `${dst}/${v6 ? 128 : 32}`;
  return routes
    .filter((r) => r.dev === dev || (r.nexthops ?? []).some((n: Json) => n.dev === dev))
    .map((r) => ({
      dst: full(r.dst),
      gateway: r.gateway,
      dev: r.dev,
      metric: r.metric ?? 0,
      nexthops: (r.nexthops ?? []).map((n: Json) => ({
        gateway: n.gateway,
        dev: n.dev,
        weight: n.weight ?? 1,
      })),
    }));
}

/** Drop undefined members the way JSON.stringify did on the probe's side. */
function plain(value: unknown): Json {
  return JSON.parse(JSON.stringify(value));
}

function assertFamilyMatchesIp(found: Json, state: Json, v6: boolean): void {
  const link = ipLink(state, found.ifname);
  assert.equal(found.mac, link.address);
  assert.equal(found.mtu, link.mtu);
  const addrs = ipAddrs(state, found.ifname, v6 ? "inet6" : "inet");
  const global = addrs.filter((a) => a.scope !== "link");
  assert.deepEqual(found.addresses, global.map((a) => `${a.local}/${a.prefixlen}`));
  assert.equal(found.address, global[0]?.local);
  assert.equal(found.prefixLength, global[0]?.prefixlen ?? 0);
  if (v6) assert.equal(found.linkLocal, addrs.find((a) => a.scope === "link")?.local);
  const routes = v6 ? state.route6 : state.route4;
  assert.deepEqual(found.routes, plain(ipRoutes(routes, found.ifname, v6)));
}

// --- discovery ----------------------------------------------------------------------------

Deno.test({
  name: "discovery: the interface of the default route, with its addresses, gateway, routes",
  ignore,
  async fn() {
    const { host, error, ip } = await inNamespace(DUAL, "discover", "{}");
    assert.equal(error, undefined);
    assert.equal(host.ipv4.ifname, "veth0");
    assert.equal(host.ipv4.chosenBy, "default-route");
    assert.equal(host.ipv4.address, "192.0.2.2");
    assert.equal(host.ipv4.prefixLength, 24);
    assert.equal(host.ipv4.gateway, "192.0.2.1");
    assert.equal(host.ipv6.ifname, "veth0");
    assert.equal(host.ipv6.address, "2001:db8::2");
    assert.equal(host.ipv6.prefixLength, 64);
    assert.equal(host.ipv6.gateway, "2001:db8::1");
    assert.match(host.ipv6.linkLocal, /^fe80::/);
    assert.equal(host.mac, ipLink(ip, "veth0").address);
    assertFamilyMatchesIp(host.ipv4, ip, false);
    assertFamilyMatchesIp(host.ipv6, ip, true);
    // The routes we copy include the extra one and the kernel's prefix route.
    assert.deepEqual(host.ipv4.routes.map((r: Json) => r.dst), [
      "default",
      "192.0.2.0/24",
      "198.51.100.0/24",
    ]);
  },
});

Deno.test({
  name: "discovery: multipath default route picks the first nexthop of highest weight",
  ignore,
  async fn() {
    const { host, error, ip } = await inNamespace(MULTIPATH, "discover", "{}");
    assert.equal(error, undefined);
    // IPv4: weights 1 and 3, the second path wins.
    assert.equal(host.ipv4.ifname, "veth2");
    assert.equal(host.ipv4.gateway, "198.51.100.1");
    assert.equal(host.ipv4.address, "198.51.100.2");
    // IPv6: equal weights, the first the kernel lists wins.
    const ipDefault6 = ip.route6.find((r: Json) => r.dst === "default");
    assert.equal(host.ipv6.ifname, ipDefault6.nexthops[0].dev);
    assert.equal(host.ipv6.gateway, ipDefault6.nexthops[0].gateway);
    assertFamilyMatchesIp(host.ipv4, ip, false);
    assertFamilyMatchesIp(host.ipv6, ip, true);
    const multipath = host.ipv4.routes.find((r: Json) => r.dst === "default");
    assert.deepEqual(multipath.nexthops, [
      { gateway: "192.0.2.1", dev: "veth0", weight: 1 },
      { gateway: "198.51.100.1", dev: "veth2", weight: 3 },
    ]);
  },
});

Deno.test({
  name: "discovery: an interface given explicitly is honoured, gateway from its own path",
  ignore,
  async fn() {
    const options = JSON.stringify({ ifname4: "veth0", ifname6: "veth2" });
    const { host, error, ip } = await inNamespace(MULTIPATH, "discover", options);
    assert.equal(error, undefined);
    assert.equal(host.ipv4.ifname, "veth0");
    assert.equal(host.ipv4.chosenBy, "option");
    assert.equal(host.ipv4.gateway, "192.0.2.1");
    assert.equal(host.ipv6.ifname, "veth2");
    assert.equal(host.ipv6.gateway, "2001:db8:1::1");
    assertFamilyMatchesIp(host.ipv4, ip, false);
    assertFamilyMatchesIp(host.ipv6, ip, true);
  },
});

Deno.test({
  name: "discovery: a nonexistent interface is a clear error",
  ignore,
  async fn() {
    const { error } = await inNamespace(DUAL, "discover", JSON.stringify({ ifname4: "eth9" }));
    assert.match(error.message, /IPv4 interface eth9 does not exist/);
  },
});

Deno.test({
  name: "discovery: IPv4-only host disables IPv6; -4 skips it; -6 there is an error",
  ignore,
  async fn() {
    const setup = [
      ...VETH01,
      "ip addr add 192.0.2.2/24 dev veth0",
      "ip route add default via 192.0.2.1",
    ];
    const auto = await inNamespace(setup, "discover", "{}");
    assert.equal(auto.error, undefined);
    assert.equal(auto.host.ipv4.gateway, "192.0.2.1");
    assert.equal(auto.host.ipv6, undefined);
    assert.match(auto.host.disabledReason.ipv6, /IPv6/);
    assertFamilyMatchesIp(auto.host.ipv4, auto.ip, false);

    const only4 = await inNamespace(setup, "discover", JSON.stringify({ ipv4Only: true }));
    assert.equal(only4.host.ipv4.ifname, "veth0");
    assert.equal(only4.host.ipv6, undefined);

    const only6 = await inNamespace(setup, "discover", JSON.stringify({ ipv6Only: true }));
    assert.match(only6.error.message, /IPv6 requested, but no usable IPv6 interface/);
  },
});

Deno.test({
  name: "discovery: no default route, one routed interface: it is used, without gateway",
  ignore,
  async fn() {
    const { host, error, ip } = await inNamespace([...VETH01, ...ADDRS0], "discover", "{}");
    assert.equal(error, undefined);
    assert.equal(host.ipv4.ifname, "veth0");
    assert.equal(host.ipv4.chosenBy, "only-route");
    assert.equal(host.ipv4.gateway, undefined);
    assert.equal(host.ipv6.ifname, "veth0");
    assert.equal(host.ipv6.chosenBy, "only-route");
    assert.equal(host.ipv6.gateway, undefined);
    assertFamilyMatchesIp(host.ipv4, ip, false);
    assertFamilyMatchesIp(host.ipv6, ip, true);
  },
});

Deno.test({
  name: "discovery: no default route and several routed interfaces, or no routes: error",
  ignore,
  async fn() {
    const two = await inNamespace([...VETH01, ...VETH23, ...ADDRS0, ...ADDRS2], "discover", "{}");
    assert.equal(two.host, undefined);
    assert.match(two.error.message, /no usable host interface for IPv4 .*2 interfaces/);

    const none = await inNamespace(VETH01, "discover", "{}");
    assert.match(none.error.message, /no usable host interface for IPv4 \(no IPv4 routes\)/);
  },
});

// --- configuration ------------------------------------------------------------------------

Deno.test({
  name: "configuration: link up, MTU, MAC, addresses and routes, checked with ip -j",
  ignore,
  async fn() {
    const { steps, ip } = await inNamespace(
      [
        "ip link add veth0 type veth peer name veth1",
        "ip link add veth2 type veth peer name veth3",
        "ip link set veth1 up",
        "ip link set veth3 up",
      ],
      "write",
    );
    for (
      const step of [
        "up0",
        "up2",
        "mtu",
        "mac",
        "addr4",
        "addr6",
        "addr6noprefix",
        "addr4veth2",
        "default4",
        "net4",
        "multipath4",
        "default6",
        "onlink6",
        "copy",
      ]
    ) {
      assert.equal(steps[step], "ok", `${step}: ${JSON.stringify(steps[step])}`);
    }
    assert.equal(steps.addr4again.code, "EEXIST");
    assert.match(steps.addr4again.message, /RTM_NEWADDR \(add 192\.0\.2\.2\/24 on ifindex \d+\)/);
    assert.equal(steps.unreachable4.code, "ENETUNREACH");
    assert.match(steps.unreachable4.message, /via 203\.0\.113\.9/);
    assert.equal(steps.badIndex.code, "ENODEV");
    assert.match(steps.badIndex.message, /RTM_NEWLINK \(set ifindex 9999 MTU 1400\)/);

    const veth0 = ipLink(ip, "veth0");
    assert.ok(veth0.flags.includes("UP"));
    assert.equal(veth0.mtu, 1400);
    assert.equal(veth0.address, "02:00:5e:00:53:01");
    assert.ok(ipLink(ip, "veth2").flags.includes("UP"));

    const v4 = ipAddrs(ip, "veth0", "inet");
    assert.deepEqual(v4.map((a) => `${a.local}/${a.prefixlen}`), ["192.0.2.2/24"]);
    const v6 = ipAddrs(ip, "veth0", "inet6").find((a) => a.local === "2001:db8::2");
    assert.equal(v6?.prefixlen, 64);
    assert.equal(v6?.nodad, true);
    const v6b = ipAddrs(ip, "veth2", "inet6").find((a) => a.local === "2001:db8:1::2");
    assert.equal(v6b?.noprefixroute, true);

    const r4 = (dst: string) => ip.route4.find((r: Json) => r.dst === dst);
    assert.equal(r4("default").gateway, "192.0.2.1");
    assert.equal(r4("default").dev, "veth0");
    assert.equal(r4("198.51.100.128/25").gateway, "192.0.2.1");
    assert.equal(r4("198.51.100.128/25").metric, 100);
    assert.deepEqual(
      r4("203.0.113.0/24").nexthops.map((n: Json) => [n.gateway, n.dev, n.weight]),
      [["192.0.2.1", "veth0", 1], ["198.51.100.1", "veth2", 4]],
    );
    assert.equal(r4("198.51.100.0/26"), undefined);
    // The copy of the /25 route, re-created through routeSpecFor with a new metric.
    const copies = ip.route4.filter((r: Json) => r.dst === "198.51.100.128/25");
    assert.deepEqual(
      copies.map((r: Json) => [r.gateway, r.dev, r.metric]),
      [["192.0.2.1", "veth0", 100], ["192.0.2.1", "veth0", 200]],
    );

    const r6 = (dst: string) => ip.route6.find((r: Json) => r.dst === dst);
    assert.equal(r6("default").gateway, "2001:db8::1");
    assert.equal(r6("default").metric, 1024);
    assert.equal(r6("2001:db8::/64").dev, "veth0"); // prefix route kept by default
    assert.equal(r6("2001:db8:1::/64"), undefined); // suppressed by noPrefixRoute
    assert.equal(r6("2001:db8:2::/48").gateway, "2001:db8:1::1");
    assert.ok(r6("2001:db8:2::/48").flags.includes("onlink"));
  },
});

Deno.test({
  name: "a request the kernel never answers times out with a clear error, no hang",
  ignore,
  async fn() {
    const { error, elapsedMs, links } = await inNamespace([], "timeout");
    assert.equal(error.name, "NetlinkReplyError");
    assert.match(
      error.message,
      /RTM_NEWLINK \(lo up, no ACK\): no reply from the kernel within 200 ms/,
    );
    assert.ok(elapsedMs < 2000, `took ${elapsedMs} ms`);
    assert.ok(links >= 1);
  },
});
