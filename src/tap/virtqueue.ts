/**
 * Guest memory and split virtqueues, as a vhost-user back-end sees them.
 *
 * Theory of operation. The front-end (QEMU) shares the guest's RAM as up to
 * REGIONS_MAX regions, each a file descriptor we map (`GuestMemory`). A region is
 * known by two addresses: its guest-physical address, which descriptors carry, and
 * its address in QEMU's own process, which the ring addresses of SET_VRING_ADDR
 * carry. Every address the guest or the front-end gives us is translated through
 * the table, and a range is accepted only if it lies entirely inside one region:
 * nothing is ever read or written outside a mapping, whatever the guest writes.
 *
 * A split virtqueue (`SplitQueue`, virtio 1.x §2.7) is three arrays in guest
 * memory: the descriptor table (16 bytes each: address, length, flags, next), the
 * available ring the driver fills with chain heads, and the used ring we fill with
 * (head, bytes written) pairs. All fields are little-endian. Each ring must lie in
 * one region, checked once when the queue starts, so ring accesses afterwards need
 * only their index reduced modulo the ring size.
 *
 * `pop()` takes the next available chain and walks it into a preallocated segment
 * list (region, offset, length, writable), following NEXT links and one level of
 * INDIRECT tables. What a hostile or broken guest can put there is detected and
 * counted in `VirtqueueStats`:
 * - a chain longer than the table (a descriptor loop), an indirect table inside
 *   an indirect table, an indirect table of a length not a multiple of 16 or
 *   outside the regions, a descriptor whose range is not inside one region (an
 *   address outside them, or a length past a region's end): the chain is skipped,
 *   returned as used with 0 bytes written, so the guest gets its buffers back;
 * - an available index that moved by more than the ring size, or a head outside
 *   the table: the ring itself cannot be trusted any more, so the queue stops
 *   (`broken`), and the back-end signals the error descriptor if it has one.
 * Loops are bounded by the ring size, so no content makes `pop()` run longer than
 * `num` descriptor reads (plus an indirect table's entries).
 *
 * Ordering: the used element is written before the used index, and the index is
 * read before the ring entries. JavaScript has no fence for memory that is not a
 * SharedArrayBuffer, but stores to typed arrays are not reordered by V8 and x86-64
 * is TSO; on weaker machines (aarch64) this relies on the interrupt/kick syscalls
 * between producer and consumer steps, which are full barriers.
 *
 * Notifications: the back-end reads the kick eventfd in the loop, and after adding
 * used elements writes 1 to the call eventfd, unless the driver set
 * VRING_AVAIL_F_NO_INTERRUPT (no EVENT_IDX: we do not offer it).
 */
import type { SharedMapping } from "../ffi/sys.ts";
import * as sys from "../ffi/sys.ts";
import { log } from "../log.ts";
import { PacketView } from "../protocols/packet.ts";

/** The most memory regions a front-end may share (VHOST_MEMORY_BASELINE_NREGIONS). */
export const REGIONS_MAX = 8;
/** The largest ring size virtio allows (entries). */
export const QUEUE_SIZE_MAX = 32768;
/** The most segments one chain may have here; longer chains are skipped. */
export const CHAIN_SEGMENTS_MAX = 1024;

/** Descriptor flags (virtq_desc.flags). */
export const VIRTQ_DESC_F = { NEXT: 1, WRITE: 2, INDIRECT: 4 } as const;
/** virtq_avail.flags: the driver wants no interrupt. */
export const VRING_AVAIL_F_NO_INTERRUPT = 1;
/** Bytes of one descriptor. */
export const DESC_SIZE = 16;

/** The largest safe integer's high 32-bit part: addresses above 2^53 are refused. */
const HIGH_MAX = 0x1fffff;

