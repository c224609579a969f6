/**
 * IPv4, IPv6 and UDP headers: offsets, constants, validation, in-place builders.
 *
 * Theory of operation: the link-layer services (DHCP, NDP, DHCPv6) and the
 * transport handlers locate headers by offset inside one frame and build replies
 * in place in a preallocated output frame. This file knows the header layouts;
 * it does not know what a service replies.
 *
 * Validation (`ipv4HeaderLength`, `ipv6PayloadEnd`) checks what a receiver must
 * before trusting the header: version, header length, that the stated total
 * length fits the frame (trailing Ethernet padding is allowed and ignored) and,
 * for IPv4, the header checksum, which a guest always computes (only transport
 * checksums are offloaded). Transport checksums of received frames are not
 * checked here: with virtio offloads they may legitimately be partial.
 *
 * Builders write the header at a window offset of a PacketView and return the
 * offset just past it; addresses are passed as 4- or 16-byte arrays in network
 * order, integers as host numbers written big-endian. The UDP checksum is filled
 * in by `finishUdp4`/`finishUdp6` once the payload is written.
 *
 * The text helpers (`parseIpv4`, `formatIpv6`, ...) allocate: configuration,
 * tests and logging only.
 */

import {
  fold16,
  ipv4HeaderChecksum,
  ipv6PseudoSum,
  l4ChecksumV4,
  l4ChecksumV6,
  sum16,
  udpNonZero,
} from "./checksum.ts";
import type { PacketView } from "./packet.ts";

/** Offset of version (high nibble) and IHL (low nibble, 32-bit words) in an IPv4 header. */
export const IP4_VER_IHL = 0;
/** Offset of the TOS/DSCP byte. */
export const IP4_TOS = 1;
/** Offset of the total length (bytes, big-endian u16). */
export const IP4_TOT_LEN = 2;
/** Offset of the identification field. */
export const IP4_ID = 4;
/** Offset of flags and fragment offset (big-endian u16). */
export const IP4_FRAG = 6;
/** Offset of the TTL. */
export const IP4_TTL = 8;
/** Offset of the protocol number. */
export const IP4_PROTO = 9;
/** Offset of the header checksum. */
export const IP4_CSUM = 10;
/** Offset of the source address (4 bytes). */
export const IP4_SRC = 12;
/** Offset of the destination address (4 bytes). */
export const IP4_DST = 16;
/** IPv4 header length without options, bytes. */
export const IP4_HLEN = 20;
/** IPv4 "more fragments" flag in the IP4_FRAG field. */
export const IP4_MF = 0x2000;
/** IPv4 fragment offset mask in the IP4_FRAG field (8-byte units). */
export const IP4_OFFMASK = 0x1fff;

/** Offset of version/traffic class/flow label (big-endian u32) in an IPv6 header. */
export const IP6_VTC_FLOW = 0;
/** Offset of the payload length (bytes, big-endian u16). */
export const IP6_PLEN = 4;
/** Offset of the next header. */
export const IP6_NXT = 6;
/** Offset of the hop limit. */
export const IP6_HLIM = 7;
/** Offset of the source address (16 bytes). */
export const IP6_SRC = 8;
/** Offset of the destination address (16 bytes). */
export const IP6_DST = 24;
/** IPv6 header length, bytes. */
export const IP6_HLEN = 40;

/** IP protocol number: ICMP. */
export const IPPROTO_ICMP = 1;
/** IP protocol number: TCP. */
export const IPPROTO_TCP = 6;
/** IP protocol number: UDP. */
export const IPPROTO_UDP = 17;
/** IP protocol number: ICMPv6. */
export const IPPROTO_ICMPV6 = 58;

/** Offset of the UDP source port. */
export const UDP_SPORT = 0;
/** Offset of the UDP destination port. */
export const UDP_DPORT = 2;
/** Offset of the UDP length (header + payload, bytes). */
export const UDP_LEN = 4;
/** Offset of the UDP checksum. */
export const UDP_CSUM = 6;
/** UDP header length, bytes. */
export const UDP_HLEN = 8;

/** 0.0.0.0. Shared constant: never write into it. */
export const IP4_ANY: Uint8Array = new Uint8Array(4);
/** 255.255.255.255. Shared constant: never write into it. */
export const IP4_BROADCAST: Uint8Array = new Uint8Array([255, 255, 255, 255]);
/** ::. Shared constant: never write into it. */
export const IP6_ANY: Uint8Array = new Uint8Array(16);
/** ff02::1, all nodes. Shared constant: never write into it. */
export const IP6_ALL_NODES: Uint8Array = new Uint8Array([
  0xff,
  0x02,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  1,
]);

