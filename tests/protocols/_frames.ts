/**
 * Test helpers: build request frames by hand and take replies apart again, with a
 * deliberately naive checksum so the code under test is checked against an
 * independent implementation. Allocation is fine here.
 */

import assert from "node:assert/strict";
import { PacketView } from "../../src/protocols/packet.ts";

/** Concatenates byte arrays and plain numbers (one byte each). */
export function bytes(...parts: (Uint8Array | number[] | number)[]): Uint8Array {
  const flat: number[] = [];
  for (const p of parts) {
    if (typeof p === "number") flat.push(p);
    else flat.push(...p);
  }
  return Uint8Array.from(flat);
}

/** Big-endian 16-bit value as two bytes. */
export function be16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

/** Big-endian 32-bit value as four bytes. */
export function be32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/** Naive RFC 1071 checksum: one 16-bit word at a time, fold at the end. */
export function naiveChecksum(data: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < data.length; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (data.length & 1) sum += data[data.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** Ethernet frame. */
export function eth(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array) {
  return bytes(dst, src, be16(type), payload);
}

/** IPv4 header + payload with a correct header checksum (no options). */
export function ipv4(src: Uint8Array, dst: Uint8Array, proto: number, payload: Uint8Array) {
  const h = bytes(0x45, 0, be16(20 + payload.length), 0, 0, 0, 0, 64, proto, 0, 0, src, dst);
  const c = naiveChecksum(h);
  h[10] = c >> 8;
  h[11] = c & 0xff;
  return bytes(h, payload);
}

/** UDP over IPv4 with a correct checksum. */
export function udp4(
  src: Uint8Array,
  dst: Uint8Array,
  sport: number,
  dport: number,
  payload: Uint8Array,
) {
  const len = 8 + payload.length;
  const u = bytes(be16(sport), be16(dport), be16(len), 0, 0, payload);
  const pseudo = bytes(src, dst, 0, 17, be16(len));
  let c = naiveChecksum(bytes(pseudo, u));
  if (c === 0) c = 0xffff;
  u[6] = c >> 8;
  u[7] = c & 0xff;
  return ipv4(src, dst, 17, u);
}

/** IPv6 header + payload. `l4Csum` ≥ 0: offset of a checksum to fill in the payload. */
export function ipv6(
  src: Uint8Array,
  dst: Uint8Array,
  nh: number,
  hlim: number,
  payload: Uint8Array,
  l4Csum = -1,
) {
  const p = Uint8Array.from(payload);
  if (l4Csum >= 0) {
    p[l4Csum] = 0;
    p[l4Csum + 1] = 0;
    const pseudo = bytes(src, dst, be32(p.length), 0, 0, 0, nh);
    let c = naiveChecksum(bytes(pseudo, p));
    if (nh === 17 && c === 0) c = 0xffff;
    p[l4Csum] = c >> 8;
    p[l4Csum + 1] = c & 0xff;
  }
  return bytes(0x60, 0, 0, 0, be16(p.length), nh, hlim, src, dst, p);
}

/** A PacketView over a copy of `frame`, in a buffer with `slack` spare bytes. */
export function view(frame: Uint8Array, slack = 64): PacketView {
  const buf = new Uint8Array(frame.length + slack);
  buf.set(frame);
  return new PacketView(buf, frame.length);
}

/** Copy of the `len`-byte reply at the start of `out`. */
export function replyBytes(out: PacketView, len: number): Uint8Array {
  return out.bytes.slice(out.start, out.start + len);
}

/** Asserts the IPv4 header checksum and the UDP checksum of an Ethernet/IPv4/UDP frame. */
export function assertIpv4UdpChecksums(f: Uint8Array): void {
  const ihl = (f[14]! & 0x0f) * 4;
  const ip = f.subarray(14, 14 + ihl);
  assert.equal(naiveChecksum(ip), 0, "IPv4 header checksum");
  const total = (f[16]! << 8) | f[17]!;
  assert.equal(total, f.length - 14, "IPv4 total length matches frame");
  const udp = f.subarray(14 + ihl, 14 + total);
  assert.equal((udp[4]! << 8) | udp[5]!, udp.length, "UDP length");
  assert.notEqual((udp[6]! << 8) | udp[7]!, 0, "UDP checksum present");
  const pseudo = bytes(f.subarray(26, 34), 0, 17, be16(udp.length));
  assert.equal(naiveChecksum(bytes(pseudo, udp)), 0, "UDP checksum");
}

/** Asserts the transport checksum of an Ethernet/IPv6 frame (UDP or ICMPv6). */
export function assertIpv6L4Checksum(f: Uint8Array): void {
  assert.equal(f[14]! >> 4, 6);
  const plen = (f[18]! << 8) | f[19]!;
  assert.equal(plen, f.length - 54, "IPv6 payload length matches frame");
  const pseudo = bytes(f.subarray(22, 54), be32(plen), 0, 0, 0, f[20]!);
  assert.equal(naiveChecksum(bytes(pseudo, f.subarray(54))), 0, "L4 checksum over IPv6");
}

/** DHCP options of a BOOTP message: code → data (repeated codes concatenated, RFC 3396). */
export function dhcpOptions(bootp: Uint8Array): Map<number, Uint8Array> {
  const m = new Map<number, Uint8Array>();
  let o = 240;
  for (;;) {
    assert.ok(o < bootp.length, "options end with END");
    const code = bootp[o]!;
    if (code === 255) break;
    if (code === 0) {
      o++;
      continue;
    }
    const len = bootp[o + 1]!;
    assert.ok(o + 2 + len <= bootp.length, "option inside message");
    const data = bootp.subarray(o + 2, o + 2 + len);
    const prev = m.get(code);
    m.set(code, prev ? bytes(prev, data) : Uint8Array.from(data));
    o += 2 + len;
  }
  return m;
}

/** Top-level DHCPv6 options (or sub-options): list of [code, data]. */
export function dhcpv6Options(data: Uint8Array): [number, Uint8Array][] {
  const list: [number, Uint8Array][] = [];
  let o = 0;
  while (o < data.length) {
    assert.ok(o + 4 <= data.length, "option header inside message");
    const code = (data[o]! << 8) | data[o + 1]!;
    const len = (data[o + 2]! << 8) | data[o + 3]!;
    assert.ok(o + 4 + len <= data.length, "option inside message");
    list.push([code, data.slice(o + 4, o + 4 + len)]);
    o += 4 + len;
  }
  return list;
}

/** NDP options from `start` in an ICMPv6 message: list of [type, whole option]. */
export function ndpOptions(icmp: Uint8Array, start: number): [number, Uint8Array][] {
  const list: [number, Uint8Array][] = [];
  let o = start;
  while (o < icmp.length) {
    const units = icmp[o + 1]!;
    assert.ok(units > 0 && o + 8 * units <= icmp.length, "NDP option inside message");
    list.push([icmp[o]!, icmp.slice(o, o + 8 * units)]);
    o += 8 * units;
  }
  return list;
}

/** Deterministic PRNG (xorshift32) for the randomized tests. */
export function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Reads a big-endian u16. */
export function rd16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

/** Reads a big-endian u32. */
export function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
