/**
 * Minimal DHCPv6 server (RFC 8415) for one guest.
 *
 * Theory of operation: like the DHCP server, there is one client and one
 * address, so no binding state is kept and each message is answered from the
 * parameters alone. Our DUID is a DUID-LL (type 3) built from our MAC.
 *
 * - SOLICIT → ADVERTISE, or REPLY (with Rapid Commit) if the client included
 *   Rapid Commit (RFC 8415 §18.3.1);
 * - REQUEST, RENEW, REBIND → REPLY with the address in the client's IA_NA;
 *   other addresses the client lists in that IA_NA come back with zero
 *   lifetimes, so it stops using them (§18.3.4);
 * - CONFIRM → REPLY with status Success if every listed address is in the /64
 *   of the assigned address, NotOnLink otherwise; no reply without addresses;
 * - RELEASE, DECLINE → REPLY with status Success (nothing to free);
 * - INFORMATION-REQUEST → REPLY without IA.
 *
 * Only the first IA_NA of a message is served (IAID echoed, T1 = 0.5 and
 * T2 = 0.8 of the preferred lifetime); IA_TA and IA_PD are ignored. With no
 * address to assign (`guestAddr` = ::) the IA_NA carries status NoAddrsAvail.
 * Every reply carries our server identifier, the client identifier echoed, and
 * DNS servers (option 23) and domain list (option 24, uncompressed names) when
 * configured, whether or not the option request option asks for them, and the
 * client FQDN (option 39, RFC 4704, --fqdn) after them: flags 0, or O when the
 * client asked us to update its AAAA record (S), which we don't. Replies go
 * from `ourLinkLocal` port 547 to the client's address port 546 and MAC, with
 * the UDP checksum filled in, within the IPv6 minimum MTU: DNS options that do
 * not fit are left out and counted in `stats.omitted`.
 *
 * Validation (RFC 8415 §16): Ethernet type, IPv6 header and payload length, UDP
 * directly after IPv6, UDP length, port 547, non-multicast non-unspecified
 * source, every option (and IA_NA sub-option) inside its container, sizes of the
 * options we read, client identifier where required, server identifier present
 * and ours (REQUEST, RENEW, RELEASE, DECLINE) or absent (SOLICIT, CONFIRM,
 * REBIND), no IA in INFORMATION-REQUEST. The received UDP checksum is not
 * verified: with virtio offloads the guest may leave it partial.
 *
 * The reply must be built in a buffer distinct from the request's.
 */

import type { NetworkPlan } from "../config/network.ts";
import { encodeDomainList, encodeDomainName } from "./dns_name.ts";
import { ETH_ALEN, ETH_HLEN, ETH_P_IPV6, ETH_SRC, ethType, writeEthHeader } from "./ethernet.ts";
import {
  finishUdp6,
  IP6_HLEN,
  IP6_NXT,
  IP6_SRC,
  IPPROTO_UDP,
  ipv6PayloadEnd,
  isZeroBytes,
  UDP_DPORT,
  UDP_HLEN,
  UDP_LEN,
  writeIpv6Header,
  writeUdpHeader,
} from "./ip.ts";
import { PacketView, ServiceStats } from "./packet.ts";

/** UDP port of DHCPv6 servers and relays. */
export const DHCPV6_SERVER_PORT = 547;
/** UDP port of DHCPv6 clients. */
export const DHCPV6_CLIENT_PORT = 546;
/** Largest reply frame we build: Ethernet header plus the IPv6 minimum MTU, bytes. */
export const DHCPV6_MAX_FRAME = ETH_HLEN + 1280;
/** Hop limit of our replies. */
export const DHCPV6_HOP_LIMIT = 64;

/** DHCPv6 message types. */
export const Dhcpv6Type = {
  SOLICIT: 1,
  ADVERTISE: 2,
  REQUEST: 3,
  CONFIRM: 4,
  RENEW: 5,
  REBIND: 6,
  REPLY: 7,
  RELEASE: 8,
  DECLINE: 9,
  INFORMATION_REQUEST: 11,
} as const;

