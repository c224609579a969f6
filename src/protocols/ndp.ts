/**
 * NDP responder and router (RFC 4861): NS → NA, RS → RA, unsolicited RAs.
 *
 * Theory of operation: the guest reaches every address through us, so we act as
 * the neighbour for every IPv6 address except the guest's own: any Neighbor
 * Solicitation for another target gets a Neighbor Advertisement carrying our
 * MAC (Router, Solicited and Override flags set: we are the only router and the
 * only neighbour on this link). Solicitations from the unspecified address are
 * the guest's Duplicate Address Detection for an address it is about to use
 * and are never answered, nor is a solicitation for the guest's assigned
 * address or for the soliciting address itself.
 *
 * Router Solicitations get a Router Advertisement, sent back to the soliciting
 * address (or to ff02::1 if it was unspecified), and the caller sends the same
 * RA unsolicited to ff02::1 from time to time (`ndpRouterAdvertisement`). An RA
 * carries: our link-layer address (option 1), the MTU (option 5, only when
 * `mtu` is at least 1280), the /64 prefix of the assigned address with the
 * on-link and autonomous flags for SLAAC (option 3), DNS servers (RDNSS, option
 * 25, RFC 8106) and the search list (DNSSL, option 31, uncompressed names) when
 * given, and the M/O flags telling the guest whether to ask DHCPv6. It comes
 * from `ourLinkLocal` (RFC 4861 §4.2 requires a link-local source) with hop
 * limit 255, and is kept within the IPv6 minimum MTU of 1280 bytes: the DNS
 * options are left out (counted in `stats.omitted`) if they do not fit.
 *
 * Validation (RFC 4861 §6.1.1, §7.1.1): Ethernet type, IPv6 header and payload
 * length, ICMPv6 directly after the IPv6 header (no extension headers), hop
 * limit 255, ICMPv6 checksum (guests never offload it), code 0, message length,
 * every option with a non-zero length inside the message, no source link-layer
 * option when the source is unspecified, no multicast NS target.
 *
 * The reply must be built in a buffer distinct from the request's.
 */

import type { NetworkPlan } from "../config/network.ts";
import { l4ChecksumV6 } from "./checksum.ts";
import { encodeDomainList } from "./dns_name.ts";
import {
  ETH_ALEN,
  ETH_HLEN,
  ETH_P_IPV6,
  ETH_SRC,
  ethType,
  MAC_ALL_NODES,
  writeEthHeader,
} from "./ethernet.ts";
import {
  IP6_ALL_NODES,
  IP6_HLEN,
  IP6_HLIM,
  IP6_NXT,
  IP6_SRC,
  IPPROTO_ICMPV6,
  ipv6PayloadEnd,
  isZeroBytes,
  verifyL4ChecksumV6,
  writeIpv6Header,
} from "./ip.ts";
import { PacketView, ServiceStats } from "./packet.ts";

/** ICMPv6 types handled here. */
export const NdpType = {
  ROUTER_SOLICIT: 133,
  ROUTER_ADVERT: 134,
  NEIGHBOR_SOLICIT: 135,
  NEIGHBOR_ADVERT: 136,
  REDIRECT: 137,
} as const;

/** NDP option types used here. */
export const NdpOpt = {
  SOURCE_LL_ADDR: 1,
  TARGET_LL_ADDR: 2,
  PREFIX_INFO: 3,
  MTU: 5,
  RDNSS: 25,
  DNSSL: 31,
} as const;

/** NA flag bits in the first 32-bit word after the checksum (host u32). */
export const NA_FLAG_ROUTER = 0x80000000;
/** NA solicited flag. */
export const NA_FLAG_SOLICITED = 0x40000000;
/** NA override flag. */
export const NA_FLAG_OVERRIDE = 0x20000000;
/** RA flags byte: managed address configuration (use DHCPv6 for addresses). */
export const RA_FLAG_MANAGED = 0x80;
/** RA flags byte: other configuration (use DHCPv6 for other information). */
export const RA_FLAG_OTHER = 0x40;
/** Prefix information flags byte: on-link. */
export const PIO_FLAG_ONLINK = 0x80;
/** Prefix information flags byte: autonomous address configuration. */
export const PIO_FLAG_AUTO = 0x40;
/** Hop limit of every NDP message, sent and accepted. */
export const NDP_HOP_LIMIT = 255;
/** Current hop limit we advertise to the guest in RAs. */
export const RA_CUR_HOP_LIMIT = 64;
/** Largest RA frame we build: Ethernet header plus the IPv6 minimum MTU, bytes. */
export const RA_MAX_FRAME = ETH_HLEN + 1280;