/** The shared memory of the guest: up to REGIONS_MAX regions. */
export class GuestMemory {
  /** Regions in use. */
  count = 0;
  readonly #guestStart = new Float64Array(REGIONS_MAX);
  readonly #userStart = new Float64Array(REGIONS_MAX);
  readonly #size = new Float64Array(REGIONS_MAX);
  /** Each region's address in our process (for copies through memcpy). */
  readonly address = new Float64Array(REGIONS_MAX);
  /** Each region's bytes (index by region). */
  readonly bytes: Uint8Array[] = [];
  /** A little-endian accessor per region. */
  readonly data: DataView[] = [];
  /** A PacketView per region, for frames that lie in one segment. */
  readonly views: PacketView[] = [];
  readonly #mappings: (SharedMapping | undefined)[] = [];
  /** Region of the last successful translation. */
  hitRegion = -1;
  /** Offset in that region of the last successful translation (bytes). */
  hitOffset = 0;

  /**
   * Adds a region: `bytes` seen by the guest at `guestAddress` and by the
   * front-end at `userAddress`. `mapping`, if given, is unmapped by `clear()`.
   */
  add(
    guestAddress: number,
    userAddress: number,
    bytes: Uint8Array,
    mapping?: SharedMapping,
  ): boolean {
    if (this.count === REGIONS_MAX) return false;
    const i = this.count++;
    this.#guestStart[i] = guestAddress;
    this.#userStart[i] = userAddress;
    this.#size[i] = bytes.length;
    this.address[i] = sys.addressNumber(bytes);
    this.bytes[i] = bytes;
    this.data[i] = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.views[i] = new PacketView(bytes, 0);
    this.#mappings[i] = mapping;
    return true;
  }

  /** Drops every region and unmaps what was mapped. */
  clear(): void {
    for (let i = 0; i < this.count; i++) {
      const m = this.#mappings[i];
      if (m !== undefined) sys.munmapShared(m);
    }
    this.count = 0;
    this.bytes.length = 0;
    this.data.length = 0;
    this.views.length = 0;
    this.#mappings.length = 0;
  }

  /**
   * Finds the region holding guest-physical [address, address + length): true and
   * `hitRegion`/`hitOffset` set, or false if no single region holds it all.
   */
  guest(address: number, length: number): boolean {
    return this.#find(this.#guestStart, address, length);
  }

  /** As `guest`, for an address in the front-end's process (ring addresses). */
  user(address: number, length: number): boolean {
    return this.#find(this.#userStart, address, length);
  }

  #find(starts: Float64Array, address: number, length: number): boolean {
    if (!(address >= 0 && length >= 0)) return false;
    for (let i = 0; i < this.count; i++) {
      const start = starts[i] ?? 0;
      const size = this.#size[i] ?? 0;
      if (address >= start && address - start + length <= size) {
        this.hitRegion = i;
        this.hitOffset = address - start;
        return true;
      }
    }
    return false;
  }
}

/** What went wrong, and how often, on one queue. */
export interface VirtqueueStats {
  /** Chains taken from the available ring. */
  chains: number;
  /** Chains longer than the ring: a descriptor loop. */
  descriptorLoops: number;
  /** Descriptors whose range was not inside one region. */
  badAddresses: number;
  /** Indirect tables that were nested, misaligned or outside the regions. */
  badIndirect: number;
  /** Chains with more than CHAIN_SEGMENTS_MAX segments. */
  tooManySegments: number;
  /** Available index jumps (the queue stopped). */
  indexJumps: number;
  /** Heads outside the descriptor table (the queue stopped). */
  badHeads: number;
}

/** `pop()`'s result when no chain is available. */
export const POP_EMPTY = -1;
/** `pop()`'s result when the queue is stopped, or stops now. */
export const POP_BROKEN = -2;
/** `pop()`'s result for a chain skipped as malformed (already returned as used). */
export const POP_SKIPPED = -3;

/** One split virtqueue over guest memory (see the theory of operation). */
export class SplitQueue {
  /** Entries in each ring (a power of two), from SET_VRING_NUM. */
  num = 0;
  /** Ring addresses in the front-end's process, from SET_VRING_ADDR. */
  descUser = 0;
  availUser = 0;
  usedUser = 0;
  /** Next available index to read, and next used index to write (mod 2^16). */
  lastAvail = 0;
  usedIndex = 0;
  /** Eventfds from SET_VRING_KICK/CALL/ERR, -1 when none. */
  kickFd = -1;
  callFd = -1;
  errFd = -1;
  /** SET_VRING_ENABLE's state (true when protocol features are not negotiated). */
  enabled = false;
  /** Rings translated and a kick descriptor given. */
  started = false;
  /** The ring content is inconsistent: nothing more is taken from it. */
  broken = false;
  readonly stats: VirtqueueStats = {
    chains: 0,
    descriptorLoops: 0,
    badAddresses: 0,
    badIndirect: 0,
    tooManySegments: 0,
    indexJumps: 0,
    badHeads: 0,
  };

