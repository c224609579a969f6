/**
 * Frames in and out of the tap side.
 *
 * Theory of operation: the tap side is a pasta tap device (one frame per read
 * and per write) or, for passt, qemu's stream socket (frames preceded by a 4-byte
 * big-endian length). Both use the same preallocated output arena: OUT_SLOTS
 * slots of SLOT_SIZE bytes, each holding a 4-byte length prefix and one frame.
 * A protocol handler asks `next()` for a PacketView whose window starts at a free
 * slot, builds its frame there in place, and calls `queue(length)`. The frames
 * are written when the loop's turn ends (`flush`), or at once when the arena is
 * full: for a tap device one write() per frame, for the stream one writev() of
 * every queued slot, prefix and frame together.
 *
 * Input uses one preallocated buffer: a readable tap device is read frame by
 * frame (bounded per event) and each frame is handed to the ingress handler
 * through one PacketView that is re-pointed, never re-made.
 *
 * Every frame crossing in either direction also goes to the pcap writer, when
 * there is one.
 */
import * as sys from "../ffi/sys.ts";
import { PacketView } from "../protocols/packet.ts";
import { FRAME_MAX } from "../protocols/ethernet.ts";
import { FrameArena, OUT_SLOTS, SLOT_SIZE } from "./arena.ts";

export { type FrameTap, OUT_SLOTS, SLOT_SIZE } from "./arena.ts";
/** Frames read from a tap device per readiness event, at most. */
export const READS_PER_EVENT = 64;

/** Counters for the tap side. */
export interface TapStats {
  /** Frames received from the guest/namespace. */
  framesIn: number;
  /** Frames sent to the guest/namespace. */
  framesOut: number;
  /** Frames dropped on the way out (device queue full, errors). */
  dropsOut: number;
}

/** The output arena and the pasta tap device writer/reader. */
export class TapDevice extends FrameArena {
  /** The tap device descriptor (nonblocking). */
  readonly fd: number;
  readonly #frameViews: Uint8Array<ArrayBuffer>[] = [];
  readonly #inBuffer = sys.pinnedBuffer(FRAME_MAX);
  readonly #inView = new PacketView(this.#inBuffer, 0);
  /** Counters. */
  readonly stats: TapStats = { framesIn: 0, framesOut: 0, dropsOut: 0 };

  constructor(fd: number) {
    super(sys.pinnedBuffer(SLOT_SIZE * OUT_SLOTS));
    this.fd = fd;
    for (let i = 0; i < OUT_SLOTS; i++) {
      this.#frameViews.push(this.arena.subarray(i * SLOT_SIZE + 4, (i + 1) * SLOT_SIZE));
    }
  }

  /** Write every queued frame to the device. A full device queue drops frames, counted. */
  flush(): void {
    const capture = this.capture;
    for (let i = 0; i < this.queued; i++) {
      const length = this.queuedLength[i]!;
      if (capture !== undefined) capture.writeFrame(this.arena, i * SLOT_SIZE + 4, length);
      const n = sys.write(this.fd, this.#frameViews[i]!, length);
      if (n === length) this.stats.framesOut++;
      else this.stats.dropsOut++;
    }
    this.queued = 0;
  }

  /**
   * Read up to READS_PER_EVENT frames and hand each to `ingress` (the same
   * PacketView, re-pointed). Returns false when the device is gone (EOF or an
   * error other than EAGAIN/EINTR).
   */
  readFrames(ingress: (frame: PacketView) => void): boolean {
    const capture = this.capture;
    for (let i = 0; i < READS_PER_EVENT; i++) {
      const n = sys.read(this.fd, this.#inBuffer, FRAME_MAX);
      if (n < 0) {
        if (n === -sys.Errno.EAGAIN) return true;
        if (n === -sys.Errno.EINTR) continue;
        return false;
      }
      if (n === 0) return false;
      this.stats.framesIn++;
      if (capture !== undefined) capture.writeFrame(this.#inBuffer, 0, n);
      this.#inView.setWindow(0, n);
      ingress(this.#inView);
    }
    return true;
  }
}

/**
 * The tap side of pasta --splice-only, which has no tap device: frames built for the
 * namespace are dropped (counted), since only loopback traffic is forwarded, spliced
 * between sockets. The arena is small: nothing but stray replies is ever built here.
 */
export class NoTapDevice extends FrameArena {
  /** Counters: every frame queued counts as dropped. */
  readonly stats: TapStats = { framesIn: 0, framesOut: 0, dropsOut: 0 };

  constructor() {
    super(sys.pinnedBuffer(SLOT_SIZE * OUT_SLOTS));
  }

  /** Drop every queued frame. */
  flush(): void {
    this.stats.dropsOut += this.queued;
    this.queued = 0;
  }
}
