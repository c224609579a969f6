/**
 * The flow table shared by TCP, UDP and ICMP/ICMPv6 echo: fixed capacity, O(1)
 * insertion, lookup and removal by the tap-side 5-tuple.
 *
 * Theory of operation: a flow is an index in [0, FLOW_MAX). The table owns only
 * what every protocol shares: the flow's protocol and the tap-side key (guest
 * address and port, remote address and port, all addresses stored as 16 bytes,
 * IPv4 in its v4-mapped form; an echo flow's "guest port" is its identifier, its
 * remote port 0). The host side of a flow is its socket, whose epoll reference
 * carries the flow number, so socket events need no lookup. Each protocol keeps
 * its own per-flow state in arrays indexed by the same number (struct of arrays:
 * no object per flow).
 *
 * Free indices come from a stack. Lookup is an open-addressing hash table of
 * 2 × FLOW_MAX slots with linear probing and backward-shift deletion (no
 * tombstones, so probe lengths never degrade). The hash is SipHash-2-4 (see
 * siphash.ts) keyed with a random secret chosen at start, so neither a guest
 * nor a peer can aim collisions at us; the same key makes TCP's initial
 * sequence numbers (`isnHash`). The key is gathered into a small scratch
 * buffer, straight out of a frame (a PacketView plus offsets): nothing is
 * allocated per packet.
 *
 * A full table is the table's business, not a protocol's: kinds of flow that
 * may go early (UDP, echo, spliced UDP) register an evictor saying how long
 * each of their flows has been idle. When `alloc` finds no free number it
 * closes the flows idle longest (every flow of that age: a flood's one-packet
 * flows go together) and hands out a freed number. A kind may also be held to a
 * share of the table (`share`: echo flows, spliced flows), so that a flood of
 * one kind cannot starve the others; past its share, its own idlest flows make
 * room the same way. A flow active in its owner's current clock interval is
 * never evicted, so new work is refused only while everything is in use, never
 * for good. After a scan that found nothing to evict, no new scan happens until
 * a flow is freed or the loop turn ends (`endOfTurn`), so a flood against a
 * full table costs one scan per turn, not one per packet.
 */
import type { PacketView } from "../protocols/packet.ts";
import { monotonicMs } from "../ffi/sys.ts";
import { flowHash } from "./siphash.ts";

/** Capacity of the flow table. */
export const FLOW_MAX = 16384;
/** Hash table slots (power of two, twice the capacity). */
const BUCKETS = FLOW_MAX * 2;
const BUCKET_MASK = BUCKETS - 1;
const EMPTY = -1;

/**
 * Kinds of flow (the "type" of a flow): the protocol numbers for flows through
 * the tap, and the protocol with the top bit set for spliced ones.
 */
export const FlowType = {
  NONE: 0,
  TCP: 6,
  UDP: 17,
  ICMP: 1,
  ICMPV6: 58,
  TCP_SPLICE: 0x80 | 6,
  UDP_SPLICE: 0x80 | 17,
} as const;

/** Hash input: domain, type, ports, guest address, remote address (38 bytes at most). */
const KEY_MAX = 38;
const KEY_DOMAIN_INDEX = 0;
const KEY_DOMAIN_ISN = 1;
/** Shares (see `FlowTable.share`) at most, the whole table's included. */
const MAX_SHARES = 16;

/** What the table needs from a kind of flow that may be evicted when it is full. */
export interface FlowEvictor {
  /**
   * How long flow `index` has been idle at `nowMs` (monotonic ms, read once per
   * scan; owners may round it to their clock's resolution), or -1 when it must
   * not be evicted now (active in the current interval, or closing).
   */
  idleFor(index: number, nowMs: number): number;
  /** Close flow `index` now; its number must be free when this returns. */
  evict(index: number): void;
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
  readonly #key = new Uint8Array(KEY_MAX);
  /** Evictors by flow type (undefined: that kind stays until its owner closes it). */
  readonly #evictors: Array<FlowEvictor | undefined> = new Array(256).fill(undefined);
  #hasEvictors = false;
  /** Share (see `share`) of each flow type: 0 for none. */
  readonly #shareOf = new Uint8Array(256);
  /** Flows in use and the most allowed, per share. */
  readonly #shareCount = new Int32Array(MAX_SHARES);
  readonly #shareLimit = new Int32Array(MAX_SHARES);
  #shares = 1;
  /**
   * A scan found nothing to evict, per share ([0]: the whole table), since the
   * last free or turn end.
   */
  readonly #fruitless = new Uint8Array(MAX_SHARES);
  #anyFruitless = false;
  /** Flows in use. */
  count = 0;
  /** Flows closed early to make room (for tests and logs). */
  evicted = 0;

  constructor() {
    for (let i = 0; i < FLOW_MAX; i++) this.#free[i] = FLOW_MAX - 1 - i;
  }

  /** Flows of `type` may be evicted when room is short; `evictor` closes them. */
  evictable(type: number, evictor: FlowEvictor): void {
    this.#evictors[type] = evictor;
    this.#hasEvictors = true;
  }

