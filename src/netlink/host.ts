/**
 * Host discovery: which host interface each IP version uses, and the addresses,
 * gateway, MAC address, MTU and routes the guest or namespace inherits from it.
 *
 * Theory of operation: discovery is split in two so the rules are testable
 * without a kernel. `readHostSnapshot` dumps links, addresses and main-table
 * routes over rtnetlink (no `ip` command); `selectHost` applies the man page's
 * rules to such a snapshot, per IP version:
 * - an interface given on the command line (-i, --outbound-if4/6) is used as is;
 * - otherwise the interface of the first default route the kernel lists; for a
 *   multipath default route, the path chosen is the first nexthop with the highest
 *   weight, and it gives both the interface and the gateway;
 * - otherwise, with no default route, the interface if exactly one interface has
 *   any route of that version (loopback and, for IPv6, the fe80::/10 and ff00::/8
 *   routes every interface carries are not counted);
 * - otherwise the version is disabled, and a host where every requested version is
 *   disabled is a configuration error.
 * From the chosen interface come its addresses (link-local ones excluded from
 * assignment; for IPv6 the link-local one is noted apart), the first usable one
 * with its prefix length as the address to assign, its MAC address and MTU, the
 * gateway of its default route, and every main-table route through it (for
 * --config-net to copy into the namespace).
 *
 * `formatStartupSummary` renders the lines passt and pasta print at start
 * (Outbound interface, ARP, DHCP, NDP/DHCPv6), as the man page's EXAMPLES show.
 *
 * Everything is start-up code: results are plain frozen objects, addresses are
 * Uint8Arrays in network order (4 bytes IPv4, 16 bytes IPv6).
 */

import { AF } from "../ffi/layout.ts";
import {
  closeNetlink,
  dumpAddresses,
  dumpLinks,
  dumpRoutes,
  type NetlinkHandle,
  openNetlink,
} from "./socket.ts";
import { IFA_F, LINK_FLAG, RT_SCOPE, RTN } from "./codec.ts";
import type { AddressInfo, LinkInfo, Nexthop, RouteInfo } from "./codec.ts";
import {
  formatIp4,
  formatIp6,
  formatMac,
  isLinkLocal4,
  isLinkLocal6,
  isMulticast6,
  netmaskFromPrefix4,
} from "../addr.ts";

/** What discovery is asked to honour (from -i, --outbound-if4/6, -4, -6). */
export interface HostDiscoveryOptions {
  /** Interface to derive IPv4 addresses and routes from (-i or --outbound-if4). */
  readonly ifname4?: string;
  /** Interface to derive IPv6 addresses and routes from (-i or --outbound-if6). */
  readonly ifname6?: string;
  /** -4: IPv4 only; IPv6 is not looked at. */
  readonly ipv4Only?: boolean;
  /** -6: IPv6 only; IPv4 is not looked at. */
  readonly ipv6Only?: boolean;
}

/** One address of the chosen interface. */
export interface HostAddress {
  /** Network order, 4 or 16 bytes. */
  readonly address: Uint8Array;
  /** Prefix length in bits. */
  readonly prefixLength: number;
  /** IFA_F_* flags. */
  readonly flags: number;
  /** RT_SCOPE_*. */
  readonly scope: number;
}

/** How the interface for a version was chosen. */
export type InterfaceChoice = "option" | "default-route" | "only-route";

/** What one IP version inherits from its host interface. */
export interface HostFamilyInfo {
  /** Interface index on the host. */
  readonly ifindex: number;
  /** Interface name, e.g. "eth0". */
  readonly ifname: string;
  /** Why this interface: given as an option, first default route, or the only one routed. */
  readonly chosenBy: InterfaceChoice;
  /** Hardware address of the interface (6 bytes for Ethernet; may be empty). */
  readonly mac: Uint8Array;
  /** MTU of the interface in bytes. */
  readonly mtu: number;
  /** Addresses usable for assignment (not link-local), in kernel order. */
  readonly addresses: readonly HostAddress[];
  /** The address to assign by default, or undefined if the interface has none. */
  readonly address: Uint8Array | undefined;
  /** Prefix length of `address` in bits (0 if there is none). */
  readonly prefixLength: number;
  /** Gateway of the interface's default route, or undefined without one. */
  readonly gateway: Uint8Array | undefined;
  /** Every main-table route through this interface, in kernel order. */
  readonly routes: readonly RouteInfo[];
}

