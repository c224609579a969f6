/**
 * rtnetlink requests that configure an interface: addresses, routes, link flags,
 * MTU and MAC address. pasta's --config-net (src/pasta/namespace.ts) decides what
 * to copy into the namespace; this file only says it to the kernel, through a
 * handle opened in that namespace (socket.ts), and turns refusals into
 * `NetlinkError`s naming the request.
 */

import { AF } from "../ffi/layout.ts";
import { formatIp4, formatIp6, formatMac } from "../addr.ts";
import {
  addressSize,
  IFA,
  IFA_F,
  IFADDRMSG_SIZE,
  IFINFOMSG_SIZE,
  IFLA,
  LINK_FLAG,
  NetlinkMessageWriter,
  NLM_F,
  type RouteInfo,
  RT_SCOPE,
  RT_TABLE,
  RTA,
  RTM,
  RTMSG_SIZE,
  RTN,
  RTNEXTHOP_SIZE,
  RTNH_F,
  RTPROT,
} from "./codec.ts";
import { type NetlinkHandle, sendRequest, startRequest } from "./socket.ts";

function familyOf(address: Uint8Array, what: string): number {
  if (address.length === 4) return AF.INET;
  if (address.length === 16) return AF.INET6;
  throw new RangeError(`${what}: address must be 4 or 16 bytes, not ${address.length}`);
}

function formatAddress(a: Uint8Array): string {
  return a.length === 4 ? formatIp4(a) : formatIp6(a);
}

/** Send the request in the writer with NLM_F_ACK and wait for the acknowledgement. */
function acknowledged(h: NetlinkHandle, request: string): void {
  sendRequest(h, request, () => {});
}

// --- configuration ----------------------------------------------------------------------

/** Options of `addAddress`. */
export interface AddAddressOptions {
  /**
   * IPv6: skip duplicate address detection (IFA_F_NODAD). Default true: the
   * namespace's peer on the tap link is passt itself, which would answer the DAD
   * probe for the very address we copy from the host, and DAD would also leave the
   * address unusable (tentative) for a second after start.
   */
  readonly noDad?: boolean;
  /**
   * Do not create the prefix route for the address (IFA_F_NOPREFIXROUTE). Set it
   * when the host's routes, prefix route included, are copied afterwards, so that
   * copying does not fail with EEXIST. Default false.
   */
  readonly noPrefixRoute?: boolean;
  /**
   * Change an address that is already there (NLM_F_REPLACE) instead of adding a
   * new one: its flags (say, IFA_F_NODAD) and lifetimes. Default false.
   */
  readonly replace?: boolean;
  /** RT_SCOPE_* of the address (default RT_SCOPE.UNIVERSE; LINK for fe80::/10). */
  readonly scope?: number;
}

/**
 * Add `address` (4 or 16 bytes, network order) with `prefixLength` to interface
 * `ifindex`. Throws `NetlinkError` (EEXIST if it is already there).
 */
export function addAddress(
  h: NetlinkHandle,
  ifindex: number,
  address: Uint8Array,
  prefixLength: number,
  options: AddAddressOptions = {},
): void {
  const family = familyOf(address, "addAddress");
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > address.length * 8) {
    throw new RangeError(`addAddress: bad prefix length ${prefixLength}`);
  }
  let flags = 0;
  if (family === AF.INET6 && (options.noDad ?? true)) flags |= IFA_F.NODAD;
  if (options.noPrefixRoute ?? false) flags |= IFA_F.NOPREFIXROUTE;
  const replace = options.replace ?? false;
  const request = `RTM_NEWADDR (${replace ? "change" : "add"} ${
    formatAddress(address)
  }/${prefixLength} on ifindex ${ifindex})`;
  startRequest(
    h,
    RTM.NEWADDR,
    NLM_F.REQUEST | NLM_F.ACK | (replace ? NLM_F.REPLACE : NLM_F.CREATE | NLM_F.EXCL),
  );
  const w = h.writer;
  const at = w.reserve(IFADDRMSG_SIZE);
  w.view.setUint8(at, family);
  w.view.setUint8(at + 1, prefixLength);
  w.view.setUint8(at + 2, flags & 0xff);
  w.view.setUint8(at + 3, options.scope ?? RT_SCOPE.UNIVERSE);
  w.view.setUint32(at + 4, ifindex, true);
  w.attrBytes(IFA.LOCAL, address);
  w.attrBytes(IFA.ADDRESS, address);
  if (flags > 0xff) w.attrU32(IFA.FLAGS, flags);
  acknowledged(h, request);
}

/** One path of a multipath route to add. */
export interface NexthopSpec {
  /** Gateway, network order, same family as the route. */
  readonly gateway?: Uint8Array;
  /** Output interface index. */
  readonly ifindex: number;
  /** Weight, 1..256 (default 1). */
  readonly weight?: number;
}

