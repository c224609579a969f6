/**
 * Bounds-checked view over one frame.
 *
 * Theory of operation: every frame we parse or build lives in a buffer that was
 * allocated once at start (the tap read buffer, a reply buffer). A `PacketView` is
 * made once per buffer, holding that Uint8Array and one DataView over it, plus a
 * movable window (`start`, `length`) that selects the current frame inside the
 * buffer. Moving the window allocates nothing, so the view can be re-pointed at
 * each frame of a batch.
 *
 * Reads are relative to the window start and never leave the window: `u8`, `u16`
 * and `u32` return -1 instead of reading past `length`, and `has(offset, n)` lets a
 * handler check a whole header once before reading its fields. Integer fields are
 * read in network byte order (big-endian) unless a name says otherwise.
 *
 * Writes are relative to the window start as well and limited by the buffer's
 * capacity rather than by `length`. A write that would not fit does nothing and
 * sets the sticky `overflow` flag, so a builder can write a whole reply and check
 * once at the end; it never throws and never writes out of bounds.
 *
 * `ServiceStats` is the small counter block shared by the link-layer services
 * (ARP, DHCP, NDP, DHCPv6): replies sent and frames dropped, by reason.
 */

/** A movable, bounds-checked window over one preallocated frame buffer. */
export class PacketView {
  /** Backing storage, shared with whoever owns the buffer. */
  readonly bytes: Uint8Array;
  /** DataView over the same bytes (absolute offsets: add `start`). */
  readonly view: DataView;
  #start = 0;
  #length = 0;
  /** Set when a put*() did not fit in the buffer; cleared by `setWindow`/`clearOverflow`. */
  overflow = false;
  /**
   * Set by the reader of a frame whose transport (TCP/UDP) checksum is not to be
   * verified: the sending kernel left it for the device to complete (a partial
   * checksum, virtio NEEDS_CSUM) or had already validated it (DATA_VALID). The
   * field then holds the pseudo-header sum, not a checksum. Never set by `setWindow`.
   */
  checksumUnverifiable = false;
  /**
   * Set by the reader of a frame carrying several UDP datagrams in one (UDP
   * segmentation offload, virtio GSO_UDP_L4): the payload bytes per datagram;
   * 0 for an ordinary frame. Never set by `setWindow`.
   */
  segmentSize = 0;