  // Where the rings are, once started.
  #descRegion = -1;
  #descOffset = 0;
  #availRegion = -1;
  #availOffset = 0;
  #usedRegion = -1;
  #usedOffset = 0;
  #notifyPending = false;
  readonly #one = new Uint8Array(new BigUint64Array([1n]).buffer);

  /** The chain `pop()` found: its head, and its segments. */
  head = -1;
  segmentCount = 0;
  readonly segmentRegion = new Int32Array(CHAIN_SEGMENTS_MAX);
  readonly segmentOffset = new Float64Array(CHAIN_SEGMENTS_MAX);
  readonly segmentLength = new Int32Array(CHAIN_SEGMENTS_MAX);
  readonly segmentWritable = new Uint8Array(CHAIN_SEGMENTS_MAX);
  /** Total bytes of the chain's readable and writable segments. */
  readableBytes = 0;
  writableBytes = 0;

  /** The guest memory every address goes through. */
  readonly memory: GuestMemory;

  constructor(memory: GuestMemory) {
    this.memory = memory;
  }

  /**
   * Translates the ring addresses: true if each ring lies in one region. A queue
   * whose rings do not is not started.
   */
  translate(): boolean {
    const m = this.memory;
    const n = this.num;
    if (n === 0 || (n & (n - 1)) !== 0 || n > QUEUE_SIZE_MAX) return false;
    if (!m.user(this.descUser, n * DESC_SIZE)) return false;
    this.#descRegion = m.hitRegion;
    this.#descOffset = m.hitOffset;
    if (!m.user(this.availUser, 6 + 2 * n)) return false;
    this.#availRegion = m.hitRegion;
    this.#availOffset = m.hitOffset;
    if (!m.user(this.usedUser, 6 + 8 * n)) return false;
    this.#usedRegion = m.hitRegion;
    this.#usedOffset = m.hitOffset;
    return true;
  }

  /** Starts the queue (rings must translate). */
  start(): boolean {
    this.broken = false;
    this.started = this.translate();
    return this.started;
  }

  /** Stops the queue; returns the next available index (GET_VRING_BASE). */
  stop(): number {
    this.started = false;
    return this.lastAvail;
  }

  /** Closes the eventfds and forgets the rings (RESET_OWNER, disconnect). */
  reset(): void {
    for (const fd of [this.kickFd, this.callFd, this.errFd]) if (fd >= 0) sys.close(fd);
    this.kickFd = this.callFd = this.errFd = -1;
    this.started = this.broken = this.enabled = false;
    this.num = this.lastAvail = this.usedIndex = 0;
    this.descUser = this.availUser = this.usedUser = 0;
  }

  /** True when chains may be taken. */
  get ready(): boolean {
    return this.started && this.enabled && !this.broken;
  }

