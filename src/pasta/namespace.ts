/**
 * Inside the target network namespace: loopback up, the tap device, and what
 * --config-net sets up.
 *
 * Theory of operation: everything here goes through the namespace thread
 * (ns_thread.ts), which creates the tap device and an rtnetlink socket inside the
 * namespace; the rtnetlink conversation itself then runs on the main thread over
 * that socket. With --config-net the tap gets the MTU, the MAC (--ns-mac-addr),
 * comes up, and receives the host interface's addresses (or only the assigned
 * one) and its routes with the output device translated (or only the default
 * route). Addresses are added without a prefix route when routes are copied, so
 * that copying the host's own prefix route does not collide with the kernel's;
 * routes without a gateway go first, so gateways are reachable when their routes
 * are added. IPv6 addresses skip duplicate address detection: the only other
 * node on the link is us. That includes the link-local address the kernel makes
 * when the link comes up: the link comes up with IFF_NOARP (no DAD), its
 * link-local addresses get IFA_F_NODAD, then IFF_NOARP goes again, so the
 * namespace can use IPv6 at once. The namespace's MAC and link-local address
 * are handed back, so that we can reach it before it sends us anything.
 */
import type { PastaConfig } from "../config/config.ts";
import { formatIp } from "../addr.ts";
import type { FamilyPlan, NetworkPlan } from "../config/network.ts";
import { AF, IFF, SOCK } from "../ffi/layout.ts";
import { negotiateOffloads } from "../tap/tap.ts";
import {
  addAddress,
  addRoute,
  type RouteSpec,
  routeSpecFor,
  setLinkFlags,
  setLinkMac,
  setLinkMtu,
  setLinkUp,
} from "../netlink/configure.ts";
import { type AddressInfo, LINK_FLAG, NETLINK_ROUTE, RT_SCOPE } from "../netlink/codec.ts";
import {
  closeNetlink,
  dumpAddresses,
  dumpLinks,
  type NetlinkHandle,
  openNetlink,
} from "../netlink/socket.ts";
import { log } from "../log.ts";
import type { NsThread } from "./ns_thread.ts";

/** The tap device in the namespace. */
export interface NamespaceTap {
  /** Descriptor (nonblocking) of the tap device. */
  readonly fd: number;
  /** Its interface name in the namespace. */
  readonly ifname: string;
  /** Its interface index in the namespace. */
  readonly ifindex: number;
  /** Its MAC address (6 bytes), if the kernel reported one. */
  readonly mac: Uint8Array | undefined;
  /** Its IPv6 link-local address (16 bytes), if it has one yet. */
  readonly linkLocal6: Uint8Array | undefined;
  /** Whether it was opened with IFF_VNET_HDR: frames carry a virtio_net_hdr. */
  readonly vnetHeader: boolean;
  /** With vnetHeader: the TUN_F_* offloads the kernel accepted (`negotiateOffloads`). */
  readonly offloads: number;
}

/** The default MTU of the tap device when --config-net sets it up (bytes). */
export const TAP_MTU_DEFAULT = 65520;

/** Open an rtnetlink handle talking to the namespace of `ns`. */
export function namespaceNetlink(ns: NsThread): NetlinkHandle {
  const fd = ns.socket(AF.NETLINK, SOCK.RAW | SOCK.CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) throw new Error(`cannot open rtnetlink in the namespace (errno ${-fd})`);
  return openNetlink(undefined, fd);
}

/** --splice-only: bring `lo` up, and nothing else (no tap device). Throws on failure. */
export function setUpLoopbackOnly(ns: NsThread): void {
  const nl = namespaceNetlink(ns);
  try {
    const loopback = dumpLinks(nl).find((l) => l.name === "lo");
    if (loopback !== undefined) setLinkUp(nl, loopback.index);
  } finally {
    closeNetlink(nl);
  }
}

/**
 * Bring `lo` up, create the tap device, and with --config-net configure it.
 * Throws an Error naming what failed.
 */
