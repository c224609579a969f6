/**
 * Runs inside a throwaway user+network namespace (`unshare -rn`) built by
 * namespace_test.ts, never on the host's own network. It exercises rtnetlink
 * there and prints one JSON object: what our code found or did, and what
 * `ip -j` says about the same namespace, for the test to compare.
 *
 * Usage: ns_probe.ts discover '<HostDiscoveryOptions JSON>'
 *        ns_probe.ts write
 *        ns_probe.ts timeout
 */

import { AF } from "../../src/ffi/layout.ts";
import { formatIp4, formatIp6, formatMac, parseIp4, parseIp6, parseMac } from "../../src/addr.ts";
import { discoverHost, type HostDiscoveryOptions } from "../../src/netlink/host.ts";
import {
  addAddress,
  addRoute,
  routeSpecFor,
  setLinkMac,
  setLinkMtu,
  setLinkUp,
} from "../../src/netlink/configure.ts";
import {
  closeNetlink,
  dumpLinks,
  dumpRoutes,
  openNetlink,
  sendRequest,
  startRequest,
} from "../../src/netlink/socket.ts";
import {
  IFINFOMSG_SIZE,
  LINK_FLAG,
  NetlinkError,
  NLM_F,
  type RouteInfo,
  RTM,
} from "../../src/netlink/codec.ts";

function text(a: Uint8Array | undefined): string | undefined {
  if (a === undefined) return undefined;
  return a.length === 4 ? formatIp4(a) : formatIp6(a);
}

async function ipJson(...args: string[]): Promise<unknown> {
  const out = await new Deno.Command("ip", { args: ["-j", ...args] }).output();
  if (!out.success) {
    throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout) || "[]");
}

async function ipState(): Promise<Record<string, unknown>> {
  return {
    link: await ipJson("link"),
    addr: await ipJson("addr"),
    route4: await ipJson("-4", "route"),
    route6: await ipJson("-6", "route"),
  };
}

function routeJson(r: RouteInfo, names: Map<number, string>) {
  return {
    dst: r.dstLength === 0 ? "default" : `${text(r.dst)}/${r.dstLength}`,
    gateway: text(r.gateway),
    dev: r.oif === 0 ? undefined : names.get(r.oif),
    metric: r.priority,
    nexthops: r.nexthops.map((n) => ({
      gateway: text(n.gateway),
      dev: names.get(n.ifindex),
      weight: n.weight,
    })),
  };
}

function errorJson(e: unknown) {
  return {
    name: e instanceof Error ? e.name : "unknown",
    message: e instanceof Error ? e.message : String(e),
    code: e instanceof NetlinkError ? e.code : undefined,
  };
}

async function discover(options: HostDiscoveryOptions) {
  let host: unknown;
  let error: unknown;
  try {
    const h = openNetlink();
    const names = new Map(dumpLinks(h).map((l) => [l.index, l.name]));
    const info = discoverHost(options, h);
    closeNetlink(h);
    const family = (f: typeof info.ipv4 | typeof info.ipv6) =>
      f === undefined ? undefined : {
        ifname: f.ifname,
        chosenBy: f.chosenBy,
        mac: formatMac(f.mac),
        mtu: f.mtu,
        address: text(f.address),
        prefixLength: f.prefixLength,
        addresses: f.addresses.map((a) => `${text(a.address)}/${a.prefixLength}`),
        gateway: text(f.gateway),
        routes: f.routes.map((r) => routeJson(r, names)),
      };
    host = {
      ipv4: family(info.ipv4),
      ipv6: info.ipv6 === undefined
        ? undefined
        : { ...family(info.ipv6), linkLocal: text(info.ipv6.linkLocal) },
      mac: info.mac === undefined ? undefined : formatMac(info.mac),
      disabledReason: info.disabledReason,
    };
  } catch (e) {
    error = errorJson(e);
  }
  return { host, error, ip: await ipState() };
}

