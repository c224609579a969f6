/**
 * Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-header sums.
 *
 * Theory of operation: the one's complement sum is independent of word size and
 * byte order as long as carries are folded back in at the end (RFC 1071 §2), so
 * we add big-endian 32-bit words read through a DataView into a plain JS number.
 * A double holds integers up to 2^53, i.e. 2^21 additions of 32-bit words (8 MiB)
 * before precision could be lost; we fold every 1 MiB to stay far from that. The
 * result of `sum16` is an unfolded partial sum that can be passed on as the
 * `initial` of the next call (pseudo header, then header, then payload), which
 * is only correct when every segment but the last has even length.
 *
 * `finish` folds to 16 bits and complements: that is the value to store in a
 * checksum field (network order). A received header verifies when the sum over
 * it, checksum field included, folds to 0xffff.
 *
 * Offsets here are absolute offsets into the DataView (not PacketView-relative)
 * and must be in range: these are inner-loop primitives; callers check lengths
 * against the frame before calling them.
 */

const FOLD_EVERY = 1 << 18; // 32-bit words between folds: 1 MiB

/**
 * Partial one's complement sum (below 2^18, not yet folded to 16 bits) of
 * `length` bytes at absolute `offset` of `view`, read as big-endian 16-bit
 * words, added to `initial`. An odd final byte counts as
 * the high byte of a zero-padded word.
 */
export function sum16(view: DataView, offset: number, length: number, initial = 0): number {
  let sum = initial;
  let off = offset;
  const words = length >>> 2;
  // A plain loop: V8 compiles DataView reads to single loads; manual unrolling
  // measured slower (tests/protocols/checksum_bench.ts).
  for (let done = 0; done < words;) {
    const stop = words - done > FOLD_EVERY ? done + FOLD_EVERY : words;
    for (; done < stop; done++, off += 4) sum += view.getUint32(off);
    sum = fold32(sum);
  }
  const rest = length & 3;
  if (rest >= 2) {
    sum += view.getUint16(off);
    off += 2;
  }
  if (rest & 1) sum += view.getUint8(off) << 8;
  // Returned folded below 2^18, a Smi: a sum of 2^31 or more leaving a call V8
  // did not inline would be boxed on the heap, once per frame. Folding keeps
  // the one's complement sum.
  sum = fold32(sum);
  return (sum % 65536) + Math.floor(sum / 65536);
}

/** Folds a large partial sum to at most 33 bits (keeps precision for further adds). */
function fold32(sum: number): number {
  return (sum % 4294967296) + Math.floor(sum / 4294967296);
}

/** Folds a partial sum to a 16-bit one's complement sum (0..0xffff). */
export function fold16(sum: number): number {
  let s = fold32(fold32(sum));
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** Final checksum to store (host number, write it big-endian): ~fold16(sum) & 0xffff. */
export function finish(sum: number): number {
  return ~fold16(sum) & 0xffff;
}

/**
 * IPv4 header checksum over `headerLength` bytes at absolute `ipOffset`. The
 * checksum field (bytes 10-11) must be zero when building; when verifying a
 * received header, a result of 0 means the stored checksum is correct.
 */
export function ipv4HeaderChecksum(view: DataView, ipOffset: number, headerLength: number): number {
  return finish(sum16(view, ipOffset, headerLength));
}

/**
 * Partial sum of the IPv4 pseudo header for the IPv4 header at absolute `ipOffset`:
 * source and destination addresses (read from the header), protocol `proto` and
 * the transport length `l4Length` in bytes.
 */
export function ipv4PseudoSum(
  view: DataView,
  ipOffset: number,
  proto: number,
  l4Length: number,
): number {
  return sum16(view, ipOffset + 12, 8, proto + l4Length);
}

/**
 * Partial sum of the IPv6 pseudo header (RFC 8200 §8.1) for the IPv6 header at
 * absolute `ipOffset`: source, destination, upper-layer length `l4Length` (bytes,
 * 32-bit) and next header `nextHeader`.
 */
export function ipv6PseudoSum(
  view: DataView,
  ipOffset: number,
  nextHeader: number,
  l4Length: number,
): number {
  return sum16(view, ipOffset + 8, 32, nextHeader + (l4Length >>> 16) + (l4Length & 0xffff));
}

/**
 * Transport checksum (UDP, TCP, ICMPv6-style) for IPv4: pseudo header of the IPv4
 * header at absolute `ipOffset` plus `l4Length` bytes at absolute `l4Offset`, whose
 * checksum field must be zero. Returns the value to store; for UDP use `udpNonZero`.
 */
export function l4ChecksumV4(
  view: DataView,
  ipOffset: number,
  l4Offset: number,
  l4Length: number,
  proto: number,
): number {
  return finish(sum16(view, l4Offset, l4Length, ipv4PseudoSum(view, ipOffset, proto, l4Length)));
}

/**
 * Transport checksum (UDP, TCP, ICMPv6) for IPv6: pseudo header of the IPv6 header
 * at absolute `ipOffset` plus `l4Length` bytes at absolute `l4Offset`, whose
 * checksum field must be zero. Returns the value to store; for UDP use `udpNonZero`.
 */
export function l4ChecksumV6(
  view: DataView,
  ipOffset: number,
  l4Offset: number,
  l4Length: number,
  nextHeader: number,
): number {
  return finish(
    sum16(view, l4Offset, l4Length, ipv6PseudoSum(view, ipOffset, nextHeader, l4Length)),
  );
}

/** UDP transmits a computed checksum of 0 as 0xffff (0 means "no checksum", RFC 768). */
export function udpNonZero(checksum: number): number {
  return checksum === 0 ? 0xffff : checksum;
}

/**
 * The value a transport checksum field holds when the device completes the
 * checksum (checksum offload, virtio NEEDS_CSUM): the folded, not complemented,
 * IPv4 pseudo-header sum for the header at absolute `ipOffset`, protocol `proto`
 * and transport length `l4Length` (bytes). The device sums the transport header
 * and payload onto it and stores the complement.
 */
export function l4PartialV4(
  view: DataView,
  ipOffset: number,
  proto: number,
  l4Length: number,
): number {
  return fold16(ipv4PseudoSum(view, ipOffset, proto, l4Length));
}

/** As `l4PartialV4`, for the IPv6 header at absolute `ipOffset`. */
export function l4PartialV6(
  view: DataView,
  ipOffset: number,
  proto: number,
  l4Length: number,
): number {
  return fold16(ipv6PseudoSum(view, ipOffset, proto, l4Length));
}