  /**
   * Flows of `types` together hold at most `max` numbers, so that one kind
   * flooded cannot take the whole table: past it, their own idlest flows make
   * room (if evictable), or the allocation fails.
   */
  share(types: readonly number[], max: number): void {
    if (this.#shares === MAX_SHARES) throw new RangeError("flow table: too many shares");
    const share = this.#shares++;
    this.#shareLimit[share] = max;
    for (const type of types) this.#shareOf[type] = share;
  }

  /** End of a loop turn: a full table or share may be scanned for idle flows again. */
  endOfTurn(): void {
    if (this.#anyFruitless) this.#clearFruitless();
  }

  #clearFruitless(): void {
    this.#fruitless.fill(0);
    this.#anyFruitless = false;
  }

  /**
   * Take a free flow for `type`; when its share or the table is full, evict the
   * flows idle longest first. -1 when every flow that could go is in use.
   */
  alloc(type: number): number {
    const share = this.#shareOf[type]!;
    if (
      share !== 0 && this.#shareCount[share]! >= this.#shareLimit[share]! &&
      !this.#evictIdlest(share)
    ) return -1;
    if (this.#freeCount === 0 && !this.#evictIdlest(0)) return -1;
    const index = this.#free[--this.#freeCount]!;
    this.type[index] = type;
    this.count++;
    this.#shareCount[share]!++;
    return index;
  }

  /**
   * Evict every flow of the greatest idle time, among the flows of `share` (0:
   * every evictable flow): whether any was evicted.
   */
  #evictIdlest(share: number): boolean {
    if (!this.#hasEvictors || this.#fruitless[share] === 1) return false;
    const evictors = this.#evictors;
    const shareOf = this.#shareOf;
    // One time for the whole scan: both passes must see the same idle times.
    const now = monotonicMs();
    let longest = -1;
    for (let i = 0; i < FLOW_MAX; i++) {
      const type = this.type[i]!;
      const evictor = evictors[type];
      if (evictor === undefined || (share !== 0 && shareOf[type] !== share)) continue;
      const idle = evictor.idleFor(i, now);
      if (idle > longest) longest = idle;
    }
    if (longest < 0) {
      this.#fruitless[share] = 1;
      this.#anyFruitless = true;
      return false;
    }
    for (let i = 0; i < FLOW_MAX; i++) {
      const type = this.type[i]!;
      const evictor = evictors[type];
      if (evictor === undefined || (share !== 0 && shareOf[type] !== share)) continue;
      if (evictor.idleFor(i, now) === longest) {
        evictor.evict(i);
        this.evicted++;
      }
    }
    return true;
  }

  /** Release a flow (removing its key from the lookup table first, if present). */
  free(index: number): void {
    if (this.type[index] === FlowType.NONE) return;
    if (this.#inTable[index] === 1) this.remove(index);
    this.#shareCount[this.#shareOf[this.type[index]!]!]!--;
    this.type[index] = FlowType.NONE;
    this.#free[this.#freeCount++] = index;
    this.count--;
    if (this.#anyFruitless) this.#clearFruitless();
  }

  /**
   * Gather a key into #key: `domain`, `type`, both ports (big-endian), then both
   * addresses of `len` bytes (an IPv4 flow hashes 14 bytes, an IPv6 one 38:
   * the two never match each other anyway). Returns the key's length.
   */
  #gather(
    domain: number,
    type: number,
    guest: Uint8Array,
    guestOff: number,
    guestPort: number,
    remote: Uint8Array,
    remoteOff: number,
    remotePort: number,
    len: number,
  ): number {
    const k = this.#key;
    k[0] = domain;
    k[1] = type;
    k[2] = guestPort >>> 8;
    k[3] = guestPort & 0xff;
    k[4] = remotePort >>> 8;
    k[5] = remotePort & 0xff;
    for (let i = 0; i < len; i++) {
      k[6 + i] = guest[guestOff + i]!;
      k[6 + len + i] = remote[remoteOff + i]!;
    }
    return 6 + 2 * len;
  }

  /**
   * The keyed hash of flow `index`'s stored key, in a domain of its own: the
   * secret part of TCP's initial sequence number (RFC 6528), 32 bits unsigned.
   */
  isnHash(index: number): number {
    const len = this.v6[index] === 1 ? 16 : 4;
    const base = index * 16 + 16 - len;
    const keyLength = this.#gather(
      KEY_DOMAIN_ISN,
      this.type[index]!,
      this.guestAddr,
      base,
      this.guestPort[index]!,
      this.remoteAddr,
      base,
      this.remotePort[index]!,
      len,
    );
    flowHash.hash(this.#key, 0, keyLength);
    return flowHash.result[0]!;
  }

  #hashKey(
    type: number,
    guest: Uint8Array,
    guestOff: number,
    guestPort: number,
    remote: Uint8Array,
    remoteOff: number,
    remotePort: number,
    len: number,
  ): number {
    const keyLength = this.#gather(
      KEY_DOMAIN_INDEX,
      type,
      guest,
      guestOff,
      guestPort,
      remote,
      remoteOff,
      remotePort,
      len,
    );
    flowHash.hash(this.#key, 0, keyLength);
    // 30 bits: small enough to stay an unboxed integer on its way out.
    return flowHash.result[0]! >>> 2;
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
