/**
 * pasta's local fast path for UDP: datagrams between a loopback sender in one
 * namespace and a forwarded port on the loopback of the other, moved socket to
 * socket without ever becoming frames on the tap.
 *
 * Theory of operation. A forwarded port has a bound "listening" socket on the
 * sender's side: the host-side socket of -u (read by the UDP translator, which
 * hands us what comes from a loopback address), or a namespace-side socket of
 * -U bound to 127.0.0.1 or ::1 (read by us). Each sender (listening socket plus
 * the sender's socket address) is a flow with its own "target" socket in the
 * other namespace, connected at the target port to the namespace's own address
 * for -u (its loopback with --host-lo-to-ns-lo), to the host's loopback for -U:
 * the namespace thread's socket(2) for -u, ours for -U. What the sender sends
 * goes out of the target socket; what comes back to the target socket (the
 * reply) goes out of the listening socket to the sender's address. Because the
 * target socket is connected, the kernel delivers to it only what the target
 * port's owner sends back, and the sender sees replies from the port it wrote to.
 *
 * Batches. Datagrams are received with recvmmsg (the translator's batch for -u,
 * ours for -U and for replies) and sent with sendmmsg: consecutive datagrams of
 * one flow leave in one call, straight from the buffers they were received into
 * (the tap's frame slots for -u), so a datagram is never copied in JavaScript.
 * A datagram the other side can't take now (EAGAIN) is dropped and counted, as a
 * full socket buffer would drop it; so is one for a full flow table.
 *
 * Flows are UDP_SPLICE flows of the data path's one flow table (src/flow/),
 * keyed by their two sides: the sender's address and port, and the listening
 * socket it wrote to (its descriptor stands for its address); the target
 * socket's epoll reference carries the flow number. State lives in typed arrays
 * indexed by that number. A flow idle for `timeoutMs` (180 s by default, as
 * upstream) is closed by its deadline in the loop's deadline queue
 * (src/timers.ts): set to the timeout when the flow opens, left alone by
 * traffic (which records the time), and moved to the real deadline when it
 * comes early, so nothing scans the flows on a period; so are a listening socket's flows when
 * it goes away (an "auto" port released). At most `capacity` flows are open;
 * past that, or with the table full, the flows idle longest (at least
 * EVICT_IDLE_MS) make room. A target socket that reports an error (ECONNREFUSED: nothing
 * listens on the target port) only costs the datagram it was about.
 */

import { isLoopback6 } from "../addr.ts";
import { AF, EPOLL, IOVEC_SIZE, IPPROTO, MMSGHDR, MSG, MSGHDR, SOCK } from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import { log } from "../log.ts";
import { FLOW_MAX, type FlowEvictor, FlowTable, FlowType } from "../flow/flow.ts";
import type { EventLoop } from "../loop.ts";
import type { DeadlineQueue } from "../timers.ts";
import type { GuestState } from "../flow/guest.ts";

/** Flows at most (each holds one socket). */
export const UDP_SPLICE_FLOWS_MAX = 1024;
/** Inactivity after which a flow is closed, ms (as upstream and the tap path). */
export const UDP_SPLICE_TIMEOUT_MS = 180_000;
/** Datagrams per recvmmsg/sendmmsg call, at most. */
const BATCH = 16;
/** recvmmsg calls per readiness event, at most (fairness between sockets). */
const RECV_ROUNDS = 4;
/** Receive buffer per datagram: the largest UDP payload. */
const DATAGRAM_MAX = 65536;
/** sockaddr_in6 is the larger of the two. */
const SA_MAX = 28;
/** A flow idle at least this long may be closed early to make room, ms. */
const EVICT_IDLE_MS = 1000;

/** Counters. */
export interface UdpSpliceStats {
  flowsOpened: number;
  flowsClosed: number;
  /** Datagrams moved towards the target, and back to the sender. */
  forwarded: number;
  replies: number;
  /** Datagrams dropped: table full, socket failures, EAGAIN, truncated. */
  dropped: number;
  /** Idle flows closed early to make room for new ones. */
  evicted: number;
}