/** What IPv6 inherits: as for IPv4, plus the interface's link-local address. */
export interface HostIpv6Info extends HostFamilyInfo {
  /** The interface's first link-local (fe80::/10) address, if any. */
  readonly linkLocal: Uint8Array | undefined;
}

/** The result of host discovery. A version is undefined when it is disabled. */
export interface HostInfo {
  /** IPv4, or undefined if disabled (no route, or -6). */
  readonly ipv4: HostFamilyInfo | undefined;
  /** IPv6, or undefined if disabled (no route, or -4). */
  readonly ipv6: HostIpv6Info | undefined;
  /**
   * MAC address to use by default (--mac-addr): the IPv4 interface's, else the IPv6
   * one's; undefined if that interface has no 6-byte, non-zero hardware address.
   */
  readonly mac: Uint8Array | undefined;
  /** Why each disabled version is disabled, for logging. */
  readonly disabledReason: { readonly ipv4?: string; readonly ipv6?: string };
}

/** Raw kernel state discovery works from; the dumps for a skipped version are empty. */
export interface HostSnapshot {
  /** All links. */
  readonly links: readonly LinkInfo[];
  /** All IPv4 and IPv6 addresses. */
  readonly addresses: readonly AddressInfo[];
  /** Main-table IPv4 routes, in kernel order. */
  readonly routes4: readonly RouteInfo[];
  /** Main-table IPv6 routes, in kernel order. */
  readonly routes6: readonly RouteInfo[];
}

/** Dump what `selectHost` needs through `h`, skipping a version the options exclude. */
export function readHostSnapshot(
  h: NetlinkHandle,
  options: HostDiscoveryOptions = {},
): HostSnapshot {
  const want4 = !(options.ipv6Only ?? false);
  const want6 = !(options.ipv4Only ?? false);
  return {
    links: dumpLinks(h),
    addresses: dumpAddresses(h),
    routes4: want4 ? dumpRoutes(h, AF.INET) : [],
    routes6: want6 ? dumpRoutes(h, AF.INET6) : [],
  };
}

/**
 * Discover the host's outbound interfaces and what the guest inherits from them,
 * following the man page's rules. Uses `h` if given (its namespace is the one
 * inspected), otherwise opens and closes a handle in the current namespace.
 * Throws an Error naming the problem if a given interface does not exist or no
 * requested IP version is usable.
 */
export function discoverHost(options: HostDiscoveryOptions = {}, h?: NetlinkHandle): HostInfo {
  if (h !== undefined) return selectHost(readHostSnapshot(h, options), options);
  const own = openNetlink();
  try {
    return selectHost(readHostSnapshot(own, options), options);
  } finally {
    closeNetlink(own);
  }
}

/** The path a default route takes: its own oif/gateway, or its best nexthop. */
function bestPath(route: RouteInfo): { ifindex: number; gateway: Uint8Array | undefined } {
  if (route.nexthops.length === 0) return { ifindex: route.oif, gateway: route.gateway };
  let best: Nexthop | undefined;
  for (const hop of route.nexthops) if (best === undefined || hop.weight > best.weight) best = hop;
  return { ifindex: best?.ifindex ?? 0, gateway: best?.gateway };
}

/** The gateway of the first default route through `ifindex`, if any. */
function gatewayThrough(defaults: readonly RouteInfo[], ifindex: number): Uint8Array | undefined {
  for (const route of defaults) {
    if (route.nexthops.length === 0) {
      if (route.oif === ifindex) return route.gateway;
      continue;
    }
    let best: Nexthop | undefined;
    for (const hop of route.nexthops) {
      if (hop.ifindex === ifindex && (best === undefined || hop.weight > best.weight)) best = hop;
    }
    if (best !== undefined) return best.gateway;
  }
  return undefined;
}

