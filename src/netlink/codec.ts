/**
 * rtnetlink messages: building requests and parsing replies, in memory, without a
 * socket (socket.ts sends and receives them; host.ts reads the host with them;
 * configure.ts sets up a namespace's interface with them).
 *
 * Theory of operation: a request is built in place in a preallocated buffer by
 * `NetlinkMessageWriter` (header, fixed struct, attributes, nested attributes;
 * every write is checked against the buffer's end). A dump is answered by
 * datagrams ending with NLMSG_DONE; a request sent with NLM_F_ACK by an
 * NLMSG_ERROR whose error is 0 (an acknowledgement) or a negative errno, which
 * becomes a `NetlinkError` naming the request and, when the kernel provides one
 * (extended ACK), its own message.
 *
 * Replies are untrusted input: every message length, attribute length and fixed
 * field is checked against the bytes actually received, and a malformed reply
 * raises a `NetlinkReplyError` naming the request instead of reading out of
 * bounds. Messages carrying another sequence number or port ID (late answers to an
 * earlier, abandoned request) are skipped.
 *
 * Everything here runs at start-up or at namespace set-up, never on the data
 * path, so the parsed results are plain freshly allocated objects.
 *
 * Constants come from the UAPI headers <linux/netlink.h>, <linux/rtnetlink.h>,
 * <linux/if_addr.h> and <linux/if_link.h>.
 */

import { errnoMessage, errnoName } from "../ffi/sys.ts";
import { AF } from "../ffi/layout.ts";

// --- constants from the UAPI headers -----------------------------------------------------

/** NETLINK_ROUTE: the rtnetlink protocol number for socket(AF_NETLINK, …). */
export const NETLINK_ROUTE = 0;

/** Control message types (<linux/netlink.h>). */
export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;

/** nlmsghdr.nlmsg_flags bits (<linux/netlink.h>). */
export const NLM_F = {
  REQUEST: 0x01,
  MULTI: 0x02,
  ACK: 0x04,
  ECHO: 0x08,
  DUMP_INTR: 0x10,
  /** GET requests: dump the whole table. */
  DUMP: 0x300,
  /** NEW requests: replace an existing object. */
  REPLACE: 0x100,
  /** NEW requests: fail with EEXIST if the object exists. */
  EXCL: 0x200,
  /** NEW requests: create the object if it does not exist. */
  CREATE: 0x400,
  /** NLMSG_ERROR: the echoed request was cut to its header. */
  CAPPED: 0x100,
  /** NLMSG_ERROR / NLMSG_DONE: extended ACK attributes follow. */
  ACK_TLVS: 0x200,
} as const;

/** rtnetlink message types (<linux/rtnetlink.h>). */
export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  SETLINK: 19,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
} as const;

/** Link attributes (<linux/if_link.h>). */
export const IFLA = { ADDRESS: 1, BROADCAST: 2, IFNAME: 3, MTU: 4, LINK: 5 } as const;

/** Address attributes (<linux/if_addr.h>). */
export const IFA = {
  ADDRESS: 1,
  LOCAL: 2,
  LABEL: 3,
  BROADCAST: 4,
  ANYCAST: 5,
  CACHEINFO: 6,
  MULTICAST: 7,
  FLAGS: 8,
} as const;

/** Address flags (ifa_flags, and the 32-bit IFA_FLAGS attribute) (<linux/if_addr.h>). */
export const IFA_F = {
  SECONDARY: 0x01,
  /** Same bit as SECONDARY: an IPv6 privacy (temporary) address. */
  TEMPORARY: 0x01,
  NODAD: 0x02,
  OPTIMISTIC: 0x04,
  DADFAILED: 0x08,
  HOMEADDRESS: 0x10,
  DEPRECATED: 0x20,
  TENTATIVE: 0x40,
  PERMANENT: 0x80,
  MANAGETEMPADDR: 0x100,
  NOPREFIXROUTE: 0x200,
} as const;