/** What the splicer needs from its surroundings. */
export interface UdpSpliceOptions {
  /** socket(2) in the namespace (the namespace thread's): fd or -errno. */
  readonly nsSocket: (domain: number, type: number, protocol: number) => number;
  /**
   * Where -u datagrams go in the namespace: its own address as last seen, as the
   * C pasta does; when undefined (--host-lo-to-ns-lo), its loopback.
   */
  readonly guest?: GuestState;
  /** Flow capacity (default UDP_SPLICE_FLOWS_MAX). */
  readonly capacity?: number;
  /** Idle timeout of a flow, ms (default UDP_SPLICE_TIMEOUT_MS). */
  readonly timeoutMs?: number;
  /** The data path's flow table (by default, one of its own). */
  readonly flows?: FlowTable;
}

/** Side a flow's target socket lives in. */
const TO_NAMESPACE = 0;
const TO_HOST = 1;

/** The UDP local path between the init and the target namespace; see the file comment. */
export class UdpSplicer {
  readonly #loop: EventLoop;
  readonly #nsSocket: (domain: number, type: number, protocol: number) => number;
  readonly #guest: GuestState | undefined;
  readonly #capacity: number;
  readonly #flows: FlowTable;
  readonly #timeoutMs: number;
  readonly #targetKind: number;
  readonly #listenKind: number;

  // Flows.
  readonly #listenFd: Int32Array;
  readonly #targetFd: Int32Array;
  readonly #targetPort: Uint16Array;
  readonly #peer: Uint8Array<ArrayBuffer>;
  readonly #peerAddress: number;
  readonly #peerLen: Uint8Array;
  readonly #lastActive: Float64Array;
  /** The listening socket's side of a key: its descriptor, big-endian, then zeros. */
  readonly #listenerKey = new Uint8Array(16);
  #active = 0;
  #fullLogged = false;
  #now = 0;
  /** Per-flow expiry deadlines. */
  readonly #timers: DeadlineQueue;

  // -U listening sockets we read ourselves, by slot.
  readonly #ownFd: number[] = [];
  readonly #ownPort: number[] = [];

  // Buffers: received datagrams (allocated on first use) and the two vectors.
  #rx: Uint8Array<ArrayBuffer> | undefined;
  #rxAddress = 0;
  readonly #rxNames = sys.pinnedBuffer(BATCH * SA_MAX);
  readonly #rxNamesAddress = sys.addressNumber(this.#rxNames);
  readonly #rxIov = sys.pinnedBuffer(BATCH * IOVEC_SIZE);
  readonly #rxIovView = new DataView(this.#rxIov.buffer);
  readonly #rxVec = sys.pinnedBuffer(BATCH * MMSGHDR.size);
  readonly #rxVecView = new DataView(this.#rxVec.buffer);
  readonly #txIov = sys.pinnedBuffer(BATCH * IOVEC_SIZE);
  readonly #txIovView = new DataView(this.#txIov.buffer);
  readonly #txVec = sys.pinnedBuffer(BATCH * MMSGHDR.size);
  readonly #txVecView = new DataView(this.#txVec.buffer);
  /** The flow whose datagrams are queued in the send vector, and how many. */
  #txFlow = -1;
  #txCount = 0;
  readonly #sockaddr = sys.pinnedBuffer(SA_MAX);

  /** Counters. */
  readonly stats: UdpSpliceStats = {
    flowsOpened: 0,
    flowsClosed: 0,
    forwarded: 0,
    replies: 0,
    dropped: 0,
    evicted: 0,
  };