function routeUses(route: RouteInfo, ifindex: number): boolean {
  return route.oif === ifindex || route.nexthops.some((n) => n.ifindex === ifindex);
}

function routeInterfaces(route: RouteInfo): number[] {
  return route.nexthops.length > 0 ? route.nexthops.map((n) => n.ifindex) : [route.oif];
}

/** Routes every interface has on its own, which say nothing about connectivity. */
function isHousekeepingRoute(route: RouteInfo): boolean {
  return route.family === AF.INET6 &&
    (isLinkLocal6(route.dst) || isMulticast6(route.dst)) && route.dstLength >= 8;
}

type Selected =
  | { link: LinkInfo; chosenBy: InterfaceChoice; gateway: Uint8Array | undefined }
  | { reason: string };

function chooseInterface(
  label: string,
  ifname: string | undefined,
  links: readonly LinkInfo[],
  routes: readonly RouteInfo[],
  hasAddress: (ifindex: number) => boolean,
): Selected {
  const byIndex = new Map(links.map((l) => [l.index, l]));
  const usable = (ifindex: number) => {
    const link = byIndex.get(ifindex);
    return link !== undefined && (link.flags & LINK_FLAG.LOOPBACK) === 0 ? link : undefined;
  };
  const defaults = routes.filter((r) => r.dstLength === 0 && r.type === RTN.UNICAST);

  if (ifname !== undefined) {
    const link = links.find((l) => l.name === ifname);
    if (link === undefined) throw new Error(`${label} interface ${ifname} does not exist`);
    if (!hasAddress(link.index) && !routes.some((r) => routeUses(r, link.index))) {
      return { reason: `interface ${ifname} has no ${label} address or route` };
    }
    return { link, chosenBy: "option", gateway: gatewayThrough(defaults, link.index) };
  }

  for (const route of defaults) {
    const path = bestPath(route);
    const link = usable(path.ifindex);
    if (link !== undefined) return { link, chosenBy: "default-route", gateway: path.gateway };
  }

  const routed = new Set<number>();
  for (const route of routes) {
    if (isHousekeepingRoute(route)) continue;
    for (const ifindex of routeInterfaces(route)) if (usable(ifindex)) routed.add(ifindex);
  }
  if (routed.size === 1) {
    const link = usable([...routed][0]!)!;
    return { link, chosenBy: "only-route", gateway: undefined };
  }
  return {
    reason: routed.size === 0
      ? `no ${label} routes`
      : `no ${label} default route, and ${routed.size} interfaces have routes`,
  };
}

const UNPREFERRED_6 = IFA_F.TEMPORARY | IFA_F.DEPRECATED | IFA_F.TENTATIVE | IFA_F.DADFAILED;

/** The address to assign: a global, stable one if there is one, else the first. */
function preferredAddress(addresses: readonly HostAddress[], v6: boolean): HostAddress | undefined {
  const unpreferred = v6 ? UNPREFERRED_6 : IFA_F.SECONDARY;
  return addresses.find((a) => a.scope === RT_SCOPE.UNIVERSE && (a.flags & unpreferred) === 0) ??
    addresses[0];
}

