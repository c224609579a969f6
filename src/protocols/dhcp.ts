/**
 * Minimal DHCP server (RFC 2131, options RFC 2132) for one guest.
 *
 * Theory of operation: there is exactly one client and exactly one address to
 * hand out, so the server keeps no lease state. Each request is answered from
 * the parameters alone:
 *
 * - DISCOVER → OFFER of `guestAddr`, whatever address the client asked for;
 * - REQUEST → ACK if the address the client wants (option 50 in SELECTING and
 *   INIT-REBOOT, `ciaddr` in RENEWING/REBINDING) is `guestAddr`, NAK otherwise;
 *   a REQUEST naming another server identifier (the client chose someone else)
 *   gets no reply;
 * - INFORM → ACK with configuration but no address and no lease time;
 * - DECLINE, RELEASE and anything else → no reply.
 *
 * Replies carry message type (53), server identifier (54), lease time (51),
 * subnet mask (1), router (3), DNS servers (6), MTU (26, only if `mtu` != 0),
 * host name (12, -H) and client FQDN (81, RFC 4702, --fqdn: flags E for a name in
 * wire format, RCODE1 and RCODE2 255 as RFC 4702 asks of servers), domain search (119, RFC 3397,
 * compressed, split over several options past 255 bytes, RFC 3396) and the
 * client identifier echoed back (61, RFC 6842). All options are sent whether or
 * not the client listed them in its parameter request list. The reply respects
 * the client's maximum message size (57, never below 576 bytes of IP datagram):
 * optional options that do not fit are left out (DNS before search list), and
 * counted in `stats.omitted`.
 *
 * Addressing follows RFC 2131 §4.1: NAKs and replies to clients setting the
 * broadcast flag go to 255.255.255.255 and ff:ff:ff:ff:ff:ff; replies to a client
 * that has an address (`ciaddr`, renewing or INFORM) go to that address; other
 * replies go to `yiaddr`. Unicast frames go to the MAC the request came from.
 * The IPv4 source and server identifier are `serverAddr`. UDP 67 → 68, with IPv4
 * and UDP checksums always filled in.
 *
 * Validation: Ethernet type, IPv4 header (version, length, checksum), no
 * fragments, UDP length, destination port 67, BOOTREQUEST with Ethernet
 * hardware type and 6-byte address, magic cookie, every option inside the
 * message, fixed-size options with their exact size, message type present.
 * The received UDP checksum is not verified: with virtio offloads the guest may
 * leave it partial. Any failure means no reply and a counted drop reason.
 *
 * The reply must be built in a buffer distinct from the request's.
 */

import type { NetworkPlan } from "../config/network.ts";
import { encodeDomainList, encodeDomainName } from "./dns_name.ts";
import {
  ETH_ALEN,
  ETH_HLEN,
  ETH_P_IP,
  ETH_SRC,
  ethType,
  isGroupMac,
  MAC_BROADCAST,
  writeEthHeader,
} from "./ethernet.ts";
import {
  finishUdp4,
  IP4_BROADCAST,
  IP4_PROTO,
  IPPROTO_UDP,
  ipv4HeaderLength,
  ipv4IsFragment,
  UDP_DPORT,
  UDP_HLEN,
  UDP_LEN,
  writeIpv4Header,
  writeUdpHeader,
} from "./ip.ts";
import { PacketView, ServiceStats } from "./packet.ts";

/** UDP port of DHCP servers. */
export const DHCP_SERVER_PORT = 67;
/** UDP port of DHCP clients. */
export const DHCP_CLIENT_PORT = 68;

