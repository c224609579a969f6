/**
 * The flow table shared by TCP, UDP and ICMP: fixed capacity, O(1) insertion,
 * lookup and removal by the tap-side 5-tuple.
 *
 * Theory of operation: a flow is an index in [0, FLOW_MAX). The table owns only
 * what every protocol shares: the flow's protocol and the tap-side key (guest
 * address and port, remote address and port, all addresses stored as 16 bytes,
 * IPv4 in its v4-mapped form). Each protocol keeps its own per-flow state in
 * arrays indexed by the same number (struct of arrays: no object per flow).
 *
 * Free indices come from a stack. Lookup is an open-addressing hash table of
 * 2 × FLOW_MAX slots with linear probing and backward-shift deletion (no
 * tombstones, so probe lengths never degrade). The hash is keyed with a random
 * secret chosen at start, so a guest cannot aim collisions at us.
 * Lookups read the key straight out of a frame (a PacketView plus offsets):
 * nothing is allocated per packet.
 */
import type { PacketView } from "../protocols/packet.ts";

/** Capacity of the flow table. */
export const FLOW_MAX = 16384;
/** Hash table slots (power of two, twice the capacity). */
const BUCKETS = FLOW_MAX * 2;
const BUCKET_MASK = BUCKETS - 1;
const EMPTY = -1;

/** Flow protocols (the "type" of a flow). */
export const FlowType = { NONE: 0, TCP: 6, UDP: 17, ICMP: 1, ICMPV6: 58 } as const;

const secret = crypto.getRandomValues(new Uint32Array(4));

/** Mix a 32-bit value into the running hash (a keyed multiply-rotate step). */
function mix(h: number, v: number): number {
  h = Math.imul(h ^ v, 0x9e3779b1);
  return ((h << 13) | (h >>> 19)) >>> 0;
}

/** The table. */
export class FlowTable {
  /** Protocol of each flow (FlowType.NONE: free). */
  readonly type = new Uint8Array(FLOW_MAX);
  /** Guest-side address, 16 bytes per flow. */
  readonly guestAddr = new Uint8Array(FLOW_MAX * 16);
  /** Remote (destination as the guest sees it) address, 16 bytes per flow. */
  readonly remoteAddr = new Uint8Array(FLOW_MAX * 16);
  /** Guest-side port (host order). */
  readonly guestPort = new Uint16Array(FLOW_MAX);
  /** Remote port as the guest sees it (host order). */
  readonly remotePort = new Uint16Array(FLOW_MAX);
  /** Whether the flow is IPv6 (else IPv4). */
  readonly v6 = new Uint8Array(FLOW_MAX);
  readonly #hashOf = new Uint32Array(FLOW_MAX);
  readonly #inTable = new Uint8Array(FLOW_MAX);
  readonly #buckets = new Int32Array(BUCKETS).fill(EMPTY);
  readonly #free = new Int32Array(FLOW_MAX);
  #freeCount = FLOW_MAX;
  /** Flows in use. */
  count = 0;

  constructor() {
    for (let i = 0; i < FLOW_MAX; i++) this.#free[i] = FLOW_MAX - 1 - i;
  }

  readonly #reclaimers: Array<() => number> = [];

  /**
   * Register `reclaim`, called when `alloc` finds the table full: it may free
   * flows that can go (idle UDP flows) and returns how many it freed.
   */
  onFull(reclaim: () => number): void {
    this.#reclaimers.push(reclaim);
  }

