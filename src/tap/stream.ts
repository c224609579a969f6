/**
 * passt's tap side: the qemu stream socket, frames preceded by a 4-byte
 * big-endian length.
 *
 * Theory of operation. Output uses the same arena layout as the tap device
 * (tap.ts): OUT_SLOTS slots, each a 4-byte length prefix and one frame. At the
 * end of a loop turn `flush` fills in the prefixes and writes every queued slot,
 * prefix and frame together, with one writev(). A stream socket may take only
 * part of that. The framing must never break, so the unwritten remainder is
 * copied, byte-exact, into the preallocated `pending` buffer and the socket is
 * watched for EPOLLOUT (through `onBlocked`); until the remainder is gone, no
 * other byte goes out. Frames queued meanwhile wait behind it: each flush
 * appends them whole to `pending` while they fit, and drops (and counts) those
 * that don't. The arena is always empty after a flush, so the protocols always
 * find room, as with a tap device whose queue is full (frames are unreliable;
 * TCP retransmits).
 *
 * Input: one large preallocated buffer (IN_BUFFER_SIZE). A readable socket is
 * read into the free space after what is already there; complete frames are
 * walked by their prefixes and each is handed to the ingress through one
 * re-pointed PacketView; a trailing partial frame is moved to the front for the
 * next read. A zero length, or one larger than any Ethernet frame, means the
 * stream cannot be trusted any more: `readFrames` reports it and the owner
 * closes the connection.
 *
 * One StreamTap lives as long as passt: clients come and go (`attach`,
 * `detach`), the buffers stay. With no client, flushed frames are dropped.
 */
import { IOVEC_SIZE } from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import { PacketView } from "../protocols/packet.ts";
import { FrameArena, OUT_SLOTS, SLOT_SIZE } from "./arena.ts";
import type { TapStats } from "./tap.ts";

/** Size of the input buffer (bytes): many frames per read. */
export const IN_BUFFER_SIZE = 8 << 20;
/** The largest frame length a client may announce: 64 KiB IP packet + Ethernet header. */
export const STREAM_FRAME_MAX = 65535 + 14;
/** Size of the buffer holding output the socket did not take yet (bytes). */
export const PENDING_SIZE = OUT_SLOTS * SLOT_SIZE;
/** Reads per readiness event, at most (each may carry many frames). */
const READS_PER_EVENT = 8;

/** What `readFrames` found. */
export const StreamRead = {
  /** Everything available was read; the connection goes on. */
  Ok: 0,
  /** The client closed the connection, or it failed. */
  Closed: 1,
  /** A zero or oversized length: the framing is lost. */
  BadLength: 2,
} as const;
/** One of StreamRead's values. */
export type StreamRead = typeof StreamRead[keyof typeof StreamRead];

/** Counters of the stream on top of the tap side's. */
export interface StreamStats extends TapStats {
  /** Times a write was partial and the remainder had to wait. */
  partialWrites: number;
}

/** The qemu stream socket as a tap side (see the theory of operation above). */
export class StreamTap extends FrameArena {
  #fd = -1;
  readonly #onBlocked: (fd: number, blocked: boolean) => void;

  // Output arena: slot i holds its prefix at i*SLOT_SIZE and its frame 4 bytes on.
  // The pending buffer follows it in the same memory: keeping a slot is a copyWithin.
  readonly #output: Uint8Array<ArrayBuffer>;
  readonly #arenaData: DataView;
  readonly #iov = sys.pinnedBuffer(OUT_SLOTS * IOVEC_SIZE);
  readonly #iovView = new DataView(this.#iov.buffer);

  // Output the socket has not taken yet: bytes [#pendingStart, #pendingEnd).
  readonly #pending: Uint8Array<ArrayBuffer>;
  readonly #pendingAddress: number;
  #pendingStart = 0;
  #pendingEnd = 0;

