/**
 * pasta's local fast path for TCP: connections to a forwarded port on a loopback
 * address, joined to a socket in the other namespace with splice(2).
 *
 * Theory of operation. A connection made to a forwarded port through loopback
 * never needs the tap: both ends are local processes, one in each namespace. So
 * instead of translating it into frames, we accept it (the "A" socket), open a
 * socket in the other namespace (the "B" socket: made by the namespace thread for
 * -t, in our own namespace for -T), connect B at the target port there, and
 * move bytes between A and B with splice(2): socket → pipe →
 * socket, one pipe per direction, so the data never enters JavaScript memory.
 * Direction 0 reads A and writes B; direction 1 reads B and writes A.
 *
 * Each pipe is raised to PIPE_SIZE (F_SETPIPE_SZ; a user over its pipe-page
 * allowance gets EPERM, and we fall back to smaller sizes, then to the default).
 * A direction pumps in rounds: splice from its source into the pipe, at most the
 * pipe's free room, then from the pipe into its destination, as much as is in
 * it; it goes on while either step moves something. It stops when both are
 * stuck: the source has nothing (EAGAIN), or the destination is full (EAGAIN)
 * and the pipe holds all it may. So a peer that stops reading fills its socket
 * buffer, then our pipe, and then we stop reading the other side: TCP's own
 * window pushes back on the sender, and nothing grows without bound. An EAGAIN
 * from the source may also mean the pipe ran out of slots (a pipe counts pages,
 * and a socket may fill them with small fragments): that case empties the pipe
 * into the destination, which is progress, and the source is tried again.
 *
 * Edge-triggered epoll, deliberately. Both sockets are registered once with
 * EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET and never modified in the steady
 * state: every wake-up pumps both directions of the flow until each is stuck as
 * above, and being stuck on a source means the next data brings a new EPOLLIN
 * edge, stuck on a destination that the next freed buffer space brings an
 * EPOLLOUT edge (the kernel reports write space only after a write found none,
 * so a busy connection does not wake us per ACK). Level-triggered interest
 * would need an epoll_ctl per change of "pipe full / not full", in both
 * directions, on the hottest path; edge-triggered needs none. To keep one fast
 * connection from holding the loop, a wake-up does at most PUMP_ROUNDS rounds
 * per direction; if there is work left, an EPOLL_CTL_MOD with the same events
 * re-arms the sockets, which queues a new event at once when they are still
 * ready, so the flow is served again after the others of this turn.
 *
 * Endings. EOF from a source (splice returns 0), once its pipe is empty, becomes
 * shutdown(SHUT_WR) on the destination: half-closes propagate, and the other
 * direction goes on. When both directions have ended that way the flow is closed
 * gracefully. A reset or any other error (ECONNRESET, EPIPE, SO_ERROR on
 * EPOLLERR, a refused connect of B) closes both sockets with SO_LINGER 0, so
 * each side sees a reset where the other one did.
 *
 * A spliced connection is a TCP_SPLICE flow of the data path's one flow table
 * (src/flow/): its two sides are its two sockets, found by their epoll
 * references (index flow * 2 + side), so it needs no key in the table's index.
 * State lives in typed arrays indexed by the flow number; spliced flows are
 * never evicted, and at most `capacity` (SPLICE_FLOWS_MAX) are open at once. A
 * full table, or descriptors running out (EMFILE/ENFILE on socket or pipe),
 * refuses the connection with a reset and a log line (rate-limited). Opening a flow
 * costs a few system calls (a namespace-thread round trip for -t), done once per
 * connection; moving data allocates nothing.
 */

import { isLoopback6 } from "../addr.ts";
import { AF, EPOLL, F, IPPROTO, O, SHUT, SO, SOCK, SOL, SPLICE_F, TCP_OPT } from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import { log } from "../log.ts";
import { FLOW_MAX, FlowTable, FlowType } from "../flow/flow.ts";
import type { EventLoop } from "../loop.ts";
import type { GuestState } from "../flow/guest.ts";