/** DHCPv6 option codes used here. */
export const Dhcpv6Opt = {
  CLIENTID: 1,
  SERVERID: 2,
  IA_NA: 3,
  IA_TA: 4,
  IAADDR: 5,
  ORO: 6,
  ELAPSED_TIME: 8,
  STATUS_CODE: 13,
  RAPID_COMMIT: 14,
  DNS_SERVERS: 23,
  DOMAIN_LIST: 24,
  CLIENT_FQDN: 39,
} as const;

/** Client FQDN (option 39) flags, RFC 4704 §4.1: S from the client, O in our answer. */
export const Dhcpv6FqdnFlag = {
  S: 0x01,
  O: 0x02,
} as const;

/** DHCPv6 status codes used here. */
export const Dhcpv6Status = {
  SUCCESS: 0,
  NO_ADDRS_AVAIL: 2,
  NOT_ON_LINK: 4,
} as const;

/** DUID type: link-layer address (DUID-LL). */
export const DUID_LL = 3;
/** Length of our DUID-LL (type, hardware type, MAC), bytes. */
export const DUID_LL_LEN = 10;

/** What the DHCPv6 server needs to know. Addresses are 16 bytes, network order. */
export interface Dhcpv6Params {
  /** Our MAC address (6 bytes): Ethernet source of replies and our DUID-LL. */
  readonly ourMac: Uint8Array;
  /** Link-local source address of replies. */
  readonly ourLinkLocal: Uint8Array;
  /** The one address we assign (IA_NA); :: = none (status NoAddrsAvail). */
  readonly guestAddr: Uint8Array;
  /** DNS servers (option 23), 16 bytes each; empty: option left out. */
  readonly dns: readonly Uint8Array[];
  /** Domain search list (option 24); empty: option left out. */
  readonly search: readonly string[];
  /** Client FQDN (option 39), a valid domain name; "": option left out. */
  readonly fqdn: string;
  /** Valid lifetime of the address, seconds (0xffffffff: infinite). */
  readonly validLifetimeSeconds: number;
  /** Preferred lifetime of the address, seconds, at most the valid lifetime. */
  readonly preferredLifetimeSeconds: number;
}

/** Address lifetimes (seconds): infinite, since the address never changes. */
const LIFETIME_INFINITE = 0xffffffff;

/**
 * The DHCPv6 server's parameters for `plan`, or undefined when it does not run
 * (no IPv6, --no-dhcpv6). The lease policy lives here: the address is valid and
 * preferred for ever.
 */
export function dhcpv6ParamsFor(plan: NetworkPlan): Dhcpv6Params | undefined {
  const ip6 = plan.ip6;
  if (ip6 === undefined || !plan.dhcpv6) return undefined;
  return {
    ourMac: plan.ourMac,
    ourLinkLocal: ip6.ourLinkLocal,
    guestAddr: ip6.address,
    dns: ip6.dns,
    search: plan.search,
    fqdn: plan.fqdn,
    validLifetimeSeconds: LIFETIME_INFINITE,
    preferredLifetimeSeconds: LIFETIME_INFINITE,
  };
}

/** Reasons a DHCPv6 frame gets no reply. */
export type Dhcpv6Drop =
  | "truncated"
  | "notIpv6"
  | "badIpHeader"
  | "notUdp"
  | "badUdpLength"
  | "notServerPort"
  | "badSource"
  | "badOptions"
  | "noClientId"
  | "serverIdMismatch"
  | "unexpectedServerId"
  | "unexpectedIa"
  | "nothingToConfirm"
  | "unhandledType"
  | "noRoom";

/** New counters for `dhcpv6Reply`. */
export function newDhcpv6Stats(): ServiceStats<Dhcpv6Drop> {
  return new ServiceStats<Dhcpv6Drop>([
    "truncated",
    "notIpv6",
    "badIpHeader",
    "notUdp",
    "badUdpLength",
    "notServerPort",
    "badSource",
    "badOptions",
    "noClientId",
    "serverIdMismatch",
    "unexpectedServerId",
    "unexpectedIa",
    "nothingToConfirm",
    "unhandledType",
    "noRoom",
  ]);
}