const ICMP = ETH_HLEN + IP6_HLEN; // window offset of the ICMPv6 header
const NA_LEN = 32; // NA body with target link-layer address option, bytes

/** What the NDP responder needs to know. Addresses are 16 bytes, network order. */
export interface NdpParams {
  /** Our MAC address (6 bytes): answer to every solicitation, RA source link-layer option. */
  readonly ourMac: Uint8Array;
  /** Link-local source of RAs: the gateway if link-local, else `linkLocalFromMac(ourMac)`. */
  readonly ourLinkLocal: Uint8Array;
  /** The guest's assigned address: never answered for; its /64 is advertised. :: = none. */
  readonly guestAddr: Uint8Array;
  /** False: Router Solicitations get no reply (--no-ra). */
  readonly raEnabled: boolean;
  /** RA "managed" flag: addresses via DHCPv6. */
  readonly managed: boolean;
  /** RA "other configuration" flag: other information via DHCPv6. */
  readonly otherConfig: boolean;
  /** Link MTU in bytes (option 5); 0 or below 1280: option left out. */
  readonly mtu: number;
  /** DNS servers (RDNSS), 16 bytes each; empty: option left out. */
  readonly dns: readonly Uint8Array[];
  /** DNS search list (DNSSL); empty: option left out. */
  readonly search: readonly string[];
  /** Router lifetime, seconds, 0-65535 (0: not a default router). */
  readonly routerLifetimeSeconds: number;
  /** Prefix valid lifetime, seconds (0xffffffff: infinite). */
  readonly validLifetimeSeconds: number;
  /** Prefix preferred lifetime, seconds, at most the valid lifetime. */
  readonly preferredLifetimeSeconds: number;
  /** RDNSS and DNSSL lifetime, seconds (0xffffffff: infinite). */
  readonly dnsLifetimeSeconds: number;
}

/** Lifetimes advertised (seconds): the longest a router may claim, and infinite. */
const ROUTER_LIFETIME_MAX = 65535;
const LIFETIME_INFINITE = 0xffffffff;

/**
 * The NDP responder's parameters for `plan`, or undefined when it does not run
 * (no IPv6, --no-ndp). The lifetime policy lives here: we stay the default router
 * as long as RAs allow, and the prefix and resolvers never expire, since nothing
 * we advertise changes while we run.
 */
export function ndpParamsFor(plan: NetworkPlan): NdpParams | undefined {
  const ip6 = plan.ip6;
  if (ip6 === undefined || !plan.ndp) return undefined;
  return {
    ourMac: plan.ourMac,
    ourLinkLocal: ip6.ourLinkLocal,
    guestAddr: ip6.address,
    raEnabled: plan.ra,
    managed: plan.dhcpv6,
    otherConfig: plan.dhcpv6,
    mtu: plan.mtu,
    dns: ip6.dns,
    search: plan.search,
    routerLifetimeSeconds: ROUTER_LIFETIME_MAX,
    validLifetimeSeconds: LIFETIME_INFINITE,
    preferredLifetimeSeconds: LIFETIME_INFINITE,
    dnsLifetimeSeconds: LIFETIME_INFINITE,
  };
}

/** Reasons an NDP frame gets no reply. */
export type NdpDrop =
  | "truncated"
  | "notIpv6"
  | "badIpHeader"
  | "notIcmpv6"
  | "badHopLimit"
  | "badChecksum"
  | "badCode"
  | "notHandled"
  | "badOptions"
  | "multicastTarget"
  | "dad"
  | "guestAddress"
  | "selfTarget"
  | "badSource"
  | "raDisabled"
  | "noRoom";

