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
 * full: for a tap device one write() per frame (a writev() of the virtio header
 * and the frame with offloads, below), for the stream one writev() of
 * every queued slot, prefix and frame together.
 *
 * Input uses one preallocated buffer: a readable tap device is read frame by
 * frame (bounded per event) and each frame is handed to the ingress handler
 * through one PacketView that is re-pointed, never re-made.
 *
 * Every frame crossing in either direction also goes to the pcap writer, when
 * there is one.
 *
 * Offloads. pasta opens the device with IFF_VNET_HDR where the kernel lets it
 * (`negotiateOffloads`): every frame read or written is then preceded by a
 * 10-byte virtio_net_hdr, and we tell the kernel (TUNSETOFFLOAD) that we take
 * frames with partial checksums (TUN_F_CSUM) and TCP frames of up to 64 KiB
 * that were not cut into segments (TUN_F_TSO4/6), feature by feature as it
 * accepts them. Reading, the header is stepped over: its flags say whether the
 * transport checksum is partial (or already validated), which the protocols
 * then do not verify (`PacketView.checksumUnverifiable`); a large frame is one
 * large write to the socket, and nothing of its payload is read here. With
 * UDP segmentation offload (TUN_F_USO4/6, Linux 6.2 on), a UDP frame may carry
 * several datagrams of `gso_size` bytes (`PacketView.segmentSize`): it goes to
 * the socket in one sendmsg() with UDP_SEGMENT, and the host's kernel splits it.
 *
 * Writing, each frame goes out as one writev() of its header and the frame in
 * its slot. A frame built with complete checksums gets an empty header. A frame
 * queued with `queueOffloaded` gets VIRTIO_NET_HDR_F_NEEDS_CSUM, the start and
 * offset of its TCP or UDP checksum (found here from its own headers, which we
 * built), and, for TCP with more payload than its segment size, GSO_TCPV4/V6
 * with that size: the namespace's kernel cuts it into segments, or hands it to
 * the local socket whole. The builders only learn that they may do this
 * (`checksumOffload`, `segmentOffload`); they never see the header.
 *
 * Capture: the file gets the frames without the virtio header. While a capture
 * is on, `checksumOffload` is false, so the frames towards the namespace carry
 * complete checksums and MSS-sized segments as before, and the capture shows
 * valid frames. Frames from the namespace are captured as read: with TUN_F_CSUM
 * their TCP/UDP checksums are partial (tcpdump -vv reports them as incorrect,
 * as it does for a capture taken on any interface with checksum offload), and
 * with TSO a TCP frame may be larger than the MTU.
 */
import { IOCTL, IOVEC_SIZE, TUN_F } from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import { log } from "../log.ts";
import { PacketView } from "../protocols/packet.ts";
import { FRAME_MAX } from "../protocols/ethernet.ts";
import { FrameArena, OUT_SLOTS, SLOT_SIZE } from "./arena.ts";

/** Size of struct virtio_net_hdr, bytes: what precedes each frame with IFF_VNET_HDR. */
export const VNET_HDR_LEN = 10;
/** virtio_net_hdr.flags: the transport checksum is partial, to be completed. */
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
/** virtio_net_hdr.flags: the transport checksum was already validated. */
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
/** virtio_net_hdr.gso_type values. */
export const VIRTIO_NET_HDR_GSO = { NONE: 0, TCPV4: 1, UDP: 3, TCPV6: 4, UDP_L4: 5 } as const;

/** The offloads asked for, in the order they are given up when refused. */
const OFFLOAD_CHOICES = [
  TUN_F.CSUM | TUN_F.TSO4 | TUN_F.TSO6 | TUN_F.USO4 | TUN_F.USO6,
  TUN_F.CSUM | TUN_F.TSO4 | TUN_F.TSO6,
  TUN_F.CSUM | TUN_F.TSO4,
  TUN_F.CSUM,
  0,
] as const;

/**
 * Set up a tap device opened with IFF_VNET_HDR: header size VNET_HDR_LEN, and
 * the offloads the kernel accepts of TUN_F_CSUM, TUN_F_TSO4/6 and TUN_F_USO4/6
 * (see OFFLOAD_CHOICES). Returns the TUN_F_* flags in effect. Never throws:
 * with none accepted, frames still carry a header, with nothing offloaded.
 */