/** Spliced connections at most (each holds six descriptors: two sockets, two pipes). */
export const SPLICE_FLOWS_MAX = 4096;
/** Pipe sizes tried, bytes, largest first (the kernel default, 64 KiB, is the last resort). */
const PIPE_SIZES = [1 << 20, 256 << 10];
/** Splice rounds per direction per wake-up before yielding to other flows. */
const PUMP_ROUNDS = 32;
/** splice(2) flags for every call. */
const SPLICE_FLAGS = SPLICE_F.MOVE | SPLICE_F.NONBLOCK;
/** Events of every spliced socket (see the file comment for why edge-triggered). */
const SOCKET_EVENTS = EPOLL.IN | EPOLL.OUT | EPOLL.RDHUP | EPOLL.ET;
/** Minimum interval between two "refused" log lines, ms. */
const REFUSE_LOG_INTERVAL_MS = 1000;

// Flow state bits.
const USED = 1;
/** B's connect is in progress: nothing is pumped until it completes. */
const CONNECTING = 2;
/** EOF read on the source of direction 0 (A) / 1 (B). */
const EOF0 = 4;
/** shutdown(SHUT_WR) done on the destination of direction 0 (B) / 1 (A). */
const SHUT0 = 16;

/** Result of pumping one direction. */
const STUCK = 0;
const MORE = 1;
const BROKEN = 2;

/** Where a spliced connection goes. */
export type SpliceTarget = "namespace" | "host";

/** Counters of the splicer. */
export interface TcpSpliceStats {
  /** Connections joined (B created and connecting). */
  opened: number;
  /** Flows that ended with both directions closed gracefully. */
  closed: number;
  /** Flows that ended in a reset (either side, or B's connect failing). */
  reset: number;
  /** Connections refused: table full, or no descriptors, or B could not be created. */
  refused: number;
  /** Bytes moved, both directions. */
  bytes: number;
  /** System calls that failed without ending a flow (tuning), each logged at debug level. */
  sysErrors: number;
}

/** What the splicer needs from its surroundings. */
export interface TcpSpliceOptions {
  /** socket(2) in the target namespace (the namespace thread's): fd or -errno. */
  readonly nsSocket: (domain: number, type: number, protocol: number) => number;
  /**
   * Where -t connections go in the namespace: its own address as last seen, as
   * the C pasta does, so that services bound to its loopback stay private; or,
   * when undefined (--host-lo-to-ns-lo), its loopback. -T goes to loopback.
   */
  readonly guest?: GuestState;
  /** Spliced flows at most (default SPLICE_FLOWS_MAX; tests use fewer). */
  readonly capacity?: number;
  /** The data path's flow table (by default, one of its own). */
  readonly flows?: FlowTable;
}

/** The splice(2) path between the init and the target namespace; see the file comment. */
export class TcpSplicer {
  readonly #loop: EventLoop;
  readonly #kind: number;
  readonly #nsSocket: (domain: number, type: number, protocol: number) => number;
  readonly #guest: GuestState | undefined;
  readonly #capacity: number;
  readonly #flows: FlowTable;

  /** Sockets: [2i] = A (accepted), [2i + 1] = B (connected by us); -1 when closed. */
  readonly #sock: Int32Array;
  /** Pipes per direction d at [2i + d]: read end, write end, bytes held, capacity. */
  readonly #pipeR: Int32Array;
  readonly #pipeW: Int32Array;
  readonly #pending: Int32Array;
  readonly #pipeCap: Int32Array;
  readonly #state: Uint8Array;
  /** Flows ended this turn, and their descriptors: released at the end of the turn. */
  readonly #ended: Int32Array;
  #endedCount = 0;
  readonly #closing: Int32Array;
  #closingCount = 0;
  #active = 0;
  #lastRefuseLog = -Infinity;
  #refusedSinceLog = 0;