/** Default counters used when the caller passes none. */
export const dhcpv6Stats: ServiceStats<Dhcpv6Drop> = newDhcpv6Stats();

/** Fields of the message being answered (one preallocated instance; window offsets). */
class Dhcpv6Request {
  msg = 0; // offset of the DHCPv6 message
  end = 0;
  type = 0;
  clientId = -1; // offset of option data
  clientIdLength = 0;
  serverId = -1;
  serverIdLength = 0;
  iaNa = -1; // offset of the first IA_NA's data
  iaNaLength = 0;
  rapidCommit = false;
  fqdnFlags = -1; // flags of the client's FQDN option, -1: none
}

const req = new Dhcpv6Request();
const scratchMac = new Uint8Array(ETH_ALEN);
const scratchDst = new Uint8Array(16);
const UDP = ETH_HLEN + IP6_HLEN;
const MSG = UDP + UDP_HLEN;

/**
 * True if `pkt` is IPv6/UDP to port 547 directly after the IPv6 header, for
 * dispatching before `dhcpv6Reply`. Does not validate the message.
 */
export function isDhcpv6Frame(pkt: PacketView): boolean {
  return ethType(pkt) === ETH_P_IPV6 && pkt.u8(ETH_HLEN + IP6_NXT) === IPPROTO_UDP &&
    pkt.u16(UDP + UDP_DPORT) === DHCPV6_SERVER_PORT;
}

/**
 * Answers the DHCPv6 message in `pkt` (a whole Ethernet frame). Writes the reply
 * frame at the window start of `out` (a different buffer), sets `out`'s length and
 * returns it, or returns 0 (counting the reason in `stats`) if there is no reply.
 */
export function dhcpv6Reply(
  pkt: PacketView,
  params: Dhcpv6Params,
  out: PacketView,
  stats: ServiceStats<Dhcpv6Drop> = dhcpv6Stats,
): number {
  out.setLength(0);
  const why = parseMessage(pkt);
  if (why !== null) return stats.drop(why);

  const T = Dhcpv6Type;
  const hasServerId = req.serverId >= 0;
  const ours = hasServerId && isOurDuid(pkt, req.serverId, req.serverIdLength, params.ourMac);
  let replyType: number = T.REPLY;
  let withIa = false;
  let status = -1;
  let kind: string;
  switch (req.type) {
    case T.SOLICIT:
      if (req.clientId < 0) return stats.drop("noClientId");
      if (hasServerId) return stats.drop("unexpectedServerId");
      replyType = req.rapidCommit ? T.REPLY : T.ADVERTISE;
      withIa = true;
      kind = req.rapidCommit ? "reply-rapid" : "advertise";
      break;
    case T.REQUEST:
    case T.RENEW:
      if (req.clientId < 0) return stats.drop("noClientId");
      if (!ours) return stats.drop("serverIdMismatch");
      withIa = true;
      kind = "reply";
      break;
    case T.REBIND:
      if (req.clientId < 0) return stats.drop("noClientId");
      if (hasServerId) return stats.drop("unexpectedServerId");
      withIa = true;
      kind = "reply";
      break;
    case T.CONFIRM: {
      if (req.clientId < 0) return stats.drop("noClientId");
      if (hasServerId) return stats.drop("unexpectedServerId");
      const onLink = confirmOnLink(pkt, params.guestAddr);
      if (onLink < 0) return stats.drop("nothingToConfirm");
      status = onLink === 1 ? Dhcpv6Status.SUCCESS : Dhcpv6Status.NOT_ON_LINK;
      kind = "reply-confirm";
      break;
    }
    case T.RELEASE:
    case T.DECLINE:
      if (req.clientId < 0) return stats.drop("noClientId");
      if (!ours) return stats.drop("serverIdMismatch");
      status = Dhcpv6Status.SUCCESS;
      kind = "reply-release";
      break;
    case T.INFORMATION_REQUEST:
      if (hasServerId && !ours) return stats.drop("serverIdMismatch");
      if (req.iaNa >= 0) return stats.drop("unexpectedIa");
      kind = "reply-info";
      break;
    default:
      return stats.drop("unhandledType");
  }

  const len = buildReply(pkt, params, out, replyType, withIa, status, stats);
  return len > 0 ? stats.reply(kind, len) : stats.drop("noRoom");
}

