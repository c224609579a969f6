/**
 * SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012):
 * the one keyed hash of the data path, for the flow table's index and for TCP
 * initial sequence numbers (RFC 6528).
 *
 * Theory of operation: a keyed hash is what keeps a guest, or a peer on the
 * host's network, from choosing addresses and ports that all land in one bucket
 * of the flow index, or from predicting our sequence numbers. SipHash is a PRF
 * made for exactly such short inputs. The key (128 bits) comes from the system's
 * random source (`crypto.getRandomValues`, getrandom(2) underneath) once, at
 * start.
 *
 * JavaScript has no unsigned 64-bit integers short of BigInt, which allocates,
 * so each 64-bit state word is a pair of 32-bit halves in local variables (in
 * fields, values past 2^30 would be boxed on every write); the message is read
 * little-endian straight from the caller's array. Nothing is allocated per
 * call: the 64-bit result goes to the `result` typed array.
 */

/** A SipHash-2-4 instance with a fixed 128-bit key. */
export class SipHash {
  // Key: k0 and k1, little-endian 64-bit words, as 32-bit halves (int32).
  readonly #k0lo: number;
  readonly #k0hi: number;
  readonly #k1lo: number;
  readonly #k1hi: number;
  /**
   * The last result of `hash`: [0] the low 32 bits, [1] the high 32 bits. A
   * typed array, so that no number is boxed on the way out.
   */
  readonly result = new Uint32Array(2);

  /** `key`: 16 bytes; a fresh random key when omitted. */
  constructor(key: Uint8Array = crypto.getRandomValues(new Uint8Array(16))) {
    if (key.length !== 16) throw new RangeError("SipHash: the key is 16 bytes");
    this.#k0lo = le32(key, 0);
    this.#k0hi = le32(key, 4);
    this.#k1lo = le32(key, 8);
    this.#k1hi = le32(key, 12);
  }

  /**
   * SipHash-2-4 of `len` bytes of `bytes` from `off`, into `result`. (Nothing is
   * returned: a number past 2^30 would be boxed on its way out.)
   */
  hash(bytes: Uint8Array, off: number, len: number): void {
    // The state lives in local int32 variables only: stored in fields, values
    // past 2^30 would be boxed on every write. "somepseudorandomlygeneratedbytes"
    let v0lo = this.#k0lo ^ 0x70736575, v0hi = this.#k0hi ^ 0x736f6d65;
    let v1lo = this.#k1lo ^ 0x6e646f6d, v1hi = this.#k1hi ^ 0x646f7261;
    let v2lo = this.#k0lo ^ 0x6e657261, v2hi = this.#k0hi ^ 0x6c796765;
    let v3lo = this.#k1lo ^ 0x79746573, v3hi = this.#k1hi ^ 0x74656462;
    let t = 0;
    const whole = len - (len & 7);
    // Blocks of 8 bytes (two rounds each), the last block (the rest of the
    // bytes, the length's low byte on top), then the finalization (four rounds).
    for (let i = 0, final = false;; i += 8) {
      let mlo = 0, mhi = 0, rounds = 2;
      if (final) {
        v2lo ^= 0xff;
        rounds = 4;
      } else if (i < whole) {
        mlo = le32(bytes, off + i);
        mhi = le32(bytes, off + i + 4);
      } else {
        mhi = (len & 0xff) << 24;
        for (let j = 0; j < (len & 7); j++) {
          const b = bytes[off + whole + j]!;
          if (j < 4) mlo |= b << (8 * j);
          else mhi |= b << (8 * (j - 4));
        }
      }
      v3lo ^= mlo;
      v3hi ^= mhi;
      for (let r = 0; r < rounds; r++) {
        // v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
        t = (v0lo + v1lo) | 0;
        v0hi = (v0hi + v1hi + ((t >>> 0) < (v0lo >>> 0) ? 1 : 0)) | 0;
        v0lo = t;
        t = (v1hi << 13) | (v1lo >>> 19);
        v1lo = ((v1lo << 13) | (v1hi >>> 19)) ^ v0lo;
        v1hi = t ^ v0hi;
        t = v0lo;
        v0lo = v0hi;
        v0hi = t;
        // v2 += v3; v3 = rotl(v3, 16); v3 ^= v2
        t = (v2lo + v3lo) | 0;
        v2hi = (v2hi + v3hi + ((t >>> 0) < (v2lo >>> 0) ? 1 : 0)) | 0;
        v2lo = t;
        t = (v3hi << 16) | (v3lo >>> 16);
        v3lo = ((v3lo << 16) | (v3hi >>> 16)) ^ v2lo;
        v3hi = t ^ v2hi;
        // v0 += v3; v3 = rotl(v3, 21); v3 ^= v0
        t = (v0lo + v3lo) | 0;
        v0hi = (v0hi + v3hi + ((t >>> 0) < (v0lo >>> 0) ? 1 : 0)) | 0;
        v0lo = t;
        t = (v3hi << 21) | (v3lo >>> 11);
        v3lo = ((v3lo << 21) | (v3hi >>> 11)) ^ v0lo;
        v3hi = t ^ v0hi;
        // v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
        t = (v2lo + v1lo) | 0;
        v2hi = (v2hi + v1hi + ((t >>> 0) < (v2lo >>> 0) ? 1 : 0)) | 0;
        v2lo = t;
        t = (v1hi << 17) | (v1lo >>> 15);
        v1lo = ((v1lo << 17) | (v1hi >>> 15)) ^ v2lo;
        v1hi = t ^ v2hi;
        t = v2lo;
        v2lo = v2hi;
        v2hi = t;
      }
      if (final) break;
      v0lo ^= mlo;
      v0hi ^= mhi;
      if (i === whole) final = true;
    }
    this.result[0] = v0lo ^ v1lo ^ v2lo ^ v3lo;
    this.result[1] = v0hi ^ v1hi ^ v2hi ^ v3hi;
  }
}

/** Little-endian 32-bit word of `bytes` at `off`, unsigned. */
function le32(bytes: Uint8Array, off: number): number {
  return (bytes[off]! | (bytes[off + 1]! << 8) | (bytes[off + 2]! << 16) |
    (bytes[off + 3]! << 24)) >>>
    0;
}

/**
 * The data path's key and hash, made once at start: one key for the flow index
 * and the TCP ISNs (their inputs differ in a leading domain byte).
 */
export const flowHash: SipHash = new SipHash();
