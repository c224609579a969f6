/**
 * passt's tap side over vhost-user: QEMU shares the guest's memory and hands us
 * the virtio-net device's queues (`passt --vhost-user -s PATH`).
 *
 * Theory of operation. QEMU (the front-end) connects to our UNIX socket and sends
 * control messages: a 12-byte header (request, flags, payload size; host byte
 * order, which vhost-user defines as little-endian) and a payload, descriptors
 * riding along as SCM_RIGHTS. `handleMessage()` reads one, acts, and replies where
 * the protocol asks for it (the GET_* requests always; any other when NEED_REPLY is
 * set and REPLY_ACK was negotiated: a u64, 0 for success). The memory table maps
 * each region's memfd shared (`GuestMemory`, virtqueue.ts) and closes the fd;
 * SET_VRING_* describe queue 0 (receive: frames towards the guest) and queue 1
 * (transmit: frames from the guest); a queue starts once it has a kick eventfd
 * and, with VHOST_USER_F_PROTOCOL_FEATURES, once enabled. GET_VRING_BASE stops it.
 *
 * Features offered: VIRTIO_F_VERSION_1, VIRTIO_NET_F_MRG_RXBUF,
 * VIRTIO_RING_F_INDIRECT_DESC and VHOST_USER_F_PROTOCOL_FEATURES; protocol
 * features: REPLY_ACK. No multiqueue, no dirty log (migration is refused).
 * With VERSION_1 every frame is preceded by the 12-byte virtio_net_hdr_mrg_rxbuf.
 *
 * Transmit: on a kick, `drainTx()` pops each chain, skips the header, and hands
 * the frame to `onFrame` through a PacketView: the region's own view, re-pointed,
 * when the frame lies in one segment (no copy), or a preallocated linear buffer
 * the segments are gathered into. The chain goes back as used at once (the frame
 * was handled synchronously) and the guest is notified once per drain.
 *
 * Receive: frames are built in the shared output arena (arena.ts) by the same
 * builders as for the other taps; `flush()` copies each into the next receive
 * chains, writing the header in the first buffer (num_buffers: how many chains the
 * frame took, merged receive buffers). A frame finding no buffers is dropped and
 * counted, as a full tap queue would (TCP retransmits).
 *
 * The control socket is blocking with a receive timeout (CONTROL_TIMEOUT_MS): QEMU
 * writes each message whole, and a front-end that stops halfway is cut off.
 */
import { SO, SOL } from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import { log } from "../log.ts";
import { FRAME_MAX } from "../protocols/ethernet.ts";
import { PacketView } from "../protocols/packet.ts";
import { FrameArena, OUT_SLOTS, SLOT_SIZE } from "./arena.ts";
import type { TapStats } from "./tap.ts";
import { GuestMemory, POP_BROKEN, POP_EMPTY, POP_SKIPPED, SplitQueue } from "./virtqueue.ts";

/** vhost-user requests (front-end → back-end). */
export const VHOST_USER = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  SEND_RARP: 19,
  NET_SET_MTU: 20,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  RESET_DEVICE: 34,
} as const;

/** A request's name, for the debug log. */
function requestName(request: number): string {
  for (const [name, value] of Object.entries(VHOST_USER)) if (value === request) return name;
  return `request ${request}`;
}

/** Header flags: the version (1) in bits 0–1, a reply, a reply wanted. */
export const VHOST_USER_FLAG = { VERSION: 1, REPLY: 0x4, NEED_REPLY: 0x8 } as const;
/** Bytes of the message header. */
export const HEADER_SIZE = 12;
/** The largest payload accepted (a GET_CONFIG of 256 bytes and its 12-byte header). */
export const PAYLOAD_MAX = 268;
/** SET_VRING_KICK/CALL/ERR: no descriptor comes with the message. */
export const VRING_NOFD = 0x100;