  constructor(loop: EventLoop, opts: UdpSpliceOptions) {
    this.#loop = loop;
    this.#nsSocket = opts.nsSocket;
    this.#guest = opts.guest;
    const n = this.#capacity = Math.min(opts.capacity ?? UDP_SPLICE_FLOWS_MAX, FLOW_MAX);
    this.#flows = opts.flows ?? new FlowTable();
    this.#flows.share([FlowType.UDP_SPLICE], n);
    this.#flows.evictable(FlowType.UDP_SPLICE, this.#evictor);
    this.#timeoutMs = opts.timeoutMs ?? UDP_SPLICE_TIMEOUT_MS;
    this.#listenFd = new Int32Array(FLOW_MAX).fill(-1);
    this.#targetFd = new Int32Array(FLOW_MAX).fill(-1);
    this.#targetPort = new Uint16Array(FLOW_MAX);
    this.#peer = sys.pinnedBuffer(FLOW_MAX * SA_MAX);
    this.#peerAddress = sys.addressNumber(this.#peer);
    this.#peerLen = new Uint8Array(FLOW_MAX);
    this.#lastActive = new Float64Array(FLOW_MAX);
    const rxIovAddress = sys.addressNumber(this.#rxIov);
    const txIovAddress = sys.addressNumber(this.#txIov);
    for (let j = 0; j < BATCH; j++) {
      const m = j * MMSGHDR.size;
      sys.putU64(this.#rxVecView, m + MSGHDR.iov, rxIovAddress + j * IOVEC_SIZE);
      this.#rxVecView.setUint32(m + MSGHDR.iovlen, 1, true);
      sys.putU64(this.#txVecView, m + MSGHDR.iov, txIovAddress + j * IOVEC_SIZE);
      this.#txVecView.setUint32(m + MSGHDR.iovlen, 1, true);
    }
    this.#targetKind = loop.defineKind("udp-splice", (flow, _events, fd) => {
      this.#onTargetReadable(flow, fd);
    });
    this.#listenKind = loop.defineKind("udp-splice-listen", (slot, _events, fd) => {
      this.#onListenReadable(slot, fd);
    });
    this.#timers = loop.deadlines("udp-splice", FLOW_MAX, this.#onDeadline);
    this.#now = sys.monotonicMs();
  }

  /** Flows open now. */
  get flowCount(): number {
    return this.#active;
  }

  /**
   * Whether the sender whose socket address is at `names[off..off+len)` is on
   * loopback (127.0.0.0/8, ::1, or ::ffff:127.x.y.z on an IPv6 socket).
   */
  static isLocalSender(names: Uint8Array, off: number, len: number): boolean {
    if (names[off] === AF.INET && names[off + 1] === 0) return len >= 16 && names[off + 4] === 127;
    if (names[off] !== AF.INET6 || names[off + 1] !== 0 || len < SA_MAX) return false;
    if (isLoopback6(names, off + 8)) return true;
    for (let k = 8; k < 18; k++) if (names[off + k] !== 0) return false;
    return names[off + 18] === 0xff && names[off + 19] === 0xff && names[off + 20] === 127;
  }

  /**
   * -u: a datagram of `length` bytes at memory address `data`, from the loopback
   * sender at `names[off..off+len)` to the host-side socket `listenFd` of a port
   * forwarded to `targetPort`: queued for the namespace's loopback. The caller
   * keeps the bytes in place until `flush()`.
   */
  queueToNamespace(
    listenFd: number,
    names: Uint8Array,
    off: number,
    len: number,
    data: number,
    length: number,
    targetPort: number,
  ): void {
    this.#now = sys.monotonicMs();
    this.#queue(listenFd, names, off, len, data, length, targetPort, TO_NAMESPACE);
  }

