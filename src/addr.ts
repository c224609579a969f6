/**
 * Textual and binary forms of IP and MAC addresses.
 *
 * Theory of operation: an address is a run of bytes in network order, 4 bytes for IPv4,
 * 16 for IPv6 and 6 for a MAC address. The configuration keeps them as standalone
 * `Uint8Array`s, while protocol code reads and writes them in place inside frames, so
 * every parser and predicate here has a form that works on a caller-owned buffer at an
 * offset (`parseIp4Into`, `isLoopback6(buf, off)`...) and allocates nothing; the
 * convenience forms that return a fresh array are meant for start-up code only.
 *
 * Parsing is strict on purpose, like inet_pton(3): IPv4 is exactly four decimal parts
 * 0..255 without leading zeros; IPv6 accepts every RFC 4291 textual form (one "::",
 * 1..4 hex digits per group, a trailing dotted quad) but no zone index ("%eth0"), which
 * callers that accept one split off themselves. Formatting follows RFC 5952 (lower case,
 * longest zero run compressed, dotted quad only for IPv4-mapped addresses).
 */

/** Length in bytes of an IPv4 address. */
export const IP4_LEN = 4;
/** Length in bytes of an IPv6 address. */
export const IP6_LEN = 16;
/** Length in bytes of an Ethernet MAC address. */
export const MAC_LEN = 6;

const CH_0 = 0x30;
const CH_9 = 0x39;
const CH_DOT = 0x2e;
const CH_COLON = 0x3a;

function hexDigitValue(code: number): number {
  if (code >= CH_0 && code <= CH_9) return code - CH_0;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10; // a-f
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10; // A-F
  return -1;
}

/** Parses text[start, end) as a dotted quad into out[off..off+3]; false if malformed. */
function parseDottedQuad(
  text: string,
  start: number,
  end: number,
  out: Uint8Array,
  off: number,
): boolean {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = start; i <= end; i++) {
    const code = i < end ? text.charCodeAt(i) : CH_DOT;
    if (code >= CH_0 && code <= CH_9) {
      if (digits === 1 && value === 0) return false; // leading zero
      value = value * 10 + (code - CH_0);
      if (value > 255) return false;
      digits++;
    } else if (code === CH_DOT) {
      if (digits === 0 || part > 3) return false;
      out[off + part] = value;
      part++;
      value = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  return part === 4;
}

/**
 * Parses a strict dotted-quad IPv4 address into out[off..off+3] (network order).
 * Returns false, leaving out possibly partly written, if the text is not one.
 */
export function parseIp4Into(text: string, out: Uint8Array, off = 0): boolean {
  if (off < 0 || off + IP4_LEN > out.length) return false;
  return parseDottedQuad(text, 0, text.length, out, off);
}

/**
 * Parses an IPv6 address in any RFC 4291 textual form, without zone index, into
 * out[off..off+15] (network order). Returns false if the text is not one.
 */
export function parseIp6Into(text: string, out: Uint8Array, off = 0): boolean {
  if (off < 0 || off + IP6_LEN > out.length) return false;
  const len = text.length;
  if (len < 2) return false;
  let group = 0; // groups written so far
  let gapAt = -1; // group index where "::" stands
  let i = 0;
  if (text.charCodeAt(0) === CH_COLON) {
    if (text.charCodeAt(1) !== CH_COLON) return false;
    gapAt = 0;
    i = 2;
    if (i === len) {
      out.fill(0, off, off + IP6_LEN);
      return true;
    }
  }
  while (i < len) {
    if (group === 8) return false;
    const groupStart = i;
    let value = 0;
    let digits = 0;
    while (i < len) {
      const v = hexDigitValue(text.charCodeAt(i));
      if (v < 0) break;
      value = value * 16 + v;
      digits++;
      i++;
    }
    if (i < len && text.charCodeAt(i) === CH_DOT) {
      // Trailing dotted quad: takes the last two groups.
      if (group > 6) return false;
      if (!parseDottedQuad(text, groupStart, len, out, off + group * 2)) return false;
      group += 2;
      i = len;
      break;
    }
    if (digits === 0 || digits > 4) return false;
    out[off + group * 2] = value >> 8;
    out[off + group * 2 + 1] = value & 0xff;
    group++;
    if (i === len) break;
    if (text.charCodeAt(i) !== CH_COLON) return false;
    i++;
    if (i < len && text.charCodeAt(i) === CH_COLON) {
      if (gapAt >= 0) return false; // a second "::"
      gapAt = group;
      i++;
      if (i === len) break;
    } else if (i === len) {
      return false; // trailing single ':'
    }
  }
  if (gapAt < 0) return group === 8;
  if (group === 8) return false; // "::" must stand for at least one group
  // Move the groups after the gap to the end, zero the gap.
  const tailBytes = (group - gapAt) * 2;
  const tailFrom = off + gapAt * 2;
  const tailTo = off + IP6_LEN - tailBytes;
  out.copyWithin(tailTo, tailFrom, tailFrom + tailBytes);
  out.fill(0, tailFrom, tailTo);
  return true;
}

/** Parses a strict dotted-quad IPv4 address into a new 4-byte array, or undefined. */
export function parseIp4(text: string): Uint8Array | undefined {
  const out = new Uint8Array(IP4_LEN);
  return parseIp4Into(text, out) ? out : undefined;
}

/** Parses an IPv6 address (no zone index) into a new 16-byte array, or undefined. */
export function parseIp6(text: string): Uint8Array | undefined {
  const out = new Uint8Array(IP6_LEN);
  return parseIp6Into(text, out) ? out : undefined;
}

/**
 * Parses either family: a new 4-byte array for IPv4 text, 16 bytes for IPv6 text,
 * undefined otherwise. IPv4-mapped IPv6 text ("::ffff:1.2.3.4") stays 16 bytes.
 */
export function parseIp(text: string): Uint8Array | undefined {
  return parseIp4(text) ?? parseIp6(text);
}

/** Formats the IPv4 address at buf[off..off+3] as a dotted quad. */
export function formatIp4(buf: Uint8Array, off = 0): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

/** Formats the IPv6 address at buf[off..off+15] in RFC 5952 canonical form. */
export function formatIp6(buf: Uint8Array, off = 0): string {
  if (isV4Mapped6(buf, off)) return "::ffff:" + formatIp4(buf, off + 12);
  let bestStart = -1;
  let bestLen = 0;
  let runStart = -1;
  for (let g = 0; g <= 8; g++) {
    const zero = g < 8 && (buf[off + g * 2] ?? 0) === 0 && (buf[off + g * 2 + 1] ?? 0) === 0;
    if (zero) {
      if (runStart < 0) runStart = g;
    } else if (runStart >= 0) {
      const runLen = g - runStart;
      if (runLen > bestLen) {
        bestStart = runStart;
        bestLen = runLen;
      }
      runStart = -1;
    }
  }
  if (bestLen < 2) bestStart = -1;
  let s = "";
  for (let g = 0; g < 8; g++) {
    if (g === bestStart) {
      s += "::";
      g += bestLen - 1;
      continue;
    }
    if (s.length > 0 && !s.endsWith(":")) s += ":";
    s += (((buf[off + g * 2] ?? 0) << 8) | (buf[off + g * 2 + 1] ?? 0)).toString(16);
  }
  return s;
}

/** Formats a 4- or 16-byte address by its length; anything else gives "?". */
export function formatIp(addr: Uint8Array): string {
  if (addr.length === IP4_LEN) return formatIp4(addr);
  if (addr.length === IP6_LEN) return formatIp6(addr);
  return "?";
}

/** True if the two addresses have the same length and bytes. */
export function ipEquals(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function allZero(buf: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] !== 0) return false;
  return true;
}

