/**
 * DNS wire-format domain name lists, for DHCP option 119, NDP DNSSL and DHCPv6
 * option 24, and single names for the client FQDN options (DHCP 81, DHCPv6 39).
 *
 * Theory of operation: the three services carry the search list as a sequence of
 * names in DNS wire format (RFC 1035 §3.1: length-prefixed labels, zero
 * terminated). DHCP's Domain Search option (RFC 3397) may compress names with
 * pointers whose offsets count from the start of the option data; DNSSL
 * (RFC 8106 §5.2) and DHCPv6 (RFC 8415 §10, RFC 3646) forbid compression.
 *
 * `encodeDomainList` writes the list straight from the configuration strings
 * into a caller-owned buffer, dns-packet style (`buf`, `offset`, limit `end`),
 * and allocates nothing: to compress, it searches the bytes it already wrote for
 * a label sequence equal to each suffix of the name being written. Names are
 * ASCII (IDNs must already be in punycode); a trailing dot is accepted. An
 * invalid name or a list that does not fit makes the whole encoding fail (-1),
 * so a reply carries either the complete list or none of it.
 *
 * `decodeDomainList` allocates and exists for tests and debug logging.
 */

/** Longest label, bytes (RFC 1035 §2.3.4). */
export const DNS_MAX_LABEL = 63;
/** Longest name in wire format, bytes (RFC 1035 §2.3.4). */
export const DNS_MAX_NAME = 255;

/** Length of `name` without a single trailing dot. */
function nameEnd(name: string): number {
  const n = name.length;
  return n > 0 && name.charCodeAt(n - 1) === 0x2e ? n - 1 : n;
}

/** End (exclusive) of the label of `name` starting at `p`, before `end`. */
function labelEnd(name: string, p: number, end: number): number {
  let e = p;
  while (e < end && name.charCodeAt(e) !== 0x2e) e++;
  return e;
}

/**
 * Length in bytes of `name` in uncompressed wire format, or -1 if it is not a
 * valid name (empty, empty or over-long label, non-printable or non-ASCII byte,
 * over 255 bytes).
 */
export function domainNameLength(name: string): number {
  const end = nameEnd(name);
  if (end === 0) return -1;
  let len = 1;
  for (let p = 0; p <= end;) {
    const e = labelEnd(name, p, end);
    const l = e - p;
    if (l < 1 || l > DNS_MAX_LABEL) return -1;
    for (let i = p; i < e; i++) {
      const c = name.charCodeAt(i);
      if (c <= 0x20 || c >= 0x7f) return -1;
    }
    len += 1 + l;
    p = e + 1;
  }
  return len <= DNS_MAX_NAME ? len : -1;
}

/** Bytes `encodeDomainList(names, ..., compress = false)` writes, or -1 if a name is invalid. */
export function domainListLength(names: readonly string[]): number {
  let total = 0;
  for (const name of names) {
    const l = domainNameLength(name);
    if (l < 0) return -1;
    total += l;
  }
  return total;
}

/**
 * True if the wire name starting at absolute `pos` in `buf` (following compression
 * pointers back into [base, ...)) spells `name` from `p` to `end`.
 */
function wireMatches(
  buf: Uint8Array,
  base: number,
  limit: number,
  pos: number,
  name: string,
  p: number,
  end: number,
): boolean {
  let hops = 0;
  let q = pos;
  for (;;) {
    if (q >= limit) return false;
    const len = buf[q]!;
    if (len >= 0xc0) {
      if (q + 1 >= limit || ++hops > 64) return false;
      q = base + (((len & 0x3f) << 8) | buf[q + 1]!);
      continue;
    }
    if (len === 0) return p > end;
    if (p > end) return false;
    const e = labelEnd(name, p, end);
    if (e - p !== len || q + 1 + len > limit) return false;
    for (let i = 0; i < len; i++) {
      if (buf[q + 1 + i] !== name.charCodeAt(p + i)) return false;
    }
    q += 1 + len;
    p = e + 1;
  }
}

/**
 * Absolute position of an already-written label sequence in [base, limit) equal to
 * the suffix of `name` from `p` to `end`, or -1. Walks every label start of every
 * name written so far.
 */