  /** Send what `queueToNamespace` queued. */
  flush(): void {
    if (this.#txCount === 0) return;
    const flow = this.#txFlow;
    const count = this.#txCount;
    this.#txCount = 0;
    this.#txFlow = -1;
    const fd = this.#targetFd[flow]!;
    if (fd < 0) {
      this.stats.dropped += count;
      return;
    }
    this.stats.forwarded += this.#sendAll(fd, count);
  }

  /**
   * -U: `fd`, bound by the namespace-side forwarder to a loopback address for a
   * port forwarded to `targetPort` on the host: read by the splicer from now on.
   */
  addNamespaceSocket(fd: number, targetPort: number, _v6: boolean): void {
    let slot = this.#ownFd.indexOf(-1);
    if (slot < 0) slot = this.#ownFd.length;
    const r = this.#loop.add(fd, this.#listenKind, slot, EPOLL.IN);
    if (r < 0) throw new sys.SysError("epoll_ctl", -r, `UDP -U socket ${fd}`);
    this.#ownFd[slot] = fd;
    this.#ownPort[slot] = targetPort;
  }

  /** -U: the socket's port went away: close its flows, stop reading it, close it. */
  removeNamespaceSocket(fd: number): void {
    this.removeListener(fd);
    const slot = this.#ownFd.indexOf(fd);
    if (slot >= 0) {
      this.#ownFd[slot] = -1;
      this.#loop.remove(fd);
    }
    sys.close(fd);
  }

  /** Close the flows of listening socket `fd` (it is going away; not closed here). */
  removeListener(fd: number): void {
    if (this.#txCount > 0 && this.#listenFd[this.#txFlow] === fd) this.flush();
    for (let i = 0; i < FLOW_MAX && this.#active > 0; i++) {
      if (this.#listenFd[i] === fd) this.#closeFlow(i);
    }
  }

  /** Close every flow and every -U socket. */
  close(): void {
    this.flush();
    for (let i = 0; i < FLOW_MAX && this.#active > 0; i++) {
      if (this.#listenFd[i]! >= 0) this.#closeFlow(i);
    }
    for (const fd of this.#ownFd) {
      if (fd < 0) continue;
      this.#loop.remove(fd);
      sys.close(fd);
    }
    this.#ownFd.length = 0;
  }

  // --- flows --------------------------------------------------------------------------

  #queue(
    listenFd: number,
    names: Uint8Array,
    off: number,
    len: number,
    data: number,
    length: number,
    targetPort: number,
    side: number,
  ): void {
    let flow = this.#lookup(listenFd, names, off, len);
    if (flow < 0) {
      flow = this.#open(listenFd, names, off, len, targetPort, side);
      if (flow < 0) {
        this.stats.dropped++;
        return;
      }
    }
    this.#lastActive[flow] = this.#now;
    if (this.#txCount > 0 && (this.#txFlow !== flow || this.#txCount === BATCH)) this.flush();
    this.#txFlow = flow;
    const j = this.#txCount++;
    sys.setIovecAt(this.#txIovView, j, data, length);
    const m = j * MMSGHDR.size;
    sys.putU64(this.#txVecView, m + MSGHDR.name, 0);
    this.#txVecView.setUint32(m + MSGHDR.namelen, 0, true);
  }

  /** For the flow table when room is short: idle time, and closing. */
  readonly #evictor: FlowEvictor = {
    idleFor: (flow: number, nowMs: number): number => {
      if (this.#targetFd[flow]! < 0) return -1;
      const idle = nowMs - this.#lastActive[flow]!;
      return idle >= EVICT_IDLE_MS ? idle : -1;
    },
    evict: (flow: number): void => {
      if (log.debugging) log.debug(`UDP splice ${flow}: closed early to make room`);
      this.#closeFlow(flow);
      this.stats.evicted++;
    },
  };

  /** The listener's side of the key of a datagram that came through `listenFd`. */
  #setListenerKey(listenFd: number): void {
    const k = this.#listenerKey;
    k[0] = listenFd >>> 24;
    k[1] = (listenFd >>> 16) & 0xff;
    k[2] = (listenFd >>> 8) & 0xff;
    k[3] = listenFd & 0xff;
  }

  /**
   * The flow of the sender at `names[off..off+len)` through `listenFd`, or -1.
   * Sets the listener's key and leaves the sender's address offset and length
   * in #keyOff and #keyLen for `#open`.
   */
  #lookup(listenFd: number, names: Uint8Array, off: number, len: number): number {
    const v6 = names[off] === AF.INET6;
    this.#keyLen = 0;
    if ((v6 && len < SA_MAX) || (!v6 && (names[off] !== AF.INET || len < 16))) return -1;
    this.#keyOff = off + (v6 ? 8 : 4);
    this.#keyLen = v6 ? 16 : 4;
    this.#setListenerKey(listenFd);
    return this.#flows.lookup(
      FlowType.UDP_SPLICE,
      names,
      this.#keyOff,
      (names[off + 2]! << 8) | names[off + 3]!,
      this.#listenerKey,
      0,
      0,
      this.#keyLen,
    );
  }

  #keyOff = 0;
  #keyLen = 0;

  /** A new flow for this sender: its target socket, connected to the loopback there. */
  #open(
    listenFd: number,
    names: Uint8Array,
    off: number,
    len: number,
    targetPort: number,
    side: number,
  ): number {
    if (this.#keyLen === 0) return -1; // not a socket address we can key
    const i = this.#flows.alloc(FlowType.UDP_SPLICE);
    if (i < 0) {
      if (!this.#fullLogged) {
        log.warn(`UDP splice: ${this.#capacity} flows open, datagrams dropped until one idles`);
        this.#fullLogged = true;
      }
      return -1;
    }
    // The sender's family picks the target's: 127.x (also v4-mapped) → 127.0.0.1.
    const v6 = names[off] === AF.INET6 && isLoopback6(names, off + 8);
    const socket = side === TO_NAMESPACE ? this.#nsSocket : sys.trySocket;
    const fd = socket(
      v6 ? AF.INET6 : AF.INET,
      SOCK.DGRAM | SOCK.NONBLOCK | SOCK.CLOEXEC,
      IPPROTO.UDP,
    );
    if (fd < 0) {
      this.#flows.free(i);
      if (log.debugging) log.debug(`UDP splice: socket: ${sys.errnoName(-fd)}`);
      return -1;
    }
    const sa = this.#sockaddr;
    sa.fill(0);
    sa[0] = v6 ? AF.INET6 : AF.INET;
    sa[2] = targetPort >>> 8;
    sa[3] = targetPort & 0xff;
    const guest = side === TO_NAMESPACE ? this.#guest : undefined;
    if (guest !== undefined) sa.set(v6 ? guest.addr6 : guest.addr4, v6 ? 8 : 4);
    else if (v6) sa[23] = 1;
    else {
      sa[4] = 127;
      sa[7] = 1;
    }
    let r = sys.connect(fd, sa, v6 ? 28 : 16);
    if (r === 0) r = this.#loop.add(fd, this.#targetKind, i, EPOLL.IN);
    if (r < 0) {
      if (log.debugging) log.debug(`UDP splice: connect/epoll: ${sys.errnoName(-r)}`);
      sys.close(fd);
      this.#flows.free(i);
      return -1;
    }
    this.#listenFd[i] = listenFd;
    this.#targetFd[i] = fd;
    this.#targetPort[i] = targetPort;
    this.#peer.set(names.subarray(off, off + len), i * SA_MAX);
    this.#peerLen[i] = len;
    this.#lastActive[i] = this.#now;
    this.#timers.set(i, this.#now + this.#timeoutMs);
    this.#flows.setKey(
      i,
      names,
      this.#keyOff,
      (names[off + 2]! << 8) | names[off + 3]!,
      this.#listenerKey,
      0,
      0,
      this.#keyLen,
    );
    this.#active++;
    this.stats.flowsOpened++;
    if (log.debugging) {
      log.debug(
        `UDP splice ${i}: to ${side === TO_NAMESPACE ? "namespace" : "host"} ` +
          `port ${targetPort}${guest ? "" : " on loopback"}`,
      );
    }
    return i;
  }

  #closeFlow(i: number): void {
    if (this.#txFlow === i) {
      this.stats.dropped += this.#txCount;
      this.#txCount = 0;
      this.#txFlow = -1;
    }
    const fd = this.#targetFd[i]!;
    this.#loop.remove(fd);
    sys.close(fd);
    this.#listenFd[i] = -1;
    this.#targetFd[i] = -1;
    this.#timers.clear(i);
    this.#flows.free(i);
    this.#active--;
    this.#fullLogged = false;
    this.stats.flowsClosed++;
  }

  /** A flow's deadline came: close it if idle for the timeout, else wait for the real one. */
  readonly #onDeadline = (flow: number, nowMs: number): void => {
    if (this.#listenFd[flow]! < 0) return;
    const due = this.#lastActive[flow]! + this.#timeoutMs;
    if (due <= nowMs) this.#closeFlow(flow);
    else this.#timers.set(flow, due);
  };

  // --- receiving ----------------------------------------------------------------------

  /** Receive up to BATCH datagrams from `fd` into our buffers: count or -errno. */
  #receive(fd: number, withNames: boolean): number {
    if (this.#rx === undefined) {
      this.#rx = sys.pinnedBuffer(BATCH * DATAGRAM_MAX);
      this.#rxAddress = sys.addressNumber(this.#rx);
      for (let j = 0; j < BATCH; j++) {
        sys.setIovecAt(this.#rxIovView, j, this.#rxAddress + j * DATAGRAM_MAX, DATAGRAM_MAX);
      }
    }
    // The kernel rewrites each name length: set again, with the name pointer.
    const vec = this.#rxVecView;
    for (let j = 0; j < BATCH; j++) {
      const m = j * MMSGHDR.size;
      sys.putU64(vec, m + MSGHDR.name, withNames ? this.#rxNamesAddress + j * SA_MAX : 0);
      vec.setUint32(m + MSGHDR.namelen, withNames ? SA_MAX : 0, true);
    }
    return sys.recvmmsg(fd, this.#rxVec, BATCH, MSG.DONTWAIT);
  }

  /** -U: datagrams from namespace senders, to the host's loopback. */
  #onListenReadable(slot: number, fd: number): void {
    this.#now = sys.monotonicMs();
    const vec = this.#rxVecView;
    for (let round = 0; round < RECV_ROUNDS; round++) {
      if (this.#ownFd[slot] !== fd) return; // removed meanwhile
      const n = this.#receive(fd, true);
      if (n < 0) {
        if (n === -sys.Errno.EAGAIN) return;
        if (n !== -sys.Errno.EINTR) this.stats.dropped++;
        continue;
      }
      for (let j = 0; j < n; j++) {
        const m = j * MMSGHDR.size;
        if ((vec.getUint32(m + MSGHDR.flags, true) & MSG.TRUNC) !== 0) {
          this.stats.dropped++;
          continue;
        }
        const length = vec.getUint32(m + MMSGHDR.len, true);
        const nameLen = vec.getUint32(m + MSGHDR.namelen, true);
        this.#queue(
          fd,
          this.#rxNames,
          j * SA_MAX,
          nameLen,
          this.#rxAddress + j * DATAGRAM_MAX,
          length,
          this.#ownPort[slot]!,
          TO_HOST,
        );
      }
      this.flush(); // before the buffers are reused
      if (n < BATCH) return;
    }
  }

  /** A flow's target socket: replies, back to the sender through the listening socket. */
  #onTargetReadable(flow: number, fd: number): void {
    this.#now = sys.monotonicMs();
    const vec = this.#rxVecView;
    for (let round = 0; round < RECV_ROUNDS; round++) {
      if (this.#targetFd[flow] !== fd) return; // closed meanwhile
      const n = this.#receive(fd, false);
      if (n < 0) {
        if (n === -sys.Errno.EAGAIN) return;
        // ECONNREFUSED and friends: an earlier datagram found no listener.
        if (n !== -sys.Errno.EINTR) this.stats.dropped++;
        continue;
      }
      this.#lastActive[flow] = this.#now;
      // Every reply goes to the sender's address: the same name for all.
      let count = 0;
      for (let j = 0; j < n; j++) {
        const m = j * MMSGHDR.size;
        if ((vec.getUint32(m + MSGHDR.flags, true) & MSG.TRUNC) !== 0) {
          this.stats.dropped++;
          continue;
        }
        const length = vec.getUint32(m + MMSGHDR.len, true);
        sys.setIovecAt(this.#txIovView, count, this.#rxAddress + j * DATAGRAM_MAX, length);
        const t = count++ * MMSGHDR.size;
        sys.putU64(this.#txVecView, t + MSGHDR.name, this.#peerAddress + flow * SA_MAX);
        this.#txVecView.setUint32(t + MSGHDR.namelen, this.#peerLen[flow]!, true);
      }
      this.stats.replies += this.#sendAll(this.#listenFd[flow]!, count);
      if (n < BATCH) return;
    }
  }

  /**
   * Send the first `count` entries of the send vector on `fd`; returns how many
   * left. A datagram refused (EAGAIN: buffer full; or an error pending from an
   * earlier one, such as ECONNREFUSED) is lost, as the kernel would lose it, and
   * counted; the rest still go.
   */
  #sendAll(fd: number, count: number): number {
    let sent = 0;
    let done = 0;
    while (done < count) {
      const r = this.#sendBatch(fd, done, count - done);
      if (r === -sys.Errno.EINTR) continue;
      if (r <= 0) {
        done++;
        this.stats.dropped++;
        continue;
      }
      done += r;
      sent += r;
    }
    return sent;
  }

  /** sendmmsg of send-vector entries [from, from + count) on `fd`: sent or -errno. */
  #sendBatch(fd: number, from: number, count: number): number {
    // After a refused datagram (rare) the rest starts inside the vector.
    const vec = from === 0 ? this.#txVec : this.#txVec.subarray(from * MMSGHDR.size);
    return sys.sendmmsg(fd, vec, count, MSG.DONTWAIT | MSG.NOSIGNAL);
  }
}