  /**
   * Wraps `bytes` (no copy). The window starts at 0 with length `length`
   * (default: the whole buffer).
   */
  constructor(bytes: Uint8Array, length: number = bytes.length) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.setWindow(0, length);
  }

  /** Allocates a new zeroed buffer of `capacity` bytes and wraps it (start only). */
  static alloc(capacity: number): PacketView {
    return new PacketView(new Uint8Array(capacity), 0);
  }

  /** Offset of the window in `bytes`, in bytes. */
  get start(): number {
    return this.#start;
  }

  /** Length of the current frame, in bytes. */
  get length(): number {
    return this.#length;
  }

  /** Bytes writable from the window start to the end of the buffer. */
  get capacity(): number {
    return this.bytes.length - this.#start;
  }

  /**
   * Points the window at `length` bytes from `start` in the buffer. Returns false
   * (and selects an empty window at 0) if that range is not inside the buffer.
   */
  setWindow(start: number, length: number): boolean {
    this.overflow = false;
    if (!(start >= 0 && length >= 0 && start + length <= this.bytes.length)) {
      this.#start = 0;
      this.#length = 0;
      return false;
    }
    this.#start = start | 0;
    this.#length = length | 0;
    return true;
  }

  /** Sets the frame length, clamped to `capacity`. Returns the length set. */
  setLength(length: number): number {
    const cap = this.capacity;
    this.#length = length >= 0 ? (length > cap ? cap : length | 0) : 0;
    return this.#length;
  }

  /** Clears the sticky write `overflow` flag. */
  clearOverflow(): void {
    this.overflow = false;
  }

  /** True if `count` bytes at `offset` are inside the frame. */
  has(offset: number, count: number): boolean {
    return offset >= 0 && count >= 0 && offset + count <= this.#length;
  }

  /** Byte at `offset`, or -1 if outside the frame. */
  u8(offset: number): number {
    if (!(offset >= 0 && offset + 1 <= this.#length)) return -1;
    return this.view.getUint8(this.#start + offset);
  }

  /** Big-endian (network order) 16-bit value at `offset`, or -1 if outside the frame. */
  u16(offset: number): number {
    if (!(offset >= 0 && offset + 2 <= this.#length)) return -1;
    return this.view.getUint16(this.#start + offset);
  }

  /** Big-endian (network order) 32-bit unsigned value at `offset`, or -1 if outside the frame. */
  u32(offset: number): number {
    if (!(offset >= 0 && offset + 4 <= this.#length)) return -1;
    return this.view.getUint32(this.#start + offset);
  }

  /** True if the frame holds exactly `other` at `offset` (false if out of range). */
  equals(offset: number, other: Uint8Array): boolean {
    const n = other.length;
    if (!this.has(offset, n)) return false;
    const b = this.bytes;
    const base = this.#start + offset;
    for (let i = 0; i < n; i++) {
      if (b[base + i] !== other[i]) return false;
    }
    return true;
  }

  /** True if `count` bytes at `offset` are all zero (false if out of range). */
  isZero(offset: number, count: number): boolean {
    if (!this.has(offset, count)) return false;
    const b = this.bytes;
    const base = this.#start + offset;
    for (let i = 0; i < count; i++) {
      if (b[base + i] !== 0) return false;
    }
    return true;
  }

  /**
   * Copies `count` frame bytes at `offset` into `dst` at `dstOffset`. Returns false,
   * copying nothing, if either range is out of bounds.
   */
  copyOut(offset: number, count: number, dst: Uint8Array, dstOffset = 0): boolean {
    if (!this.has(offset, count) || !(dstOffset >= 0 && dstOffset + count <= dst.length)) {
      return false;
    }
    const b = this.bytes;
    const base = this.#start + offset;
    for (let i = 0; i < count; i++) dst[dstOffset + i] = b[base + i]!;
    return true;
  }

  #fits(offset: number, count: number): boolean {
    if (offset >= 0 && count >= 0 && offset + count <= this.bytes.length - this.#start) return true;
    this.overflow = true;
    return false;
  }

  /** Writes one byte at `offset` (window-relative); sets `overflow` if it does not fit. */
  put8(offset: number, value: number): void {
    if (this.#fits(offset, 1)) this.view.setUint8(this.#start + offset, value);
  }

  /** Writes a big-endian 16-bit value at `offset`; sets `overflow` if it does not fit. */
  put16(offset: number, value: number): void {
    if (this.#fits(offset, 2)) this.view.setUint16(this.#start + offset, value);
  }

  /** Writes a big-endian 32-bit value at `offset`; sets `overflow` if it does not fit. */
  put32(offset: number, value: number): void {
    if (this.#fits(offset, 4)) this.view.setUint32(this.#start + offset, value >>> 0);
  }

  /** Writes all of `src` at `offset`; sets `overflow` (writing nothing) if it does not fit. */
  putBytes(offset: number, src: Uint8Array): void {
    const n = src.length;
    if (!this.#fits(offset, n)) return;
    const b = this.bytes;
    const base = this.#start + offset;
    for (let i = 0; i < n; i++) b[base + i] = src[i]!;
  }

  /**
   * Copies `count` bytes at `srcOffset` of the frame in `src` (bounds-checked against
   * its length) to `offset` here. Sets `overflow` and writes nothing if either side
   * is out of range. `src` may be this same view (overlap handled like memmove).
   */
  putFrom(offset: number, src: PacketView, srcOffset: number, count: number): void {
    if (!src.has(srcOffset, count)) {
      this.overflow = true;
      return;
    }
    if (!this.#fits(offset, count)) return;
    const from = src.start + srcOffset;
    const to = this.#start + offset;
    if (src.bytes === this.bytes) {
      this.bytes.copyWithin(to, from, from + count);
      return;
    }
    const d = this.bytes;
    const s = src.bytes;
    for (let i = 0; i < count; i++) d[to + i] = s[from + i]!;
  }

  /** Fills `count` bytes at `offset` with `value`; sets `overflow` if it does not fit. */
  fill(offset: number, count: number, value = 0): void {
    if (this.#fits(offset, count)) {
      this.bytes.fill(value, this.#start + offset, this.#start + offset + count);
    }
  }

  /**
   * Moves `count` bytes from `from` to `to` inside the buffer (window-relative,
   * overlap-safe, limited by capacity); sets `overflow` if either range is outside.
   */
  move(to: number, from: number, count: number): void {
    if (!this.#fits(from, count) || !this.#fits(to, count)) return;
    this.bytes.copyWithin(this.#start + to, this.#start + from, this.#start + from + count);
  }
}

/**
 * Counters for one link-layer service: replies built and frames dropped by reason.
 * Reason names are string literals, so counting allocates nothing.
 */
export class ServiceStats<Reason extends string> {
  /** Reply frames built. */
  replies = 0;
  /** Dropped frames by reason (not an error: the guest's frame got no reply). */
  readonly dropped: Record<Reason, number>;
  /** Reason of the last drop, for debug logging. */
  lastDrop: Reason | "" = "";
  /** Short name of the last reply built (e.g. "offer", "na"), for debug logging. */
  lastReply = "";
  /** Optional options/parts left out of replies because they did not fit. */
  omitted = 0;

  /** `reasons` lists every drop reason; all counters start at 0. */
  constructor(reasons: readonly Reason[]) {
    const d = {} as Record<Reason, number>;
    for (const r of reasons) d[r] = 0;
    this.dropped = d;
  }

  /** Counts a drop for `reason` and returns 0 (the "no reply" length). */
  drop(reason: Reason): 0 {
    this.dropped[reason]++;
    this.lastDrop = reason;
    return 0;
  }

  /** Counts a reply named `kind` and returns `length` unchanged. */
  reply(kind: string, length: number): number {
    this.replies++;
    this.lastReply = kind;
    return length;
  }

  /** Total drops over all reasons. */
  totalDropped(): number {
    let n = 0;
    for (const k in this.dropped) n += this.dropped[k];
    return n;
  }
}