/**
 * Validates the IPv4 header at window offset `offset` of `pkt`: version 4, IHL of
 * at least 5 words, total length covering the header and inside the frame, header
 * checksum correct. Returns the header length in bytes, or -1.
 */
export function ipv4HeaderLength(pkt: PacketView, offset: number): number {
  const vihl = pkt.u8(offset + IP4_VER_IHL);
  if (vihl >> 4 !== 4) return -1;
  const hlen = (vihl & 0x0f) * 4;
  if (hlen < IP4_HLEN || !pkt.has(offset, hlen)) return -1;
  const total = pkt.u16(offset + IP4_TOT_LEN);
  if (total < hlen || !pkt.has(offset, total)) return -1;
  if (ipv4HeaderChecksum(pkt.view, pkt.start + offset, hlen) !== 0) return -1;
  return hlen;
}

/** True if the (validated) IPv4 header at `offset` is a fragment (MF set or offset != 0). */
export function ipv4IsFragment(pkt: PacketView, offset: number): boolean {
  const frag = pkt.u16(offset + IP4_FRAG);
  return frag < 0 || (frag & (IP4_MF | IP4_OFFMASK)) !== 0;
}

/**
 * Validates the IPv6 header at window offset `offset` of `pkt`: version 6 and the
 * payload length inside the frame. Returns the window offset where the payload
 * ends (offset + 40 + payload length), or -1. Jumbograms are not supported.
 */
export function ipv6PayloadEnd(pkt: PacketView, offset: number): number {
  const v = pkt.u8(offset);
  if (v >> 4 !== 6 || !pkt.has(offset, IP6_HLEN)) return -1;
  const plen = pkt.u16(offset + IP6_PLEN);
  if (!pkt.has(offset + IP6_HLEN, plen)) return -1;
  return offset + IP6_HLEN + plen;
}

/** IPv6 Hop-by-Hop Options header (RFC 8200 4.3): only directly after the fixed header. */
export const IPPROTO_HOPOPTS = 0;
/** IPv6 Routing header (RFC 8200 4.4). */
export const IPPROTO_ROUTING = 43;
/** IPv6 Fragment header (RFC 8200 4.5). */
export const IPPROTO_FRAGMENT = 44;
/** IPv6 "No Next Header" (RFC 8200 4.7): nothing follows. */
export const IPPROTO_NONE = 59;
/** IPv6 Destination Options header (RFC 8200 4.6). */
export const IPPROTO_DSTOPTS = 60;

/** `Ipv6HeaderWalk.walk`: truncated or misplaced extension headers. */
export const IP6_WALK_MALFORMED = -1;
/** `Ipv6HeaderWalk.walk`: a Fragment header (fragments are not reassembled). */
export const IP6_WALK_FRAGMENT = -2;
/** `Ipv6HeaderWalk.walk`: No Next Header, there is no upper-layer header. */
export const IP6_WALK_NO_NEXT = -3;
/** Extension headers walked at most: each takes 8 bytes or more, so this is generous. */
const IP6_EXT_MAX = 32;

/**
 * Finds the upper-layer header of an IPv6 packet behind its extension headers.
 *
 * Hop-by-Hop Options (only first, as RFC 8200 4.1 requires), Routing (only with
 * no segments left: we are the final destination, never a router on the way) and
 * Destination Options are skipped by their length field, ((len + 1) * 8 bytes),
 * each checked to lie inside the payload through the PacketView. What stops the
 * walk is the upper-layer protocol, whatever it is: TCP, UDP and ICMPv6, and also
 * anything else (AH, ESP, unknown numbers), which the caller drops as an unknown
 * protocol. One walker is made per dispatcher and reused: walking allocates nothing.
 */
export class Ipv6HeaderWalk {
  /** Window offset of the upper-layer header after a walk that returned >= 0. */
  upperOffset = 0;