function findSuffix(
  buf: Uint8Array,
  base: number,
  limit: number,
  name: string,
  p: number,
  end: number,
): number {
  let q = base;
  while (q < limit) {
    const len = buf[q]!;
    if (len === 0) {
      q++;
      continue;
    }
    if (len >= 0xc0) {
      q += 2;
      continue;
    }
    if (q - base < 0x4000 && wireMatches(buf, base, limit, q, name, p, end)) return q;
    q += 1 + len;
  }
  return -1;
}

/**
 * Encodes `names` in DNS wire format into `buf` from `offset`, writing no byte at or
 * past `end` (absolute index; default: end of `buf`). With `compress`, suffixes
 * already written are replaced by pointers relative to `offset` (RFC 3397).
 * Returns the number of bytes written, or -1 if a name is invalid or the list does
 * not fit (bytes up to `end` may have been written).
 */
export function encodeDomainList(
  names: readonly string[],
  buf: Uint8Array,
  offset: number,
  compress: boolean,
  end: number = buf.length,
): number {
  if (end > buf.length) end = buf.length;
  let pos = offset;
  for (const name of names) {
    if (domainNameLength(name) < 0) return -1;
    const nEnd = nameEnd(name);
    let pointed = false;
    for (let p = 0; p <= nEnd;) {
      if (compress) {
        const at = findSuffix(buf, offset, pos, name, p, nEnd);
        if (at >= 0) {
          if (pos + 2 > end) return -1;
          const rel = at - offset;
          buf[pos] = 0xc0 | (rel >> 8);
          buf[pos + 1] = rel & 0xff;
          pos += 2;
          pointed = true;
          break;
        }
      }
      const e = labelEnd(name, p, nEnd);
      const l = e - p;
      if (pos + 1 + l > end) return -1;
      buf[pos++] = l;
      for (let i = p; i < e; i++) buf[pos++] = name.charCodeAt(i);
      p = e + 1;
    }
    if (!pointed) {
      if (pos + 1 > end) return -1;
      buf[pos++] = 0;
    }
  }
  return pos - offset;
}

/**
 * Encodes the single name `name` in uncompressed DNS wire format into `buf` from
 * `offset`, writing no byte at or past `end` (absolute index). For the client FQDN
 * options (DHCP 81, DHCPv6 39). Returns the bytes written, or -1 if `name` is invalid
 * or does not fit. Allocates nothing.
 */
export function encodeDomainName(
  name: string,
  buf: Uint8Array,
  offset: number,
  end: number = buf.length,
): number {
  if (end > buf.length) end = buf.length;
  const len = domainNameLength(name);
  if (len < 0 || offset + len > end) return -1;
  const nEnd = nameEnd(name);
  let pos = offset;
  for (let p = 0; p <= nEnd;) {
    const e = labelEnd(name, p, nEnd);
    buf[pos++] = e - p;
    for (let i = p; i < e; i++) buf[pos++] = name.charCodeAt(i);
    p = e + 1;
  }
  buf[pos++] = 0;
  return pos - offset;
}

/**
 * Decodes a list of wire-format names occupying `length` bytes at `offset` of
 * `buf`, following compression pointers within that range. Returns the names
 * (without trailing dot) or null if malformed. Allocates: tests and logging only.
 */
export function decodeDomainList(buf: Uint8Array, offset: number, length: number): string[] | null {
  const limit = offset + length;
  if (limit > buf.length) return null;
  const out: string[] = [];
  let q = offset;
  while (q < limit) {
    const labels: string[] = [];
    let r = q;
    let next = -1;
    let hops = 0;
    let wire = 1;
    for (;;) {
      if (r >= limit) return null;
      const len = buf[r]!;
      if (len >= 0xc0) {
        if (r + 1 >= limit || ++hops > 64) return null;
        if (next < 0) next = r + 2;
        r = offset + (((len & 0x3f) << 8) | buf[r + 1]!);
        continue;
      }
      if (len > DNS_MAX_LABEL) return null;
      if (len === 0) {
        if (next < 0) next = r + 1;
        break;
      }
      if (r + 1 + len > limit) return null;
      wire += 1 + len;
      if (wire > DNS_MAX_NAME) return null;
      labels.push(String.fromCharCode(...buf.subarray(r + 1, r + 1 + len)));
      r += 1 + len;
    }
    if (labels.length === 0) return null;
    out.push(labels.join("."));
    q = next;
  }
  return out;
}