  /** Take a free flow for `type`; -1 when the table is full and nothing could be reclaimed. */
  alloc(type: number): number {
    if (this.#freeCount === 0) {
      for (const reclaim of this.#reclaimers) if (reclaim() > 0 && this.#freeCount > 0) break;
      if (this.#freeCount === 0) return -1;
    }
    const index = this.#free[--this.#freeCount]!;
    this.type[index] = type;
    this.count++;
    return index;
  }

  /** Release a flow (removing its key from the lookup table first, if present). */
  free(index: number): void {
    if (this.type[index] === FlowType.NONE) return;
    if (this.#inTable[index] === 1) this.remove(index);
    this.type[index] = FlowType.NONE;
    this.#free[this.#freeCount++] = index;
    this.count--;
  }

  #hashKey(
    type: number,
    src: Uint8Array,
    guestOff: number,
    guestPort: number,
    remote: Uint8Array,
    remoteOff: number,
    remotePort: number,
    len: number,
  ): number {
    let h = secret[0]! ^ type;
    const pad = 16 - len; // IPv4: hash as if v4-mapped, so both forms agree
    if (pad > 0) h = mix(h, 0xffff0000);
    for (let i = 0; i < len; i += 4) {
      h = mix(
        h,
        (src[guestOff + i]! << 24) | (src[guestOff + i + 1]! << 16) |
          (src[guestOff + i + 2]! << 8) | src[guestOff + i + 3]!,
      );
    }
    h = mix(h ^ secret[1]!, (guestPort << 16) | remotePort);
    for (let i = 0; i < len; i += 4) {
      h = mix(
        h,
        (remote[remoteOff + i]! << 24) | (remote[remoteOff + i + 1]! << 16) |
          (remote[remoteOff + i + 2]! << 8) | remote[remoteOff + i + 3]!,
      );
    }
    return (mix(h, secret[2]!) ^ secret[3]!) >>> 0; // unsigned, as #hashOf stores it
  }

  /**
   * Record the tap-side key of `index`: addresses of `addrLen` bytes (4 or 16)
   * at the given offsets of the given arrays, ports in host order. Then insert it
   * into the lookup table. A flow must not be inserted twice.
   */
  setKey(
    index: number,
    guest: Uint8Array,
    guestOff: number,
    guestPort: number,
    remote: Uint8Array,
    remoteOff: number,
    remotePort: number,
    addrLen: number,
  ): void {
    const base = index * 16;
    const ga = this.guestAddr;
    const ra = this.remoteAddr;
    if (addrLen === 4) {
      ga.fill(0, base, base + 10);
      ra.fill(0, base, base + 10);
      ga[base + 10] = ga[base + 11] = 0xff;
      ra[base + 10] = ra[base + 11] = 0xff;
      for (let i = 0; i < 4; i++) {
        ga[base + 12 + i] = guest[guestOff + i]!;
        ra[base + 12 + i] = remote[remoteOff + i]!;
      }
    } else {
      for (let i = 0; i < 16; i++) {
        ga[base + i] = guest[guestOff + i]!;
        ra[base + i] = remote[remoteOff + i]!;
      }
    }
    this.guestPort[index] = guestPort;
    this.remotePort[index] = remotePort;
    this.v6[index] = addrLen === 16 ? 1 : 0;
    const h = this.#hashKey(
      this.type[index]!,
      guest,
      guestOff,
      guestPort,
      remote,
      remoteOff,
      remotePort,
      addrLen,
    );
    this.#hashOf[index] = h;
    let b = h & BUCKET_MASK;
    while (this.#buckets[b] !== EMPTY) b = (b + 1) & BUCKET_MASK;
    this.#buckets[b] = index;
    this.#inTable[index] = 1;
  }

  #matches(
    index: number,
    type: number,
    guest: Uint8Array,
    guestOff: number,
    guestPort: number,
    remote: Uint8Array,
    remoteOff: number,
    remotePort: number,
    addrLen: number,
  ): boolean {
    if (
      this.type[index] !== type || this.guestPort[index] !== guestPort ||
      this.remotePort[index] !== remotePort || this.v6[index] !== (addrLen === 16 ? 1 : 0)
    ) return false;
    const base = index * 16 + (16 - addrLen);
    for (let i = 0; i < addrLen; i++) {
      if (this.guestAddr[base + i] !== guest[guestOff + i]) return false;
      if (this.remoteAddr[base + i] !== remote[remoteOff + i]) return false;
    }
    return true;
  }

  /**
   * The flow of `type` with this tap-side key, or -1. Addresses are `addrLen`
   * bytes at the given offsets (e.g. straight inside a frame's bytes).
   */
  lookup(
    type: number,
    guest: Uint8Array,
    guestOff: number,
    guestPort: number,
    remote: Uint8Array,
    remoteOff: number,
    remotePort: number,
    addrLen: number,
  ): number {
    const h = this.#hashKey(
      type,
      guest,
      guestOff,
      guestPort,
      remote,
      remoteOff,
      remotePort,
      addrLen,
    );
    for (
      let b = h & BUCKET_MASK, probes = 0;
      probes < BUCKETS;
      b = (b + 1) & BUCKET_MASK, probes++
    ) {
      const index = this.#buckets[b]!;
      if (index === EMPTY) return -1;
      if (
        this.#hashOf[index] === h &&
        this.#matches(
          index,
          type,
          guest,
          guestOff,
          guestPort,
          remote,
          remoteOff,
          remotePort,
          addrLen,
        )
      ) return index;
    }
    return -1;
  }

  /** Look up by the addresses and ports in a frame (offsets relative to its window). */
  lookupFrame(
    type: number,
    pkt: PacketView,
    guestAddrOff: number,
    guestPort: number,
    remoteAddrOff: number,
    remotePort: number,
    addrLen: number,
  ): number {
    return this.lookup(
      type,
      pkt.bytes,
      pkt.start + guestAddrOff,
      guestPort,
      pkt.bytes,
      pkt.start + remoteAddrOff,
      remotePort,
      addrLen,
    );
  }

  /** Remove `index` from the lookup table (it stays allocated). */
  remove(index: number): void {
    if (this.#inTable[index] !== 1) return;
    this.#inTable[index] = 0;
    const buckets = this.#buckets;
    let b = this.#hashOf[index]! & BUCKET_MASK;
    while (buckets[b] !== index) {
      if (buckets[b] === EMPTY) return; // not there: nothing to do
      b = (b + 1) & BUCKET_MASK;
    }
    // Backward-shift deletion: pull later entries of the probe run into the gap.
    let gap = b;
    let next = (gap + 1) & BUCKET_MASK;
    while (buckets[next] !== EMPTY) {
      const home = this.#hashOf[buckets[next]!]! & BUCKET_MASK;
      // Move the entry if its home is not in the cyclic range (gap, next].
      const distanceHome = (next - home) & BUCKET_MASK;
      const distanceGap = (next - gap) & BUCKET_MASK;
      if (distanceHome >= distanceGap) {
        buckets[gap] = buckets[next]!;
        gap = next;
      }
      next = (next + 1) & BUCKET_MASK;
    }
    buckets[gap] = EMPTY;
  }
}