async function write() {
  const h = openNetlink();
  const index = new Map(dumpLinks(h).map((l) => [l.name, l.index]));
  const veth0 = index.get("veth0")!;
  const veth2 = index.get("veth2")!;
  const steps: Record<string, unknown> = {};
  const attempt = (name: string, f: () => void) => {
    try {
      f();
      steps[name] = "ok";
    } catch (e) {
      steps[name] = errorJson(e);
    }
  };
  attempt("up0", () => setLinkUp(h, veth0));
  attempt("up2", () => setLinkUp(h, veth2));
  attempt("mtu", () => setLinkMtu(h, veth0, 1400));
  attempt("mac", () => setLinkMac(h, veth0, parseMac("02:00:5e:00:53:01")!));
  attempt("addr4", () => addAddress(h, veth0, parseIp4("192.0.2.2")!, 24));
  attempt("addr4again", () => addAddress(h, veth0, parseIp4("192.0.2.2")!, 24));
  attempt("addr6", () => addAddress(h, veth0, parseIp6("2001:db8::2")!, 64));
  attempt(
    "addr6noprefix",
    () => addAddress(h, veth2, parseIp6("2001:db8:1::2")!, 64, { noPrefixRoute: true }),
  );
  attempt("addr4veth2", () => addAddress(h, veth2, parseIp4("198.51.100.2")!, 24));
  attempt(
    "default4",
    () => addRoute(h, { family: AF.INET, gateway: parseIp4("192.0.2.1")!, ifindex: veth0 }),
  );
  attempt("net4", () =>
    addRoute(h, {
      family: AF.INET,
      dst: parseIp4("198.51.100.128")!,
      dstLength: 25,
      gateway: parseIp4("192.0.2.1")!,
      ifindex: veth0,
      metric: 100,
    }));
  attempt("multipath4", () =>
    addRoute(h, {
      family: AF.INET,
      dst: parseIp4("203.0.113.0")!,
      dstLength: 24,
      nexthops: [
        { gateway: parseIp4("192.0.2.1")!, ifindex: veth0, weight: 1 },
        { gateway: parseIp4("198.51.100.1")!, ifindex: veth2, weight: 4 },
      ],
    }));
  attempt("unreachable4", () =>
    addRoute(h, {
      family: AF.INET,
      dst: parseIp4("198.51.100.0")!,
      dstLength: 26,
      gateway: parseIp4("203.0.113.9")!,
      ifindex: veth0,
    }));
  attempt("default6", () =>
    addRoute(h, {
      family: AF.INET6,
      gateway: parseIp6("2001:db8::1")!,
      ifindex: veth0,
      metric: 1024,
    }));
  // No prefix route on veth2 for 2001:db8:1::/64: a gateway there needs onLink.
  attempt("onlink6", () =>
    addRoute(h, {
      family: AF.INET6,
      dst: parseIp6("2001:db8:2::")!,
      dstLength: 48,
      gateway: parseIp6("2001:db8:1::1")!,
      ifindex: veth2,
      onLink: true,
    }));
  attempt("copy", () => {
    const net4 = dumpRoutes(h, AF.INET).find((r) => r.dstLength === 25)!;
    addRoute(h, { ...routeSpecFor(net4, veth0), metric: 200 });
  });
  attempt("badIndex", () => setLinkMtu(h, 9999, 1400));
  closeNetlink(h);
  return { steps, ip: await ipState() };
}

function timeout() {
  const h = openNetlink(200);
  const lo = dumpLinks(h).find((l) => (l.flags & LINK_FLAG.LOOPBACK) !== 0)!;
  // A change request without NLM_F_ACK gets no answer when it succeeds.
  startRequest(h, RTM.NEWLINK, NLM_F.REQUEST);
  const at = h.writer.reserve(IFINFOMSG_SIZE);
  h.writer.view.setInt32(at + 4, lo.index, true);
  h.writer.view.setUint32(at + 8, LINK_FLAG.UP, true);
  h.writer.view.setUint32(at + 12, LINK_FLAG.UP, true);
  const started = Date.now();
  let error: unknown;
  try {
    sendRequest(h, "RTM_NEWLINK (lo up, no ACK)", () => {});
  } catch (e) {
    error = errorJson(e);
  }
  const elapsedMs = Date.now() - started;
  // The handle still works afterwards: the stale state does not confuse a dump.
  const links = dumpLinks(h).length;
  closeNetlink(h);
  return { error, elapsedMs, links };
}

const [mode, arg] = Deno.args;
let result: unknown;
if (mode === "discover") result = await discover(JSON.parse(arg ?? "{}"));
else if (mode === "write") result = await write();
else if (mode === "timeout") result = timeout();
else throw new Error(`unknown mode ${mode}`);
console.log(JSON.stringify(result));