/** Feature bits (positions). */
export const FEATURE = {
  NET_MRG_RXBUF: 15,
  RING_INDIRECT_DESC: 28,
  PROTOCOL_FEATURES: 30,
  VERSION_1: 32,
} as const;
/** Protocol feature bits (positions). */
export const PROTOCOL_FEATURE = { REPLY_ACK: 3 } as const;

/** The features we offer (a bit mask). */
export const OFFERED_FEATURES = (1n << BigInt(FEATURE.NET_MRG_RXBUF)) |
  (1n << BigInt(FEATURE.RING_INDIRECT_DESC)) | (1n << BigInt(FEATURE.PROTOCOL_FEATURES)) |
  (1n << BigInt(FEATURE.VERSION_1));
/** The protocol features we offer (a bit mask). */
export const OFFERED_PROTOCOL_FEATURES = 1n << BigInt(PROTOCOL_FEATURE.REPLY_ACK);

/** Queue numbers of a virtio-net device. */
export const RX_QUEUE = 0;
export const TX_QUEUE = 1;
/** Bytes of virtio_net_hdr_mrg_rxbuf (VERSION_1 or MRG_RXBUF), or of the legacy header. */
export const NET_HDR_SIZE = 12;
const NET_HDR_LEGACY_SIZE = 10;
/** How long a half-sent control message may take (ms). */
export const CONTROL_TIMEOUT_MS = 1000;
/** Chains taken per kick, at most: the rest waits for the next loop turn. */
const TX_CHAINS_PER_DRAIN = 256;
/** Batches taken per kick, at most (a guest that never stops sending can't hold the loop). */
const TX_DRAINS_PER_KICK = 16;
/** Receive chains one frame may take, at most (64 KiB in 1 KiB buffers). */
const RX_CHAINS_PER_FRAME = 80;

/** What `handleMessage` found. */
export const VhostRead = {
  /** A message was handled. */
  Ok: 0,
  /** The front-end closed the connection, or it failed. */
  Closed: 1,
  /** The message broke the protocol: the connection cannot go on. */
  Bad: 2,
} as const;
/** One of VhostRead's values. */
export type VhostRead = typeof VhostRead[keyof typeof VhostRead];

/** Counters of the vhost-user tap on top of the tap side's. */
export interface VhostStats extends TapStats {
  /** Control messages handled. */
  messages: number;
  /** Requests we do not know (answered with a failure if a reply was wanted). */
  unknownRequests: number;
  /** Frames from the guest that were too short or too long to be Ethernet frames. */
  badFramesIn: number;
  /** Frames towards the guest dropped for want of receive buffers. */
  noRxBuffers: number;
}

/** What the device tells its owner about queue descriptors coming and going. */
export interface VhostEvents {
  /** A queue got a kick eventfd (`fd`), or lost it (-1): watch it in the loop. */
  kickChanged(queue: number, fd: number, old: number): void;
}

/** The vhost-user back-end of one virtio-net device (see the theory of operation). */
export class VhostUserTap extends FrameArena {
  /** The connected front-end's socket, -1 when none. */
  fd = -1;
  readonly memory = new GuestMemory();
  readonly queues: readonly [SplitQueue, SplitQueue];
  readonly stats: VhostStats = {
    framesIn: 0,
    framesOut: 0,
    dropsOut: 0,
    messages: 0,
    unknownRequests: 0,
    badFramesIn: 0,
    noRxBuffers: 0,
  };
  /** Negotiated feature and protocol feature masks. */
  features = 0n;
  protocolFeatures = 0n;

