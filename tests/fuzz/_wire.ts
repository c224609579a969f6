/**
 * Frames on the wire for the tap fuzzer: builders for well-formed Ethernet, ARP,
 * IPv4 (with options), IPv6 (with extension headers), TCP (with options), UDP and
 * ICMP/ICMPv6 frames, and a strict parser for what the data path sends back.
 * Checksums come from tests/protocols/_frames.ts (a deliberately naive, independent
 * implementation). Allocation is fine here: this is test code.
 */
import { be16, be32, bytes, naiveChecksum } from "../protocols/_frames.ts";

export const ETH_P_ARP = 0x0806;
export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;
/** IPv6 extension headers. */
export const EXT_HOP_BY_HOP = 0;
export const EXT_ROUTING = 43;
export const EXT_FRAGMENT = 44;
export const EXT_DEST_OPTS = 60;

/** Big-endian 16-bit read. */
export function get16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

/** Big-endian 32-bit read (unsigned). */
export function get32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** Lowercase hex of `b`. */
export function hex(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** The bytes of a hex string (inverse of `hex`). */
export function unhex(s: string): Uint8Array {
  return Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** Whether two byte ranges are equal. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The pseudo-header for an L4 checksum: 4-byte (IPv4) or 16-byte (IPv6) addresses. */
export function pseudoHeader(src: Uint8Array, dst: Uint8Array, proto: number, length: number) {
  return src.length === 4
    ? bytes(src, dst, 0, proto, be16(length))
    : bytes(src, dst, be32(length), 0, 0, 0, proto);
}

/** Fill the 16-bit checksum at `at` of `l4` over the pseudo-header (none: ICMPv4). */
export function fillL4Checksum(
  l4: Uint8Array,
  at: number,
  pseudo: Uint8Array | undefined,
  zeroAsFfff = false,
): Uint8Array {
  l4[at] = 0;
  l4[at + 1] = 0;
  let c = naiveChecksum(pseudo === undefined ? l4 : bytes(pseudo, l4));
  if (c === 0 && zeroAsFfff) c = 0xffff;
  l4[at] = c >> 8;
  l4[at + 1] = c & 0xff;
  return l4;
}

/** Whether the checksum of `l4` (with its pseudo-header) verifies. */
export function l4ChecksumOk(l4: Uint8Array, pseudo: Uint8Array | undefined): boolean {
  return naiveChecksum(pseudo === undefined ? l4 : bytes(pseudo, l4)) === 0;
}

/** An Ethernet frame. */
export function ethFrame(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array) {
  return bytes(dst, src, be16(type), payload);
}

/** What an IPv4 header carries besides its addresses. */
export interface Ip4Fields {
  tos: number;
  id: number;
  /** Flags and fragment offset, as the 16-bit field. */
  fragField: number;
  ttl: number;
  /** Options, padded here to a multiple of 4 bytes (at most 40). */
  options: Uint8Array;
}

/** An IPv4 packet with a correct header checksum. */
export function ip4Packet(
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  payload: Uint8Array,
  f: Ip4Fields,
): Uint8Array {
  const optLen = Math.min(40, (f.options.length + 3) & ~3);
  const opts = new Uint8Array(optLen);
  opts.set(f.options.subarray(0, optLen));
  const hlen = 20 + optLen;
  const h = bytes(
    0x40 | (hlen >> 2),
    f.tos,
    be16(hlen + payload.length),
    be16(f.id),
    be16(f.fragField),
    f.ttl,
    proto,
    0,
    0,
    src,
    dst,
    opts,
  );
  const c = naiveChecksum(h);
  h[10] = c >> 8;
  h[11] = c & 0xff;
  return bytes(h, payload);
}

/** One IPv6 extension header: its type and its body after the 2-byte (type, length) head. */
export interface ExtHeader {
  type: number;
  /** Body after next-header and length (fragment: 6 bytes; others padded to 8n + 6). */
  body: Uint8Array;
}

/** The bytes of an extension header chain ending in `finalNext`. */
export function extChain(chain: ExtHeader[], finalNext: number): Uint8Array {
  const parts: Uint8Array[] = [];
  chain.forEach((h, i) => {
    const next = i + 1 < chain.length ? chain[i + 1]!.type : finalNext;
    if (h.type === EXT_FRAGMENT) {
      const body = new Uint8Array(6);
      body.set(h.body.subarray(0, 6));
      parts.push(bytes(next, 0, body));
    } else {
      const units = Math.min(255, Math.floor((h.body.length + 2 + 7) / 8) - 1);
      const body = new Uint8Array(units * 8 + 6);
      body.set(h.body.subarray(0, body.length));
      parts.push(bytes(next, Math.max(0, units), body));
    }
  });
  return bytes(...parts);
}

/** An IPv6 packet: `headers` (extension headers, may be empty) then `payload`. */
export function ip6Packet(
  src: Uint8Array,
  dst: Uint8Array,
  firstNext: number,
  hopLimit: number,
  flow: number,
  headers: Uint8Array,
  payload: Uint8Array,
): Uint8Array {
  const plen = headers.length + payload.length;
  return bytes(
    0x60 | ((flow >>> 24) & 0x0f),
    (flow >>> 16) & 0xff,
    be16(flow & 0xffff),
    be16(plen),
    firstNext,
    hopLimit,
    src,
    dst,
    headers,
    payload,
  );
}

/** A TCP segment's fields. */
export interface TcpFields {
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  urgent: number;
  /** Options (padded here to a multiple of 4, at most 40). */
  options: Uint8Array;
  payload: Uint8Array;
}

/** A TCP segment with a correct checksum for `src` → `dst` (4 or 16-byte addresses). */
export function tcpSegment(src: Uint8Array, dst: Uint8Array, f: TcpFields): Uint8Array {
  const optLen = Math.min(40, (f.options.length + 3) & ~3);
  const opts = new Uint8Array(optLen);
  opts.set(f.options.subarray(0, optLen));
  const doff = (20 + optLen) >> 2;
  const seg = bytes(
    be16(f.sport),
    be16(f.dport),
    be32(f.seq),
    be32(f.ack),
    doff << 4,
    f.flags,
    be16(f.window),
    0,
    0,
    be16(f.urgent),
    opts,
    f.payload,
  );
  return fillL4Checksum(seg, 16, pseudoHeader(src, dst, PROTO_TCP, seg.length));
}

/** A UDP datagram with a correct checksum (`zeroChecksum`: none, IPv4 only). */
export function udpDatagram(
  src: Uint8Array,
  dst: Uint8Array,
  sport: number,
  dport: number,
  payload: Uint8Array,
  zeroChecksum = false,
): Uint8Array {
  const d = bytes(be16(sport), be16(dport), be16(8 + payload.length), 0, 0, payload);
  if (zeroChecksum) return d;
  return fillL4Checksum(d, 6, pseudoHeader(src, dst, PROTO_UDP, d.length), true);
}

/** An ICMP (IPv4, `v6` false) or ICMPv6 message with a correct checksum. */
export function icmpMessage(
  src: Uint8Array,
  dst: Uint8Array,
  type: number,
  code: number,
  body: Uint8Array,
): Uint8Array {
  const m = bytes(type, code, 0, 0, body);
  const v6 = src.length === 16;
  return fillL4Checksum(m, 2, v6 ? pseudoHeader(src, dst, PROTO_ICMPV6, m.length) : undefined);
}

// --- the parser for frames the data path sends ------------------------------------------

/** A frame sent to the guest, taken apart (only what the oracle needs). */
export interface OutFrame {
  readonly ethType: number;
  readonly srcMac: Uint8Array;
  /** ARP: operation, sender and target protocol addresses. */
  readonly arp?: { op: number; senderIp: Uint8Array; targetIp: Uint8Array };
  /** IP: addresses (4 or 16 bytes), transport protocol, transport bytes. */
  readonly ip?: { src: Uint8Array; dst: Uint8Array; proto: number; l4: Uint8Array };
}

/**
 * Take a frame we were sent apart, strictly: every length field must match the
 * frame's own length, every checksum must verify, and only what the data path
 * builds (ARP replies; IPv4 and IPv6 without options or extension headers
 * carrying TCP, UDP, ICMP or ICMPv6) is accepted. Throws a message otherwise.
 */
export function parseOutFrame(f: Uint8Array): OutFrame {
  if (f.length < 14) throw new Error(`short Ethernet frame (${f.length} bytes)`);
  const type = get16(f, 12);
  const srcMac = f.subarray(6, 12);
  if ((srcMac[0]! & 1) !== 0) throw new Error("group source MAC");
  if (type === ETH_P_ARP) {
    if (f.length !== 42) throw new Error(`ARP frame of ${f.length} bytes`);
    if (get16(f, 14) !== 1 || get16(f, 16) !== ETH_P_IP || f[18] !== 6 || f[19] !== 4) {
      throw new Error("ARP header not Ethernet/IPv4");
    }
    if (!sameBytes(f.subarray(22, 28), srcMac)) throw new Error("ARP sender MAC ≠ source MAC");
    return {
      ethType: type,
      srcMac,
      arp: { op: get16(f, 20), senderIp: f.subarray(28, 32), targetIp: f.subarray(38, 42) },
    };
  }
  if (type === ETH_P_IP) {
    if (f.length < 34) throw new Error("short IPv4 frame");
    if (f[14] !== 0x45) throw new Error(`IPv4 version/IHL byte ${f[14]}`);
    const total = get16(f, 16);
    if (total !== f.length - 14) throw new Error(`IPv4 total length ${total}, frame ${f.length}`);
    if (naiveChecksum(f.subarray(14, 34)) !== 0) throw new Error("IPv4 header checksum");
    if ((get16(f, 20) & 0x3fff) !== 0) throw new Error("IPv4 fragment sent");
    if (f[22] === 0) throw new Error("IPv4 TTL 0");
    const src = f.subarray(26, 30);
    const dst = f.subarray(30, 34);
    const proto = f[23]!;
    const l4 = f.subarray(34);
    checkL4(proto, src, dst, l4, false);
    return { ethType: type, srcMac, ip: { src, dst, proto, l4 } };
  }
  if (type === ETH_P_IPV6) {
    if (f.length < 54) throw new Error("short IPv6 frame");
    if (f[14]! >> 4 !== 6) throw new Error("IPv6 version");
    const plen = get16(f, 18);
    if (plen !== f.length - 54) throw new Error(`IPv6 payload length ${plen}, frame ${f.length}`);
    if (f[21] === 0) throw new Error("IPv6 hop limit 0");
    const src = f.subarray(22, 38);
    const dst = f.subarray(38, 54);
    const proto = f[20]!;
    const l4 = f.subarray(54);
    checkL4(proto, src, dst, l4, true);
    return { ethType: type, srcMac, ip: { src, dst, proto, l4 } };
  }
  throw new Error(`ethertype 0x${type.toString(16)} sent`);
}

function checkL4(proto: number, src: Uint8Array, dst: Uint8Array, l4: Uint8Array, v6: boolean) {
  const pseudo = pseudoHeader(src, dst, proto, l4.length);
  if (proto === PROTO_TCP) {
    if (l4.length < 20) throw new Error("short TCP header");
    const doff = (l4[12]! >> 4) * 4;
    if (doff < 20 || doff > l4.length) throw new Error(`TCP data offset ${doff}`);
    if (!l4ChecksumOk(l4, pseudo)) throw new Error("TCP checksum");
    checkTcpOptions(l4.subarray(20, doff));
  } else if (proto === PROTO_UDP) {
    if (l4.length < 8) throw new Error("short UDP header");
    if (get16(l4, 4) !== l4.length) throw new Error(`UDP length ${get16(l4, 4)} of ${l4.length}`);
    if (get16(l4, 0) === 0 || get16(l4, 2) === 0) throw new Error("UDP port 0");
    const csum = get16(l4, 6);
    if (csum === 0 ? v6 : !l4ChecksumOk(l4, pseudo)) throw new Error("UDP checksum");
  } else if (proto === (v6 ? PROTO_ICMPV6 : PROTO_ICMP)) {
    if (l4.length < 4) throw new Error("short ICMP message");
    if (!l4ChecksumOk(l4, v6 ? pseudo : undefined)) throw new Error("ICMP checksum");
  } else {
    throw new Error(`IP protocol ${proto} sent`);
  }
}

function checkTcpOptions(opts: Uint8Array): void {
  for (let i = 0; i < opts.length;) {
    const kind = opts[i]!;
    if (kind === 0) return;
    if (kind === 1) {
      i++;
      continue;
    }
    const len = opts[i + 1];
    if (len === undefined || len < 2 || i + len > opts.length) {
      throw new Error(`TCP option ${kind} of bad length ${len}`);
    }
    i += len;
  }
}