/** Route attributes (<linux/rtnetlink.h>). */
export const RTA = {
  DST: 1,
  SRC: 2,
  IIF: 3,
  OIF: 4,
  GATEWAY: 5,
  PRIORITY: 6,
  PREFSRC: 7,
  METRICS: 8,
  MULTIPATH: 9,
  TABLE: 15,
  VIA: 18,
  PREF: 20,
  EXPIRES: 23,
} as const;

/** Route types, rtmsg.rtm_type (<linux/rtnetlink.h>). */
export const RTN = {
  UNSPEC: 0,
  UNICAST: 1,
  LOCAL: 2,
  BROADCAST: 3,
  ANYCAST: 4,
  MULTICAST: 5,
  BLACKHOLE: 6,
  UNREACHABLE: 7,
  PROHIBIT: 8,
} as const;

/** Route and address scopes (<linux/rtnetlink.h>). */
export const RT_SCOPE = { UNIVERSE: 0, SITE: 200, LINK: 253, HOST: 254, NOWHERE: 255 } as const;

/** Route origins, rtmsg.rtm_protocol (<linux/rtnetlink.h>). */
export const RTPROT = { UNSPEC: 0, REDIRECT: 1, KERNEL: 2, BOOT: 3, STATIC: 4, RA: 9 } as const;

/** Routing table IDs (<linux/rtnetlink.h>). */
export const RT_TABLE = { UNSPEC: 0, COMPAT: 252, DEFAULT: 253, MAIN: 254, LOCAL: 255 } as const;

/** rtmsg.rtm_flags and rtnexthop.rtnh_flags bits (<linux/rtnetlink.h>). */
export const RTNH_F = { DEAD: 1, PERVASIVE: 2, ONLINK: 4, LINKDOWN: 16 } as const;

/** rtmsg.rtm_flags: a cloned (cache) route, not a configured one. */
export const RTM_F_CLONED = 0x200;

/** Interface flags, ifinfomsg.ifi_flags (<linux/if.h>). */
export const LINK_FLAG = {
  UP: 0x1,
  BROADCAST: 0x2,
  LOOPBACK: 0x8,
  POINTOPOINT: 0x10,
  RUNNING: 0x40,
  NOARP: 0x80,
  LOWER_UP: 0x10000,
} as const;

/** Extended ACK attribute carrying the kernel's error text (<linux/netlink.h>). */
const NLMSGERR_ATTR_MSG = 1;

/** Bits of nla_type that are flags, not the type (NLA_F_NESTED, NLA_F_NET_BYTEORDER). */
const NLA_TYPE_MASK = 0x3fff;

// --- sizes ------------------------------------------------------------------------------

/** struct nlmsghdr: len u32, type u16, flags u16, seq u32, pid u32. */
export const NLMSG_HDRLEN = 16;
/** struct rtattr / nlattr header: len u16, type u16. */
const RTA_HDRLEN = 4;
/** struct ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32. */
export const IFINFOMSG_SIZE = 16;
/** struct ifaddrmsg: family u8, prefixlen u8, flags u8, scope u8, index u32. */
export const IFADDRMSG_SIZE = 8;
/** struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type (u8 each), flags u32. */
export const RTMSG_SIZE = 12;
/** struct rtnexthop: len u16, flags u8, hops u8, ifindex i32. */
export const RTNEXTHOP_SIZE = 8;

/** Round `n` up to netlink's 4-byte alignment. */
function align4(n: number): number {
  return (n + 3) & ~3;
}

// --- errors -----------------------------------------------------------------------------

/** The kernel refused a request: NLMSG_ERROR with a negative errno. */
export class NetlinkError extends Error {
  /** What was asked, e.g. "RTM_NEWADDR (add 192.0.2.2/24 on ifindex 3)". */
  readonly request: string;
  /** The errno value, e.g. 17. */
  readonly errno: number;
  /** The errno's symbolic name, e.g. "EEXIST". */
  readonly code: string;
  /** The kernel's extended-ACK message, if it sent one. */
  readonly kernelMessage: string | undefined;