/** New counters for `ndpReply` and `ndpRouterAdvertisement`. */
export function newNdpStats(): ServiceStats<NdpDrop> {
  return new ServiceStats<NdpDrop>([
    "truncated",
    "notIpv6",
    "badIpHeader",
    "notIcmpv6",
    "badHopLimit",
    "badChecksum",
    "badCode",
    "notHandled",
    "badOptions",
    "multicastTarget",
    "dad",
    "guestAddress",
    "selfTarget",
    "badSource",
    "raDisabled",
    "noRoom",
  ]);
}

/** Default counters used when the caller passes none. */
export const ndpStats: ServiceStats<NdpDrop> = newNdpStats();

const scratchMac = new Uint8Array(ETH_ALEN);
const scratchDst = new Uint8Array(16);
const scratchSrc = new Uint8Array(16);

/**
 * Modified EUI-64 link-local address (RFC 4291 App. A) for `mac`: fe80::/64 with
 * the MAC split by ff:fe and the universal/local bit flipped. Allocates: startup.
 */
export function linkLocalFromMac(mac: Uint8Array): Uint8Array {
  const a = new Uint8Array(16);
  a[0] = 0xfe;
  a[1] = 0x80;
  a[8] = (mac[0] ?? 0) ^ 0x02;
  a[9] = mac[1] ?? 0;
  a[10] = mac[2] ?? 0;
  a[11] = 0xff;
  a[12] = 0xfe;
  a[13] = mac[3] ?? 0;
  a[14] = mac[4] ?? 0;
  a[15] = mac[5] ?? 0;
  return a;
}

/**
 * True if `pkt` is an ICMPv6 NDP message (types 133-137) directly after the IPv6
 * header, for dispatching before `ndpReply`. Does not validate it.
 */
export function isNdpFrame(pkt: PacketView): boolean {
  if (ethType(pkt) !== ETH_P_IPV6 || pkt.u8(ETH_HLEN + IP6_NXT) !== IPPROTO_ICMPV6) return false;
  const t = pkt.u8(ICMP);
  return t >= NdpType.ROUTER_SOLICIT && t <= NdpType.REDIRECT;
}

/**
 * Answers the NS or RS in `pkt` (a whole Ethernet frame). Writes the NA or RA frame
 * at the window start of `out` (a different buffer), sets `out`'s length and
 * returns it, or returns 0 (counting the reason in `stats`) if there is no reply.
 */
export function ndpReply(
  pkt: PacketView,
  params: NdpParams,
  out: PacketView,
  stats: ServiceStats<NdpDrop> = ndpStats,
): number {
  out.setLength(0);
  if (!pkt.has(0, ETH_HLEN)) return stats.drop("truncated");
  if (ethType(pkt) !== ETH_P_IPV6) return stats.drop("notIpv6");
  const ip = ETH_HLEN;
  const end = ipv6PayloadEnd(pkt, ip);
  if (end < 0) return stats.drop(pkt.has(ip, IP6_HLEN) ? "badIpHeader" : "truncated");
  if (pkt.u8(ip + IP6_NXT) !== IPPROTO_ICMPV6) return stats.drop("notIcmpv6");
  const icmpLen = end - ICMP;
  if (icmpLen < 8) return stats.drop("truncated");
  if (pkt.u8(ip + IP6_HLIM) !== NDP_HOP_LIMIT) return stats.drop("badHopLimit");
  if (!verifyL4ChecksumV6(pkt, ip, ICMP, icmpLen, IPPROTO_ICMPV6)) {
    return stats.drop("badChecksum");
  }
  if (pkt.u8(ICMP + 1) !== 0) return stats.drop("badCode");
  const srcUnspecified = pkt.isZero(ip + IP6_SRC, 16);
  if (pkt.u8(ip + IP6_SRC) === 0xff) return stats.drop("badSource");

  switch (pkt.u8(ICMP)) {
    case NdpType.NEIGHBOR_SOLICIT: {
      if (icmpLen < 24) return stats.drop("truncated");
      if (!validOptions(pkt, ICMP + 24, end, srcUnspecified)) return stats.drop("badOptions");
      const target = ICMP + 8;
      if (pkt.u8(target) === 0xff) return stats.drop("multicastTarget");
      if (srcUnspecified) return stats.drop("dad");
      if (pkt.equals(target, params.guestAddr)) return stats.drop("guestAddress");
      pkt.copyOut(ip + IP6_SRC, 16, scratchDst);
      if (pkt.equals(target, scratchDst)) return stats.drop("selfTarget");
      pkt.copyOut(target, 16, scratchSrc);
      pkt.copyOut(ETH_SRC, ETH_ALEN, scratchMac);
      const len = buildNa(params, out, scratchMac, scratchSrc, scratchDst);
      return len > 0 ? stats.reply("na", len) : stats.drop("noRoom");
    }
    case NdpType.ROUTER_SOLICIT: {
      if (!validOptions(pkt, ICMP + 8, end, srcUnspecified)) return stats.drop("badOptions");
      if (!params.raEnabled) return stats.drop("raDisabled");
      let dstMac: Uint8Array = MAC_ALL_NODES;
      let dstIp: Uint8Array = IP6_ALL_NODES;
      if (!srcUnspecified) {
        pkt.copyOut(ip + IP6_SRC, 16, scratchDst);
        pkt.copyOut(ETH_SRC, ETH_ALEN, scratchMac);
        dstMac = scratchMac;
        dstIp = scratchDst;
      }
      const len = buildRa(params, out, dstMac, dstIp, stats);
      return len > 0 ? stats.reply("ra", len) : stats.drop("noRoom");
    }
    default:
      return stats.drop("notHandled");
  }
}