  /**
   * Walks the packet whose IPv6 header is at window offset `offset` of `pkt` and
   * whose payload ends at `end` (from `ipv6PayloadEnd`). Returns the upper-layer
   * protocol number (and sets `upperOffset`), or IP6_WALK_MALFORMED,
   * IP6_WALK_FRAGMENT or IP6_WALK_NO_NEXT.
   */
  walk(pkt: PacketView, offset: number, end: number): number {
    let next = pkt.u8(offset + IP6_NXT);
    let at = offset + IP6_HLEN;
    for (let i = 0; i < IP6_EXT_MAX; i++) {
      switch (next) {
        case IPPROTO_HOPOPTS:
          if (i !== 0) return IP6_WALK_MALFORMED;
          break;
        case IPPROTO_ROUTING:
          // Segments left (byte 3) not zero: the packet is to be routed on.
          if (at + 4 > end || pkt.u8(at + 3) !== 0) return IP6_WALK_MALFORMED;
          break;
        case IPPROTO_DSTOPTS:
          break;
        case IPPROTO_FRAGMENT:
          return IP6_WALK_FRAGMENT;
        case IPPROTO_NONE:
          return IP6_WALK_NO_NEXT;
        default:
          if (at > end) return IP6_WALK_MALFORMED;
          this.upperOffset = at;
          return next;
      }
      // Next header (byte 0) and length in 8-byte units past the first 8 (byte 1).
      if (at + 8 > end || !pkt.has(at, 8)) return IP6_WALK_MALFORMED;
      const length = (pkt.u8(at + 1) + 1) * 8;
      if (at + length > end) return IP6_WALK_MALFORMED;
      next = pkt.u8(at);
      at += length;
    }
    return IP6_WALK_MALFORMED;
  }
}

/**
 * Writes a 20-byte IPv4 header (no options, DF clear, ID 0) at window `offset` of
 * `out`, with `payloadLength` bytes following, and fills in its checksum. `src` and
 * `dst` are 4-byte addresses. Returns the offset just past the header.
 */
export function writeIpv4Header(
  out: PacketView,
  offset: number,
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  payloadLength: number,
  ttl: number,
): number {
  out.put8(offset + IP4_VER_IHL, 0x45);
  out.put8(offset + IP4_TOS, 0);
  out.put16(offset + IP4_TOT_LEN, IP4_HLEN + payloadLength);
  out.put16(offset + IP4_ID, 0);
  out.put16(offset + IP4_FRAG, 0);
  out.put8(offset + IP4_TTL, ttl);
  out.put8(offset + IP4_PROTO, proto);
  out.put16(offset + IP4_CSUM, 0);
  out.putBytes(offset + IP4_SRC, src);
  out.putBytes(offset + IP4_DST, dst);
  if (out.overflow) return offset + IP4_HLEN;
  out.put16(offset + IP4_CSUM, ipv4HeaderChecksum(out.view, out.start + offset, IP4_HLEN));
  return offset + IP4_HLEN;
}

/**
 * Writes a 40-byte IPv6 header (traffic class and flow label 0) at window `offset`
 * of `out`, with `payloadLength` bytes following. `src` and `dst` are 16-byte
 * addresses. Returns the offset just past the header.
 */
export function writeIpv6Header(
  out: PacketView,
  offset: number,
  src: Uint8Array,
  dst: Uint8Array,
  nextHeader: number,
  payloadLength: number,
  hopLimit: number,
): number {
  out.put32(offset + IP6_VTC_FLOW, 0x60000000);
  out.put16(offset + IP6_PLEN, payloadLength);
  out.put8(offset + IP6_NXT, nextHeader);
  out.put8(offset + IP6_HLIM, hopLimit);
  out.putBytes(offset + IP6_SRC, src);
  out.putBytes(offset + IP6_DST, dst);
  return offset + IP6_HLEN;
}

/**
 * Writes a UDP header at window `offset` of `out` for `payloadLength` bytes of
 * payload, checksum zero (see `finishUdp4`/`finishUdp6`). Returns the payload offset.
 */
export function writeUdpHeader(
  out: PacketView,
  offset: number,
  srcPort: number,
  dstPort: number,
  payloadLength: number,
): number {
  out.put16(offset + UDP_SPORT, srcPort);
  out.put16(offset + UDP_DPORT, dstPort);
  out.put16(offset + UDP_LEN, UDP_HLEN + payloadLength);
  out.put16(offset + UDP_CSUM, 0);
  return offset + UDP_HLEN;
}

/**
 * Computes and stores the UDP checksum of the datagram at window `udpOffset` of
 * `out`, whose IPv4 header is at `ipOffset`; the UDP length field must be final.
 */
export function finishUdp4(out: PacketView, ipOffset: number, udpOffset: number): void {
  const len = out.view.getUint16(out.start + udpOffset + UDP_LEN);
  out.put16(udpOffset + UDP_CSUM, 0);
  const c = l4ChecksumV4(out.view, out.start + ipOffset, out.start + udpOffset, len, IPPROTO_UDP);
  out.put16(udpOffset + UDP_CSUM, udpNonZero(c));
}