function familyInfo(
  link: LinkInfo,
  chosenBy: InterfaceChoice,
  gateway: Uint8Array | undefined,
  addresses: readonly AddressInfo[],
  routes: readonly RouteInfo[],
  v6: boolean,
): HostFamilyInfo & { linkLocal: Uint8Array | undefined } {
  const family = v6 ? AF.INET6 : AF.INET;
  const own = addresses.filter((a) => a.family === family && a.ifindex === link.index);
  const isLinkLocal = (a: AddressInfo) => v6 ? isLinkLocal6(a.address) : isLinkLocal4(a.address);
  const assignable: HostAddress[] = own.filter((a) => !isLinkLocal(a)).map((a) => ({
    address: a.address.slice(),
    prefixLength: a.prefixLength,
    flags: a.flags,
    scope: a.scope,
  }));
  const chosen = preferredAddress(assignable, v6);
  const linkLocal = v6 ? own.find(isLinkLocal)?.address.slice() : undefined;
  return {
    ifindex: link.index,
    ifname: link.name,
    chosenBy,
    mac: link.mac.slice(),
    mtu: link.mtu,
    addresses: assignable,
    address: chosen?.address,
    prefixLength: chosen?.prefixLength ?? 0,
    gateway: gateway?.slice(),
    routes: routes.filter((r) => routeUses(r, link.index)),
    linkLocal,
  };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !ArrayBuffer.isView(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/**
 * Apply the discovery rules to `snapshot`. Throws an Error if a given interface
 * does not exist, or if no requested IP version is usable.
 */
export function selectHost(snapshot: HostSnapshot, options: HostDiscoveryOptions = {}): HostInfo {
  const want4 = !(options.ipv6Only ?? false);
  const want6 = !(options.ipv4Only ?? false);
  if (!want4 && !want6) throw new Error("IPv4-only and IPv6-only are mutually exclusive");
  const hasAddress = (family: number) => (ifindex: number) =>
    snapshot.addresses.some((a) => a.family === family && a.ifindex === ifindex);

  let ipv4: HostFamilyInfo | undefined;
  let ipv6: HostIpv6Info | undefined;
  const disabledReason: { ipv4?: string; ipv6?: string } = {};

  if (want4) {
    const s = chooseInterface(
      "IPv4",
      options.ifname4,
      snapshot.links,
      snapshot.routes4,
      hasAddress(AF.INET),
    );
    if ("reason" in s) {
      disabledReason.ipv4 = s.reason;
    } else {
      const { linkLocal: _, ...info } = familyInfo(
        s.link,
        s.chosenBy,
        s.gateway,
        snapshot.addresses,
        snapshot.routes4,
        false,
      );
      ipv4 = info;
    }
  } else {
    disabledReason.ipv4 = "IPv6 only";
  }

  if (want6) {
    const s = chooseInterface(
      "IPv6",
      options.ifname6,
      snapshot.links,
      snapshot.routes6,
      hasAddress(AF.INET6),
    );
    if ("reason" in s) {
      disabledReason.ipv6 = s.reason;
    } else {
      ipv6 = familyInfo(s.link, s.chosenBy, s.gateway, snapshot.addresses, snapshot.routes6, true);
    }
  } else {
    disabledReason.ipv6 = "IPv4 only";
  }

  if (want4 && !want6 && ipv4 === undefined) {
    throw new Error(`IPv4 requested, but no usable IPv4 interface: ${disabledReason.ipv4}`);
  }
  if (want6 && !want4 && ipv6 === undefined) {
    throw new Error(`IPv6 requested, but no usable IPv6 interface: ${disabledReason.ipv6}`);
  }
  if (ipv4 === undefined && ipv6 === undefined) {
    throw new Error(
      `no usable host interface for IPv4 (${disabledReason.ipv4}) or IPv6 (${disabledReason.ipv6})`,
    );
  }

  const macSource = ipv4?.mac ?? ipv6?.mac;
  const mac = macSource !== undefined && macSource.length === 6 && macSource.some((b) => b !== 0)
    ? macSource.slice()
    : undefined;
  return deepFreeze({ ipv4, ipv6, mac, disabledReason });
}

// --- start-up summary --------------------------------------------------------------------

/** What the start-up summary shows; a section is printed only when its values are given. */
export interface SummaryValues {
  /** Host interface used for IPv4. */
  readonly outboundIf4?: string;
  /** Host interface used for IPv6. */
  readonly outboundIf6?: string;
  /** pasta: the interface in the namespace. */
  readonly namespaceIf?: string;
  /** The MAC address passt answers ARP with (6 bytes): the "ARP:" section. */
  readonly arpAddress?: Uint8Array;
  /** The "DHCP:" section: address assigned, its prefix length, router. */
  readonly dhcp?: {
    readonly assign: Uint8Array;
    readonly prefixLength: number;
    readonly router?: Uint8Array;
    readonly dns?: readonly Uint8Array[];
    readonly search?: readonly string[];
  };
  /** The "NDP/DHCPv6:" section: address assigned, router (gateway). */
  readonly ndp?: {
    readonly assign?: Uint8Array;
    readonly router?: Uint8Array;
    readonly dns?: readonly Uint8Array[];
    readonly search?: readonly string[];
  };
}

/** Indentation of the values under a section header ("ARP:", "DHCP:"…). */
export const SUMMARY_INDENT = "    ";

function formatAddr(a: Uint8Array): string {
  return a.length === 4 ? formatIp4(a) : formatIp6(a);
}

/**
 * The start-up summary lines, e.g. for passt:
 *
 *     Outbound interface: eth0
 *     ARP:
 *         address: 28:16:ad:39:a9:ea
 *     DHCP:
 *         assign: 192.168.1.118
 *         mask: 255.255.255.0
 *         router: 192.168.1.1
 *     NDP/DHCPv6:
 *         assign: 2a02:6d40:3ca5:2001:b81d:fa4a:8cdd:cf17
 *         router: fe80::62e3:27ff:fe33:2b01
 *
 * pasta adds ", namespace interface: NAME" to the first line. When IPv4 and IPv6
 * use different host interfaces, both are named. DNS servers and search domains,
 * when given, follow a section as "DNS:" and "search:" lists.
 */
export function formatStartupSummary(v: SummaryValues): string[] {
  const lines: string[] = [];
  const i1 = SUMMARY_INDENT;
  const i2 = SUMMARY_INDENT + SUMMARY_INDENT;

  const if4 = v.outboundIf4;
  const if6 = v.outboundIf6;
  let outbound: string | undefined;
  if (if4 !== undefined && if6 !== undefined && if4 !== if6) {
    outbound = `Outbound interface (IPv4): ${if4}, Outbound interface (IPv6): ${if6}`;
  } else if (if4 !== undefined || if6 !== undefined) {
    outbound = `Outbound interface: ${if4 ?? if6}`;
  }
  if (outbound !== undefined) {
    lines.push(
      v.namespaceIf === undefined ? outbound : `${outbound}, namespace interface: ${v.namespaceIf}`,
    );
  } else if (v.namespaceIf !== undefined) {
    lines.push(`Namespace interface: ${v.namespaceIf}`);
  }

  const lists = (dns: readonly Uint8Array[] | undefined, search: readonly string[] | undefined) => {
    if (dns !== undefined && dns.length > 0) {
      lines.push(`${i1}DNS:`);
      for (const server of dns) lines.push(`${i2}${formatAddr(server)}`);
    }
    if (search !== undefined && search.length > 0) {
      lines.push(`${i1}search:`);
      for (const domain of search) lines.push(`${i2}${domain}`);
    }
  };

  if (v.arpAddress !== undefined) {
    lines.push("ARP:", `${i1}address: ${formatMac(v.arpAddress)}`);
  }
  if (v.dhcp !== undefined) {
    const mask = new Uint8Array(4);
    netmaskFromPrefix4(v.dhcp.prefixLength, mask);
    lines.push(
      "DHCP:",
      `${i1}assign: ${formatAddr(v.dhcp.assign)}`,
      `${i1}mask: ${formatIp4(mask)}`,
    );
    if (v.dhcp.router !== undefined) lines.push(`${i1}router: ${formatAddr(v.dhcp.router)}`);
    lists(v.dhcp.dns, v.dhcp.search);
  }
  if (v.ndp !== undefined) {
    lines.push("NDP/DHCPv6:");
    if (v.ndp.assign !== undefined) lines.push(`${i1}assign: ${formatAddr(v.ndp.assign)}`);
    if (v.ndp.router !== undefined) lines.push(`${i1}router: ${formatAddr(v.ndp.router)}`);
    lists(v.ndp.dns, v.ndp.search);
  }
  return lines;
}