/** BOOTP field offsets from the start of the UDP payload. */
export const BOOTP_OP = 0;
/** Offset of the hardware type. */
export const BOOTP_HTYPE = 1;
/** Offset of the hardware address length. */
export const BOOTP_HLEN = 2;
/** Offset of the relay hop count. */
export const BOOTP_HOPS = 3;
/** Offset of the transaction ID (4 bytes, opaque). */
export const BOOTP_XID = 4;
/** Offset of the seconds elapsed (big-endian u16). */
export const BOOTP_SECS = 8;
/** Offset of the flags (big-endian u16; 0x8000 = broadcast). */
export const BOOTP_FLAGS = 10;
/** Offset of the client's current address (4 bytes). */
export const BOOTP_CIADDR = 12;
/** Offset of "your" (assigned) address (4 bytes). */
export const BOOTP_YIADDR = 16;
/** Offset of the next server address (4 bytes). */
export const BOOTP_SIADDR = 20;
/** Offset of the relay agent address (4 bytes). */
export const BOOTP_GIADDR = 24;
/** Offset of the client hardware address (16 bytes, first `hlen` used). */
export const BOOTP_CHADDR = 28;
/** Offset of the magic cookie (99.130.83.99). */
export const BOOTP_COOKIE = 236;
/** Offset of the first option. */
export const BOOTP_OPTIONS = 240;
/** Minimum BOOTP message we send (RFC 1542 §2.1), bytes. */
export const BOOTP_MIN_LEN = 300;
/** The magic cookie as a big-endian u32. */
export const DHCP_MAGIC = 0x63825363;
/** BOOTP flag: client wants broadcast replies. */
export const DHCP_FLAG_BROADCAST = 0x8000;
/** Smallest maximum message size (IP datagram bytes) a client may announce. */
export const DHCP_MIN_MAX_SIZE = 576;

/** DHCP message types (option 53). */
export const DhcpType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;

/** DHCP option codes used here. */
export const DhcpOpt = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOST_NAME: 12,
  DOMAIN_NAME: 15,
  MTU: 26,
  REQUESTED_ADDR: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_LIST: 55,
  MAX_SIZE: 57,
  CLIENT_ID: 61,
  CLIENT_FQDN: 81,
  DOMAIN_SEARCH: 119,
  END: 255,
} as const;

/** What the DHCP server needs to know. Addresses are 4 bytes, network order. */
export interface DhcpParams {
  /** Our MAC address (6 bytes): Ethernet source of replies. */
  readonly ourMac: Uint8Array;
  /** Source address of replies and server identifier (option 54), usually the gateway. */
  readonly serverAddr: Uint8Array;
  /** The one address we assign (yiaddr). */
  readonly guestAddr: Uint8Array;
  /** Subnet prefix length, 0-32 bits (option 1). */
  readonly prefixLength: number;
  /** Default router (option 3); 0.0.0.0 means none, option left out. */
  readonly router: Uint8Array;
  /** DNS servers (option 6), 4 bytes each; empty: option left out. At most 63 are sent. */
  readonly dns: readonly Uint8Array[];
  /** Domain search list (option 119; no option 15, as the C passt); empty: left out. */
  readonly search: readonly string[];
  /** Interface MTU in bytes (option 26), 68-65535; 0: option left out. */
  readonly mtu: number;
  /** Host name (option 12), ASCII, 1-255 bytes; "": option left out. */
  readonly hostname: string;
  /** Client FQDN (option 81), a valid domain name; "": option left out. */
  readonly fqdn: string;
  /** Lease time (option 51), seconds; 0xffffffff means infinite. */
  readonly leaseTimeSeconds: number;
}

/** Client FQDN (option 81) flag E: the name is in DNS wire format (RFC 4702 §2.1). */
export const DHCP_FQDN_FLAG_E = 0x04;

/** Lease time (option 51) meaning "infinite" (RFC 2131 3.3), seconds. */
export const DHCP_LEASE_INFINITE = 0xffffffff;

/**
 * The DHCP server's parameters for `plan`, or undefined when it does not run
 * (no IPv4, --no-dhcp, or no gateway to answer from). The lease policy lives
 * here: infinite (RFC 2131 3.3), as the C passt, since the address never changes.
 */
export function dhcpParamsFor(plan: NetworkPlan): DhcpParams | undefined {
  const ip4 = plan.ip4;
  if (ip4 === undefined || !plan.dhcp || ip4.gateway === undefined) return undefined;
  return {
    ourMac: plan.ourMac,
    serverAddr: ip4.gateway,
    guestAddr: ip4.address,
    prefixLength: ip4.prefixLength,
    router: ip4.gateway,
    dns: ip4.dns,
    search: plan.search,
    mtu: plan.mtu,
    hostname: plan.hostname,
    fqdn: plan.fqdn,
    leaseTimeSeconds: DHCP_LEASE_INFINITE,
  };
}