/** A route to add with `addRoute`. */
export interface RouteSpec {
  /** AF.INET or AF.INET6. */
  readonly family: number;
  /** Destination network, network order; omitted or with `dstLength` 0: default route. */
  readonly dst?: Uint8Array;
  /** Destination prefix length in bits (default 0). */
  readonly dstLength?: number;
  /** Gateway, network order. */
  readonly gateway?: Uint8Array;
  /** Output interface index (single path). */
  readonly ifindex?: number;
  /** Paths of a multipath route; used instead of gateway/ifindex when non-empty. */
  readonly nexthops?: readonly NexthopSpec[];
  /** Metric (RTA_PRIORITY); omitted: the kernel's default. */
  readonly metric?: number;
  /** Preferred source address, network order. */
  readonly prefsrc?: Uint8Array;
  /** RTPROT_* origin (default RTPROT.BOOT, as `ip route add`). */
  readonly protocol?: number;
  /** RT_SCOPE_* (default: LINK without a gateway, UNIVERSE with one). */
  readonly scope?: number;
  /** RTN_* type (default RTN.UNICAST). */
  readonly type?: number;
  /** Routing table (default RT_TABLE.MAIN). */
  readonly table?: number;
  /** Treat the gateway as on-link even without a matching prefix route (RTNH_F_ONLINK). */
  readonly onLink?: boolean;
}

/** Describe a route for error messages, like `ip route` would print it. */
export function describeRoute(r: RouteSpec): string {
  const size = r.family === AF.INET ? 4 : 16;
  const dstLength = r.dstLength ?? 0;
  const dst = dstLength === 0
    ? "default"
    : `${formatAddress(r.dst ?? new Uint8Array(size))}/${dstLength}`;
  let text = dst;
  if (r.gateway !== undefined) text += ` via ${formatAddress(r.gateway)}`;
  if (r.ifindex !== undefined) text += ` dev #${r.ifindex}`;
  for (const hop of r.nexthops ?? []) {
    text += ` nexthop${hop.gateway === undefined ? "" : ` via ${formatAddress(hop.gateway)}`}` +
      ` dev #${hop.ifindex} weight ${hop.weight ?? 1}`;
  }
  if (r.metric !== undefined) text += ` metric ${r.metric}`;
  return text;
}

/**
 * The spec that re-creates host route `route` in another namespace with every
 * output interface replaced by `ifindex` (the namespace's interface), as
 * --config-net copies routes. Destination, gateways, weights, metric, origin,
 * scope, type and the on-link flag are kept; the preferred source is dropped, as
 * the namespace may not hold that address.
 */
export function routeSpecFor(route: RouteInfo, ifindex: number): RouteSpec {
  const base = {
    family: route.family,
    dst: route.dst,
    dstLength: route.dstLength,
    metric: route.priority,
    protocol: route.protocol,
    scope: route.scope,
    type: route.type,
    onLink: (route.flags & RTNH_F.ONLINK) !== 0 ||
      route.nexthops.some((n) => (n.flags & RTNH_F.ONLINK) !== 0),
  };
  if (route.nexthops.length > 0) {
    const nexthops = route.nexthops.map((n): NexthopSpec =>
      n.gateway === undefined
        ? { ifindex, weight: n.weight }
        : { ifindex, weight: n.weight, gateway: n.gateway }
    );
    return { ...base, nexthops };
  }
  return route.gateway === undefined
    ? { ...base, ifindex }
    : { ...base, ifindex, gateway: route.gateway };
}