  readonly #events: VhostEvents;
  readonly #onFrame: (frame: PacketView) => void;
  readonly #message = sys.pinnedBuffer(HEADER_SIZE + PAYLOAD_MAX);
  readonly #messageView = new DataView(this.#message.buffer);
  readonly #fds = new Int32Array(sys.FDS_PER_MESSAGE_MAX);
  readonly #reply = sys.pinnedBuffer(HEADER_SIZE + PAYLOAD_MAX);
  readonly #replyView = new DataView(this.#reply.buffer);
  readonly #linear = sys.pinnedBuffer(NET_HDR_SIZE + FRAME_MAX);
  readonly #linearView = new PacketView(this.#linear, 0);
  readonly #linearAddress = sys.addressNumber(this.#linear);
  readonly #kickCount = sys.pinnedBuffer(8);
  readonly #rxHeads = new Int32Array(RX_CHAINS_PER_FRAME);
  readonly #rxWritten = new Int32Array(RX_CHAINS_PER_FRAME);

  /**
   * `onFrame` gets each frame from the guest (valid during the call only);
   * `events` hears about kick descriptors to watch.
   */
  constructor(onFrame: (frame: PacketView) => void, events: VhostEvents) {
    super(sys.pinnedBuffer(SLOT_SIZE * OUT_SLOTS));
    this.#onFrame = onFrame;
    this.#events = events;
    this.queues = [new SplitQueue(this.memory), new SplitQueue(this.memory)];
  }

  /** Bytes of the virtio-net header in front of each frame. */
  get headerSize(): number {
    const mrg = (1n << BigInt(FEATURE.NET_MRG_RXBUF)) | (1n << BigInt(FEATURE.VERSION_1));
    return (this.features & mrg) !== 0n ? NET_HDR_SIZE : NET_HDR_LEGACY_SIZE;
  }

  /** Serve the front-end on the connected socket `fd` (made blocking, with a timeout). */
  attach(fd: number): void {
    this.fd = fd;
    const flags = sys.fcntl(fd, 3 /* F_GETFL */);
    sys.fcntl(fd, 4, /* F_SETFL */ flags & ~0o4000 /* O_NONBLOCK */);
    const tv = new Uint8Array(16);
    const v = new DataView(tv.buffer);
    v.setBigInt64(0, BigInt(Math.floor(CONTROL_TIMEOUT_MS / 1000)), true);
    v.setBigInt64(8, BigInt((CONTROL_TIMEOUT_MS % 1000) * 1000), true);
    sys.setsockoptBytes(fd, SOL.SOCKET, SO.RCVTIMEO, tv);
  }

  /** Forget the front-end: queues reset, memory unmapped, the socket closed. */
  detach(): void {
    this.#resetDevice();
    if (this.fd >= 0) sys.close(this.fd);
    this.fd = -1;
    this.queued = 0;
  }

