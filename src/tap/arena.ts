/**
 * The output arena both tap sides share: frames towards the guest are built in
 * place in fixed slots and written out together once per loop turn.
 *
 * Slot i holds a 4-byte length prefix at i * SLOT_SIZE and its frame 4 bytes on.
 * Builders ask `next()` for a view at the next free slot, write the frame from
 * its window start and `queue(length)` it; socket reads may land straight in a
 * free slot (`slotAddress`). How the queued frames leave is the subclass's
 * `flush()`: one write per frame to a tap device, or one writev of prefixes and
 * frames to qemu's stream socket. Nothing is allocated per frame.
 */
import * as sys from "../ffi/sys.ts";
import { FRAME_MAX } from "../protocols/ethernet.ts";
import { PacketView } from "../protocols/packet.ts";

/** Size of one output slot: length prefix + the largest frame (bytes). */
export const SLOT_SIZE = 4 + FRAME_MAX;
/** Output slots: frames that can wait for the end of a loop turn. */
export const OUT_SLOTS = 128;

/** Where frames may be copied for capture (the pcap writer). */
export interface FrameTap {
  /** Record `length` bytes at `offset` of `bytes`. */
  writeFrame(bytes: Uint8Array, offset: number, length: number): void;
}

/** Slots, queue and capture of the output side; `flush()` is the subclass's. */
export abstract class FrameArena {
  /** OUT_SLOTS slots of SLOT_SIZE bytes. */
  protected readonly arena: Uint8Array<ArrayBuffer>;
  // User-space addresses fit in 53 bits: a plain number, no BigInt per frame.
  protected readonly arenaAddress: number;
  /** Frame lengths of the queued slots 0 .. queued - 1. */
  protected readonly queuedLength = new Int32Array(OUT_SLOTS);
  /**
   * Per queued slot: -1 for a frame with complete checksums, otherwise a frame
   * whose TCP/UDP checksum the device completes, and its segment size in bytes
   * of payload (0: one segment). Only subclasses with offloads see other than -1.
   */
  protected readonly queuedSegment = new Int32Array(OUT_SLOTS);
  protected queued = 0;
  protected capture: FrameTap | undefined;
  readonly #outView: PacketView;

  /** `arena`: OUT_SLOTS * SLOT_SIZE bytes of pinned memory. */
  constructor(arena: Uint8Array<ArrayBuffer>) {
    this.arena = arena;
    this.arenaAddress = sys.addressNumber(arena);
    this.#outView = new PacketView(arena, 0);
  }

  /** Write every queued frame out; the arena is empty afterwards. */
  abstract flush(): void;

  /** Capture every frame to `capture` from now on. */
  setCapture(capture: FrameTap | undefined): void {
    this.capture = capture;
  }

  /**
   * A view positioned at a free output slot, with FRAME_MAX bytes of room. Build
   * the frame from its window start, then call `queue(length)`.
   */
  next(): PacketView {
    if (this.queued === OUT_SLOTS) this.flush();
    this.#outView.setWindow(this.queued * SLOT_SIZE + 4, 0);
    return this.#outView;
  }

  /** Free output slots before the arena must be flushed. */
  room(): number {
    return OUT_SLOTS - this.queued;
  }

  /**
   * The memory address of byte `offset` of the `j`-th free slot's frame (0: the
   * slot `next()` returns now), so that a socket read can land straight inside a
   * frame (iovecs). `j` must be below `room()`.
   */
  slotAddress(j: number, offset: number): number {
    return this.arenaAddress + (this.queued + j) * SLOT_SIZE + 4 + offset;
  }

  /** Queue the frame of `length` bytes just built at `next()`'s window. */
  queue(length: number): void {
    if (length <= 0 || length > FRAME_MAX) return;
    this.queuedSegment[this.queued] = -1;
    this.queuedLength[this.queued++] = length;
  }

  /**
   * Whether builders may leave TCP/UDP checksums to the device (FrameOutput).
   * Not here: a subclass with offloads says so.
   */
  get checksumOffload(): boolean {
    return false;
  }

  /** Whether TCP frames may carry several segments (FrameOutput). Not here. */
  get segmentOffload(): boolean {
    return false;
  }

  /**
   * Queue a frame whose transport checksum the device completes, cut into
   * segments of `segmentSize` payload bytes (0: not cut). Only called when
   * `checksumOffload` says so.
   */
  queueOffloaded(length: number, segmentSize: number): void {
    if (length <= 0 || length > FRAME_MAX) return;
    this.queuedSegment[this.queued] = segmentSize;
    this.queuedLength[this.queued++] = length;
  }

  /** Copy a frame built elsewhere (`view`'s window) into the queue. */
  send(view: PacketView): void {
    const out = this.next();
    const length = view.length;
    if (length <= 0 || length > FRAME_MAX) return;
    out.putFrom(0, view, 0, length);
    if (!out.overflow) this.queue(length);
  }
}