/** IPv4 0.0.0.0 at buf[off]. */
export function isUnspecified4(buf: Uint8Array, off = 0): boolean {
  return allZero(buf, off, off + IP4_LEN);
}

/** IPv4 127.0.0.0/8 at buf[off]. */
export function isLoopback4(buf: Uint8Array, off = 0): boolean {
  return buf[off] === 127;
}

/** IPv4 169.254.0.0/16 at buf[off]. */
export function isLinkLocal4(buf: Uint8Array, off = 0): boolean {
  return buf[off] === 169 && buf[off + 1] === 254;
}

/** IPv4 224.0.0.0/4 at buf[off]. */
export function isMulticast4(buf: Uint8Array, off = 0): boolean {
  return ((buf[off] ?? 0) & 0xf0) === 0xe0;
}

/** IPv4 limited broadcast 255.255.255.255 at buf[off]. */
export function isBroadcast4(buf: Uint8Array, off = 0): boolean {
  return buf[off] === 255 && buf[off + 1] === 255 && buf[off + 2] === 255 &&
    buf[off + 3] === 255;
}

/** IPv6 :: at buf[off]. */
export function isUnspecified6(buf: Uint8Array, off = 0): boolean {
  return allZero(buf, off, off + IP6_LEN);
}

/** IPv6 ::1 at buf[off]. */
export function isLoopback6(buf: Uint8Array, off = 0): boolean {
  return allZero(buf, off, off + 15) && buf[off + 15] === 1;
}

/** IPv6 fe80::/10 at buf[off]. */
export function isLinkLocal6(buf: Uint8Array, off = 0): boolean {
  return buf[off] === 0xfe && ((buf[off + 1] ?? 0) & 0xc0) === 0x80;
}

/** IPv6 ff00::/8 at buf[off]. */
export function isMulticast6(buf: Uint8Array, off = 0): boolean {
  return buf[off] === 0xff;
}

/** IPv6 ::ffff:0:0/96 (IPv4-mapped) at buf[off]. */
export function isV4Mapped6(buf: Uint8Array, off = 0): boolean {
  return allZero(buf, off, off + 10) && buf[off + 10] === 0xff && buf[off + 11] === 0xff;
}