  // Input: bytes [0, #inFilled) read but not handed on (a partial frame).
  readonly #inBuffer = sys.pinnedBuffer(IN_BUFFER_SIZE);
  readonly #inData = new DataView(this.#inBuffer.buffer);
  readonly #inAddress = Number(sys.addressOf(this.#inBuffer));
  readonly #inIov = sys.pinnedBuffer(IOVEC_SIZE);
  readonly #inIovView = new DataView(this.#inIov.buffer);
  readonly #inView = new PacketView(this.#inBuffer, 0);
  #inFilled = 0;
  /** The bad length `readFrames` last found (for the owner's log line). */
  badLength = 0;

  /** Counters. */
  readonly stats: StreamStats = { framesIn: 0, framesOut: 0, dropsOut: 0, partialWrites: 0 };

  /**
   * `onBlocked(fd, true)` asks the owner to watch `fd` for EPOLLOUT as well (a
   * remainder waits), `onBlocked(fd, false)` to stop (all written).
   */
  constructor(onBlocked: (fd: number, blocked: boolean) => void) {
    const output = sys.pinnedBuffer(SLOT_SIZE * OUT_SLOTS + PENDING_SIZE);
    super(output.subarray(0, SLOT_SIZE * OUT_SLOTS));
    this.#output = output;
    this.#arenaData = new DataView(output.buffer);
    this.#pending = output.subarray(SLOT_SIZE * OUT_SLOTS);
    this.#pendingAddress = sys.addressNumber(output) + SLOT_SIZE * OUT_SLOTS;
    this.#onBlocked = onBlocked;
  }

  /** The connected client's descriptor, or -1. */
  get fd(): number {
    return this.#fd;
  }

  /** Whether output is waiting for the socket to take it. */
  get blocked(): boolean {
    return this.#pendingEnd > this.#pendingStart;
  }

  /** Serve the connected (nonblocking) socket `fd` from now on. */
  attach(fd: number): void {
    this.#fd = fd;
    this.#inFilled = 0;
    this.#pendingStart = this.#pendingEnd = 0;
    this.queued = 0;
  }

  /** Forget the client (the owner closes its descriptor); what it had not taken is dropped. */
  detach(): void {
    this.#fd = -1;
    this.#inFilled = 0;
    this.#pendingStart = this.#pendingEnd = 0;
    this.stats.dropsOut += this.queued;
    this.queued = 0;
  }