/** Add a route. Throws `NetlinkError` (EEXIST if present, ENETUNREACH if the gateway is not on-link). */
export function addRoute(h: NetlinkHandle, r: RouteSpec): void {
  const size = addressSize(r.family, "addRoute");
  const dstLength = r.dstLength ?? 0;
  if (!Number.isInteger(dstLength) || dstLength < 0 || dstLength > size * 8) {
    throw new RangeError(`addRoute: bad prefix length ${dstLength}`);
  }
  const checkSize = (a: Uint8Array | undefined, what: string) => {
    if (a !== undefined && a.length !== size) {
      throw new RangeError(`addRoute: ${what} must be ${size} bytes, not ${a.length}`);
    }
  };
  checkSize(r.dst, "destination");
  checkSize(r.gateway, "gateway");
  checkSize(r.prefsrc, "preferred source");
  const hops = r.nexthops ?? [];
  for (const hop of hops) checkSize(hop.gateway, "nexthop gateway");
  const hasGateway = r.gateway !== undefined || hops.some((n) => n.gateway !== undefined);
  const table = r.table ?? RT_TABLE.MAIN;

  const request = `RTM_NEWROUTE (add ${describeRoute(r)})`;
  startRequest(h, RTM.NEWROUTE, NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.EXCL);
  const w = h.writer;
  const at = w.reserve(RTMSG_SIZE);
  w.view.setUint8(at, r.family);
  w.view.setUint8(at + 1, dstLength);
  w.view.setUint8(at + 4, table < 256 ? table : RT_TABLE.UNSPEC);
  w.view.setUint8(at + 5, r.protocol ?? RTPROT.BOOT);
  w.view.setUint8(at + 6, r.scope ?? (hasGateway ? RT_SCOPE.UNIVERSE : RT_SCOPE.LINK));
  w.view.setUint8(at + 7, r.type ?? RTN.UNICAST);
  w.view.setUint32(at + 8, r.onLink ? RTNH_F.ONLINK : 0, true);
  if (table >= 256) w.attrU32(RTA.TABLE, table);
  if (dstLength > 0) w.attrBytes(RTA.DST, r.dst ?? new Uint8Array(size));
  if (r.prefsrc !== undefined) w.attrBytes(RTA.PREFSRC, r.prefsrc);
  if (r.metric !== undefined) w.attrU32(RTA.PRIORITY, r.metric);
  if (hops.length > 0) {
    const nest = w.nestBegin(RTA.MULTIPATH);
    for (const hop of hops) {
      const weight = hop.weight ?? 1;
      if (!Number.isInteger(weight) || weight < 1 || weight > 256) {
        throw new RangeError(`addRoute: nexthop weight ${weight} outside 1..256`);
      }
      const hopAt = w.reserve(RTNEXTHOP_SIZE);
      w.view.setUint8(hopAt + 2, r.onLink ? RTNH_F.ONLINK : 0);
      w.view.setUint8(hopAt + 3, weight - 1);
      w.view.setInt32(hopAt + 4, hop.ifindex, true);
      if (hop.gateway !== undefined) w.attrBytes(RTA.GATEWAY, hop.gateway);
      w.view.setUint16(hopAt, w.length - hopAt, true);
    }
    w.nestEnd(nest);
  } else {
    if (r.gateway !== undefined) w.attrBytes(RTA.GATEWAY, r.gateway);
    if (r.ifindex !== undefined) w.attrU32(RTA.OIF, r.ifindex);
  }
  acknowledged(h, request);
}

/** Change link attributes with RTM_NEWLINK on an existing interface. */
function changeLink(
  h: NetlinkHandle,
  ifindex: number,
  request: string,
  flags: number,
  change: number,
  attrs: (w: NetlinkMessageWriter) => void,
): void {
  startRequest(h, RTM.NEWLINK, NLM_F.REQUEST | NLM_F.ACK);
  const w = h.writer;
  const at = w.reserve(IFINFOMSG_SIZE);
  w.view.setUint8(at, AF.UNSPEC);
  w.view.setInt32(at + 4, ifindex, true);
  w.view.setUint32(at + 8, flags, true);
  w.view.setUint32(at + 12, change, true);
  attrs(w);
  acknowledged(h, request);
}

/**
 * Set the link flags of interface `ifindex` selected by `mask` (IFF_* bits, see
 * `LINK_FLAG`) to their values in `flags`; others stay as they are.
 */
export function setLinkFlags(h: NetlinkHandle, ifindex: number, flags: number, mask: number): void {
  const request = `RTM_NEWLINK (set ifindex ${ifindex} flags 0x${flags.toString(16)}/0x${
    mask.toString(16)
  })`;
  changeLink(h, ifindex, request, flags & mask, mask, () => {});
}

/** Bring interface `ifindex` up (IFF_UP). */
export function setLinkUp(h: NetlinkHandle, ifindex: number): void {
  const request = `RTM_NEWLINK (set ifindex ${ifindex} up)`;
  changeLink(h, ifindex, request, LINK_FLAG.UP, LINK_FLAG.UP, () => {});
}

/** Set the MTU of interface `ifindex`, in bytes. */
export function setLinkMtu(h: NetlinkHandle, ifindex: number, mtu: number): void {
  if (!Number.isInteger(mtu) || mtu <= 0 || mtu > 0xffffffff) {
    throw new RangeError(`setLinkMtu: bad MTU ${mtu}`);
  }
  const request = `RTM_NEWLINK (set ifindex ${ifindex} MTU ${mtu})`;
  changeLink(h, ifindex, request, 0, 0, (w) => w.attrU32(IFLA.MTU, mtu));
}

/** Set the hardware address of interface `ifindex` (6 bytes for Ethernet). */
export function setLinkMac(h: NetlinkHandle, ifindex: number, mac: Uint8Array): void {
  if (mac.length === 0 || mac.length > 32) {
    throw new RangeError(`setLinkMac: bad hardware address length ${mac.length}`);
  }
  const request = `RTM_NEWLINK (set ifindex ${ifindex} address ${formatMac(mac)})`;
  changeLink(h, ifindex, request, 0, 0, (w) => w.attrBytes(IFLA.ADDRESS, mac));
}