/** IPv6 ::/96 minus :: and ::1 (deprecated IPv4-compatible) at buf[off]. */
export function isV4Compat6(buf: Uint8Array, off = 0): boolean {
  return allZero(buf, off, off + 12) && !isUnspecified6(buf, off) && !isLoopback6(buf, off);
}

/** Unspecified address of either family, chosen by the array's length. */
export function isUnspecified(addr: Uint8Array): boolean {
  return addr.length === IP4_LEN ? isUnspecified4(addr) : isUnspecified6(addr);
}

/** Loopback address of either family, chosen by the array's length. */
export function isLoopback(addr: Uint8Array): boolean {
  return addr.length === IP4_LEN ? isLoopback4(addr) : isLoopback6(addr);
}

/** Link-local address of either family, chosen by the array's length. */
export function isLinkLocal(addr: Uint8Array): boolean {
  return addr.length === IP4_LEN ? isLinkLocal4(addr) : isLinkLocal6(addr);
}

/** Multicast address of either family, chosen by the array's length. */
export function isMulticast(addr: Uint8Array): boolean {
  return addr.length === IP4_LEN ? isMulticast4(addr) : isMulticast6(addr);
}

/**
 * Prefix length (0..32) of the IPv4 netmask at buf[off], or -1 if its one bits are
 * not contiguous from the top.
 */
export function prefixFromNetmask4(buf: Uint8Array, off = 0): number {
  const mask = (((buf[off] ?? 0) << 24) | ((buf[off + 1] ?? 0) << 16) |
    ((buf[off + 2] ?? 0) << 8) | (buf[off + 3] ?? 0)) >>> 0;
  const inverted = ~mask >>> 0;
  if ((inverted & (inverted + 1)) !== 0) return -1; // host part must be 0...01...1
  return Math.clz32(inverted);
}

/** Writes the IPv4 netmask for a prefix length 0..32 into out[off..off+3]. */
export function netmaskFromPrefix4(prefixLen: number, out: Uint8Array, off = 0): void {
  const mask = prefixLen <= 0 ? 0 : (0xffffffff << (32 - Math.min(prefixLen, 32))) >>> 0;
  out[off] = mask >>> 24;
  out[off + 1] = (mask >>> 16) & 0xff;
  out[off + 2] = (mask >>> 8) & 0xff;
  out[off + 3] = mask & 0xff;
}

/**
 * Parses an IPv4 netmask given either as a dotted quad with contiguous one bits or as a
 * number of bits 0..32; returns the prefix length or -1.
 */
export function parseNetmask4(text: string): number {
  if (/^[0-9]{1,2}$/.test(text)) {
    const bits = Number(text);
    return bits <= 32 && (text.length === 1 || text[0] !== "0") ? bits : -1;
  }
  const mask = new Uint8Array(IP4_LEN);
  if (!parseIp4Into(text, mask)) return -1;
  return prefixFromNetmask4(mask);
}

/**
 * Parses a MAC address written as six colon-separated groups of one or two hex digits
 * into out[off..off+5]; false if malformed.
 */
export function parseMacInto(text: string, out: Uint8Array, off = 0): boolean {
  if (off < 0 || off + MAC_LEN > out.length) return false;
  let byte = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const code = i < text.length ? text.charCodeAt(i) : CH_COLON;
    if (code === CH_COLON) {
      if (digits === 0 || byte >= MAC_LEN) return false;
      out[off + byte] = value;
      byte++;
      value = 0;
      digits = 0;
      continue;
    }
    const v = hexDigitValue(code);
    if (v < 0 || digits === 2) return false;
    value = value * 16 + v;
    digits++;
  }
  return byte === MAC_LEN;
}

/** Parses a MAC address into a new 6-byte array, or undefined if malformed. */
export function parseMac(text: string): Uint8Array | undefined {
  const out = new Uint8Array(MAC_LEN);
  return parseMacInto(text, out) ? out : undefined;
}

/** Formats the MAC address at buf[off..off+5] as lower-case "xx:xx:xx:xx:xx:xx". */
export function formatMac(buf: Uint8Array, off = 0): string {
  let s = "";
  for (let i = 0; i < MAC_LEN; i++) {
    if (i > 0) s += ":";
    s += (buf[off + i] ?? 0).toString(16).padStart(2, "0");
  }
  return s;
}

/** True if the MAC address at buf[off] is a group (multicast or broadcast) address. */
export function isMulticastMac(buf: Uint8Array, off = 0): boolean {
  return ((buf[off] ?? 0) & 1) === 1;
}

/** Longest interface name Linux accepts, in bytes (IFNAMSIZ minus the NUL). */
export const IFNAME_MAX = 15;

/**
 * True if the kernel would accept the name for a network interface: 1..15 bytes, not
 * "." or "..", and no '/', ':' or white space (see dev_valid_name() in Linux).
 */
export function isValidIfname(name: string): boolean {
  if (name.length === 0 || name === "." || name === "..") return false;
  if (new TextEncoder().encode(name).length > IFNAME_MAX) return false;
  return !/[\/:\s]/.test(name);
}