  constructor(request: string, errno: number, kernelMessage?: string) {
    const extra = kernelMessage === undefined ? "" : ` (kernel: ${kernelMessage})`;
    super(`netlink ${request}: ${errnoMessage(errno)} (${errnoName(errno)})${extra}`);
    this.name = "NetlinkError";
    this.request = request;
    this.errno = errno;
    this.code = errnoName(errno);
    this.kernelMessage = kernelMessage;
  }
}

/** A reply that is malformed, truncated, missing or otherwise unusable. */
export class NetlinkReplyError extends Error {
  /** The request the reply belonged to. */
  readonly request: string;

  constructor(request: string, problem: string) {
    super(`netlink ${request}: ${problem}`);
    this.name = "NetlinkReplyError";
    this.request = request;
  }
}

// --- building requests --------------------------------------------------------------------

/**
 * Builds one netlink message in place in a caller-owned buffer: `begin()` the
 * header, `reserve()` the fixed struct and fill it through `view`, add attributes,
 * `end()` to patch the length. Throws if the message would overflow the buffer.
 */
export class NetlinkMessageWriter {
  /** The buffer the message is built in, from offset 0. */
  readonly buf: Uint8Array<ArrayBuffer>;
  /** A little-endian view over `buf` for fixed struct fields (host order is LE on our targets). */
  readonly view: DataView;
  /** Bytes written so far (the next write offset). */
  length = 0;