/**
 * Builds an unsolicited RA to ff02::1 (33:33:00:00:00:01) at the window start of
 * `out`, for the caller to send periodically. Returns its length (also set as
 * `out`'s length), or 0 if `out` is too small.
 */
export function ndpRouterAdvertisement(
  params: NdpParams,
  out: PacketView,
  stats: ServiceStats<NdpDrop> = ndpStats,
): number {
  out.setLength(0);
  const len = buildRa(params, out, MAC_ALL_NODES, IP6_ALL_NODES, stats);
  return len > 0 ? stats.reply("unsolicited-ra", len) : stats.drop("noRoom");
}

/** True if the NDP options in [start, end) are well formed (RFC 4861 §4.6). */
function validOptions(
  pkt: PacketView,
  start: number,
  end: number,
  srcUnspecified: boolean,
): boolean {
  let o = start;
  while (o < end) {
    const type = pkt.u8(o);
    const units = pkt.u8(o + 1);
    if (units <= 0 || o + 8 * units > end) return false;
    if (type === NdpOpt.SOURCE_LL_ADDR && srcUnspecified) return false;
    o += 8 * units;
  }
  return o === end;
}

function buildNa(
  params: NdpParams,
  out: PacketView,
  dstMac: Uint8Array,
  target: Uint8Array,
  dstIp: Uint8Array,
): number {
  const total = ICMP + NA_LEN;
  if (out.capacity < total) return 0;
  writeEthHeader(out, 0, dstMac, params.ourMac, ETH_P_IPV6);
  writeIpv6Header(out, ETH_HLEN, target, dstIp, IPPROTO_ICMPV6, NA_LEN, NDP_HOP_LIMIT);
  out.put8(ICMP, NdpType.NEIGHBOR_ADVERT);
  out.put8(ICMP + 1, 0);
  out.put16(ICMP + 2, 0);
  out.put32(ICMP + 4, NA_FLAG_ROUTER | NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE);
  out.putBytes(ICMP + 8, target);
  out.put8(ICMP + 24, NdpOpt.TARGET_LL_ADDR);
  out.put8(ICMP + 25, 1);
  out.putBytes(ICMP + 26, params.ourMac);
  return finishIcmp(out, NA_LEN);
}