/** True if the DUID at `off` (`len` bytes) of `pkt` is our DUID-LL for `mac`. */
function isOurDuid(pkt: PacketView, off: number, len: number, mac: Uint8Array): boolean {
  return len === DUID_LL_LEN && pkt.u16(off) === DUID_LL && pkt.u16(off + 2) === 1 &&
    pkt.equals(off + 4, mac);
}

/** Validates `pkt` and fills `req`; returns a drop reason or null. */
function parseMessage(pkt: PacketView): Dhcpv6Drop | null {
  if (!pkt.has(0, ETH_HLEN)) return "truncated";
  if (ethType(pkt) !== ETH_P_IPV6) return "notIpv6";
  const ip = ETH_HLEN;
  const ipEnd = ipv6PayloadEnd(pkt, ip);
  if (ipEnd < 0) return pkt.has(ip, IP6_HLEN) ? "badIpHeader" : "truncated";
  if (pkt.u8(ip + IP6_NXT) !== IPPROTO_UDP) return "notUdp";
  if (UDP + UDP_HLEN > ipEnd) return "truncated";
  const udpLen = pkt.u16(UDP + UDP_LEN);
  if (udpLen < UDP_HLEN || UDP + udpLen > ipEnd) return "badUdpLength";
  if (pkt.u16(UDP + UDP_DPORT) !== DHCPV6_SERVER_PORT) return "notServerPort";
  if (pkt.u8(ip + IP6_SRC) === 0xff || pkt.isZero(ip + IP6_SRC, 16)) return "badSource";
  const end = UDP + udpLen;
  if (end - MSG < 4) return "truncated";

  req.msg = MSG;
  req.end = end;
  req.type = pkt.u8(MSG);
  req.clientId = -1;
  req.clientIdLength = 0;
  req.serverId = -1;
  req.serverIdLength = 0;
  req.iaNa = -1;
  req.iaNaLength = 0;
  req.rapidCommit = false;
  req.fqdnFlags = -1;

  let o = MSG + 4;
  while (o < end) {
    if (o + 4 > end) return "badOptions";
    const code = pkt.u16(o);
    const len = pkt.u16(o + 2);
    const data = o + 4;
    if (data + len > end) return "badOptions";
    switch (code) {
      case Dhcpv6Opt.CLIENTID:
        if (len < 2 || len > 130 || req.clientId >= 0) return "badOptions";
        req.clientId = data;
        req.clientIdLength = len;
        break;
      case Dhcpv6Opt.SERVERID:
        if (len < 2 || len > 130 || req.serverId >= 0) return "badOptions";
        req.serverId = data;
        req.serverIdLength = len;
        break;
      case Dhcpv6Opt.IA_NA:
        if (len < 12 || !validIaNaOptions(pkt, data + 12, data + len)) return "badOptions";
        if (req.iaNa < 0) {
          req.iaNa = data;
          req.iaNaLength = len;
        }
        break;
      case Dhcpv6Opt.ORO:
        if ((len & 1) !== 0) return "badOptions";
        break;
      case Dhcpv6Opt.ELAPSED_TIME:
        if (len !== 2) return "badOptions";
        break;
      case Dhcpv6Opt.RAPID_COMMIT:
        if (len !== 0) return "badOptions";
        req.rapidCommit = true;
        break;
      case Dhcpv6Opt.CLIENT_FQDN:
        if (len < 1) return "badOptions";
        req.fqdnFlags = pkt.u8(data);
        break;
    }
    o = data + len;
  }
  return null;
}