export function negotiateOffloads(fd: number): number {
  const size = new Uint8Array(4);
  new DataView(size.buffer).setInt32(0, VNET_HDR_LEN, true);
  const r = sys.tryIoctl(fd, BigInt(IOCTL.TUNSETVNETHDRSZ), size);
  // The default size is VNET_HDR_LEN already: a refusal changes nothing.
  if (r < 0) log.debug(`tap: TUNSETVNETHDRSZ refused: ${sys.errnoMessage(-r)}`);
  for (const flags of OFFLOAD_CHOICES) {
    const o = sys.tryIoctlInt(fd, IOCTL.TUNSETOFFLOAD, flags);
    if (o >= 0) {
      log.debug(`tap: virtio-net headers, offloads TUN_F 0x${flags.toString(16)}`);
      return flags;
    }
    log.debug(`tap: TUNSETOFFLOAD 0x${flags.toString(16)} refused: ${sys.errnoMessage(-o)}`);
  }
  return 0;
}

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
  /** Whether every frame read or written carries a virtio_net_hdr. */
  readonly vnetHeader: boolean;
  /** TUN_F_* offloads the kernel accepted for frames we read. */
  readonly offloads: number;
  readonly #frameViews: Uint8Array<ArrayBuffer>[] = [];
  /** Where frames are read: the virtio header (if any), then the frame. */
  readonly #inBuffer = sys.pinnedBuffer(VNET_HDR_LEN + FRAME_MAX + 256);
  readonly #inView = new PacketView(this.#inBuffer, 0);
  /** With vnetHeader: slot i's header at i * VNET_HDR_LEN. */
  readonly #headers = sys.pinnedBuffer(OUT_SLOTS * VNET_HDR_LEN);
  readonly #headerView = new DataView(this.#headers.buffer);
  /** With vnetHeader: slot i's two iovecs (header, frame), as writev() arguments. */
  readonly #iovs: Uint8Array<ArrayBuffer>[] = [];
  readonly #iovView: DataView;
  /** Counters. */
  readonly stats: TapStats = { framesIn: 0, framesOut: 0, dropsOut: 0 };

  /**
   * `fd`: the device; `vnetHeader`: opened with IFF_VNET_HDR (then `offloads`,
   * from `negotiateOffloads`, says what was accepted).
   */
  constructor(fd: number, vnetHeader = false, offloads = 0) {
    super(sys.pinnedBuffer(SLOT_SIZE * OUT_SLOTS));
    this.fd = fd;
    this.vnetHeader = vnetHeader;
    this.offloads = vnetHeader ? offloads : 0;
    for (let i = 0; i < OUT_SLOTS; i++) {
      this.#frameViews.push(this.arena.subarray(i * SLOT_SIZE + 4, (i + 1) * SLOT_SIZE));
    }
    const iov = sys.pinnedBuffer(vnetHeader ? OUT_SLOTS * 2 * IOVEC_SIZE : IOVEC_SIZE);
    this.#iovView = new DataView(iov.buffer);
    if (vnetHeader) {
      const headers = sys.addressNumber(this.#headers);
      for (let i = 0; i < OUT_SLOTS; i++) {
        sys.setIovecAt(this.#iovView, 2 * i, headers + i * VNET_HDR_LEN, VNET_HDR_LEN);
        sys.setIovecAt(this.#iovView, 2 * i + 1, this.arenaAddress + i * SLOT_SIZE + 4, 0);
        this.#iovs.push(iov.subarray(2 * i * IOVEC_SIZE, (2 * i + 2) * IOVEC_SIZE));
      }
    }
  }

  /**
   * Frames may leave their transport checksum to the namespace's kernel: with a
   * virtio header, and no capture on (which then shows complete checksums).
   */
  override get checksumOffload(): boolean {
    return this.vnetHeader && this.capture === undefined;
  }

  /** TCP frames may carry many segments, cut by the kernel: as `checksumOffload`. */
  override get segmentOffload(): boolean {
    return this.vnetHeader && this.capture === undefined;
  }

  /** Write every queued frame to the device. A full device queue drops frames, counted. */
  flush(): void {
    const capture = this.capture;
    const vnet = this.vnetHeader;
    for (let i = 0; i < this.queued; i++) {
      const length = this.queuedLength[i]!;
      if (capture !== undefined) capture.writeFrame(this.arena, i * SLOT_SIZE + 4, length);
      let n: number;
      if (vnet) {
        this.#writeHeader(i, length);
        sys.setIovecLength(this.#iovView, 2 * i + 1, length);
        n = sys.writev(this.fd, this.#iovs[i]!, 2) - VNET_HDR_LEN;
      } else n = sys.write(this.fd, this.#frameViews[i]!, length);
      if (n === length) this.stats.framesOut++;
      else this.stats.dropsOut++;
    }
    this.queued = 0;
  }

  /**
   * Fill slot `i`'s virtio header for its frame of `length` bytes: empty for
   * complete checksums, otherwise NEEDS_CSUM at the TCP or UDP checksum, and GSO
   * when a TCP payload is larger than the slot's segment size. The frame's
   * headers are ours, so they are read without further checks than the bounds.
   */
  #writeHeader(i: number, length: number): void {
    const h = this.#headerView;
    const at = i * VNET_HDR_LEN;
    const segment = this.queuedSegment[i]!;
    h.setUint32(at, 0, true);
    h.setUint32(at + 4, 0, true);
    h.setUint16(at + 8, 0, true);
    if (segment < 0) return;
    const a = this.arena;
    const frame = i * SLOT_SIZE + 4;
    const type = (a[frame + 12]! << 8) | a[frame + 13]!;
    let l4: number;
    let proto: number;
    let v6: boolean;
    if (type === 0x0800) {
      l4 = 14 + (a[frame + 14]! & 0x0f) * 4;
      proto = a[frame + 14 + 9]!;
      v6 = false;
    } else if (type === 0x86dd) {
      l4 = 14 + 40;
      proto = a[frame + 14 + 6]!;
      v6 = true;
    } else return;
    if (proto !== 6 && proto !== 17) return;
    h.setUint8(at, VIRTIO_NET_HDR_F_NEEDS_CSUM);
    h.setUint16(at + 6, l4, true); // csum_start
    h.setUint16(at + 8, proto === 6 ? 16 : 6, true); // csum_offset
    if (proto !== 6 || segment === 0 || l4 + 20 > length) return;
    const headers = l4 + (a[frame + l4 + 12]! >> 4) * 4;
    if (length - headers <= segment) return;
    h.setUint8(at + 1, v6 ? VIRTIO_NET_HDR_GSO.TCPV6 : VIRTIO_NET_HDR_GSO.TCPV4);
    h.setUint16(at + 2, headers, true); // hdr_len
    h.setUint16(at + 4, segment, true); // gso_size
  }

  /**
   * Read up to READS_PER_EVENT frames and hand each to `ingress` (the same
   * PacketView, re-pointed). Returns false when the device is gone (EOF or an
   * error other than EAGAIN/EINTR).
   */
  readFrames(ingress: (frame: PacketView) => void): boolean {
    const capture = this.capture;
    const skip = this.vnetHeader ? VNET_HDR_LEN : 0;
    const buffer = this.#inBuffer;
    const view = this.#inView;
    for (let i = 0; i < READS_PER_EVENT; i++) {
      const n = sys.read(this.fd, buffer, buffer.length);
      if (n < 0) {
        if (n === -sys.Errno.EAGAIN) return true;
        if (n === -sys.Errno.EINTR) continue;
        return false;
      }
      if (n === 0) return false;
      if (n <= skip) continue;
      this.stats.framesIn++;
      if (capture !== undefined) capture.writeFrame(buffer, skip, n - skip);
      view.checksumUnverifiable = skip !== 0 &&
        (buffer[0]! & (VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID)) !== 0;
      // gso_size (little-endian u16 at 4) of a UDP_L4 frame: datagrams in one.
      view.segmentSize = skip !== 0 && (buffer[1]! & 0x7f) === VIRTIO_NET_HDR_GSO.UDP_L4
        ? buffer[4]! | (buffer[5]! << 8)
        : 0;
      view.setWindow(skip, n - skip);
      ingress(view);
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