function buildRa(
  params: NdpParams,
  out: PacketView,
  dstMac: Uint8Array,
  dstIp: Uint8Array,
  stats: ServiceStats<NdpDrop>,
): number {
  const limit = out.capacity < RA_MAX_FRAME ? out.capacity : RA_MAX_FRAME;
  // Header, source link-layer address, MTU and prefix always fit in 1280 bytes.
  if (ICMP + 16 + 8 + 8 + 32 > limit) return 0;

  out.put8(ICMP, NdpType.ROUTER_ADVERT);
  out.put8(ICMP + 1, 0);
  out.put16(ICMP + 2, 0);
  out.put8(ICMP + 4, RA_CUR_HOP_LIMIT);
  out.put8(
    ICMP + 5,
    (params.managed ? RA_FLAG_MANAGED : 0) | (params.otherConfig ? RA_FLAG_OTHER : 0),
  );
  out.put16(ICMP + 6, clampU16(params.routerLifetimeSeconds));
  out.put32(ICMP + 8, 0); // reachable time: unspecified
  out.put32(ICMP + 12, 0); // retrans timer: unspecified
  let o = ICMP + 16;

  out.put8(o, NdpOpt.SOURCE_LL_ADDR);
  out.put8(o + 1, 1);
  out.putBytes(o + 2, params.ourMac);
  o += 8;

  if (params.mtu >= 1280) {
    out.put8(o, NdpOpt.MTU);
    out.put8(o + 1, 1);
    out.put16(o + 2, 0);
    out.put32(o + 4, params.mtu);
    o += 8;
  }

  if (!isZeroBytes(params.guestAddr, 0, 16)) {
    const valid = params.validLifetimeSeconds >>> 0;
    let preferred = params.preferredLifetimeSeconds >>> 0;
    if (preferred > valid) preferred = valid;
    out.put8(o, NdpOpt.PREFIX_INFO);
    out.put8(o + 1, 4);
    out.put8(o + 2, 64);
    out.put8(o + 3, PIO_FLAG_ONLINK | PIO_FLAG_AUTO);
    out.put32(o + 4, valid);
    out.put32(o + 8, preferred);
    out.put32(o + 12, 0);
    for (let i = 0; i < 8; i++) out.put8(o + 16 + i, params.guestAddr[i]!);
    out.fill(o + 24, 8, 0);
    o += 32;
  }

  const nDns = params.dns.length > 127 ? 127 : params.dns.length;
  if (nDns > 0) {
    const len = 8 + 16 * nDns;
    if (o + len <= limit) {
      out.put8(o, NdpOpt.RDNSS);
      out.put8(o + 1, len / 8);
      out.put16(o + 2, 0);
      out.put32(o + 4, params.dnsLifetimeSeconds);
      for (let i = 0; i < nDns; i++) out.putBytes(o + 8 + 16 * i, params.dns[i]!);
      o += len;
    } else stats.omitted++;
  }

  if (params.search.length > 0) {
    const names = o + 8;
    const n = names < limit
      ? encodeDomainList(params.search, out.bytes, out.start + names, false, out.start + limit)
      : -1;
    const padded = (8 + n + 7) & ~7;
    if (n > 0 && o + padded <= limit && padded <= 255 * 8) {
      out.put8(o, NdpOpt.DNSSL);
      out.put8(o + 1, padded / 8);
      out.put16(o + 2, 0);
      out.put32(o + 4, params.dnsLifetimeSeconds);
      out.fill(names + n, padded - 8 - n, 0);
      o += padded;
    } else stats.omitted++;
  }

  const icmpLen = o - ICMP;
  writeEthHeader(out, 0, dstMac, params.ourMac, ETH_P_IPV6);
  writeIpv6Header(
    out,
    ETH_HLEN,
    params.ourLinkLocal,
    dstIp,
    IPPROTO_ICMPV6,
    icmpLen,
    NDP_HOP_LIMIT,
  );
  return finishIcmp(out, icmpLen);
}

/** Fills in the ICMPv6 checksum and returns the frame length (0 on overflow). */
function finishIcmp(out: PacketView, icmpLen: number): number {
  if (out.overflow) return 0;
  out.put16(ICMP + 2, 0);
  out.put16(
    ICMP + 2,
    l4ChecksumV6(out.view, out.start + ETH_HLEN, out.start + ICMP, icmpLen, IPPROTO_ICMPV6),
  );
  return out.setLength(ICMP + icmpLen);
}

function clampU16(n: number): number {
  return n > 0xffff ? 0xffff : n > 0 ? n | 0 : 0;
}