/** True if the IA_NA sub-options in [start, end) are well formed. */
function validIaNaOptions(pkt: PacketView, start: number, end: number): boolean {
  let o = start;
  while (o < end) {
    if (o + 4 > end) return false;
    const code = pkt.u16(o);
    const len = pkt.u16(o + 2);
    if (o + 4 + len > end) return false;
    if (code === Dhcpv6Opt.IAADDR && len < 24) return false;
    o += 4 + len;
  }
  return true;
}

/**
 * For CONFIRM: 1 if every IAADDR in the IA_NA is in the /64 of `guestAddr`, 0 if
 * one is not (or we have no address), -1 if there are no addresses at all.
 */
function confirmOnLink(pkt: PacketView, guestAddr: Uint8Array): number {
  if (req.iaNa < 0) return -1;
  let seen = false;
  let all = !isZeroBytes(guestAddr, 0, 16);
  const end = req.iaNa + req.iaNaLength;
  for (let o = req.iaNa + 12; o + 4 <= end; o += 4 + pkt.u16(o + 2)) {
    if (pkt.u16(o) !== Dhcpv6Opt.IAADDR) continue;
    seen = true;
    for (let i = 0; i < 8; i++) if (pkt.u8(o + 4 + i) !== guestAddr[i]) all = false;
  }
  return seen ? (all ? 1 : 0) : -1;
}

function buildReply(
  pkt: PacketView,
  params: Dhcpv6Params,
  out: PacketView,
  type: number,
  withIa: boolean,
  status: number,
  stats: ServiceStats<Dhcpv6Drop>,
): number {
  const limit = out.capacity < DHCPV6_MAX_FRAME ? out.capacity : DHCPV6_MAX_FRAME;
  let o = MSG;
  out.put8(o, type);
  out.putFrom(o + 1, pkt, req.msg + 1, 3); // transaction ID
  o += 4;

  out.put16(o, Dhcpv6Opt.SERVERID);
  out.put16(o + 2, DUID_LL_LEN);
  out.put16(o + 4, DUID_LL);
  out.put16(o + 6, 1); // hardware type: Ethernet
  out.putBytes(o + 8, params.ourMac);
  o += 4 + DUID_LL_LEN;

  if (req.clientId >= 0) {
    out.put16(o, Dhcpv6Opt.CLIENTID);
    out.put16(o + 2, req.clientIdLength);
    out.putFrom(o + 4, pkt, req.clientId, req.clientIdLength);
    o += 4 + req.clientIdLength;
  }

  if (type === Dhcpv6Type.REPLY && req.type === Dhcpv6Type.SOLICIT) {
    out.put16(o, Dhcpv6Opt.RAPID_COMMIT);
    out.put16(o + 2, 0);
    o += 4;
  }

  if (withIa && req.iaNa >= 0) o = putIaNa(pkt, params, out, o, limit);
  if (status >= 0) o = putStatus(out, o, status);
  if (o > limit || out.overflow) return 0;

  if (status < 0 || req.type === Dhcpv6Type.CONFIRM) {
    const nDns = params.dns.length;
    if (nDns > 0) {
      if (o + 4 + 16 * nDns <= limit) {
        out.put16(o, Dhcpv6Opt.DNS_SERVERS);
        out.put16(o + 2, 16 * nDns);
        for (let i = 0; i < nDns; i++) out.putBytes(o + 4 + 16 * i, params.dns[i]!);
        o += 4 + 16 * nDns;
      } else stats.omitted++;
    }
    if (params.search.length > 0) {
      const n = o + 4 < limit
        ? encodeDomainList(params.search, out.bytes, out.start + o + 4, false, out.start + limit)
        : -1;
      if (n > 0) {
        out.put16(o, Dhcpv6Opt.DOMAIN_LIST);
        out.put16(o + 2, n);
        o += 4 + n;
      } else stats.omitted++;
    }
    if (params.fqdn.length > 0) {
      const n = o + 5 < limit
        ? encodeDomainName(params.fqdn, out.bytes, out.start + o + 5, out.start + limit)
        : -1;
      if (n > 0) {
        out.put16(o, Dhcpv6Opt.CLIENT_FQDN);
        out.put16(o + 2, 1 + n);
        const askedUpdate = req.fqdnFlags >= 0 && (req.fqdnFlags & Dhcpv6FqdnFlag.S) !== 0;
        out.put8(o + 4, askedUpdate ? Dhcpv6FqdnFlag.O : 0);
        o += 5 + n;
      } else stats.omitted++;
    }
  }

  const msgLen = o - MSG;
  pkt.copyOut(ETH_SRC, ETH_ALEN, scratchMac);
  pkt.copyOut(ETH_HLEN + IP6_SRC, 16, scratchDst);
  writeEthHeader(out, 0, scratchMac, params.ourMac, ETH_P_IPV6);
  writeIpv6Header(
    out,
    ETH_HLEN,
    params.ourLinkLocal,
    scratchDst,
    IPPROTO_UDP,
    UDP_HLEN + msgLen,
    DHCPV6_HOP_LIMIT,
  );
  writeUdpHeader(out, UDP, DHCPV6_SERVER_PORT, DHCPV6_CLIENT_PORT, msgLen);
  if (out.overflow) return 0;
  finishUdp6(out, ETH_HLEN, UDP);
  return out.setLength(o);
}