export function setUpNamespace(
  ns: NsThread,
  config: PastaConfig,
  plan: NetworkPlan,
): NamespaceTap {
  const nl = namespaceNetlink(ns);
  try {
    const loopback = dumpLinks(nl).find((l) => l.name === "lo");
    if (loopback !== undefined) setLinkUp(nl, loopback.index);

    const wanted = config.nsIfname ?? plan.ip4?.hostIfname ?? plan.ip6?.hostIfname ?? "tap0";
    // With virtio headers where the kernel allows them (offloads), else without.
    let tap: { fd: number; name: string };
    let vnetHeader = true;
    try {
      tap = ns.openTap(wanted, IFF.VNET_HDR);
    } catch (e) {
      log.debug(`tap: IFF_VNET_HDR refused (${e instanceof Error ? e.message : e}), without`);
      tap = ns.openTap(wanted);
      vnetHeader = false;
    }
    const offloads = vnetHeader ? negotiateOffloads(tap.fd) : 0;
    const link = dumpLinks(nl).find((l) => l.name === tap.name);
    if (link === undefined) throw new Error(`tap device ${tap.name} vanished`);
    const ifindex = link.index;

    if (config.nsMacAddr !== undefined) setLinkMac(nl, ifindex, config.nsMacAddr);
    if (config.configNet) {
      setLinkMtu(nl, ifindex, config.mtu === 0 ? TAP_MTU_DEFAULT : config.mtu);
      if (plan.ip6 !== undefined) {
        // Up without DAD for the link-local address it gets now, then NODAD on it.
        setLinkFlags(nl, ifindex, LINK_FLAG.UP | LINK_FLAG.NOARP, LINK_FLAG.UP | LINK_FLAG.NOARP);
        for (const a of linkLocalAddresses(nl, ifindex)) {
          addAddress(nl, ifindex, a.address, a.prefixLength, {
            replace: true,
            scope: RT_SCOPE.LINK,
            noDad: true,
          });
        }
        setLinkFlags(nl, ifindex, 0, LINK_FLAG.NOARP);
      } else setLinkUp(nl, ifindex);
      if (plan.ip4 !== undefined) {
        configureFamily(nl, ifindex, plan.ip4, config.noCopyAddrs4, config.noCopyRoutes4, false);
      }
      if (plan.ip6 !== undefined) {
        configureFamily(nl, ifindex, plan.ip6, config.noCopyAddrs6, config.noCopyRoutes6, true);
      }
    }
    const mac = dumpLinks(nl).find((l) => l.index === ifindex)?.mac;
    return {
      fd: tap.fd,
      ifname: tap.name,
      ifindex,
      mac: mac?.length === 6 ? mac.slice() : undefined,
      linkLocal6: plan.ip6 === undefined ? undefined : linkLocalAddresses(nl, ifindex)[0]?.address,
      vnetHeader,
      offloads,
    };
  } finally {
    closeNetlink(nl);
  }
}

/** The IPv6 link-local addresses of interface `ifindex`. */
function linkLocalAddresses(nl: NetlinkHandle, ifindex: number): AddressInfo[] {
  return dumpAddresses(nl, AF.INET6).filter((a) =>
    a.ifindex === ifindex && a.scope === RT_SCOPE.LINK && a.address.length === 16
  );
}

function configureFamily(
  nl: NetlinkHandle,
  ifindex: number,
  family: FamilyPlan,
  singleAddress: boolean,
  defaultRouteOnly: boolean,
  v6: boolean,
): void {
  const addresses = singleAddress || family.hostAddresses.length === 0
    ? [{ address: family.address, prefixLength: family.prefixLength }]
    : family.hostAddresses;
  const copyRoutes = !defaultRouteOnly && family.hostRoutes.length > 0;
  for (const a of addresses) {
    // A /128 or /32 has no prefix route to collide with; others let copied routes in.
    addAddress(nl, ifindex, a.address, a.prefixLength, { noPrefixRoute: copyRoutes, noDad: v6 });
  }
  const routes: RouteSpec[] = [];
  if (copyRoutes) {
    for (const r of family.hostRoutes) {
      if (v6 && (r.dst[0] === 0xfe && (r.dst[1]! & 0xc0) === 0x80)) continue; // fe80::/64: kernel's
      if (v6 && r.dst[0] === 0xff) continue; // multicast
      routes.push(routeSpecFor(r, ifindex));
    }
    routes.sort((a, b) => Number(a.gateway !== undefined) - Number(b.gateway !== undefined));
  } else if (family.gateway !== undefined) {
    routes.push({
      family: v6 ? AF.INET6 : AF.INET,
      gateway: family.gateway,
      ifindex,
      onLink: !v6,
    });
  }
  for (const r of routes) {
    try {
      addRoute(nl, r);
    } catch (e) {
      // One host route that makes no sense here (say, through an address we do
      // not have) must not leave the namespace without the others.
      log.warn(`--config-net: route not copied: ${e instanceof Error ? e.message : e}`);
    }
  }
  if (log.debugging) {
    log.debug(
      `--config-net: ${addresses.map((a) => `${formatIp(a.address)}/${a.prefixLength}`).join(" ")}`,
    );
  }
}
