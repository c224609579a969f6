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
 * so each 64-bit state word is a pair of 32-bit halves held in fields; the
 * message is read little-endian, a byte at a time, straight from the caller's
 * array. Nothing is allocated per call: `hash` returns the low 32 bits of the
 * 64-bit result and leaves the high 32 bits in `high`.
 */

/** A SipHash-2-4 instance with a fixed 128-bit key. */
export class SipHash {
  // Key: k0 and k1, little-endian 64-bit words, as 32-bit halves.
  readonly #k0lo: number;
  readonly #k0hi: number;
  readonly #k1lo: number;
  readonly #k1hi: number;
  // State v0..v3, as 32-bit halves (unsigned).
  #v0lo = 0;
  #v0hi = 0;
  #v1lo = 0;
  #v1hi = 0;
  #v2lo = 0;
  #v2hi = 0;
  #v3lo = 0;
  #v3hi = 0;
  /** High 32 bits (unsigned) of the last result of `hash`. */
  high = 0;

  /** `key`: 16 bytes; a fresh random key when omitted. */
  constructor(key: Uint8Array = crypto.getRandomValues(new Uint8Array(16))) {
    if (key.length !== 16) throw new RangeError("SipHash: the key is 16 bytes");
    this.#k0lo = le32(key, 0);
    this.#k0hi = le32(key, 4);
    this.#k1lo = le32(key, 8);
    this.#k1hi = le32(key, 12);
  }

  /**
   * SipHash-2-4 of `len` bytes of `bytes` from `off`: returns the low 32 bits
   * (unsigned) of the 64-bit result; the high 32 bits are left in `high`.
   */
  hash(bytes: Uint8Array, off: number, len: number): number {
    // "somepseudorandomlygeneratedbytes"
    this.#v0lo = (this.#k0lo ^ 0x70736575) >>> 0;
    this.#v0hi = (this.#k0hi ^ 0x736f6d65) >>> 0;
    this.#v1lo = (this.#k1lo ^ 0x6e646f6d) >>> 0;
    this.#v1hi = (this.#k1hi ^ 0x646f7261) >>> 0;
    this.#v2lo = (this.#k0lo ^ 0x6e657261) >>> 0;
    this.#v2hi = (this.#k0hi ^ 0x6c796765) >>> 0;
    this.#v3lo = (this.#k1lo ^ 0x79746573) >>> 0;
    this.#v3hi = (this.#k1hi ^ 0x74656462) >>> 0;
    const whole = len - (len & 7);
    for (let i = 0; i < whole; i += 8) {
      this.#compress(le32(bytes, off + i), le32(bytes, off + i + 4));
    }
    // Last block: the remaining bytes, and the length's low byte on top.
    let lo = 0;
    let hi = (len & 0xff) << 24;
    const rest = len & 7;
    for (let i = 0; i < rest; i++) {
      const b = bytes[off + whole + i]!;
      if (i < 4) lo |= b << (8 * i);
      else hi |= b << (8 * (i - 4));
    }
    this.#compress(lo >>> 0, hi >>> 0);
    this.#v2lo = (this.#v2lo ^ 0xff) >>> 0;
    this.#round();
    this.#round();
    this.#round();
    this.#round();
    this.high = (this.#v0hi ^ this.#v1hi ^ this.#v2hi ^ this.#v3hi) >>> 0;
    return (this.#v0lo ^ this.#v1lo ^ this.#v2lo ^ this.#v3lo) >>> 0;
  }

  /** One message word m = (hi << 32 | lo) through two rounds. */
  #compress(lo: number, hi: number): void {
    this.#v3lo = (this.#v3lo ^ lo) >>> 0;
    this.#v3hi = (this.#v3hi ^ hi) >>> 0;
    this.#round();
    this.#round();
    this.#v0lo = (this.#v0lo ^ lo) >>> 0;
    this.#v0hi = (this.#v0hi ^ hi) >>> 0;
  }

  /** SipRound, on 32-bit halves. */
  #round(): void {
    let v0lo = this.#v0lo, v0hi = this.#v0hi, v1lo = this.#v1lo, v1hi = this.#v1hi;
    let v2lo = this.#v2lo, v2hi = this.#v2hi, v3lo = this.#v3lo, v3hi = this.#v3hi;
    let t: number;
    // v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
    t = (v0lo + v1lo) >>> 0;
    v0hi = (v0hi + v1hi + (t < v0lo ? 1 : 0)) >>> 0;
    v0lo = t;
    t = ((v1hi << 13) | (v1lo >>> 19)) >>> 0;
    v1lo = ((v1lo << 13) | (v1hi >>> 19)) >>> 0;
    v1hi = t;
    v1lo = (v1lo ^ v0lo) >>> 0;
    v1hi = (v1hi ^ v0hi) >>> 0;
    t = v0lo;
    v0lo = v0hi;
    v0hi = t;
    // v2 += v3; v3 = rotl(v3, 16); v3 ^= v2
    t = (v2lo + v3lo) >>> 0;
    v2hi = (v2hi + v3hi + (t < v2lo ? 1 : 0)) >>> 0;
    v2lo = t;
    t = ((v3hi << 16) | (v3lo >>> 16)) >>> 0;
    v3lo = ((v3lo << 16) | (v3hi >>> 16)) >>> 0;
    v3hi = t;
    v3lo = (v3lo ^ v2lo) >>> 0;
    v3hi = (v3hi ^ v2hi) >>> 0;
    // v0 += v3; v3 = rotl(v3, 21); v3 ^= v0
    t = (v0lo + v3lo) >>> 0;
    v0hi = (v0hi + v3hi + (t < v0lo ? 1 : 0)) >>> 0;
    v0lo = t;
    t = ((v3hi << 21) | (v3lo >>> 11)) >>> 0;
    v3lo = ((v3lo << 21) | (v3hi >>> 11)) >>> 0;
    v3hi = t;
    v3lo = (v3lo ^ v0lo) >>> 0;
    v3hi = (v3hi ^ v0hi) >>> 0;
    // v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
    t = (v2lo + v1lo) >>> 0;
    v2hi = (v2hi + v1hi + (t < v2lo ? 1 : 0)) >>> 0;
    v2lo = t;
    t = ((v1hi << 17) | (v1lo >>> 15)) >>> 0;
    v1lo = ((v1lo << 17) | (v1hi >>> 15)) >>> 0;
    v1hi = t;
    v1lo = (v1lo ^ v2lo) >>> 0;
    v1hi = (v1hi ^ v2hi) >>> 0;
    t = v2lo;
    v2lo = v2hi;
    v2hi = t;
    this.#v0lo = v0lo;
    this.#v0hi = v0hi;
    this.#v1lo = v1lo;
    this.#v1hi = v1hi;
    this.#v2lo = v2lo;
    this.#v2hi = v2hi;
    this.#v3lo = v3lo;
    this.#v3hi = v3hi;
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