/** Reasons a DHCP frame gets no reply. */
export type DhcpDrop =
  | "truncated"
  | "notIpv4"
  | "badIpHeader"
  | "fragment"
  | "notUdp"
  | "badUdpLength"
  | "notServerPort"
  | "notRequest"
  | "badHardware"
  | "badCookie"
  | "badOptions"
  | "noMessageType"
  | "otherServer"
  | "unhandledType"
  | "noRoom";

/** New counters for `dhcpReply`. */
export function newDhcpStats(): ServiceStats<DhcpDrop> {
  return new ServiceStats<DhcpDrop>([
    "truncated",
    "notIpv4",
    "badIpHeader",
    "fragment",
    "notUdp",
    "badUdpLength",
    "notServerPort",
    "notRequest",
    "badHardware",
    "badCookie",
    "badOptions",
    "noMessageType",
    "otherServer",
    "unhandledType",
    "noRoom",
  ]);
}

/** Default counters used when the caller passes none. */
export const dhcpStats: ServiceStats<DhcpDrop> = newDhcpStats();

/** Fields of the request being answered (one preallocated instance; offsets are in the frame). */
class DhcpRequest {
  bootp = 0; // window offset of the BOOTP message
  end = 0; // window offset where the UDP payload ends
  type = 0;
  requestedAddr = -1; // offset of option 50 data
  serverId = -1; // offset of option 54 data
  maxSize = DHCP_MIN_MAX_SIZE;
  clientId = -1; // offset of option 61 data
  clientIdLength = 0;
}

const req = new DhcpRequest();
const scratchAddr = new Uint8Array(4);
const scratchMac = new Uint8Array(ETH_ALEN);

/**
 * True if `pkt` looks like a DHCP request for us (IPv4/UDP to port 67), for
 * dispatching before `dhcpReply`. Does not validate the message.
 */
export function isDhcpFrame(pkt: PacketView): boolean {
  if (ethType(pkt) !== ETH_P_IP || pkt.u8(ETH_HLEN + IP4_PROTO) !== IPPROTO_UDP) return false;
  const ihl = (pkt.u8(ETH_HLEN) & 0x0f) * 4;
  return pkt.u16(ETH_HLEN + ihl + UDP_DPORT) === DHCP_SERVER_PORT;
}

/**
 * Answers the DHCP request in `pkt` (a whole Ethernet frame). Writes the reply
 * frame at the window start of `out` (a different buffer), sets `out`'s length and
 * returns it, or returns 0 (counting the reason in `stats`) if there is no reply.
 */
export function dhcpReply(
  pkt: PacketView,
  params: DhcpParams,
  out: PacketView,
  stats: ServiceStats<DhcpDrop> = dhcpStats,
): number {
  out.setLength(0);
  const why = parseRequest(pkt);
  if (why !== null) return stats.drop(why);

  const b = req.bootp;
  let replyType: number;
  let kind: string;
  switch (req.type) {
    case DhcpType.DISCOVER:
      replyType = DhcpType.OFFER;
      kind = "offer";
      break;
    case DhcpType.REQUEST: {
      if (req.serverId >= 0 && !pkt.equals(req.serverId, params.serverAddr)) {
        return stats.drop("otherServer");
      }
      const wanted = req.requestedAddr >= 0 ? req.requestedAddr : b + BOOTP_CIADDR;
      if (pkt.equals(wanted, params.guestAddr)) {
        replyType = DhcpType.ACK;
        kind = "ack";
      } else {
        replyType = DhcpType.NAK;
        kind = "nak";
      }
      break;
    }
    case DhcpType.INFORM:
      replyType = DhcpType.ACK;
      kind = "inform-ack";
      break;
    default:
      return stats.drop("unhandledType");
  }

  const len = buildReply(pkt, params, out, replyType, stats);
  if (len === 0) return stats.drop("noRoom");
  return stats.reply(kind, len);
}