  /**
   * Takes the next available chain into `head` and the segment list. Returns the
   * head, or POP_EMPTY, POP_BROKEN, or POP_SKIPPED (a malformed chain, counted and
   * already put back as used with 0 bytes).
   */
  pop(): number {
    if (!this.ready) return POP_BROKEN;
    const ad = this.memory.data[this.#availRegion];
    if (ad === undefined) return this.#break("no available ring");
    const availIndex = ad.getUint16(this.#availOffset + 2, true);
    const pending = (availIndex - this.lastAvail) & 0xffff;
    if (pending === 0) return POP_EMPTY;
    if (pending > this.num) {
      this.stats.indexJumps++;
      return this.#break(`available index jumped by ${pending}`);
    }
    const head = ad.getUint16(this.#availOffset + 4 + 2 * (this.lastAvail & (this.num - 1)), true);
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (head >= this.num) {
      this.stats.badHeads++;
      return this.#break(`chain head ${head} outside the table`);
    }
    this.stats.chains++;
    this.head = head;
    if (!this.#walk(head)) {
      this.push(head, 0);
      return POP_SKIPPED;
    }
    return head;
  }

  #break(why: string): number {
    this.broken = true;
    // A guest's doing, counted in stats: debug level, as for any bad frame.
    if (log.debugging) log.debug(`virtqueue: ${why}: the queue stops`);
    if (this.errFd >= 0) sys.write(this.errFd, this.#one, 8);
    return POP_BROKEN;
  }

  /** Walks the chain at `head` into the segment list; false if malformed (counted). */
  #walk(head: number): boolean {
    const m = this.memory;
    const dd = m.data[this.#descRegion];
    if (dd === undefined) return false;
    this.segmentCount = 0;
    this.readableBytes = 0;
    this.writableBytes = 0;
    // The table being walked: the ring's, or an indirect one.
    let table = dd;
    let base = this.#descOffset;
    let size = this.num;
    let indirect = false;
    let index = head;
    let budget = size;
    for (;;) {
      if (budget-- === 0) {
        this.stats.descriptorLoops++;
        return false;
      }
      const at = base + index * DESC_SIZE;
      const low = table.getUint32(at, true);
      const high = table.getUint32(at + 4, true);
      const length = table.getUint32(at + 8, true);
      const flags = table.getUint16(at + 12, true);
      const next = table.getUint16(at + 14, true);
      if (high > HIGH_MAX) {
        this.stats.badAddresses++;
        return false;
      }
      const address = high * 4294967296 + low;
      if ((flags & VIRTQ_DESC_F.INDIRECT) !== 0) {
        if (indirect || (flags & VIRTQ_DESC_F.NEXT) !== 0 || length === 0) {
          this.stats.badIndirect++;
          return false;
        }
        if (length % DESC_SIZE !== 0 || !m.guest(address, length)) {
          this.stats.badIndirect++;
          return false;
        }
        const t = m.data[m.hitRegion];
        if (t === undefined) return false;
        table = t;
        base = m.hitOffset;
        size = length / DESC_SIZE;
        budget = size;
        indirect = true;
        index = 0;
        continue;
      }
      if (!m.guest(address, length)) {
        this.stats.badAddresses++;
        return false;
      }
      if (length > 0) {
        const s = this.segmentCount;
        if (s === CHAIN_SEGMENTS_MAX) {
          this.stats.tooManySegments++;
          return false;
        }
        const writable = (flags & VIRTQ_DESC_F.WRITE) !== 0 ? 1 : 0;
        this.segmentRegion[s] = m.hitRegion;
        this.segmentOffset[s] = m.hitOffset;
        this.segmentLength[s] = length;
        this.segmentWritable[s] = writable;
        if (writable) this.writableBytes += length;
        else this.readableBytes += length;
        this.segmentCount = s + 1;
      }
      if ((flags & VIRTQ_DESC_F.NEXT) === 0) return true;
      if (next >= size) {
        this.stats.badAddresses++;
        return false;
      }
      index = next;
    }
  }

  /** Puts `head` in the used ring with `written` bytes; the call waits for `notify()`. */
  push(head: number, written: number): void {
    const ud = this.memory.data[this.#usedRegion];
    if (ud === undefined) return;
    const at = this.#usedOffset + 4 + 8 * (this.usedIndex & (this.num - 1));
    ud.setUint32(at, head, true);
    ud.setUint32(at + 4, written, true);
    this.usedIndex = (this.usedIndex + 1) & 0xffff;
    ud.setUint16(this.#usedOffset + 2, this.usedIndex, true);
    this.#notifyPending = true;
  }

  /** Signals the call eventfd if used elements were added and the driver wants it. */
  notify(): void {
    if (!this.#notifyPending) return;
    this.#notifyPending = false;
    const ad = this.memory.data[this.#availRegion];
    if (ad === undefined || this.callFd < 0) return;
    if ((ad.getUint16(this.#availOffset, true) & VRING_AVAIL_F_NO_INTERRUPT) !== 0) return;
    sys.write(this.callFd, this.#one, 8);
  }
}