/** Writes our IA_NA answer at `o`; returns the offset past it (checked by the caller). */
function putIaNa(
  pkt: PacketView,
  params: Dhcpv6Params,
  out: PacketView,
  start: number,
  limit: number,
): number {
  const valid = params.validLifetimeSeconds >>> 0;
  let preferred = params.preferredLifetimeSeconds >>> 0;
  if (preferred > valid) preferred = valid;
  const infinite = preferred === 0xffffffff;
  const haveAddr = !isZeroBytes(params.guestAddr, 0, 16);

  let o = start + 4;
  out.putFrom(o, pkt, req.iaNa, 4); // IAID
  out.put32(o + 4, haveAddr ? (infinite ? 0xffffffff : Math.floor(preferred / 2)) : 0);
  out.put32(o + 8, haveAddr ? (infinite ? 0xffffffff : Math.floor(preferred * 0.8)) : 0);
  o += 12;

  if (!haveAddr) {
    o = putStatus(out, o, Dhcpv6Status.NO_ADDRS_AVAIL);
  } else {
    o = putIaAddr(out, o, params.guestAddr, preferred, valid);
    // Addresses the client holds that are not ours: zero lifetimes (RFC 8415 §18.3.4).
    if (req.type !== Dhcpv6Type.SOLICIT) {
      const end = req.iaNa + req.iaNaLength;
      for (let s = req.iaNa + 12; s + 4 <= end; s += 4 + pkt.u16(s + 2)) {
        if (pkt.u16(s) !== Dhcpv6Opt.IAADDR || pkt.equals(s + 4, params.guestAddr)) continue;
        if (o + 28 > limit) break;
        out.put16(o, Dhcpv6Opt.IAADDR);
        out.put16(o + 2, 24);
        out.putFrom(o + 4, pkt, s + 4, 16);
        out.put32(o + 20, 0);
        out.put32(o + 24, 0);
        o += 28;
      }
    }
  }
  out.put16(start, Dhcpv6Opt.IA_NA);
  out.put16(start + 2, o - start - 4);
  return o;
}

function putIaAddr(
  out: PacketView,
  o: number,
  addr: Uint8Array,
  preferred: number,
  valid: number,
): number {
  out.put16(o, Dhcpv6Opt.IAADDR);
  out.put16(o + 2, 24);
  out.putBytes(o + 4, addr);
  out.put32(o + 20, preferred);
  out.put32(o + 24, valid);
  return o + 28;
}

function putStatus(out: PacketView, o: number, code: number): number {
  out.put16(o, Dhcpv6Opt.STATUS_CODE);
  out.put16(o + 2, 2);
  out.put16(o + 4, code);
  return o + 6;
}