/** Validates `pkt` and fills `req`; returns a drop reason or null. */
function parseRequest(pkt: PacketView): DhcpDrop | null {
  if (!pkt.has(0, ETH_HLEN)) return "truncated";
  if (ethType(pkt) !== ETH_P_IP) return "notIpv4";
  const ip = ETH_HLEN;
  const ihl = ipv4HeaderLength(pkt, ip);
  if (ihl < 0) return pkt.has(ip, 20) ? "badIpHeader" : "truncated";
  if (ipv4IsFragment(pkt, ip)) return "fragment";
  if (pkt.u8(ip + IP4_PROTO) !== IPPROTO_UDP) return "notUdp";
  const ipEnd = ip + pkt.u16(ip + 2);
  const udp = ip + ihl;
  if (udp + UDP_HLEN > ipEnd) return "truncated";
  const udpLen = pkt.u16(udp + UDP_LEN);
  if (udpLen < UDP_HLEN || udp + udpLen > ipEnd) return "badUdpLength";
  if (pkt.u16(udp + UDP_DPORT) !== DHCP_SERVER_PORT) return "notServerPort";

  const b = udp + UDP_HLEN;
  const end = udp + udpLen;
  if (end - b < BOOTP_OPTIONS) return "truncated";
  if (pkt.u8(b + BOOTP_OP) !== 1) return "notRequest";
  if (pkt.u8(b + BOOTP_HTYPE) !== 1 || pkt.u8(b + BOOTP_HLEN) !== ETH_ALEN) return "badHardware";
  if (isGroupMac(pkt, b + BOOTP_CHADDR) || isGroupMac(pkt, ETH_SRC)) return "badHardware";
  if (pkt.u32(b + BOOTP_COOKIE) !== DHCP_MAGIC) return "badCookie";

  req.bootp = b;
  req.end = end;
  req.type = 0;
  req.requestedAddr = -1;
  req.serverId = -1;
  req.maxSize = DHCP_MIN_MAX_SIZE;
  req.clientId = -1;
  req.clientIdLength = 0;

  let o = b + BOOTP_OPTIONS;
  while (o < end) {
    const code = pkt.u8(o);
    if (code === DhcpOpt.PAD) {
      o++;
      continue;
    }
    if (code === DhcpOpt.END) break;
    const len = pkt.u8(o + 1);
    if (len < 0 || o + 2 + len > end) return "badOptions";
    const data = o + 2;
    switch (code) {
      case DhcpOpt.MESSAGE_TYPE:
        if (len !== 1) return "badOptions";
        if (req.type === 0) req.type = pkt.u8(data);
        break;
      case DhcpOpt.REQUESTED_ADDR:
        if (len !== 4) return "badOptions";
        if (req.requestedAddr < 0) req.requestedAddr = data;
        break;
      case DhcpOpt.SERVER_ID:
        if (len !== 4) return "badOptions";
        if (req.serverId < 0) req.serverId = data;
        break;
      case DhcpOpt.MAX_SIZE: {
        if (len !== 2) return "badOptions";
        const size = pkt.u16(data);
        req.maxSize = size > DHCP_MIN_MAX_SIZE ? size : DHCP_MIN_MAX_SIZE;
        break;
      }
      case DhcpOpt.CLIENT_ID:
        if (len < 2) return "badOptions";
        if (req.clientId < 0) {
          req.clientId = data;
          req.clientIdLength = len;
        }
        break;
    }
    o = data + len;
  }
  if (req.type === 0) return "noMessageType";
  return null;
}