/**
 * Computes and stores the UDP checksum of the datagram at window `udpOffset` of
 * `out`, whose IPv6 header is at `ipOffset`; the UDP length field must be final.
 */
export function finishUdp6(out: PacketView, ipOffset: number, udpOffset: number): void {
  const len = out.view.getUint16(out.start + udpOffset + UDP_LEN);
  out.put16(udpOffset + UDP_CSUM, 0);
  const c = l4ChecksumV6(out.view, out.start + ipOffset, out.start + udpOffset, len, IPPROTO_UDP);
  out.put16(udpOffset + UDP_CSUM, udpNonZero(c));
}

/**
 * True if the transport checksum of `l4Length` bytes at window `l4Offset` under the
 * IPv6 header at `ipOffset` verifies (used for ICMPv6, whose checksum a guest always
 * computes). Ranges must already be validated against the frame.
 */
export function verifyL4ChecksumV6(
  pkt: PacketView,
  ipOffset: number,
  l4Offset: number,
  l4Length: number,
  nextHeader: number,
): boolean {
  if (!pkt.has(ipOffset, IP6_HLEN) || !pkt.has(l4Offset, l4Length)) return false;
  const v = pkt.view;
  const s = pkt.start;
  const pseudo = ipv6PseudoSum(v, s + ipOffset, nextHeader, l4Length);
  return fold16(sum16(v, s + l4Offset, l4Length, pseudo)) === 0xffff;
}

/** True if the 16-byte address at `offset` of `a` is fe80::/10 (link-local). */
export function isLinkLocal6(a: Uint8Array, offset = 0): boolean {
  return a[offset] === 0xfe && ((a[offset + 1] ?? 0) & 0xc0) === 0x80;
}

/** True if the 16-byte address at `offset` of `a` is multicast (ff00::/8). */
export function isMulticast6(a: Uint8Array, offset = 0): boolean {
  return a[offset] === 0xff;
}

/** True if `count` bytes of `a` from `offset` are all zero (unspecified address). */
export function isZeroBytes(a: Uint8Array, offset: number, count: number): boolean {
  for (let i = 0; i < count; i++) if (a[offset + i] !== 0) return false;
  return true;
}

/** Parses dotted-quad IPv4 text; returns a new 4-byte array or null. */
export function parseIpv4(text: string): Uint8Array | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return null;
  const a = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const n = Number(m[i + 1]);
    if (n > 255) return null;
    a[i] = n;
  }
  return a;
}

/** Formats 4 bytes at `offset` of `a` as dotted quad (allocates). */
export function formatIpv4(a: Uint8Array, offset = 0): string {
  return `${a[offset]}.${a[offset + 1]}.${a[offset + 2]}.${a[offset + 3]}`;
}

/**
 * Parses IPv6 text (RFC 4291 §2.2, including "::" and a trailing dotted quad);
 * returns a new 16-byte array or null.
 */
export function parseIpv6(text: string): Uint8Array | null {
  let head = text;
  let tail = "";
  const dbl = text.indexOf("::");
  if (dbl >= 0) {
    if (text.indexOf("::", dbl + 1) >= 0) return null;
    head = text.slice(0, dbl);
    tail = text.slice(dbl + 2);
  }
  const words: number[] = [];
  const tailWords: number[] = [];
  const parsePart = (part: string, into: number[], last: boolean): boolean => {
    if (part === "") return true;
    const groups = part.split(":");
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (last && i === groups.length - 1 && g.includes(".")) {
        const v4 = parseIpv4(g);
        if (!v4) return false;
        into.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!/^[0-9a-f]{1,4}$/i.test(g)) return false;
      into.push(parseInt(g, 16));
    }
    return true;
  };
  if (!parsePart(head, words, dbl < 0) || !parsePart(tail, tailWords, true)) return null;
  const total = words.length + tailWords.length;
  if (dbl < 0 ? total !== 8 : total > 7) return null;
  const all = words.concat(new Array<number>(8 - total).fill(0), tailWords);
  const a = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    a[2 * i] = all[i]! >> 8;
    a[2 * i + 1] = all[i]! & 0xff;
  }
  return a;
}

/** Formats 16 bytes at `offset` of `a` as RFC 5952 text (allocates). */
export function formatIpv6(a: Uint8Array, offset = 0): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) {
    w.push(((a[offset + 2 * i] ?? 0) << 8) | (a[offset + 2 * i + 1] ?? 0));
  }
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(w);
  return `${hex(w.slice(0, bestStart))}::${hex(w.slice(bestStart + bestLen))}`;
}