  // Scratch, reused.
  readonly #sockaddr = sys.pinnedBuffer(28);
  readonly #pipeFds = sys.pinnedBuffer(8);
  readonly #pipeFdsView = new DataView(this.#pipeFds.buffer);
  readonly #intBuf = sys.pinnedBuffer(4);
  readonly #intLen = sys.pinnedBuffer(4);
  readonly #intView = new DataView(this.#intBuf.buffer);
  readonly #linger = new Uint8Array(new Int32Array([1, 0]).buffer);
  readonly #one = new Uint8Array(new Int32Array([1]).buffer);

  /** Counters. */
  readonly stats: TcpSpliceStats = {
    opened: 0,
    closed: 0,
    reset: 0,
    refused: 0,
    bytes: 0,
    sysErrors: 0,
  };

  /** Set up the flow table and the loop's handler; nothing is opened yet. */
  constructor(loop: EventLoop, opts: TcpSpliceOptions) {
    this.#loop = loop;
    this.#nsSocket = opts.nsSocket;
    this.#guest = opts.guest;
    const n = this.#capacity = Math.min(opts.capacity ?? SPLICE_FLOWS_MAX, FLOW_MAX);
    this.#flows = opts.flows ?? new FlowTable();
    this.#flows.share([FlowType.TCP_SPLICE], n);
    this.#sock = new Int32Array(2 * FLOW_MAX).fill(-1);
    this.#pipeR = new Int32Array(2 * FLOW_MAX).fill(-1);
    this.#pipeW = new Int32Array(2 * FLOW_MAX).fill(-1);
    this.#pending = new Int32Array(2 * FLOW_MAX);
    this.#pipeCap = new Int32Array(2 * FLOW_MAX);
    this.#state = new Uint8Array(FLOW_MAX);
    this.#ended = new Int32Array(n);
    this.#closing = new Int32Array(6 * n); // two sockets and two pipes per flow
    this.#kind = loop.defineKind("tcp-splice", (index, events, fd) => {
      this.#event(index, events, fd);
    });
    loop.addEndOfTurn(() => this.#reap());
  }

  /** Spliced connections open now. */
  get flowCount(): number {
    return this.#active;
  }

  /**
   * Whether a connection from `peer` (a sockaddr_in or sockaddr_in6, IPv4-mapped
   * already unmapped) came through loopback and so may be spliced.
   */
  static isLocalPeer(peer: Uint8Array, v6: boolean): boolean {
    // A loopback source is only ever routed to a local address: the peer's
    // address alone tells, without a getsockname per connection.
    return v6 ? isLoopback6(peer, 8) : peer[4] === 127;
  }

  /**
   * Join `fd`, accepted on a host-side listener (-t), to a new socket in the
   * target namespace connected at `targetPort` to its address (`v6`: IPv6), or
   * to its loopback with --host-lo-to-ns-lo. `fd` belongs to the splicer from
   * now on, whatever happens.
   */
  spliceToNamespace(fd: number, targetPort: number, v6: boolean): void {
    this.#join(fd, targetPort, v6, this.#nsSocket, "namespace");
  }

  /**
   * Join `fd`, accepted on a namespace-side listener (-T), to a new socket in
   * the init namespace connected to its loopback at `targetPort`. `fd` belongs
   * to the splicer from now on.
   */
  spliceToHost(fd: number, targetPort: number, v6: boolean): void {
    this.#join(fd, targetPort, v6, sys.trySocket, "host");
  }

  /** Reset every flow and close everything. */
  close(): void {
    for (let i = 0; i < FLOW_MAX && this.#active > 0; i++) {
      if (this.#state[i] !== 0) this.#end(i, true);
    }
    this.#reap();
  }

  // --- opening --------------------------------------------------------------------------

  #join(
    fd: number,
    port: number,
    v6: boolean,
    socket: (domain: number, type: number, protocol: number) => number,
    target: SpliceTarget,
  ): void {
    // Flows ended this turn hold their numbers until the turn's end: the table
    // counts them against our share.
    const i = this.#flows.alloc(FlowType.TCP_SPLICE);
    if (i < 0) {
      this.#refuse(fd, target, "table full");
      return;
    }
    const b = socket(
      v6 ? AF.INET6 : AF.INET,
      SOCK.STREAM | SOCK.NONBLOCK | SOCK.CLOEXEC,
      IPPROTO.TCP,
    );
    if (b < 0) {
      this.#flows.free(i);
      this.#refuse(fd, target, `socket: ${sys.errnoName(-b)}`);
      return;
    }
    const sock = this.#sock;
    sock[2 * i] = fd;
    sock[2 * i + 1] = b;
    this.#state[i] = USED | CONNECTING;
    this.#active++;
    for (let d = 0; d < 2; d++) {
      const r = this.#openPipe(2 * i + d);
      if (r < 0) {
        this.#refuseFlow(i, target, `pipe: ${sys.errnoName(-r)}`);
        return;
      }
    }
    const noDelayA = sys.trySetsockoptBytes(fd, SOL.TCP, TCP_OPT.NODELAY, this.#one);
    if (noDelayA < 0) this.#sysError(i, "setsockopt(TCP_NODELAY)", -noDelayA);
    const noDelayB = sys.trySetsockoptBytes(b, SOL.TCP, TCP_OPT.NODELAY, this.#one);
    if (noDelayB < 0) this.#sysError(i, "setsockopt(TCP_NODELAY)", -noDelayB);
    const sa = this.#sockaddr;
    const guest = target === "namespace" ? this.#guest : undefined;
    if (v6) {
      sa.fill(0);
      sa[0] = AF.INET6;
      sa[2] = port >>> 8;
      sa[3] = port & 0xff;
      if (guest !== undefined) sa.set(guest.addr6, 8);
      else sa[23] = 1; // ::1
    } else {
      sa.fill(0, 0, 16);
      sa[0] = AF.INET;
      sa[2] = port >>> 8;
      sa[3] = port & 0xff;
      if (guest !== undefined) sa.set(guest.addr4, 4);
      else {
        sa[4] = 127;
        sa[7] = 1;
      }
    }
    const c = sys.connect(b, sa, v6 ? 28 : 16);
    if (c < 0 && c !== -sys.Errno.EINPROGRESS) {
      this.#refuseFlow(i, target, `connect: ${sys.errnoName(-c)}`);
      return;
    }
    if (
      this.#loop.add(fd, this.#kind, 2 * i, SOCKET_EVENTS) < 0 ||
      this.#loop.add(b, this.#kind, 2 * i + 1, SOCKET_EVENTS) < 0
    ) {
      this.#refuseFlow(i, target, "epoll_ctl failed");
      return;
    }
    this.stats.opened++;
    if (log.debugging) {
      log.debug(`TCP splice ${i}: to ${target} port ${port}${guest ? "" : " on loopback"}`);
    }
    // A loopback connect may be complete already: then start at once.
    if (c === 0) this.#connected(i);
  }

  /** Make direction `k`'s pipe, as large as we may: 0 or -errno. */
  #openPipe(k: number): number {
    const r = sys.tryPipe2(this.#pipeFds, O.NONBLOCK | O.CLOEXEC);
    if (r < 0) return r;
    const rd = this.#pipeFdsView.getInt32(0, true);
    const wr = this.#pipeFdsView.getInt32(4, true);
    this.#pipeR[k] = rd;
    this.#pipeW[k] = wr;
    this.#pending[k] = 0;
    let size = -1;
    for (let s = 0; s < PIPE_SIZES.length && size < 0; s++) {
      size = sys.tryFcntl(wr, F.SETPIPE_SZ, PIPE_SIZES[s]!);
    }
    if (size < 0) size = sys.tryFcntl(wr, F.GETPIPE_SZ);
    this.#pipeCap[k] = size > 0 ? size : 65536;
    return 0;
  }

  /** Refuse accepted `fd` (the table had no room, or B's socket failed): reset it. */
  #refuse(fd: number, target: SpliceTarget, why: string): void {
    sys.trySetsockoptBytes(fd, SOL.SOCKET, SO.LINGER, this.#linger);
    sys.close(fd);
    this.#countRefused(target, why);
  }

  /** Refuse a flow whose setup failed half-way: reset and free everything. */
  #refuseFlow(i: number, target: SpliceTarget, why: string): void {
    this.#end(i, true, false);
    this.#countRefused(target, why);
  }

  #countRefused(target: SpliceTarget, why: string): void {
    this.stats.refused++;
    this.#refusedSinceLog++;
    const now = sys.monotonicMs();
    if (now - this.#lastRefuseLog < REFUSE_LOG_INTERVAL_MS) return;
    this.#lastRefuseLog = now;
    log.warn(
      `TCP splice: connection to ${target} refused (${why}; ${this.#refusedSinceLog} ` +
        `refused since last report, ${this.#active}/${this.#capacity} flows open)`,
    );
    this.#refusedSinceLog = 0;
  }

  // --- events ---------------------------------------------------------------------------

  #event(index: number, events: number, fd: number): void {
    const i = index >>> 1;
    const side = index & 1;
    const state = this.#state[i]!;
    // A flow closed earlier in this batch (its slot possibly reused) is not ours.
    if (state === 0 || this.#sock[index] !== fd) return;
    if ((state & CONNECTING) !== 0) {
      if (side === 1 && (events & (EPOLL.OUT | EPOLL.ERR | EPOLL.HUP)) !== 0) {
        const err = this.#socketError(fd);
        if (err !== 0) {
          if (log.debugging) log.debug(`TCP splice ${i}: connect: ${sys.errnoName(err)}`);
          this.#end(i, true);
          return;
        }
        this.#connected(i);
      } else if (side === 0 && (events & EPOLL.ERR) !== 0 && this.#socketError(fd) !== 0) {
        this.#end(i, true);
      }
      return;
    }
    if ((events & EPOLL.ERR) !== 0 && this.#socketError(fd) !== 0) {
      this.#end(i, true);
      return;
    }
    this.#pump(i);
  }

  #connected(i: number): void {
    this.#state[i]! &= ~CONNECTING;
    this.#pump(i);
  }

  /** SO_ERROR of `fd` (0: none). */
  #socketError(fd: number): number {
    this.#intLen[0] = 4;
    this.#intLen[1] = this.#intLen[2] = this.#intLen[3] = 0;
    const r = sys.tryGetsockoptRaw(fd, SOL.SOCKET, SO.ERROR, this.#intBuf, this.#intLen);
    if (r < 0) return -r;
    return this.#intView.getInt32(0, true);
  }

  /** Move what can be moved in both directions; end the flow when done or broken. */
  #pump(i: number): void {
    const r0 = this.#pumpDirection(i, 0);
    if (r0 === BROKEN) {
      this.#end(i, true);
      return;
    }
    const r1 = this.#pumpDirection(i, 1);
    if (r1 === BROKEN) {
      this.#end(i, true);
      return;
    }
    const state = this.#state[i]!;
    if ((state & SHUT0) !== 0 && (state & (SHUT0 << 1)) !== 0) {
      this.#end(i, false);
      return;
    }
    if (r0 === MORE || r1 === MORE) {
      // Edge-triggered: re-arming queues a new event now if still ready. Without
      // it the flow would wait for an edge that may never come: reset it.
      const r = this.#loop.modify(this.#sock[2 * i]!, this.#kind, 2 * i, SOCKET_EVENTS) ||
        this.#loop.modify(this.#sock[2 * i + 1]!, this.#kind, 2 * i + 1, SOCKET_EVENTS);
      if (r < 0) {
        if (log.debugging) log.debug(`TCP splice ${i}: epoll_ctl: ${sys.errnoName(-r)}`);
        this.#end(i, true);
      }
    }
  }

  /** A failed system call that leaves the flow as it is: counted, logged at debug level. */
  #sysError(i: number, call: string, errno: number): void {
    this.stats.sysErrors++;
    if (log.debugging) log.debug(`TCP splice ${i}: ${call}: ${sys.errnoName(errno)}`);
  }

  /** Pump direction `d` of flow `i` (0: A → B, 1: B → A): STUCK, MORE or BROKEN. */
  #pumpDirection(i: number, d: number): number {
    const k = 2 * i + d;
    const src = this.#sock[k]!;
    const dst = this.#sock[2 * i + 1 - d]!;
    const pipeR = this.#pipeR[k]!;
    const pipeW = this.#pipeW[k]!;
    const cap = this.#pipeCap[k]!;
    const eofBit = EOF0 << d;
    const shutBit = SHUT0 << d;
    const state = this.#state;
    let pending = this.#pending[k]!;
    let result = STUCK;
    for (let round = 0;; round++) {
      if (round === PUMP_ROUNDS) {
        result = MORE;
        break;
      }
      let progress = false;
      if ((state[i]! & eofBit) === 0 && pending < cap) {
        const n = sys.splice(src, pipeW, cap - pending, SPLICE_FLAGS);
        if (n > 0) {
          pending += n;
          progress = true;
        } else if (n === 0) {
          state[i]! |= eofBit;
          progress = true;
        } else if (n !== -sys.Errno.EAGAIN && n !== -sys.Errno.EINTR) {
          result = BROKEN;
          break;
        }
      }
      if (pending > 0) {
        const n = sys.splice(pipeR, dst, pending, SPLICE_FLAGS);
        if (n > 0) {
          pending -= n;
          this.stats.bytes += n;
          progress = true;
        } else if (n !== -sys.Errno.EAGAIN && n !== -sys.Errno.EINTR) {
          result = BROKEN;
          break;
        }
      }
      if (!progress) break;
    }
    this.#pending[k] = pending;
    if (result === STUCK && pending === 0 && (state[i]! & (eofBit | shutBit)) === eofBit) {
      // The source ended and everything it sent is out: pass the half-close on.
      // If that fails, the other side is gone: the flow is broken.
      if (sys.shutdown(dst, SHUT.WR) < 0) return BROKEN;
      state[i]! |= shutBit;
    }
    return result;
  }

  /**
   * Close flow `i`: with `reset`, both sockets with SO_LINGER 0 (each peer sees a
   * reset); otherwise gracefully. `counted` false for flows refused during setup.
   */
  #end(i: number, reset: boolean, counted = true): void {
    // Descriptors are closed and the flow number freed at the end of the loop
    // turn: events of this turn's batch may still name them, and must not reach
    // a flow that got the same number or descriptors meanwhile.
    const sock = this.#sock;
    for (let side = 0; side < 2; side++) {
      const fd = sock[2 * i + side]!;
      if (fd < 0) continue;
      if (reset) sys.trySetsockoptBytes(fd, SOL.SOCKET, SO.LINGER, this.#linger);
      this.#loop.remove(fd);
      this.#closing[this.#closingCount++] = fd;
      sock[2 * i + side] = -1;
    }
    for (let k = 2 * i; k < 2 * i + 2; k++) {
      if (this.#pipeR[k]! >= 0) this.#closing[this.#closingCount++] = this.#pipeR[k]!;
      if (this.#pipeW[k]! >= 0) this.#closing[this.#closingCount++] = this.#pipeW[k]!;
      this.#pipeR[k] = this.#pipeW[k] = -1;
      this.#pending[k] = 0;
    }
    if (counted) {
      if (reset) this.stats.reset++;
      else this.stats.closed++;
    }
    if (log.debugging) log.debug(`TCP splice ${i}: ${reset ? "reset" : "closed"}`);
    this.#state[i] = 0;
    this.#ended[this.#endedCount++] = i;
    this.#active--;
  }

  /** End of a loop turn: close what `#end` set aside and free the flow numbers. */
  #reap(): void {
    for (let j = 0; j < this.#closingCount; j++) sys.close(this.#closing[j]!);
    this.#closingCount = 0;
    for (let j = 0; j < this.#endedCount; j++) this.#flows.free(this.#ended[j]!);
    this.#endedCount = 0;
  }
}