/** Builds the reply frame of type `type`; returns its length or 0 if it does not fit. */
function buildReply(
  pkt: PacketView,
  params: DhcpParams,
  out: PacketView,
  type: number,
  stats: ServiceStats<DhcpDrop>,
): number {
  const b = req.bootp;
  const ip = ETH_HLEN;
  const udp = ip + 20;
  const rb = udp + UDP_HLEN; // reply BOOTP offset
  const maxFrame = ETH_HLEN + req.maxSize;
  const limit = out.capacity < maxFrame ? out.capacity : maxFrame;
  if (rb + BOOTP_MIN_LEN > limit) return 0;

  const isInform = req.type === DhcpType.INFORM;
  const isNak = type === DhcpType.NAK;
  const giveAddress = !isNak && !isInform;

  // Fixed BOOTP part: zero, then copy what the client sent that we echo.
  out.fill(rb, BOOTP_OPTIONS, 0);
  out.put8(rb + BOOTP_OP, 2);
  out.put8(rb + BOOTP_HTYPE, 1);
  out.put8(rb + BOOTP_HLEN, ETH_ALEN);
  out.putFrom(rb + BOOTP_XID, pkt, b + BOOTP_XID, 4);
  out.put16(rb + BOOTP_FLAGS, pkt.u16(b + BOOTP_FLAGS) & DHCP_FLAG_BROADCAST);
  if (isInform) out.putFrom(rb + BOOTP_CIADDR, pkt, b + BOOTP_CIADDR, 4);
  if (giveAddress) out.putBytes(rb + BOOTP_YIADDR, params.guestAddr);
  out.putFrom(rb + BOOTP_GIADDR, pkt, b + BOOTP_GIADDR, 4);
  out.putFrom(rb + BOOTP_CHADDR, pkt, b + BOOTP_CHADDR, 16);
  out.put32(rb + BOOTP_COOKIE, DHCP_MAGIC);

  // Options. `room` keeps one byte for END.
  let o = rb + BOOTP_OPTIONS;
  const room = limit - 1;
  const essential = 3 + 6 + (giveAddress ? 6 : 0) +
    (req.clientId >= 0 ? 2 + req.clientIdLength : 0);
  if (o + essential > room) return 0;

  o = putOpt8(out, o, DhcpOpt.MESSAGE_TYPE, type);
  o = putOptBytes(out, o, DhcpOpt.SERVER_ID, params.serverAddr);
  if (giveAddress) o = putOpt32(out, o, DhcpOpt.LEASE_TIME, params.leaseTimeSeconds);
  if (req.clientId >= 0) {
    out.put8(o, DhcpOpt.CLIENT_ID);
    out.put8(o + 1, req.clientIdLength);
    out.putFrom(o + 2, pkt, req.clientId, req.clientIdLength);
    o += 2 + req.clientIdLength;
  }

  if (!isNak) {
    if (o + 6 <= room) {
      o = putOpt32(out, o, DhcpOpt.SUBNET_MASK, prefixToMask(params.prefixLength));
    } else stats.omitted++;
    if (!isZero4(params.router)) {
      if (o + 6 <= room) o = putOptBytes(out, o, DhcpOpt.ROUTER, params.router);
      else stats.omitted++;
    }
    const nDns = params.dns.length > 63 ? 63 : params.dns.length;
    if (nDns > 0) {
      if (o + 2 + 4 * nDns <= room) {
        out.put8(o, DhcpOpt.DNS);
        out.put8(o + 1, 4 * nDns);
        for (let i = 0; i < nDns; i++) out.putBytes(o + 2 + 4 * i, params.dns[i]!);
        o += 2 + 4 * nDns;
      } else stats.omitted++;
    }
    if (params.mtu >= 68 && params.mtu <= 0xffff) {
      if (o + 4 <= room) {
        out.put8(o, DhcpOpt.MTU);
        out.put8(o + 1, 2);
        out.put16(o + 2, params.mtu);
        o += 4;
      } else stats.omitted++;
    }
    const nHost = params.hostname.length;
    if (nHost > 0 && nHost <= 255) {
      if (o + 2 + nHost <= room) {
        out.put8(o, DhcpOpt.HOST_NAME);
        out.put8(o + 1, nHost);
        for (let i = 0; i < nHost; i++) out.put8(o + 2 + i, params.hostname.charCodeAt(i) & 0xff);
        o += 2 + nHost;
      } else stats.omitted++;
    }
    if (params.fqdn.length > 0) {
      const n = o + 5 < room
        ? encodeDomainName(params.fqdn, out.bytes, out.start + o + 5, out.start + room)
        : -1;
      if (n > 0 && n <= 252) {
        out.put8(o, DhcpOpt.CLIENT_FQDN);
        out.put8(o + 1, 3 + n);
        out.put8(o + 2, DHCP_FQDN_FLAG_E);
        out.put8(o + 3, 255); // RCODE1 and RCODE2: RFC 4702 §2.2 asks servers for 255
        out.put8(o + 4, 255);
        o += 5 + n;
      } else stats.omitted++;
    }
    if (params.search.length > 0) {
      const n = writeLongOption(out, o, room, DhcpOpt.DOMAIN_SEARCH, params.search);
      if (n > 0) o += n;
      else stats.omitted++;
    }
  }
  out.put8(o++, DhcpOpt.END);
  // Pad to the BOOTP minimum: some old clients reject shorter messages.
  const bootpLen = o - rb < BOOTP_MIN_LEN ? BOOTP_MIN_LEN : o - rb;
  out.fill(o, rb + bootpLen - o, 0);

  // Where to: RFC 2131 §4.1 (we are on the client's link, giaddr is only echoed).
  let dstMac: Uint8Array = scratchMac;
  let dstIp: Uint8Array = scratchAddr;
  const broadcast = (pkt.u16(b + BOOTP_FLAGS) & DHCP_FLAG_BROADCAST) !== 0;
  if (isNak) {
    dstMac = MAC_BROADCAST;
    dstIp = IP4_BROADCAST;
  } else if (!pkt.isZero(b + BOOTP_CIADDR, 4)) {
    pkt.copyOut(ETH_SRC, ETH_ALEN, scratchMac);
    pkt.copyOut(b + BOOTP_CIADDR, 4, scratchAddr);
  } else if (broadcast || isInform) {
    dstMac = MAC_BROADCAST;
    dstIp = IP4_BROADCAST;
  } else {
    pkt.copyOut(ETH_SRC, ETH_ALEN, scratchMac);
    dstIp = params.guestAddr;
  }

  writeEthHeader(out, 0, dstMac, params.ourMac, ETH_P_IP);
  writeIpv4Header(out, ip, params.serverAddr, dstIp, IPPROTO_UDP, UDP_HLEN + bootpLen, 64);
  writeUdpHeader(out, udp, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, bootpLen);
  if (out.overflow) return 0;
  finishUdp4(out, ip, udp);
  if (out.overflow) return 0;
  return out.setLength(rb + bootpLen);
}