  #resetDevice(): void {
    this.queues.forEach((q, i) => {
      // The owner stops watching the kick descriptor before it is closed.
      if (q.kickFd >= 0) this.#events.kickChanged(i, -1, q.kickFd);
      q.reset();
    });
    this.memory.clear();
    this.features = 0n;
    this.protocolFeatures = 0n;
  }

  /** Read and handle one control message from the front-end. */
  handleMessage(): VhostRead {
    const fds = this.#fds;
    const n = sys.recvWithFds(this.fd, this.#message, HEADER_SIZE, fds);
    if (n === 0 || (n < 0 && n !== -sys.Errno.EAGAIN && n !== -sys.Errno.EINTR)) {
      return VhostRead.Closed;
    }
    if (n < 0) return VhostRead.Ok;
    const mv = this.#messageView;
    let ok = n === HEADER_SIZE;
    const request = mv.getUint32(0, true);
    const flags = mv.getUint32(4, true);
    const size = mv.getUint32(8, true);
    if (ok && ((flags & 3) !== VHOST_USER_FLAG.VERSION || size > PAYLOAD_MAX)) ok = false;
    if (ok && size > 0) {
      const got = this.#readFully(HEADER_SIZE, size);
      ok = got === size;
    }
    let result: VhostRead = VhostRead.Bad;
    if (log.debugging) {
      const withFds = fds.filter((fd) => fd >= 0).length;
      log.debug(`vhost-user: ${requestName(request)}, ${size} bytes, ${withFds} descriptors`);
    }
    if (ok) {
      this.stats.messages++;
      result = this.#dispatch(request, flags, size, fds);
    }
    for (let i = 0; i < fds.length; i++) {
      const fd = fds[i] ?? -1;
      if (fd >= 0) sys.close(fd);
    }
    return result;
  }

  #readFully(offset: number, length: number): number {
    let done = 0;
    for (let tries = 0; done < length && tries < 16; tries++) {
      const r = sys.recv(this.fd, this.#message.subarray(offset + done), length - done, 0);
      if (r <= 0) break;
      done += r;
    }
    return done;
  }

  /** Take descriptor `i` of the message (so it is not closed after it). */
  #takeFd(fds: Int32Array, i: number): number {
    const fd = fds[i] ?? -1;
    fds[i] = -1;
    return fd;
  }

  #dispatch(request: number, flags: number, size: number, fds: Int32Array): VhostRead {
    const p = this.#messageView;
    const P = HEADER_SIZE;
    let status = 0; // the u64 of a REPLY_ACK: 0 success
    switch (request) {
      case VHOST_USER.GET_FEATURES:
        return this.#replyU64(request, OFFERED_FEATURES);
      case VHOST_USER.SET_FEATURES: {
        if (size < 8) return VhostRead.Bad;
        const f = p.getBigUint64(P, true);
        if ((f & ~OFFERED_FEATURES) !== 0n) status = 1;
        this.features = f & OFFERED_FEATURES;
        // Without protocol features, rings are enabled as they start.
        const pf = (this.features & (1n << BigInt(FEATURE.PROTOCOL_FEATURES))) !== 0n;
        if (!pf) { for (const q of this.queues) q.enabled = true; }
        break;
      }
      case VHOST_USER.GET_PROTOCOL_FEATURES:
        return this.#replyU64(request, OFFERED_PROTOCOL_FEATURES);
      case VHOST_USER.SET_PROTOCOL_FEATURES: {
        if (size < 8) return VhostRead.Bad;
        this.protocolFeatures = p.getBigUint64(P, true) & OFFERED_PROTOCOL_FEATURES;
        break;
      }
      case VHOST_USER.SET_OWNER:
        break;
      case VHOST_USER.RESET_OWNER:
      case VHOST_USER.RESET_DEVICE:
        this.#resetDevice();
        break;
      case VHOST_USER.SET_MEM_TABLE:
        status = this.#setMemTable(size, fds) ? 0 : 1;
        break;
      case VHOST_USER.SET_VRING_NUM:
      case VHOST_USER.SET_VRING_BASE:
      case VHOST_USER.SET_VRING_ENABLE: {
        if (size < 8) return VhostRead.Bad;
        const q = this.queues[p.getUint32(P, true)];
        const value = p.getUint32(P + 4, true);
        if (q === undefined) {
          status = 1;
          break;
        }
        if (request === VHOST_USER.SET_VRING_NUM) {
          if (value === 0 || (value & (value - 1)) !== 0 || value > 32768) status = 1;
          else q.num = value;
        } else if (request === VHOST_USER.SET_VRING_BASE) {
          q.lastAvail = q.usedIndex = value & 0xffff;
        } else {
          q.enabled = value !== 0;
        }
        break;
      }
      case VHOST_USER.SET_VRING_ADDR: {
        if (size < 40) return VhostRead.Bad;
        const q = this.queues[p.getUint32(P, true)];
        if (q === undefined) {
          status = 1;
          break;
        }
        q.descUser = Number(p.getBigUint64(P + 8, true));
        q.usedUser = Number(p.getBigUint64(P + 16, true));
        q.availUser = Number(p.getBigUint64(P + 24, true));
        if (q.started && !q.start()) status = 1;
        break;
      }
      case VHOST_USER.GET_VRING_BASE: {
        if (size < 8) return VhostRead.Bad;
        const index = p.getUint32(P, true);
        const q = this.queues[index];
        const base = q === undefined ? 0 : q.stop();
        if (q !== undefined && q.kickFd >= 0) {
          const old = q.kickFd;
          q.kickFd = -1;
          this.#events.kickChanged(index, -1, old);
          sys.close(old);
        }
        return this.#replyState(request, index, base);
      }
      case VHOST_USER.SET_VRING_KICK:
      case VHOST_USER.SET_VRING_CALL:
      case VHOST_USER.SET_VRING_ERR: {
        if (size < 8) return VhostRead.Bad;
        const u = p.getUint32(P, true);
        const index = u & 0xff;
        const q = this.queues[index];
        const fd = (u & VRING_NOFD) !== 0 ? -1 : this.#takeFd(fds, 0);
        if (q === undefined) {
          if (fd >= 0) sys.close(fd);
          status = 1;
          break;
        }
        if (request === VHOST_USER.SET_VRING_CALL) {
          if (q.callFd >= 0) sys.close(q.callFd);
          q.callFd = fd;
        } else if (request === VHOST_USER.SET_VRING_ERR) {
          if (q.errFd >= 0) sys.close(q.errFd);
          q.errFd = fd;
        } else {
          const old = q.kickFd;
          q.kickFd = fd;
          this.#events.kickChanged(index, fd, old);
          if (old >= 0) sys.close(old);
          if (!q.start()) status = 1;
        }
        break;
      }
      case VHOST_USER.GET_QUEUE_NUM:
        return this.#replyU64(request, 1n);
      case VHOST_USER.GET_CONFIG: {
        // No config space of our own (we don't offer the CONFIG protocol
        // feature): echo the request with a zeroed area, as "nothing to add".
        if (size < 12) return VhostRead.Bad;
        const length = Math.min(p.getUint32(P + 4, true), size - 12);
        this.#reply.fill(0, HEADER_SIZE, HEADER_SIZE + 12 + length);
        this.#reply.set(this.#message.subarray(P, P + 12), HEADER_SIZE);
        return this.#sendReply(request, 12 + length);
      }
      case VHOST_USER.SET_CONFIG:
      case VHOST_USER.SEND_RARP:
      case VHOST_USER.NET_SET_MTU:
        break;
      case VHOST_USER.SET_LOG_BASE:
      case VHOST_USER.SET_LOG_FD:
        status = 1; // no dirty log: we offer neither LOG_ALL nor LOG_SHMFD
        break;
      default:
        this.stats.unknownRequests++;
        status = 1;
    }
    const ack = (this.protocolFeatures & (1n << BigInt(PROTOCOL_FEATURE.REPLY_ACK))) !== 0n;
    if (ack && (flags & VHOST_USER_FLAG.NEED_REPLY) !== 0) {
      return this.#replyU64(request, BigInt(status));
    }
    return VhostRead.Ok;
  }

  #setMemTable(size: number, fds: Int32Array): boolean {
    const p = this.#messageView;
    const P = HEADER_SIZE;
    if (size < 8) return false;
    const count = p.getUint32(P, true);
    if (count > sys.FDS_PER_MESSAGE_MAX || size < 8 + 32 * count) return false;
    // Queues keep their ring addresses; they are translated again below.
    this.memory.clear();
    let ok = true;
    for (let i = 0; i < count; i++) {
      const at = P + 8 + 32 * i;
      const guest = Number(p.getBigUint64(at, true));
      const length = Number(p.getBigUint64(at + 8, true));
      const user = Number(p.getBigUint64(at + 16, true));
      const offset = Number(p.getBigUint64(at + 24, true));
      const fd = this.#takeFd(fds, i);
      if (fd < 0 || length <= 0 || length + offset > Number.MAX_SAFE_INTEGER) {
        if (fd >= 0) sys.close(fd);
        ok = false;
        continue;
      }
      try {
        const mapping = sys.mmapShared(fd, length + offset, "vhost-user memory region");
        this.memory.add(guest, user, mapping.bytes.subarray(offset, offset + length), mapping);
      } catch {
        ok = false;
      } finally {
        sys.close(fd);
      }
    }
    for (const q of this.queues) if (q.started && !q.start()) ok = false;
    return ok;
  }

  #replyU64(request: number, value: bigint): VhostRead {
    this.#replyView.setBigUint64(HEADER_SIZE, value, true);
    return this.#sendReply(request, 8);
  }

  #replyState(request: number, index: number, num: number): VhostRead {
    this.#replyView.setUint32(HEADER_SIZE, index, true);
    this.#replyView.setUint32(HEADER_SIZE + 4, num, true);
    return this.#sendReply(request, 8);
  }

  #sendReply(request: number, size: number): VhostRead {
    const v = this.#replyView;
    v.setUint32(0, request, true);
    v.setUint32(4, VHOST_USER_FLAG.VERSION | VHOST_USER_FLAG.REPLY, true);
    v.setUint32(8, size, true);
    const r = sys.send(this.fd, this.#reply, HEADER_SIZE + size, 0x4000 /* MSG_NOSIGNAL */);
    return r === HEADER_SIZE + size ? VhostRead.Ok : VhostRead.Closed;
  }

  /** The kick eventfd of `queue` is readable: clear it and serve the queue. */
  kicked(queue: number): void {
    const q = this.queues[queue];
    if (q === undefined || q.kickFd < 0) return;
    sys.read(q.kickFd, this.#kickCount, 8);
    if (queue !== TX_QUEUE) return;
    // The kick is cleared: take what is there now, in bounded batches.
    for (let batch = 0; batch < TX_DRAINS_PER_KICK; batch++) {
      if (this.drainTx() < TX_CHAINS_PER_DRAIN) break;
    }
  }

  /**
   * Hands every available transmit chain's frame to `onFrame`. Returns the
   * chains taken; stops at TX_CHAINS_PER_DRAIN or when the queue breaks.
   */
  drainTx(): number {
    const q = this.queues[TX_QUEUE];
    const m = this.memory;
    const hdr = this.headerSize;
    let taken = 0;
    while (taken < TX_CHAINS_PER_DRAIN) {
      const head = q.pop();
      if (head === POP_EMPTY || head === POP_BROKEN) break;
      taken++;
      if (head === POP_SKIPPED) continue;
      const total = q.readableBytes;
      const frameLength = total - hdr;
      if (frameLength < 14 || frameLength > FRAME_MAX) {
        this.stats.badFramesIn++;
        q.push(head, 0);
        continue;
      }
      // The frame in one segment after the header: the region's view, no copy.
      let view: PacketView | undefined;
      const s0 = q.segmentLength[0] ?? 0;
      if (q.segmentWritable[0] === 0) {
        if (s0 === total) {
          view = m.views[q.segmentRegion[0] ?? -1];
          view?.setWindow((q.segmentOffset[0] ?? 0) + hdr, frameLength);
        } else if (s0 === hdr && q.segmentWritable[1] === 0 && q.segmentLength[1] === frameLength) {
          view = m.views[q.segmentRegion[1] ?? -1];
          view?.setWindow(q.segmentOffset[1] ?? 0, frameLength);
        }
      }
      if (view === undefined) view = this.#gather(q, hdr, frameLength);
      this.stats.framesIn++;
      this.#onFrame(view);
      q.push(head, 0);
    }
    q.notify();
    return taken;
  }

  /** Copies the chain's readable bytes after the header into the linear buffer. */
  #gather(q: SplitQueue, hdr: number, frameLength: number): PacketView {
    const m = this.memory;
    let skip = hdr;
    let at = 0;
    for (let s = 0; s < q.segmentCount; s++) {
      if (q.segmentWritable[s] !== 0) continue;
      const region = q.segmentRegion[s] ?? -1;
      if (region < 0 || region >= m.count) continue;
      let offset = q.segmentOffset[s] ?? 0;
      let length = q.segmentLength[s] ?? 0;
      if (skip > 0) {
        const cut = Math.min(skip, length);
        skip -= cut;
        offset += cut;
        length -= cut;
      }
      if (length === 0) continue;
      // The chain was checked to fit FRAME_MAX after the header; segments stay in their region.
      const take = Math.min(length, this.#linear.length - at);
      sys.copyMemory(this.#linearAddress + at, (m.address[region] ?? 0) + offset, take);
      at += take;
    }
    this.#linearView.setWindow(0, Math.min(at, frameLength));
    return this.#linearView;
  }

  /** Copies every queued frame into receive chains and notifies the guest. */
  flush(): void {
    const n = this.queued;
    if (n === 0) return;
    this.queued = 0;
    const q = this.queues[RX_QUEUE];
    const capture = this.capture;
    for (let i = 0; i < n; i++) {
      const length = this.queuedLength[i] ?? 0;
      const start = i * SLOT_SIZE + 4;
      if (capture !== undefined) capture.writeFrame(this.arena, start, length);
      if (this.fd < 0 || !q.ready || !this.#receive(q, start, length)) {
        this.stats.dropsOut++;
        continue;
      }
      this.stats.framesOut++;
    }
    q.notify();
  }

  /**
   * One frame from the arena at `start` into as many receive chains as it needs.
   * The chains are put in the used ring only once the frame is whole and the
   * header's num_buffers written; if buffers run out first, the available index
   * goes back and the chains stay the guest's, untouched as far as it can tell.
   */
  #receive(q: SplitQueue, start: number, length: number): boolean {
    const m = this.memory;
    const hdr = this.headerSize;
    const merge = (this.features & (1n << BigInt(FEATURE.NET_MRG_RXBUF))) !== 0n;
    const savedAvail = q.lastAvail;
    let left = hdr + length; // header first, then the frame
    let from = start;
    let buffers = 0;
    let firstRegion = -1;
    let firstOffset = 0;
    while (left > 0) {
      const head = q.pop();
      if (head === POP_SKIPPED) continue;
      if (head < 0 || buffers === RX_CHAINS_PER_FRAME || (buffers > 0 && !merge)) {
        q.lastAvail = savedAvail;
        this.stats.noRxBuffers++;
        return false;
      }
      let written = 0;
      for (let s = 0; s < q.segmentCount && left > 0; s++) {
        if (q.segmentWritable[s] === 0) continue;
        const region = q.segmentRegion[s] ?? -1;
        const bytes = m.bytes[region];
        if (bytes === undefined) continue;
        let offset = q.segmentOffset[s] ?? 0;
        let room = q.segmentLength[s] ?? 0;
        if (firstRegion < 0) {
          if (room < hdr) break; // the first buffer must hold the header
          firstRegion = region;
          firstOffset = offset;
          bytes.fill(0, offset, offset + hdr);
          offset += hdr;
          room -= hdr;
          left -= hdr;
          written += hdr;
        }
        const take = Math.min(room, left);
        if (take > 0) {
          sys.copyMemory((m.address[region] ?? 0) + offset, this.arenaAddress + from, take);
        }
        from += take;
        left -= take;
        written += take;
      }
      this.#rxHeads[buffers] = head;
      this.#rxWritten[buffers] = written;
      buffers++;
    }
    if (hdr === NET_HDR_SIZE) m.data[firstRegion]?.setUint16(firstOffset + 10, buffers, true);
    for (let i = 0; i < buffers; i++) q.push(this.#rxHeads[i] ?? 0, this.#rxWritten[i] ?? 0);
    return true;
  }
}