  constructor(buf: Uint8Array<ArrayBuffer>) {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Claim `bytes` (plus alignment padding) at the end, zeroed; return their offset. */
  private room(bytes: number): number {
    const at = this.length;
    const end = at + align4(bytes);
    if (end > this.buf.length) {
      throw new RangeError(
        `netlink request does not fit its ${this.buf.length}-byte buffer (${end} needed)`,
      );
    }
    this.buf.fill(0, at, end);
    this.length = end;
    return at;
  }

  /** Start a message of `type` with `flags` and sequence number `seq`. */
  begin(type: number, flags: number, seq: number): void {
    this.length = 0;
    this.room(NLMSG_HDRLEN);
    this.view.setUint16(4, type, true);
    this.view.setUint16(6, flags, true);
    this.view.setUint32(8, seq >>> 0, true);
    this.view.setUint32(12, 0, true);
  }

  /** Reserve `size` zeroed bytes (a fixed struct) and return their offset. */
  reserve(size: number): number {
    return this.room(size);
  }

  /** Add an attribute whose value is `value`'s bytes. */
  attrBytes(type: number, value: Uint8Array): void {
    const at = this.room(RTA_HDRLEN + value.length);
    this.view.setUint16(at, RTA_HDRLEN + value.length, true);
    this.view.setUint16(at + 2, type, true);
    this.buf.set(value, at + RTA_HDRLEN);
  }

  /** Add an attribute holding a u32 in host order. */
  attrU32(type: number, value: number): void {
    const at = this.room(RTA_HDRLEN + 4);
    this.view.setUint16(at, RTA_HDRLEN + 4, true);
    this.view.setUint16(at + 2, type, true);
    this.view.setUint32(at + RTA_HDRLEN, value >>> 0, true);
  }

  /** Open a nested attribute (or an attribute holding structs); close it with `nestEnd`. */
  nestBegin(type: number): number {
    const at = this.room(RTA_HDRLEN);
    this.view.setUint16(at + 2, type, true);
    return at;
  }

  /** Close the nested attribute opened at `start`, fixing up its length. */
  nestEnd(start: number): void {
    const len = this.length - start;
    if (len > 0xffff) throw new RangeError("netlink attribute longer than 65535 bytes");
    this.view.setUint16(start, len, true);
  }

  /** Finish the message: write nlmsg_len and return the message length in bytes. */
  end(): number {
    this.view.setUint32(0, this.length, true);
    return this.length;
  }
}

// --- parsing replies ----------------------------------------------------------------------

/** One netlink message of a reply; `payload` is a view into the reply buffer. */
export interface NetlinkMessage {
  /** nlmsg_type. */
  readonly type: number;
  /** nlmsg_flags. */
  readonly flags: number;
  /** nlmsg_seq. */
  readonly seq: number;
  /** nlmsg_pid: the port ID the message was addressed to. */
  readonly portId: number;
  /** The bytes after the header, up to nlmsg_len (no padding). */
  readonly payload: Uint8Array;
}

/**
 * Split the first `length` bytes of `buf` (one received datagram) into messages.
 * Throws `NetlinkReplyError` naming `request` if a message length is impossible.
 */
export function parseMessages(
  buf: Uint8Array,
  length: number,
  request: string,
): NetlinkMessage[] {
  if (length > buf.length) {
    throw new NetlinkReplyError(request, `datagram of ${length} bytes exceeds its buffer`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: NetlinkMessage[] = [];
  let at = 0;
  while (at < length) {
    if (length - at < NLMSG_HDRLEN) {
      throw new NetlinkReplyError(
        request,
        `truncated message header at offset ${at} (${length - at} of ${NLMSG_HDRLEN} bytes)`,
      );
    }
    const len = view.getUint32(at, true);
    if (len < NLMSG_HDRLEN || len > length - at) {
      throw new NetlinkReplyError(
        request,
        `message at offset ${at} claims ${len} bytes, ${length - at} available`,
      );
    }
    out.push({
      type: view.getUint16(at + 4, true),
      flags: view.getUint16(at + 6, true),
      seq: view.getUint32(at + 8, true),
      portId: view.getUint32(at + 12, true),
      payload: buf.subarray(at + NLMSG_HDRLEN, at + len),
    });
    at += align4(len);
  }
  return out;
}

/**
 * Parse a run of attributes (struct rtattr / nlattr) into a map from type (flag
 * bits masked off) to value bytes; the first occurrence of a type wins. Throws
 * `NetlinkReplyError` naming `request` and `where` on a truncated attribute.
 */
export function parseAttributes(
  bytes: Uint8Array,
  request: string,
  where: string,
): Map<number, Uint8Array> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const attrs = new Map<number, Uint8Array>();
  let at = 0;
  while (at + RTA_HDRLEN <= bytes.length) {
    const len = view.getUint16(at, true);
    const type = view.getUint16(at + 2, true) & NLA_TYPE_MASK;
    if (len < RTA_HDRLEN || len > bytes.length - at) {
      throw new NetlinkReplyError(
        request,
        `truncated attribute ${type} in ${where} at offset ${at}: claims ${len} bytes, ` +
          `${bytes.length - at} available`,
      );
    }
    if (!attrs.has(type)) attrs.set(type, bytes.subarray(at + RTA_HDRLEN, at + len));
    at += align4(len);
  }
  // Fewer than RTA_HDRLEN bytes left over can only be padding; anything else is garbage.
  if (at < bytes.length && bytes.subarray(at).some((b) => b !== 0)) {
    throw new NetlinkReplyError(
      request,
      `${bytes.length - at} stray bytes after attributes in ${where}`,
    );
  }
  return attrs;
}

function u32Of(value: Uint8Array): number {
  return new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(0, true);
}

/** The u32 attribute `type`, or `fallback` if absent; wrong length is a reply error. */
function attrU32(
  attrs: Map<number, Uint8Array>,
  type: number,
  fallback: number,
  request: string,
  what: string,
): number {
  const v = attrs.get(type);
  if (v === undefined) return fallback;
  if (v.length < 4) {
    throw new NetlinkReplyError(request, `${what} attribute is ${v.length} bytes, 4 expected`);
  }
  return u32Of(v);
}

/** A copy of address attribute `type`, checked to be `size` bytes; undefined if absent. */
function attrAddress(
  attrs: Map<number, Uint8Array>,
  type: number,
  size: number,
  request: string,
  what: string,
): Uint8Array | undefined {
  const v = attrs.get(type);
  if (v === undefined) return undefined;
  if (v.length !== size) {
    throw new NetlinkReplyError(request, `${what} is ${v.length} bytes, ${size} expected`);
  }
  return v.slice();
}

/** Address size in bytes of `family` (4 or 16); a `NetlinkReplyError` naming `request` otherwise. */
export function addressSize(family: number, request: string): number {
  if (family === AF.INET) return 4;
  if (family === AF.INET6) return 16;
  throw new NetlinkReplyError(request, `unexpected address family ${family}`);
}

function requirePayload(
  payload: Uint8Array,
  size: number,
  request: string,
  what: string,
): DataView {
  if (payload.length < size) {
    throw new NetlinkReplyError(request, `truncated ${what}: ${payload.length} of ${size} bytes`);
  }
  return new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
}

const decoder = new TextDecoder();

/** One network interface (RTM_NEWLINK). */
export interface LinkInfo {
  /** Interface index. */
  readonly index: number;
  /** Interface name, e.g. "eth0". */
  readonly name: string;
  /** ifi_flags: IFF_* bits (see `LINK_FLAG`). */
  readonly flags: number;
  /** ifi_type: ARPHRD_* link type (1 Ethernet, 772 loopback, 65534 none). */
  readonly type: number;
  /** MTU in bytes (0 if the kernel did not say). */
  readonly mtu: number;
  /** Hardware address as the kernel reports it (6 bytes for Ethernet; may be empty). */
  readonly mac: Uint8Array;
}

/** Decode the payload of an RTM_NEWLINK message. */
export function parseLink(payload: Uint8Array, request: string): LinkInfo {
  const v = requirePayload(payload, IFINFOMSG_SIZE, request, "ifinfomsg");
  const index = v.getInt32(4, true);
  const attrs = parseAttributes(payload.subarray(IFINFOMSG_SIZE), request, `link ${index}`);
  const nameBytes = attrs.get(IFLA.IFNAME);
  if (nameBytes === undefined) throw new NetlinkReplyError(request, `link ${index} has no name`);
  const nul = nameBytes.indexOf(0);
  return {
    index,
    name: decoder.decode(nul < 0 ? nameBytes : nameBytes.subarray(0, nul)),
    flags: v.getUint32(8, true),
    type: v.getUint16(2, true),
    mtu: attrU32(attrs, IFLA.MTU, 0, request, `link ${index} IFLA_MTU`),
    mac: attrs.get(IFLA.ADDRESS)?.slice() ?? new Uint8Array(0),
  };
}

/** One interface address (RTM_NEWADDR). */
export interface AddressInfo {
  /** AF.INET or AF.INET6. */
  readonly family: number;
  /** Index of the interface holding the address. */
  readonly ifindex: number;
  /** Prefix length in bits. */
  readonly prefixLength: number;
  /** RT_SCOPE_* (0 global, 253 link, 254 host). */
  readonly scope: number;
  /** IFA_F_* flags (the 32-bit IFA_FLAGS attribute when present). */
  readonly flags: number;
  /** The local address, network order: 4 or 16 bytes. */
  readonly address: Uint8Array;
  /** The peer address of a point-to-point IPv4 link, if different from the local one. */
  readonly peer?: Uint8Array;
}

/** Decode the payload of an RTM_NEWADDR message. */
export function parseAddress(payload: Uint8Array, request: string): AddressInfo {
  const v = requirePayload(payload, IFADDRMSG_SIZE, request, "ifaddrmsg");
  const family = v.getUint8(0);
  const ifindex = v.getUint32(4, true);
  const size = addressSize(family, request);
  const where = `address on ifindex ${ifindex}`;
  const attrs = parseAttributes(payload.subarray(IFADDRMSG_SIZE), request, where);
  // IFA_LOCAL is the local side; IFA_ADDRESS is the peer on point-to-point links.
  const local = attrAddress(attrs, IFA.LOCAL, size, request, `${where}: IFA_LOCAL`);
  const address = attrAddress(attrs, IFA.ADDRESS, size, request, `${where}: IFA_ADDRESS`);
  const own = local ?? address;
  if (own === undefined) throw new NetlinkReplyError(request, `${where} carries no address`);
  const info: AddressInfo = {
    family,
    ifindex,
    prefixLength: v.getUint8(1),
    scope: v.getUint8(3),
    flags: attrU32(attrs, IFA.FLAGS, v.getUint8(2), request, `${where}: IFA_FLAGS`),
    address: own,
  };
  if (local !== undefined && address !== undefined && !bytesEqual(local, address)) {
    return { ...info, peer: address };
  }
  return info;
}

/** One path of a multipath route (struct rtnexthop and its attributes). */
export interface Nexthop {
  /** Gateway, network order (4 or 16 bytes), if the path has one. */
  readonly gateway?: Uint8Array;
  /** Output interface index. */
  readonly ifindex: number;
  /** Weight, 1..256 (rtnh_hops + 1). */
  readonly weight: number;
  /** RTNH_F_* flags. */
  readonly flags: number;
}

/** One route (RTM_NEWROUTE). */
export interface RouteInfo {
  /** AF.INET or AF.INET6. */
  readonly family: number;
  /** Routing table ID. */
  readonly table: number;
  /** Destination network, network order, full address size (all zeros for a default route). */
  readonly dst: Uint8Array;
  /** Destination prefix length in bits (0: default route). */
  readonly dstLength: number;
  /** Gateway of a single-path route, network order. */
  readonly gateway?: Uint8Array;
  /** Preferred source address (RTA_PREFSRC), network order. */
  readonly prefsrc?: Uint8Array;
  /** Output interface of a single-path route (0 if none, e.g. multipath). */
  readonly oif: number;
  /** Paths of a multipath route (RTA_MULTIPATH), in kernel order; empty otherwise. */
  readonly nexthops: readonly Nexthop[];
  /** Metric (RTA_PRIORITY), 0 if absent. */
  readonly priority: number;
  /** RTPROT_* origin. */
  readonly protocol: number;
  /** RT_SCOPE_*. */
  readonly scope: number;
  /** RTN_* type. */
  readonly type: number;
  /** rtm_flags (RTNH_F_ONLINK…). */
  readonly flags: number;
}

function parseNexthops(
  bytes: Uint8Array,
  family: number,
  request: string,
  where: string,
): Nexthop[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = addressSize(family, request);
  const hops: Nexthop[] = [];
  let at = 0;
  while (at + RTNEXTHOP_SIZE <= bytes.length) {
    const len = view.getUint16(at, true);
    if (len < RTNEXTHOP_SIZE || len > bytes.length - at) {
      throw new NetlinkReplyError(
        request,
        `truncated nexthop ${hops.length} in ${where}: claims ${len} bytes, ` +
          `${bytes.length - at} available`,
      );
    }
    const ifindex = view.getInt32(at + 4, true);
    const attrs = parseAttributes(
      bytes.subarray(at + RTNEXTHOP_SIZE, at + len),
      request,
      `${where} nexthop ${hops.length}`,
    );
    const gateway = attrAddress(attrs, RTA.GATEWAY, size, request, `${where} nexthop gateway`);
    const hop = {
      ifindex,
      weight: view.getUint8(at + 3) + 1,
      flags: view.getUint8(at + 2),
    };
    hops.push(gateway === undefined ? hop : { ...hop, gateway });
    at += align4(len);
  }
  if (at < bytes.length) {
    throw new NetlinkReplyError(
      request,
      `${bytes.length - at} stray bytes after nexthops in ${where}`,
    );
  }
  return hops;
}

/** Decode the payload of an RTM_NEWROUTE message. */
export function parseRoute(payload: Uint8Array, request: string): RouteInfo {
  const v = requirePayload(payload, RTMSG_SIZE, request, "rtmsg");
  const family = v.getUint8(0);
  const size = addressSize(family, request);
  const dstLength = v.getUint8(1);
  if (dstLength > size * 8) {
    throw new NetlinkReplyError(request, `route prefix length ${dstLength} exceeds the family's`);
  }
  const where = `route /${dstLength}`;
  const attrs = parseAttributes(payload.subarray(RTMSG_SIZE), request, where);
  const dst = attrAddress(attrs, RTA.DST, size, request, `${where}: RTA_DST`) ??
    new Uint8Array(size);
  const multipath = attrs.get(RTA.MULTIPATH);
  const route: RouteInfo = {
    family,
    table: attrU32(attrs, RTA.TABLE, v.getUint8(4), request, `${where}: RTA_TABLE`),
    dst,
    dstLength,
    oif: attrU32(attrs, RTA.OIF, 0, request, `${where}: RTA_OIF`),
    nexthops: multipath === undefined ? [] : parseNexthops(multipath, family, request, where),
    priority: attrU32(attrs, RTA.PRIORITY, 0, request, `${where}: RTA_PRIORITY`),
    protocol: v.getUint8(5),
    scope: v.getUint8(6),
    type: v.getUint8(7),
    flags: v.getUint32(8, true),
  };
  const gateway = attrAddress(attrs, RTA.GATEWAY, size, request, `${where}: RTA_GATEWAY`);
  const prefsrc = attrAddress(attrs, RTA.PREFSRC, size, request, `${where}: RTA_PREFSRC`);
  return {
    ...route,
    ...(gateway === undefined ? {} : { gateway }),
    ...(prefsrc === undefined ? {} : { prefsrc }),
  };
}

/** Decode an NLMSG_ERROR payload: errno (positive, 0 for an ACK) and any kernel message. */
export function parseErrorMessage(
  msg: NetlinkMessage,
  request: string,
): { errno: number; kernelMessage?: string } {
  const v = requirePayload(msg.payload, 4, request, "NLMSG_ERROR");
  const error = v.getInt32(0, true);
  if (error > 0) throw new NetlinkReplyError(request, `NLMSG_ERROR with positive error ${error}`);
  const errno = -error;
  if ((msg.flags & NLM_F.ACK_TLVS) === 0 || msg.payload.length < 4 + NLMSG_HDRLEN) {
    return { errno };
  }
  // After the error: the echoed request, cut to its header when NLM_F_CAPPED.
  let tlvStart = 4 + NLMSG_HDRLEN;
  if ((msg.flags & NLM_F.CAPPED) === 0) tlvStart = 4 + align4(v.getUint32(4, true));
  if (tlvStart > msg.payload.length) return { errno };
  const tlvs = parseAttributes(msg.payload.subarray(tlvStart), request, "extended ACK");
  const text = tlvs.get(NLMSGERR_ATTR_MSG);
  if (text === undefined) return { errno };
  const nul = text.indexOf(0);
  return { errno, kernelMessage: decoder.decode(nul < 0 ? text : text.subarray(0, nul)) };
}

/** What one datagram of a reply meant for the request waiting on it. */
export type ReplyProgress = "more" | "done";

/**
 * Feed one received datagram (`length` bytes of `buf`) of the reply to request
 * `seq` from port `portId`: messages of other requests are skipped, data messages
 * go to `onData`, NLMSG_DONE or an ACK finishes the reply, and an NLMSG_ERROR with
 * an errno throws `NetlinkError`. Also NLMSG_DONE may carry an errno (a dump the
 * kernel aborted). Returns whether more datagrams are to come.
 */
export function consumeReplyDatagram(
  buf: Uint8Array,
  length: number,
  seq: number,
  portId: number,
  request: string,
  onData: (msg: NetlinkMessage) => void,
): ReplyProgress {
  for (const msg of parseMessages(buf, length, request)) {
    if (msg.seq !== seq >>> 0 || (portId !== 0 && msg.portId !== portId)) continue;
    switch (msg.type) {
      case NLMSG.NOOP:
        continue;
      case NLMSG.ERROR: {
        const { errno, kernelMessage } = parseErrorMessage(msg, request);
        if (errno === 0) return "done";
        throw new NetlinkError(request, errno, kernelMessage);
      }
      case NLMSG.DONE: {
        if (msg.payload.length >= 4) {
          const error = new DataView(msg.payload.buffer, msg.payload.byteOffset, 4)
            .getInt32(0, true);
          if (error < 0) throw new NetlinkError(request, -error);
        }
        return "done";
      }
      case NLMSG.OVERRUN:
        throw new NetlinkReplyError(request, "the kernel reports an overrun (lost messages)");
      default:
        onData(msg);
    }
  }
  return "more";
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