/**
 * Writes `names` as DHCP option `code` at window offset `o` (RFC 3397 compression,
 * pointers relative to the start of the concatenated data), split into as many
 * options as needed when longer than 255 bytes (RFC 3396), without passing window
 * offset `room`. Returns the bytes written including option headers, or 0 if the
 * list is invalid or does not fit.
 */
function writeLongOption(
  out: PacketView,
  o: number,
  room: number,
  code: number,
  names: readonly string[],
): number {
  const data = o + 2;
  if (data >= room) return 0;
  const len = encodeDomainList(names, out.bytes, out.start + data, true, out.start + room);
  if (len <= 0) return 0;
  const chunks = Math.ceil(len / 255);
  if (data + len + 2 * (chunks - 1) > room) return 0;
  // Open gaps for the extra headers, last chunk first so nothing is overwritten.
  for (let i = chunks - 1; i >= 1; i--) {
    const from = data + 255 * i;
    const to = from + 2 * i;
    const n = i === chunks - 1 ? len - 255 * i : 255;
    out.move(to, from, n);
    out.put8(to - 2, code);
    out.put8(to - 1, n);
  }
  out.put8(o, code);
  out.put8(o + 1, len < 255 ? len : 255);
  return len + 2 * chunks;
}

function putOpt8(out: PacketView, o: number, code: number, value: number): number {
  out.put8(o, code);
  out.put8(o + 1, 1);
  out.put8(o + 2, value);
  return o + 3;
}

function putOpt32(out: PacketView, o: number, code: number, value: number): number {
  out.put8(o, code);
  out.put8(o + 1, 4);
  out.put32(o + 2, value);
  return o + 6;
}

function putOptBytes(out: PacketView, o: number, code: number, value: Uint8Array): number {
  out.put8(o, code);
  out.put8(o + 1, value.length);
  out.putBytes(o + 2, value);
  return o + 2 + value.length;
}

function isZero4(a: Uint8Array): boolean {
  return a[0] === 0 && a[1] === 0 && a[2] === 0 && a[3] === 0;
}

/** Netmask for a prefix length of 0-32 bits, as a host u32 (write big-endian). */
export function prefixToMask(prefixLength: number): number {
  if (!(prefixLength > 0)) return 0;
  if (prefixLength >= 32) return 0xffffffff;
  return (0xffffffff << (32 - prefixLength)) >>> 0;
}