  /**
   * Write what waits, then every queued frame (one writev). Leaves the arena
   * empty: what the socket does not take waits in `pending`, or is dropped.
   */
  flush(): void {
    const queued = this.queued;
    const fd = this.#fd;
    if (fd < 0) {
      this.stats.dropsOut += queued;
      this.queued = 0;
      return;
    }
    const capture = this.capture;
    const arena = this.#arenaData;
    for (let i = 0; i < queued; i++) {
      const length = this.queuedLength[i]!;
      arena.setUint32(i * SLOT_SIZE, length); // big-endian, as qemu reads it
      if (capture !== undefined) capture.writeFrame(this.arena, i * SLOT_SIZE + 4, length);
    }
    const wasBlocked = this.blocked;
    if (wasBlocked && !this.#writePending()) {
      // Still stuck: the new frames wait behind the remainder, whole, or are dropped.
      for (let i = 0; i < queued; i++) this.#keep(i, 0);
      this.queued = 0;
      return;
    }
    this.queued = 0;
    if (queued > 0) {
      let total = 0;
      for (let i = 0; i < queued; i++) {
        const bytes = 4 + this.queuedLength[i]!;
        sys.setIovecAt(this.#iovView, i, this.arenaAddress + i * SLOT_SIZE, bytes);
        total += bytes;
      }
      let n = sys.writev(fd, this.#iov, queued);
      while (n === -sys.Errno.EINTR) n = sys.writev(fd, this.#iov, queued);
      if (n === total) {
        this.stats.framesOut += queued;
      } else if (n < 0 && n !== -sys.Errno.EAGAIN) {
        // A broken connection: the reader sees it and the owner closes it.
        this.stats.dropsOut += queued;
      } else {
        this.stats.partialWrites++;
        let written = n < 0 ? 0 : n;
        for (let i = 0; i < queued; i++) {
          const bytes = 4 + this.queuedLength[i]!;
          if (written >= bytes) {
            written -= bytes;
            this.stats.framesOut++;
          } else {
            this.#keep(i, written);
            written = 0;
          }
        }
      }
    }
    const blocked = this.blocked;
    if (blocked !== wasBlocked) this.#onBlocked(fd, blocked);
  }

  /**
   * Keep slot `i`, of which `written` bytes (prefix included) went out already,
   * for later. A frame partly written always fits (the stream needs its end); a
   * frame not started is dropped when it does not fit.
   */
  #keep(i: number, written: number): void {
    const bytes = 4 + this.queuedLength[i]! - written;
    if (PENDING_SIZE - this.#pendingEnd < bytes && this.#pendingStart > 0) {
      this.#pending.copyWithin(0, this.#pendingStart, this.#pendingEnd);
      this.#pendingEnd -= this.#pendingStart;
      this.#pendingStart = 0;
    }
    if (PENDING_SIZE - this.#pendingEnd < bytes) {
      this.stats.dropsOut++; // only whole frames: written is 0 here (pending was empty otherwise)
      return;
    }
    const from = i * SLOT_SIZE + written;
    this.#output.copyWithin(SLOT_SIZE * OUT_SLOTS + this.#pendingEnd, from, from + bytes);
    this.#pendingEnd += bytes;
    this.stats.framesOut++; // it goes out, later
  }

  /** Write the waiting remainder; true when it is all gone. */
  #writePending(): boolean {
    const length = this.#pendingEnd - this.#pendingStart;
    const address = this.#pendingAddress + this.#pendingStart;
    sys.setIovecAt(this.#iovView, 0, address, length);
    let n = sys.writev(this.#fd, this.#iov, 1);
    while (n === -sys.Errno.EINTR) n = sys.writev(this.#fd, this.#iov, 1);
    if (n < 0) return false;
    this.#pendingStart += n;
    if (this.#pendingStart < this.#pendingEnd) return false;
    this.#pendingStart = this.#pendingEnd = 0;
    return true;
  }

  /** The socket became writable: send what waits (and anything queued). */
  resume(): void {
    this.flush();
  }

  /**
   * Read what is available, and hand every complete frame to `ingress` (the
   * same PacketView, re-pointed). A partial frame stays for the next read.
   */
  readFrames(ingress: (frame: PacketView) => void): StreamRead {
    const fd = this.#fd;
    if (fd < 0) return StreamRead.Closed;
    const buffer = this.#inBuffer;
    const data = this.#inData;
    const capture = this.capture;
    for (let r = 0; r < READS_PER_EVENT; r++) {
      const free = IN_BUFFER_SIZE - this.#inFilled;
      // readv: the free space by address, no view made per read.
      sys.setIovecAt(this.#inIovView, 0, this.#inAddress + this.#inFilled, free);
      const n = sys.readv(fd, this.#inIov, 1);
      if (n < 0) {
        if (n === -sys.Errno.EAGAIN) return StreamRead.Ok;
        if (n === -sys.Errno.EINTR) continue;
        return StreamRead.Closed;
      }
      if (n === 0) return StreamRead.Closed;
      const filled = this.#inFilled + n;
      let offset = 0;
      while (filled - offset >= 4) {
        const length = data.getUint32(offset);
        if (length === 0 || length > STREAM_FRAME_MAX) {
          this.badLength = length;
          this.#inFilled = 0;
          return StreamRead.BadLength;
        }
        if (filled - offset - 4 < length) break;
        this.stats.framesIn++;
        if (capture !== undefined) capture.writeFrame(buffer, offset + 4, length);
        this.#inView.setWindow(offset + 4, length);
        ingress(this.#inView);
        // The ingress may have ended the connection (it never does today): stop reading.
        if (this.#fd !== fd) return StreamRead.Ok;
        offset += 4 + length;
      }
      if (offset > 0 && offset < filled) buffer.copyWithin(0, offset, filled);
      this.#inFilled = filled - offset;
      if (n < free) return StreamRead.Ok; // drained
    }
    return StreamRead.Ok;
  }
}
