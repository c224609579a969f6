/**
 * TCP translation between the guest's segments and host TCP sockets, without
 * data buffers of our own.
 *
 * Theory of operation. Every guest connection is a flow with one host socket.
 * We keep no copy of the data in either direction; the two kernels' buffers are
 * the only buffers, and what each side is told reflects what the other did:
 * - Guest → host: a segment's payload goes straight from the frame into the
 *   socket (sendmsg over an iovec into the tap read buffer). We acknowledge to
 *   the guest exactly what the socket took; the rest the guest will send again.
 *   The window we advertise is the room left in the socket's send buffer, so
 *   the guest is not invited to send what could not be taken. When a write
 *   comes up short we advertise a zero window, wait for the socket to become
 *   writable, then send a window update as three duplicate ACKs so the guest
 *   retransmits at once instead of after its timeout.
 * - Host → guest: data is *peeked* from the socket (MSG_PEEK with SO_PEEK_OFF,
 *   so each peek continues after what is already in flight) straight into frame
 *   slots of the tap's output arena, one guest MSS per frame, as far as the
 *   guest's window allows; where the tap has segmentation offload
 *   (FrameOutput.segmentOffload) and the MSS is small, as many whole MSS as fit
 *   in 64 KiB per frame, which the guest's kernel cuts into segments or takes
 *   whole, and with checksum offload the payload is never summed here. It is removed from the socket (recv with MSG_TRUNC,
 *   no copy) only when the guest acknowledges it, so a retransmission is a peek
 *   from an earlier offset. Kernels without SO_PEEK_OFF for TCP get a discard
 *   iovec in front of the frames, skipping the in-flight bytes.
 * - Connections: a guest SYN becomes a nonblocking connect(); the guest gets a
 *   SYN-ACK only when it succeeds, an RST when refused, and nothing when the
 *   destination does not answer (it then times out). An accepted connection on
 *   a forwarded port becomes a SYN towards the guest. FINs travel both ways and
 *   half-close is kept (shutdown(SHUT_WR) for the guest's FIN); RSTs travel both
 *   ways (SO_LINGER 0 makes close() send one). Retransmission on timeout and on
 *   three duplicate ACKs; handshake, retry and idle limits close what is stuck.
 * - Timers are deadlines, one per flow, in the loop's deadline queue
 *   (src/timers.ts): the earliest of the handshake limit, the retransmission
 *   timeout while data is in flight, and the idle limit. Traffic that only
 *   pushes a deadline later does not touch the queue; the flow's handler finds
 *   nothing due and sets the real deadline. Nothing scans the flows.
 * - A window we shut (less than one guest MSS free) is reopened from the socket:
 *   EPOLLOUT is asked for, which the kernel reports once the send buffer is
 *   writable again; if it is writable but still under one MSS while data is
 *   queued, the next check is a deadline one round-trip time (TCP_INFO) away,
 *   when ACKs from the peer may have freed more.
 * - A system call that fails on the data path resets the flow when the flow
 *   cannot go on without it, and is otherwise counted (`sysErrors`) and logged
 *   at debug level.
 * - ISNs follow RFC 6528: a keyed hash of the 4-tuple plus a 4 µs clock.
 * Per-flow state lives in typed arrays indexed by flow number; frames are built
 * in place in the tap's output arena; ACKs owed to the guest are collected and
 * sent once per loop turn. Nothing is allocated per segment.
 */
import type { DataPathContext, TransportHandler } from "../flow/context.ts";
import { FLOW_MAX, FlowType } from "../flow/flow.ts";
import { OutboundKind } from "../flow/nat.ts";
import {
  AF,
  EPOLL,
  IOCTL,
  IPPROTO,
  MSG,
  MSGHDR,
  SHUT,
  SK_MEMINFO,
  SO,
  SOCK,
  SOCKADDR_IN6_SIZE,
  SOL,
  TCP_OPT,
} from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import { log } from "../log.ts";
import type { DeadlineQueue } from "../timers.ts";
import { l4ChecksumV4, l4ChecksumV6, l4PartialV4, l4PartialV6 } from "./checksum.ts";
import { ETH_HLEN, ETH_P_IP, ETH_P_IPV6, writeEthHeader } from "./ethernet.ts";
import {
  IP4_DST,
  IP4_SRC,
  IP6_DST,
  IP6_SRC,
  IPPROTO_TCP,
  isLinkLocal6,
  writeIpv4Header,
  writeIpv6Header,
} from "./ip.ts";
import type { PacketView } from "./packet.ts";

// --- TCP header ------------------------------------------------------------------------

const TCP_SPORT = 0;
const TCP_DPORT = 2;
const TCP_SEQ = 4;
const TCP_ACK = 8;
const TCP_OFF = 12;
const TCP_FLAGS = 13;
const TCP_WIN = 14;
const TCP_CSUM = 16;
const TCP_URP = 18;
const TCP_HLEN = 20;

/** TCP flag bits. */
export const TcpFlag = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;
const { FIN, SYN, RST, PSH, ACK } = TcpFlag;

const OPT_EOL = 0;
const OPT_NOP = 1;
const OPT_MSS = 2;
const OPT_WS = 3;

// --- tunables ------------------------------------------------------------------------

/** Window scale we announce: windows up to 16 MiB. */
const OUR_WSCALE = 8;
/** Largest window we advertise, in bytes. */
const WINDOW_MAX = 65535 << OUR_WSCALE;
/** Frames one peek may fill. */
const SEGMENTS_MAX = 64;
/** Handshake limit (ms): connect() or the guest's SYN-ACK. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Retransmission timeout, first try (ms); doubles up to RTO_MAX_MS. */
const RTO_MS = 1000;
const RTO_MAX_MS = 16_000;
/** Retransmissions before giving up on the guest. */
const RETRIES_MAX = 6;
/** An established connection with no traffic for this long is reset (ms). */
const IDLE_TIMEOUT_MS = 7200 * 1000;
/** Bounds of the delay before a shut window is checked again (ms): the peer's RTT, clamped. */
const WINDOW_CHECK_MIN_MS = 1;
const WINDOW_CHECK_MAX_MS = 200;
/** struct tcp_info: its size as we read it, and tcpi_rtt (µs, u32). */
const TCP_INFO_SIZE = 104;
const TCP_INFO_RTT = 68;
/** Default MSS when the guest's SYN has none (RFC 9293 / RFC 8200 minimums). */
const DEFAULT_MSS4 = 536;
const DEFAULT_MSS6 = 1220;

// --- flow state bits -------------------------------------------------------------------

const S_CONNECTING = 0x001; // guest SYN in, connect() in progress
const S_SYN_TO_GUEST = 0x002; // inbound: our SYN out, the guest's SYN-ACK awaited
const S_ESTABLISHED = 0x004;
const S_SOCK_EOF = 0x008; // the socket has no more data: FIN owed to the guest
const S_FIN_TO_GUEST = 0x010; // our FIN sent
const S_FIN_ACKED = 0x020; // the guest acknowledged our FIN
const S_GUEST_FIN = 0x040; // the guest's FIN received, socket shut for writing
const S_WRITE_BLOCKED = 0x080; // a write came up short: zero window until writable
const S_ACK_PENDING = 0x100; // an ACK is owed to the guest this turn
const S_DUP_ACKS = 0x200; // owe three duplicate ACKs (window reopened)
/** Duplicate ACKs sent for out-of-order segments, at most, per flow and loop turn. */
const GAP_ACKS_MAX = 32;
const S_WINDOW_ZERO = 0x400; // we advertised a zero window: update the guest when it opens
const S_WAIT_SPACE = 0x800; // send buffer two-thirds full: EPOLLOUT asked, to update the window

/** Counters. */
export interface TcpStats {
  /** Connections opened towards the host (guest SYN). */
  outbound: number;
  /** Connections from forwarded ports towards the guest. */
  inbound: number;
  /** Segments from the guest handled. */
  segmentsIn: number;
  /** Segments sent to the guest. */
  segmentsOut: number;
  /** Retransmissions (timeouts and duplicate ACKs). */
  retransmits: number;
  /** Resets sent to the guest. */
  resetsOut: number;
  /** Segments dropped: bad checksum, header, unknown flow, table full… */
  dropped: number;
  /** System calls that failed without resetting a flow (each logged at debug level). */
  sysErrors: number;
}

const SIOCOUTQ = BigInt(IOCTL.SIOCOUTQ);

/**
 * Events of an established connection's socket. Edge-triggered: peeked data
 * stays in the socket, so a level-triggered EPOLLIN would fire on every turn
 * while we wait for the guest's ACK. New data is a new edge; ACKs from the guest
 * resume sending on their own.
 */
const DATA_EVENTS = EPOLL.IN | EPOLL.RDHUP | EPOLL.ET;

/** net.ipv4.tcp_wmem's maximum (bytes), or the kernel's default 4 MiB if unreadable. */
function readTcpWmemMax(): number {
  try {
    const fields = Deno.readTextFileSync("/proc/sys/net/ipv4/tcp_wmem").trim().split(/\s+/);
    const max = Number(fields[2]);
    return Number.isFinite(max) && max > 0 ? max : 4 << 20;
  } catch {
    return 4 << 20;
  }
}

/** Settings of the translator beyond the context. */
export interface TcpOptions {
  /** An established connection without traffic for this long is reset, ms (default 2 h). */
  readonly idleTimeoutMs?: number;
}

/** The TCP translator for one tap side. */
export class TcpTranslator implements TransportHandler {
  readonly #ctx: DataPathContext;
  readonly #kind: number;
  /** Counters. */
  readonly stats: TcpStats = {
    outbound: 0,
    inbound: 0,
    segmentsIn: 0,
    segmentsOut: 0,
    retransmits: 0,
    resetsOut: 0,
    dropped: 0,
    sysErrors: 0,
  };

  // Per-flow state, indexed by flow number.
  readonly #sock = new Int32Array(FLOW_MAX).fill(-1);
  readonly #state = new Uint16Array(FLOW_MAX);
  readonly #seqToGuest = new Uint32Array(FLOW_MAX);
  readonly #seqAckedByGuest = new Uint32Array(FLOW_MAX);
  readonly #seqFromGuest = new Uint32Array(FLOW_MAX);
  readonly #guestWnd = new Uint32Array(FLOW_MAX);
  readonly #guestWscale = new Uint8Array(FLOW_MAX);
  readonly #guestMss = new Uint16Array(FLOW_MAX);
  readonly #events = new Uint32Array(FLOW_MAX);
  readonly #retries = new Uint8Array(FLOW_MAX);
  readonly #dupAcks = new Uint8Array(FLOW_MAX);
  readonly #lastAckValue = new Uint32Array(FLOW_MAX);
  /** The window (bytes) our last ACK advertised: duplicate ACKs repeat it. */
  readonly #lastWindow = new Uint32Array(FLOW_MAX);
  /** Out-of-order segments this turn, each owed a duplicate ACK. */
  readonly #gapAcks = new Uint8Array(FLOW_MAX);
  readonly #since = new Float64Array(FLOW_MAX); // handshake start / last ACK progress
  readonly #lastActive = new Float64Array(FLOW_MAX);
  readonly #sndbuf = new Int32Array(FLOW_MAX);
  readonly #pending = new Int32Array(FLOW_MAX);
  #pendingCount = 0;
  /** Flows closed this turn, and their sockets: released at the end of the turn. */
  readonly #closedFlow = new Int32Array(FLOW_MAX);
  readonly #closedFd = new Int32Array(FLOW_MAX);
  #closedCount = 0;
  readonly #closing = new Uint8Array(FLOW_MAX);
  readonly #idleTimeoutMs: number;
  /** The largest send buffer autotuning gives (net.ipv4.tcp_wmem, third value), bytes. */
  readonly #sndbufAutoMax = readTcpWmemMax();
  /** Per-flow deadlines: handshake, retransmission, idle, window check. */
  readonly #timers: DeadlineQueue;
  /** When a shut window is to be checked again (monotonic ms), 0: not scheduled. */
  readonly #windowCheckAt = new Float64Array(FLOW_MAX);
  /** Bytes queued in the socket, as the last #advertisedWindow call read them. */
  #queuedNow = 0;
  #highWater = 0;
  /**
   * The monotonic time (ms) of the event being handled. In a typed array, not a
   * field: storing a fractional number in a field may box it on every store.
   */
  readonly #clock = new Float64Array(1);

  // Preallocated scratch for system calls and frame building.
  readonly #msghdr = sys.pinnedBuffer(MSGHDR.size);
  readonly #msgView = new DataView(this.#msghdr.buffer);
  readonly #iov = sys.pinnedBuffer(16 * (SEGMENTS_MAX + 1));
  readonly #iovView = new DataView(this.#iov.buffer);
  readonly #segLength = new Int32Array(SEGMENTS_MAX);
  readonly #discard = sys.pinnedBuffer(1 << 16);
  #peekOffset = true;
  #discardBig: Uint8Array<ArrayBuffer> | undefined;
  readonly #intBuf = sys.pinnedBuffer(8);
  readonly #memInfo = sys.pinnedBuffer(SK_MEMINFO.COUNT * 4);
  readonly #memWords = new Uint32Array(this.#memInfo.buffer);
  readonly #intView = new DataView(this.#intBuf.buffer);
  readonly #lenBuf = sys.pinnedBuffer(4);
  readonly #lenView = new DataView(this.#lenBuf.buffer);
  readonly #tcpInfo = sys.pinnedBuffer(TCP_INFO_SIZE);
  readonly #tcpInfoView = new DataView(this.#tcpInfo.buffer);
  readonly #linger = new Uint8Array(new Int32Array([1, 0]).buffer);
  readonly #sockaddr = sys.pinnedBuffer(SOCKADDR_IN6_SIZE);
  readonly #addrOut = new Uint8Array(16);
  readonly #src4 = new Uint8Array(4);
  readonly #dst4 = new Uint8Array(4);
  readonly #src6 = new Uint8Array(16);
  readonly #dst6 = new Uint8Array(16);
  #inBuffer: Uint8Array | undefined;
  #inAddress = 0;

  constructor(ctx: DataPathContext, options: TcpOptions = {}) {
    this.#ctx = ctx;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    this.#kind = ctx.loop.defineKind("tcp", (index, events) => this.#onSocket(index, events));
    ctx.loop.addEndOfTurn(() => {
      this.#flushAcks();
      this.#reap();
    });
    this.#timers = ctx.loop.deadlines("tcp", FLOW_MAX, (flow, now) => this.#expire(flow, now));
    this.#clock[0] = sys.monotonicMs();
    // One iovec per msghdr: set the pointer once; lengths change per call.
    this.#msgView.setBigUint64(MSGHDR.iov, sys.addressOf(this.#iov), true);
  }

  /** Flows currently open (for tests and logs). */
  get flowCount(): number {
    let n = 0;
    for (let i = 0; i < this.#highWater; i++) if (this.#sock[i]! >= 0) n++;
    return n;
  }

  // --- guest → host ---------------------------------------------------------------------

  /** A TCP segment in an IPv4 packet from the guest. */
  fromTap4(pkt: PacketView, ipOffset: number, ipHeaderLength: number, l4Length: number): void {
    const l4 = ipOffset + ipHeaderLength;
    if (!pkt.has(l4, TCP_HLEN) || !pkt.has(l4, l4Length)) return this.#drop("short");
    const view = pkt.view;
    if (
      !pkt.checksumUnverifiable &&
      l4ChecksumV4(view, pkt.start + ipOffset, pkt.start + l4, l4Length, IPPROTO_TCP) !== 0
    ) {
      return this.#drop("checksum");
    }
    this.#segment(pkt, ipOffset + IP4_SRC, ipOffset + IP4_DST, 4, l4, l4Length);
  }

  /** A TCP segment in an IPv6 packet from the guest. */
  fromTap6(pkt: PacketView, ipOffset: number, headersLength: number, l4Length: number): void {
    const l4 = ipOffset + headersLength;
    if (!pkt.has(l4, TCP_HLEN) || !pkt.has(l4, l4Length)) return this.#drop("short");
    if (
      !pkt.checksumUnverifiable &&
      l4ChecksumV6(pkt.view, pkt.start + ipOffset, pkt.start + l4, l4Length, IPPROTO_TCP) !== 0
    ) {
      return this.#drop("checksum");
    }
    this.#segment(pkt, ipOffset + IP6_SRC, ipOffset + IP6_DST, 16, l4, l4Length);
  }

  #drop(reason: string): void {
    this.stats.dropped++;
    if (log.tracing) log.trace(`tcp: dropped segment (${reason})`);
  }

  #segment(
    pkt: PacketView,
    srcOff: number,
    dstOff: number,
    addrLen: number,
    l4: number,
    l4Length: number,
  ): void {
    const doff = (pkt.u8(l4 + TCP_OFF) >> 4) * 4;
    if (doff < TCP_HLEN || doff > l4Length) return this.#drop("data offset");
    this.stats.segmentsIn++;
    const sport = pkt.u16(l4 + TCP_SPORT);
    const dport = pkt.u16(l4 + TCP_DPORT);
    const flags = pkt.u8(l4 + TCP_FLAGS);
    // Sequence numbers travel between functions as int32 (`| 0`): a uint32 of
    // 2^31 or more is no Smi, and passing one to a call that is not inlined
    // boxes it on the heap, once per segment. Every comparison is modulo 2^32.
    const seq = pkt.u32(l4 + TCP_SEQ) | 0;
    const flows = this.#ctx.flows;
    const flow = flows.lookupFrame(FlowType.TCP, pkt, srcOff, sport, dstOff, dport, addrLen);
    this.#clock[0] = sys.monotonicMs();
    if (flow < 0) {
      if ((flags & (SYN | ACK | RST)) === SYN) {
        this.#connect(pkt, srcOff, dstOff, addrLen, sport, dport, l4, doff);
      } else if ((flags & RST) === 0) {
        this.#resetUnknown(pkt, srcOff, dstOff, addrLen, sport, dport, l4, l4Length - doff, flags);
      }
      return;
    }
    this.#lastActive[flow] = this.#clock[0]!;
    const state = this.#state[flow]!;
    if ((flags & RST) !== 0) {
      // RFC 5961 3.2: only an RST at exactly the next expected sequence number
      // resets; one elsewhere gets a challenge ACK (a genuine peer answers it with
      // an exact RST), so a blind RST cannot tear the connection down.
      if ((state & S_ESTABLISHED) === 0 || seq === (this.#seqFromGuest[flow]! | 0)) {
        this.#close(flow, true);
      } else {
        this.#owe(flow);
      }
      return;
    }
    if ((flags & SYN) !== 0) {
      if ((state & S_SYN_TO_GUEST) !== 0 && (flags & ACK) !== 0) {
        this.#guestSynAck(flow, pkt, l4, doff, seq);
      }
      return; // a retransmitted SYN, or a SYN-ACK we no longer wait for
    }
    if ((state & S_ESTABLISHED) === 0) return;
    // A zero-window probe (or any segment while our window is shut) is answered
    // with our current window.
    if ((state & S_WINDOW_ZERO) !== 0) this.#owe(flow);
    const moved = (flags & ACK) !== 0 &&
      this.#guestAck(flow, pkt.u32(l4 + TCP_ACK) | 0, pkt.u16(l4 + TCP_WIN), l4Length === doff);
    if (this.#sock[flow]! < 0) return; // closed by the ACK (both FINs done)
    const payload = l4Length - doff;
    if (payload > 0) this.#guestData(flow, pkt, l4 + doff, payload, seq);
    if ((flags & FIN) !== 0 && (this.#state[flow]! & S_GUEST_FIN) === 0) {
      if (((seq + payload) | 0) === (this.#seqFromGuest[flow]! | 0)) {
        this.#seqFromGuest[flow] = (this.#seqFromGuest[flow]! + 1) >>> 0;
        this.#state[flow]! |= S_GUEST_FIN;
        const r = sys.shutdown(this.#sock[flow]!, SHUT.WR);
        if (r < 0) {
          // The host side cannot be told: the connection is gone there.
          if (log.debugging) log.debug(`tcp: flow ${flow}: shutdown: ${sys.errnoName(-r)}`);
          this.#reset(flow);
          return;
        }
      }
      this.#owe(flow);
    }
    if (this.#finished(flow)) {
      this.#sendFlags(flow, ACK);
      this.#close(flow, false);
      return;
    }
    if (moved) this.#sendData(flow);
  }

  #finished(flow: number): boolean {
    const s = this.#state[flow]!;
    return (s & S_GUEST_FIN) !== 0 && (s & S_FIN_ACKED) !== 0;
  }

  /**
   * The guest acknowledges up to `ack` and advertises `window`. Returns whether
   * that lets more data go out (progress, or a changed window).
   */
  #guestAck(flow: number, ack: number, window: number, pure: boolean): boolean {
    const acked = (ack - this.#seqAckedByGuest[flow]!) | 0;
    const ahead = (ack - this.#seqToGuest[flow]!) | 0;
    const oldWindow = this.#guestWnd[flow]!;
    this.#guestWnd[flow] = window << this.#guestWscale[flow]!;
    if (acked > 0 && ahead <= 0) {
      let dataAcked = acked;
      const state = this.#state[flow]!;
      if ((state & S_FIN_TO_GUEST) !== 0 && ahead === 0) {
        this.#state[flow] = state | S_FIN_ACKED;
        dataAcked--;
      }
      if (dataAcked > 0) {
        // Acknowledged data leaves the socket now; no copy (MSG_TRUNC). It was
        // peeked from there, so it must all be there: if not, the two sides no
        // longer agree on the stream, and only a reset ends that cleanly.
        const n = sys.recv(this.#sock[flow]!, this.#discard, dataAcked, MSG.TRUNC | MSG.DONTWAIT);
        if (n !== dataAcked) {
          if (log.debugging) {
            log.debug(
              `tcp: flow ${flow}: discarding acknowledged data: ${
                n < 0 ? sys.errnoName(-n) : `${n} of ${dataAcked} bytes`
              }`,
            );
          }
          this.#reset(flow);
          return false;
        }
      }
      this.#seqAckedByGuest[flow] = ack;
      this.#retries[flow] = 0;
      this.#dupAcks[flow] = 0;
      this.#since[flow] = this.#clock[0]!;
      return true;
    }
    if (
      acked === 0 && pure && this.#guestWnd[flow] === oldWindow &&
      this.#seqToGuest[flow] !== this.#seqAckedByGuest[flow]
    ) {
      if (++this.#dupAcks[flow]! === 3) this.#retransmit(flow);
      return false;
    }
    return this.#guestWnd[flow] !== oldWindow;
  }

  /** Payload from the guest: into the socket, acknowledging what it took. */
  #guestData(flow: number, pkt: PacketView, offset: number, length: number, seq: number): void {
    this.#owe(flow);
    const skip = (this.#seqFromGuest[flow]! - seq) | 0;
    if (skip < 0) {
      // Beyond a hole (we keep nothing out of order): like any receiver, answer
      // each such segment with a duplicate ACK, so the guest's fast retransmit
      // and recovery fill the hole instead of waiting for its timeout.
      if (this.#gapAcks[flow]! < GAP_ACKS_MAX) this.#gapAcks[flow]!++;
      return;
    }
    if (skip >= length) return; // old data: the ACK owed above is the answer
    if ((this.#state[flow]! & (S_GUEST_FIN | S_WRITE_BLOCKED)) !== 0) return;
    if (pkt.bytes !== this.#inBuffer) {
      this.#inBuffer = pkt.bytes;
      this.#inAddress = Number(sys.addressOf(pkt.bytes as Uint8Array<ArrayBuffer>));
    }
    const want = length - skip;
    sys.setIovecAt(this.#iovView, 0, this.#inAddress + pkt.start + offset + skip, want);
    this.#msgView.setUint32(MSGHDR.iovlen, 1, true);
    const n = sys.sendmsg(this.#sock[flow]!, this.#msghdr, MSG.DONTWAIT | MSG.NOSIGNAL);
    if (n === -sys.Errno.EAGAIN || (n >= 0 && n < want)) {
      this.#state[flow]! |= S_WRITE_BLOCKED;
      if (!this.#watch(flow, this.#events[flow]! | EPOLL.OUT)) return;
    } else if (n < 0) {
      this.#reset(flow);
      return;
    }
    if (n > 0) this.#seqFromGuest[flow] = (this.#seqFromGuest[flow]! + n) >>> 0;
  }

  // --- connections ------------------------------------------------------------------------

  /** RFC 6528: the keyed hash (SipHash) of the 4-tuple plus a 4 µs clock. */
  #isn(flow: number): number {
    return (this.#ctx.flows.isnHash(flow) + Math.floor(sys.monotonicMs() * 250)) >>> 0;
  }

  /** A SYN from the guest for a new connection. */
  #connect(
    pkt: PacketView,
    srcOff: number,
    dstOff: number,
    addrLen: number,
    sport: number,
    dport: number,
    l4: number,
    doff: number,
  ): void {
    const ctx = this.#ctx;
    const v6 = addrLen === 16;
    const kind = ctx.nat.outbound(
      pkt.bytes,
      pkt.start + dstOff,
      addrLen,
      dport,
      true,
      this.#addrOut,
    );
    if (kind === OutboundKind.NONE) return this.#drop("no route");
    const flow = ctx.flows.alloc(FlowType.TCP);
    if (flow < 0) {
      if (log.debugging) log.debug("tcp: flow table full, connection refused");
      return this.#drop("table full");
    }
    ctx.flows.setKey(
      flow,
      pkt.bytes,
      pkt.start + srcOff,
      sport,
      pkt.bytes,
      pkt.start + dstOff,
      dport,
      addrLen,
    );
    const fd = sys.trySocket(
      v6 ? AF.INET6 : AF.INET,
      SOCK.STREAM | SOCK.NONBLOCK | SOCK.CLOEXEC,
      0,
    );
    if (fd < 0) {
      ctx.flows.free(flow);
      return this.#drop("socket");
    }
    this.#initFlow(flow, fd);
    this.#readSynOptions(flow, pkt, l4, doff, v6);
    this.#seqFromGuest[flow] = (pkt.u32(l4 + TCP_SEQ) + 1) >>> 0;
    this.#guestWnd[flow] = pkt.u16(l4 + TCP_WIN); // not scaled in a SYN
    const isn = this.#isn(flow);
    this.#seqToGuest[flow] = isn;
    this.#seqAckedByGuest[flow] = isn;
    this.#state[flow] = S_CONNECTING;
    this.#arm(flow);
    this.stats.outbound++;

    this.#noDelay(flow, fd);
    this.#bindOutbound(flow, fd, v6, kind);
    const addrLenBytes = v6
      ? sys.encodeSockaddrIn6(this.#sockaddr, this.#addrOut, dport)
      : sys.encodeSockaddrIn(this.#sockaddr, this.#addrOut, dport);
    const r = sys.connect(fd, this.#sockaddr, addrLenBytes);
    if (r === 0) {
      this.#connected(flow);
    } else if (r === -sys.Errno.EINPROGRESS) {
      this.#watch(flow, EPOLL.OUT | EPOLL.RDHUP);
    } else {
      if (log.debugging) log.debug(`tcp: flow ${flow}: connect: ${sys.errnoName(-r)}`);
      this.#refuse(flow);
    }
  }

  /**
   * -o and --outbound-if for a new connection's socket. As in passt, a failure
   * leaves the connection to the kernel's choice of source: counted and logged.
   */
  #bindOutbound(flow: number, fd: number, v6: boolean, kind: number): void {
    if (kind === OutboundKind.HOST_LOOPBACK) return; // loopback: no -o, no device
    const config = this.#ctx.config;
    const family = v6 ? config.ip6 : config.ip4;
    if (family.outboundIf !== undefined) {
      const r = sys.trySetsockoptBytes(
        fd,
        SOL.SOCKET,
        SO.BINDTODEVICE,
        sys.cString(family.outboundIf),
      );
      if (r < 0) this.#sysError(flow, "setsockopt(SO_BINDTODEVICE)", -r);
    }
    if (family.outbound !== undefined) {
      const len = v6
        ? sys.encodeSockaddrIn6(this.#sockaddr, family.outbound, 0)
        : sys.encodeSockaddrIn(this.#sockaddr, family.outbound, 0);
      const r = sys.tryBind(fd, this.#sockaddr, len);
      if (r < 0) this.#sysError(flow, "bind", -r);
    }
  }

  /** TCP_NODELAY: segments go out as the guest sent them. Tuning: a failure is counted. */
  #noDelay(flow: number, fd: number): void {
    const r = sys.trySetsockoptInt(fd, SOL.TCP, TCP_OPT.NODELAY, 1);
    if (r < 0) this.#sysError(flow, "setsockopt(TCP_NODELAY)", -r);
  }

  #initFlow(flow: number, fd: number): void {
    this.#sock[flow] = fd;
    this.#events[flow] = 0;
    this.#retries[flow] = 0;
    this.#dupAcks[flow] = 0;
    this.#guestWscale[flow] = 0;
    this.#since[flow] = this.#clock[0]!;
    this.#lastActive[flow] = this.#clock[0]!;
    this.#sndbuf[flow] = 0;
    if (flow >= this.#highWater) this.#highWater = flow + 1;
  }

  #readSynOptions(flow: number, pkt: PacketView, l4: number, doff: number, v6: boolean): void {
    let mss = v6 ? DEFAULT_MSS6 : DEFAULT_MSS4;
    let wscale = -1;
    for (let off = l4 + TCP_HLEN, end = l4 + doff; off < end;) {
      const kind = pkt.u8(off);
      if (kind === OPT_EOL || kind < 0) break;
      if (kind === OPT_NOP) {
        off++;
        continue;
      }
      const len = pkt.u8(off + 1);
      if (len < 2 || off + len > end) break;
      if (kind === OPT_MSS && len === 4) mss = pkt.u16(off + 2);
      else if (kind === OPT_WS && len === 3) wscale = Math.min(pkt.u8(off + 2), 14);
      off += len;
    }
    this.#guestMss[flow] = Math.max(64, mss);
    // Window scaling only when both sides offer it (RFC 7323): we always do.
    this.#guestWscale[flow] = wscale < 0 ? 0 : wscale;
  }

  /** connect() finished: SYN-ACK to the guest. */
  #connected(flow: number): void {
    const fd = this.#sock[flow]!;
    this.#state[flow] = S_ESTABLISHED;
    this.#sndbuf[flow] = this.#sndbufAtStart(flow, fd);
    this.#initPeekOffset(fd);
    this.#sendSyn(flow, SYN | ACK);
    this.#seqToGuest[flow] = (this.#seqToGuest[flow]! + 1) >>> 0;
    this.#seqAckedByGuest[flow] = this.#seqToGuest[flow]!;
    this.#since[flow] = this.#clock[0]!;
    this.#arm(flow); // from the handshake limit to the idle one, which may be sooner
    this.#watch(flow, DATA_EVENTS);
  }

  #initPeekOffset(fd: number): void {
    if (!this.#peekOffset) return;
    if (sys.trySetsockoptInt(fd, SOL.SOCKET, SO.PEEK_OFF, 0) < 0) {
      this.#peekOffset = false;
      log.debug("tcp: SO_PEEK_OFF not supported for TCP: skipping in-flight data on peek");
    }
  }

  /** SO_SNDBUF now, without allocating (0 if it can't be read). */
  #sndbufNow(fd: number): number {
    this.#lenView.setUint32(0, 4, true);
    if (sys.tryGetsockoptRaw(fd, SOL.SOCKET, SO.SNDBUF, this.#intBuf, this.#lenBuf) < 0) return 0;
    return this.#intView.getInt32(0, true);
  }

  /** SO_SNDBUF at the start of a connection, 0 (counted) if it can't be read. */
  #sndbufAtStart(flow: number, fd: number): number {
    const sndbuf = sys.tryGetsockoptInt(fd, SOL.SOCKET, SO.SNDBUF);
    if (sndbuf >= 0) return sndbuf;
    this.#sysError(flow, "getsockopt(SO_SNDBUF)", -sndbuf);
    return 0;
  }

  /** A failed system call that leaves the flow as it is: counted, logged at debug level. */
  #sysError(flow: number, call: string, errno: number): void {
    this.stats.sysErrors++;
    if (log.debugging) log.debug(`tcp: flow ${flow}: ${call}: ${sys.errnoName(errno)}`);
  }

  /** The connection was refused or failed: RST to the guest. */
  #refuse(flow: number): void {
    // The guest's SYN is acknowledged by the RST (RFC 9293 3.10.7.1).
    this.#sendFlags(flow, RST | ACK);
    this.#close(flow, false);
  }

  /**
   * An accepted connection on a forwarded port (`fd`, peer address in
   * `peer`/`peerLen`) to deliver to the guest's port `targetPort`.
   */
  acceptInbound(
    fd: number,
    peer: Uint8Array,
    peerLength: number,
    targetPort: number,
    targetAddr?: Uint8Array,
  ): void {
    const ctx = this.#ctx;
    this.#clock[0] = sys.monotonicMs();
    const v6 = peerLength >= SOCKADDR_IN6_SIZE && sys.sockaddrFamily(peer) === AF.INET6;
    // An IPv4 peer on an IPv6 socket arrives v4-mapped: deliver it as IPv4.
    const mapped = v6 && peer[8] === 0 && peer[9] === 0 && peer[10] === 0 && peer[11] === 0 &&
      peer[12] === 0 && peer[13] === 0 && peer[14] === 0 && peer[15] === 0 &&
      peer[16] === 0xff && peer[17] === 0xff;
    const addrLen = v6 && !mapped ? 16 : 4;
    const addrOff = !v6 ? 4 : mapped ? 20 : 8;
    const family = addrLen === 4 ? ctx.plan.ip4 : ctx.plan.ip6;
    const peerPort = sys.sockaddrPort(peer);
    if (family === undefined || !ctx.nat.inboundSource(peer, addrOff, addrLen, this.#addrOut)) {
      sys.close(fd);
      return this.#drop("inbound source");
    }
    const flow = ctx.flows.alloc(FlowType.TCP);
    if (flow < 0) {
      sys.close(fd);
      return this.#drop("table full");
    }
    const guestAddr = addrLen === 4 ? this.#dst4 : this.#dst6;
    if (targetAddr === undefined) {
      ctx.nat.guestDestination(addrLen, addrLen === 16 && isLinkLocal6(this.#addrOut), guestAddr);
    } else if (targetAddr.length === addrLen) {
      guestAddr.set(targetAddr); // the rule's ":ADDR"
    } else {
      ctx.flows.free(flow);
      sys.close(fd);
      return this.#drop("target family");
    }
    ctx.flows.setKey(flow, guestAddr, 0, targetPort, this.#addrOut, 0, peerPort, addrLen);
    this.#initFlow(flow, fd);
    this.#noDelay(flow, fd);
    const isn = this.#isn(flow);
    this.#seqToGuest[flow] = isn;
    this.#seqAckedByGuest[flow] = isn;
    this.#guestMss[flow] = addrLen === 4 ? DEFAULT_MSS4 : DEFAULT_MSS6;
    this.#state[flow] = S_SYN_TO_GUEST;
    this.#arm(flow);
    this.#sendSyn(flow, SYN);
    this.#seqToGuest[flow] = (isn + 1) >>> 0;
    this.stats.inbound++;
    // Until the guest answers, only a failed or fully closed socket matters
    // (reported without asking). Data and even the peer's FIN may arrive first:
    // they wait in the socket for the handshake to complete.
    this.#watch(flow, EPOLL.ET);
  }

  /** The guest's SYN-ACK for an inbound connection. */
  #guestSynAck(flow: number, pkt: PacketView, l4: number, doff: number, seq: number): void {
    if (pkt.u32(l4 + TCP_ACK) !== this.#seqToGuest[flow]) return;
    const v6 = this.#ctx.flows.v6[flow] === 1;
    this.#readSynOptions(flow, pkt, l4, doff, v6);
    this.#seqFromGuest[flow] = (seq + 1) >>> 0;
    this.#seqAckedByGuest[flow] = this.#seqToGuest[flow]!;
    this.#guestWnd[flow] = pkt.u16(l4 + TCP_WIN) << this.#guestWscale[flow]!;
    this.#state[flow] = S_ESTABLISHED;
    this.#arm(flow); // from the handshake limit to the idle one, which may be sooner
    const fd = this.#sock[flow]!;
    this.#sndbuf[flow] = this.#sndbufAtStart(flow, fd);
    this.#initPeekOffset(fd);
    this.#sendFlags(flow, ACK);
    // That ACK may have shut the window and asked for EPOLLOUT: keep asking.
    const out = (this.#state[flow]! & S_WINDOW_ZERO) !== 0 ? EPOLL.OUT : 0;
    if (!this.#watch(flow, DATA_EVENTS | out)) return;
    this.#sendData(flow);
  }

  // --- host → guest ------------------------------------------------------------------------

  /** Events on a flow's socket. */
  #onSocket(flow: number, events: number): void {
    const fd = this.#sock[flow]!;
    if (fd < 0) return;
    this.#clock[0] = sys.monotonicMs();
    this.#lastActive[flow] = this.#clock[0]!;
    const state = this.#state[flow]!;
    if ((state & S_CONNECTING) !== 0) {
      // Without SO_ERROR we cannot know the connection is up: a failed read is
      // a failed connection, never a successful one.
      const read = sys.tryGetsockoptInt(fd, SOL.SOCKET, SO.ERROR);
      const error = read < 0 ? -read : read;
      if (read === 0 && (events & EPOLL.OUT) !== 0) this.#connected(flow);
      else if (read !== 0 || (events & (EPOLL.ERR | EPOLL.HUP)) !== 0) {
        if (log.debugging) {
          log.debug(
            `tcp: flow ${flow}: connect${read < 0 ? " (SO_ERROR)" : ""}: ${sys.errnoName(error)}`,
          );
        }
        this.#refuse(flow);
      }
      return;
    }
    if ((events & EPOLL.ERR) !== 0) {
      this.#reset(flow);
      return;
    }
    if ((state & S_SYN_TO_GUEST) !== 0) {
      if ((events & EPOLL.HUP) !== 0 && (state & S_ESTABLISHED) === 0) {
        // The host side is gone before the guest answered.
        this.#close(flow, false);
      }
      return;
    }
    if ((events & EPOLL.OUT) !== 0 && (state & (S_WRITE_BLOCKED | S_WAIT_SPACE)) !== 0) {
      // Room again: a window update (three duplicates after a short write).
      this.#state[flow] = (state & ~(S_WRITE_BLOCKED | S_WAIT_SPACE)) |
        ((state & S_WRITE_BLOCKED) !== 0 ? S_DUP_ACKS : 0);
      this.#dropOut(flow);
      this.#owe(flow);
    } else if ((events & EPOLL.OUT) !== 0 && (state & S_WINDOW_ZERO) !== 0) {
      this.#checkWindow(flow);
    }
    if ((events & (EPOLL.IN | EPOLL.RDHUP | EPOLL.HUP)) !== 0) this.#sendData(flow);
  }

  /** Peek what the guest's window allows from the socket into frames. */
  #sendData(flow: number): void {
    const ctx = this.#ctx;
    const tap = ctx.tap;
    for (let round = 0; round < 8; round++) {
      const state = this.#state[flow]!;
      if ((state & S_ESTABLISHED) === 0 || (state & S_SOCK_EOF) !== 0) return;
      const inflight = (this.#seqToGuest[flow]! - this.#seqAckedByGuest[flow]!) >>> 0;
      const window = this.#guestWnd[flow]! - inflight;
      if (window <= 0) return; // the guest's next ACK calls us again
      if (tap.room() < 4) tap.flush();
      const v6 = ctx.flows.v6[flow] === 1;
      const headers = ETH_HLEN + (v6 ? 40 : 20) + TCP_HLEN;
      const mss = Math.min(this.#guestMss[flow]!, 65535 - headers);
      // With the kernel cutting segments, one frame carries as many whole
      // segments as fit in 64 KiB; its checksum is left to the kernel too.
      const offload = tap.checksumOffload;
      const gso = offload && tap.segmentOffload && mss <= (65535 - headers) >> 1;
      const chunk = gso ? Math.floor((65535 - headers) / mss) * mss : mss;
      let segments = Math.min(tap.room(), SEGMENTS_MAX, Math.ceil(window / chunk));
      let iovIndex = 0;
      let skipped = 0;
      if (!this.#peekOffset && inflight > 0) {
        skipped = inflight;
        sys.setIovecAt(this.#iovView, iovIndex++, this.#discardAddress(inflight), inflight);
      }
      let asked = 0;
      for (let j = 0; j < segments; j++) {
        const len = Math.min(chunk, window - asked);
        if (len <= 0) {
          segments = j;
          break;
        }
        this.#segLength[j] = len;
        sys.setIovecAt(this.#iovView, iovIndex++, tap.slotAddress(j, headers), len);
        asked += len;
      }
      // No frame slot to read into: a zero-length read would look like end-of-file.
      if (segments === 0) return;
      this.#msgView.setUint32(MSGHDR.iovlen, iovIndex, true);
      const n = sys.recvmsg(this.#sock[flow]!, this.#msghdr, MSG.PEEK | MSG.DONTWAIT);
      if (n === -sys.Errno.EAGAIN) return; // the next data arrival is a new edge
      if (n < 0) {
        this.#reset(flow);
        return;
      }
      let data = n - skipped;
      if (data <= 0) {
        if (n === 0 || data === 0) this.#socketEof(flow);
        return;
      }
      const window32 = this.#advertisedWindow(flow);
      for (let j = 0; j < segments && data > 0; j++) {
        const len = Math.min(this.#segLength[j]!, data);
        data -= len;
        const out = tap.next();
        const frameLen = this.#writeHeaders(
          flow,
          out,
          len,
          data === 0 ? ACK | PSH : ACK,
          this.#seqToGuest[flow]! | 0,
          window32,
          0,
          offload,
        );
        if (offload) tap.queueOffloaded(frameLen, len > mss ? mss : 0);
        else tap.queue(frameLen);
        this.#seqToGuest[flow] = (this.#seqToGuest[flow]! + len) >>> 0;
        this.stats.segmentsOut++;
      }
      this.#state[flow]! &= ~S_ACK_PENDING; // the data carried the ACK
      if (this.#seqAckedByGuest[flow] === (this.#seqToGuest[flow]! - (n - skipped)) >>> 0) {
        this.#since[flow] = this.#clock[0]!; // first data in flight: start the timer now
        this.#timers.setEarlier(flow, this.#clock[0]! + this.#rto(flow));
      }
      if (n - skipped < asked) return; // drained for now
    }
  }

  #discardAddress(length: number): number {
    if (length <= this.#discard.length) return Number(sys.addressOf(this.#discard));
    if (this.#discardBig === undefined || this.#discardBig.length < length) {
      this.#discardBig = sys.pinnedBuffer(Math.max(length, 1 << 22));
    }
    return Number(sys.addressOf(this.#discardBig));
  }

  /** The socket has no more data: FIN to the guest. */
  #socketEof(flow: number): void {
    const state = this.#state[flow]!;
    if ((state & S_SOCK_EOF) !== 0) return;
    this.#state[flow] = state | S_SOCK_EOF | S_FIN_TO_GUEST;
    this.#sendFlags(flow, FIN | ACK);
    this.#seqToGuest[flow] = (this.#seqToGuest[flow]! + 1) >>> 0;
    this.#since[flow] = this.#clock[0]!;
    this.#timers.setEarlier(flow, this.#clock[0]! + this.#rto(flow));
  }

  /** Rewind to the last byte the guest acknowledged and send again. */
  #retransmit(flow: number): void {
    this.stats.retransmits++;
    const state = this.#state[flow]!;
    this.#seqToGuest[flow] = this.#seqAckedByGuest[flow]!;
    if ((state & S_FIN_TO_GUEST) !== 0 && (state & S_FIN_ACKED) === 0) {
      this.#state[flow] = state & ~(S_FIN_TO_GUEST | S_SOCK_EOF);
    }
    if (this.#peekOffset) {
      const r = sys.trySetsockoptInt(this.#sock[flow]!, SOL.SOCKET, SO.PEEK_OFF, 0);
      if (r < 0) {
        // The next peek would start after the data to send again.
        if (log.debugging) log.debug(`tcp: flow ${flow}: SO_PEEK_OFF: ${sys.errnoName(-r)}`);
        this.#reset(flow);
        return;
      }
    }
    this.#dupAcks[flow] = 0;
    this.#since[flow] = this.#clock[0]!;
    this.#sendData(flow);
  }

  // --- frames --------------------------------------------------------------------------

  /** Our receive window for the guest, in bytes: the socket's free send space. */
  #advertisedWindow(flow: number): number {
    if ((this.#state[flow]! & (S_WRITE_BLOCKED | S_GUEST_FIN)) !== 0) return 0;
    let space = WINDOW_MAX;
    const fd = this.#sock[flow]!;
    // What the kernel checks before it takes a write: the memory queued (data
    // plus per-buffer bookkeeping) against the send buffer size, which grows as
    // the connection speeds up (autotuning), so both are read each time.
    this.#lenView.setUint32(0, this.#memInfo.byteLength, true);
    if (
      sys.tryGetsockoptRaw(fd, SOL.SOCKET, SO.MEMINFO, this.#memInfo, this.#lenBuf) >= 0 &&
      this.#lenView.getUint32(0, true) > SK_MEMINFO.WMEM_QUEUED * 4
    ) {
      const sndbuf = this.#memWords[SK_MEMINFO.SNDBUF]!;
      this.#queuedNow = this.#memWords[SK_MEMINFO.WMEM_QUEUED]!;
      const free = sndbuf - this.#queuedNow;
      // Bookkeeping takes a few percent of each buffer: leave room for it, so
      // what the guest sends in this window fits.
      space = free - (free >> 5);
      // Less than a third free is what the kernel calls "not writable". Asking
      // for EPOLLOUT then marks the socket as limited by its buffer: autotuning
      // grows the buffer as acknowledgements free it (which it would not do for
      // a writer that never fills it), and the wake-up lets us tell the guest
      // that the window opened. Once the buffer is as large as autotuning makes
      // it, the ACKs for what the guest sends carry the window as it opens.
      if (
        free * 3 < sndbuf && sndbuf < this.#sndbufAutoMax &&
        (this.#state[flow]! & S_WAIT_SPACE) === 0
      ) {
        this.#state[flow]! |= S_WAIT_SPACE;
        this.#setEvents(flow, this.#events[flow]! | EPOLL.OUT); // else: ACKs carry it
      }
      return Math.max(0, Math.min(space, WINDOW_MAX));
    }
    const sndbuf = this.#sndbufNow(fd) || this.#sndbuf[flow]!;
    this.#queuedNow = 0;
    if (sndbuf > 0 && sys.tryIoctl(fd, SIOCOUTQ, this.#intBuf) >= 0) {
      // The whole buffer, though bookkeeping takes part of it: a write that then
      // comes up short is handled (zero window, duplicate ACKs), and it tells the
      // kernel that we are limited by the buffer, so autotuning grows it.
      this.#queuedNow = this.#intView.getInt32(0, true);
      space = sndbuf - this.#queuedNow;
    }
    return Math.max(0, Math.min(space, WINDOW_MAX));
  }

  /**
   * Write Ethernet, IP and TCP headers for a segment of `payload` bytes (already
   * in place after the headers) with `flags`, `seq` and our `window` (bytes);
   * `optionsLength` bytes of options follow the fixed header (written by the
   * caller). With `partialChecksum`, the checksum field gets only the
   * pseudo-header sum, for the kernel to complete (queue with `queueOffloaded`).
   * Returns the frame length.
   */
  #writeHeaders(
    flow: number,
    out: PacketView,
    payload: number,
    flags: number,
    seq: number,
    window: number,
    optionsLength: number,
    partialChecksum = false,
  ): number {
    const ctx = this.#ctx;
    const flows = ctx.flows;
    const v6 = flows.v6[flow] === 1;
    const base = flow * 16;
    const tcpLength = TCP_HLEN + optionsLength + payload;
    let l4: number;
    if (v6) {
      for (let i = 0; i < 16; i++) {
        this.#src6[i] = flows.remoteAddr[base + i]!;
        this.#dst6[i] = flows.guestAddr[base + i]!;
      }
      writeEthHeader(out, 0, ctx.guest.mac, ctx.plan.ourMac, ETH_P_IPV6);
      l4 = writeIpv6Header(out, ETH_HLEN, this.#src6, this.#dst6, IPPROTO.TCP, tcpLength, 64);
    } else {
      for (let i = 0; i < 4; i++) {
        this.#src4[i] = flows.remoteAddr[base + 12 + i]!;
        this.#dst4[i] = flows.guestAddr[base + 12 + i]!;
      }
      writeEthHeader(out, 0, ctx.guest.mac, ctx.plan.ourMac, ETH_P_IP);
      l4 = writeIpv4Header(out, ETH_HLEN, this.#src4, this.#dst4, IPPROTO.TCP, tcpLength, 64);
    }
    out.put16(l4 + TCP_SPORT, flows.remotePort[flow]!);
    out.put16(l4 + TCP_DPORT, flows.guestPort[flow]!);
    out.put32(l4 + TCP_SEQ, seq);
    out.put32(l4 + TCP_ACK, (flags & ACK) !== 0 ? this.#seqFromGuest[flow]! | 0 : 0);
    out.put8(l4 + TCP_OFF, ((TCP_HLEN + optionsLength) >> 2) << 4);
    out.put8(l4 + TCP_FLAGS, flags);
    const scaled = (flags & SYN) !== 0 ? window : window >>> OUR_WSCALE;
    out.put16(l4 + TCP_WIN, Math.min(scaled, 65535));
    out.put16(l4 + TCP_CSUM, 0);
    out.put16(l4 + TCP_URP, 0);
    const view = out.view;
    const csum = partialChecksum
      ? (v6
        ? l4PartialV6(view, out.start + ETH_HLEN, IPPROTO_TCP, tcpLength)
        : l4PartialV4(view, out.start + ETH_HLEN, IPPROTO_TCP, tcpLength))
      : v6
      ? l4ChecksumV6(view, out.start + ETH_HLEN, out.start + l4, tcpLength, IPPROTO_TCP)
      : l4ChecksumV4(view, out.start + ETH_HLEN, out.start + l4, tcpLength, IPPROTO_TCP);
    out.put16(l4 + TCP_CSUM, csum);
    if ((flags & ACK) !== 0) this.#lastAckValue[flow] = this.#seqFromGuest[flow]!;
    if ((flags & RST) === 0) {
      this.#lastWindow[flow] = window;
      // Less than one segment is as good as shut: the guest waits (silly window
      // avoidance) until we say more, so it must hear when the window opens. Not
      // after its FIN: it has nothing more to send.
      const state = this.#state[flow]!;
      const zero = (flags & SYN) === 0 && window < this.#guestMss[flow]! &&
        (state & S_GUEST_FIN) === 0;
      if (zero && (state & S_WINDOW_ZERO) === 0 && this.#sock[flow]! >= 0) {
        this.#state[flow] = state | S_WINDOW_ZERO;
        // The kernel reports EPOLLOUT once the send buffer is writable again; if
        // this fails, the window check deadline still comes.
        if (!this.#setEvents(flow, this.#events[flow]! | EPOLL.OUT)) {
          this.#scheduleWindowCheck(flow, this.#rto(flow));
        }
      } else if (!zero && (state & S_WINDOW_ZERO) !== 0) {
        this.#clearWindowZero(flow);
      }
    }
    return l4 + tcpLength;
  }

  #clearWindowZero(flow: number): void {
    this.#state[flow]! &= ~S_WINDOW_ZERO;
    this.#windowCheckAt[flow] = 0;
    if (this.#sock[flow]! >= 0) this.#dropOut(flow);
  }

  /** Stop asking for EPOLLOUT unless a short write, space or a shut window still waits for it. */
  #dropOut(flow: number): void {
    const events = this.#events[flow]!;
    if ((events & EPOLL.OUT) === 0) return;
    if ((this.#state[flow]! & (S_WRITE_BLOCKED | S_WAIT_SPACE | S_WINDOW_ZERO)) !== 0) return;
    this.#setEvents(flow, events & ~EPOLL.OUT);
  }

  /**
   * The socket of a flow whose window we shut is writable, or a check is due:
   * update the guest if one MSS fits now. If not, and data is still queued in
   * the socket, ACKs from the peer will free more: look again a round trip
   * later. With nothing queued, the buffer is as free as it gets, and only
   * writes (which the guest's segments bring, each answered with the window)
   * can grow it.
   */
  #checkWindow(flow: number): void {
    this.#windowCheckAt[flow] = 0;
    if ((this.#state[flow]! & S_WINDOW_ZERO) === 0 || this.#sock[flow]! < 0) return;
    if (this.#advertisedWindow(flow) >= this.#guestMss[flow]!) {
      this.#owe(flow); // the ACK carries the open window and clears the flag
    } else if (this.#queuedNow > 0) {
      this.#scheduleWindowCheck(flow, this.#rttMs(flow));
    }
  }

  #scheduleWindowCheck(flow: number, delayMs: number): void {
    const at = this.#clock[0]! + delayMs;
    this.#windowCheckAt[flow] = at;
    this.#timers.setEarlier(flow, at);
  }

  /** The connection's smoothed RTT (TCP_INFO), clamped to the window check bounds, ms. */
  #rttMs(flow: number): number {
    this.#lenView.setUint32(0, TCP_INFO_SIZE, true);
    const r = sys.tryGetsockoptRaw(
      this.#sock[flow]!,
      SOL.TCP,
      TCP_OPT.INFO,
      this.#tcpInfo,
      this.#lenBuf,
    );
    if (r < 0 || this.#lenView.getUint32(0, true) < TCP_INFO_RTT + 4) {
      if (r < 0) this.#sysError(flow, "getsockopt(TCP_INFO)", -r);
      return WINDOW_CHECK_MAX_MS;
    }
    const rttMs = this.#tcpInfoView.getUint32(TCP_INFO_RTT, true) / 1000;
    return Math.min(Math.max(rttMs, WINDOW_CHECK_MIN_MS), WINDOW_CHECK_MAX_MS);
  }

  /** A segment without data carrying `flags`. */
  #sendFlags(flow: number, flags: number): void {
    this.#sendBare(flow, flags, (flags & RST) !== 0 ? 0 : this.#advertisedWindow(flow));
  }

  /** A segment without data carrying `flags` and advertising `window` bytes. */
  #sendBare(flow: number, flags: number, window: number): void {
    const tap = this.#ctx.tap;
    const out = tap.next();
    tap.queue(this.#writeHeaders(flow, out, 0, flags, this.#seqToGuest[flow]! | 0, window, 0));
    this.stats.segmentsOut++;
    if ((flags & RST) !== 0) this.stats.resetsOut++;
  }

  /** SYN or SYN-ACK with MSS and window scale options. */
  #sendSyn(flow: number, flags: number): void {
    const ctx = this.#ctx;
    const v6 = ctx.flows.v6[flow] === 1;
    const out = ctx.tap.next();
    const l4 = ETH_HLEN + (v6 ? 40 : 20);
    const mtu = ctx.plan.mtu === 0 ? 65520 : ctx.plan.mtu;
    const mss = Math.min(mtu - (v6 ? 60 : 40), 65535 - 40);
    // Options: MSS (4 bytes), NOP, window scale (3 bytes) = 8 bytes.
    const opt = l4 + TCP_HLEN;
    out.put8(opt, OPT_MSS);
    out.put8(opt + 1, 4);
    out.put16(opt + 2, mss);
    out.put8(opt + 4, OPT_NOP);
    out.put8(opt + 5, OPT_WS);
    out.put8(opt + 6, 3);
    out.put8(opt + 7, OUR_WSCALE);
    const window = Math.min(this.#advertisedWindow(flow), 65535);
    ctx.tap.queue(this.#writeHeaders(flow, out, 0, flags, this.#seqToGuest[flow]! | 0, window, 8));
    this.stats.segmentsOut++;
  }

  /** An RST for a segment that belongs to no connection (RFC 9293 3.10.7.1). */
  #resetUnknown(
    pkt: PacketView,
    srcOff: number,
    dstOff: number,
    addrLen: number,
    sport: number,
    dport: number,
    l4: number,
    payload: number,
    flags: number,
  ): void {
    // Built straight from the segment's addresses: no flow is needed, so a full
    // table does not keep the guest from hearing that the connection is gone.
    const ctx = this.#ctx;
    const v6 = addrLen === 16;
    const src = v6 ? this.#src6 : this.#src4;
    const dst = v6 ? this.#dst6 : this.#dst4;
    pkt.copyOut(dstOff, addrLen, src);
    pkt.copyOut(srcOff, addrLen, dst);
    const ackFlag = (flags & ACK) !== 0;
    const consumed = payload + ((flags & SYN) !== 0 ? 1 : 0) + ((flags & FIN) !== 0 ? 1 : 0);
    const rstFlags = ackFlag ? RST : RST | ACK;
    const out = ctx.tap.next();
    writeEthHeader(out, 0, ctx.guest.mac, ctx.plan.ourMac, v6 ? ETH_P_IPV6 : ETH_P_IP);
    const rst = v6
      ? writeIpv6Header(out, ETH_HLEN, src, dst, IPPROTO.TCP, TCP_HLEN, 64)
      : writeIpv4Header(out, ETH_HLEN, src, dst, IPPROTO.TCP, TCP_HLEN, 64);
    out.put16(rst + TCP_SPORT, dport);
    out.put16(rst + TCP_DPORT, sport);
    out.put32(rst + TCP_SEQ, ackFlag ? pkt.u32(l4 + TCP_ACK) | 0 : 0);
    out.put32(rst + TCP_ACK, ackFlag ? 0 : (pkt.u32(l4 + TCP_SEQ) + consumed) | 0);
    out.put8(rst + TCP_OFF, (TCP_HLEN >> 2) << 4);
    out.put8(rst + TCP_FLAGS, rstFlags);
    out.put16(rst + TCP_WIN, 0);
    out.put16(rst + TCP_CSUM, 0);
    out.put16(rst + TCP_URP, 0);
    const csum = v6
      ? l4ChecksumV6(out.view, out.start + ETH_HLEN, out.start + rst, TCP_HLEN, IPPROTO_TCP)
      : l4ChecksumV4(out.view, out.start + ETH_HLEN, out.start + rst, TCP_HLEN, IPPROTO_TCP);
    out.put16(rst + TCP_CSUM, csum);
    ctx.tap.queue(rst + TCP_HLEN);
    this.stats.segmentsOut++;
    this.stats.resetsOut++;
  }

  // --- ACKs, timers, closing ---------------------------------------------------------

  /** Owe the guest an ACK this turn. */
  #owe(flow: number): void {
    if ((this.#state[flow]! & S_ACK_PENDING) !== 0) return;
    this.#state[flow]! |= S_ACK_PENDING;
    this.#pending[this.#pendingCount++] = flow;
  }

  /**
   * End of a loop turn: the ACKs each flow is owed. A duplicate ACK only counts
   * as one for the guest if it repeats both the acknowledgement number and the
   * window (RFC 5681 2), so duplicates carry the window of the ACK before them.
   */
  #flushAcks(): void {
    for (let i = 0; i < this.#pendingCount; i++) {
      const flow = this.#pending[i]!;
      const state = this.#state[flow]!;
      const gaps = this.#gapAcks[flow]!;
      this.#gapAcks[flow] = 0;
      this.#state[flow] = state & ~(S_ACK_PENDING | S_DUP_ACKS);
      if (this.#sock[flow]! < 0 || (state & (S_ACK_PENDING | S_DUP_ACKS)) === 0) continue;
      // A fresh ACK first, unless this one would only repeat the last: new data
      // taken, a window to reopen, or nothing out of order.
      const fresh = gaps === 0 || (state & S_DUP_ACKS) !== 0 ||
        this.#lastAckValue[flow] !== this.#seqFromGuest[flow];
      if (fresh) this.#sendFlags(flow, ACK);
      // Window reopened after a short write: three duplicates make the guest
      // retransmit at once.
      const copies = gaps + ((state & S_DUP_ACKS) !== 0 ? 3 : 0);
      const window = this.#lastWindow[flow]!;
      for (let c = 0; c < copies; c++) this.#sendBare(flow, ACK, window);
    }
    this.#pendingCount = 0;
  }

  /**
   * Watch the flow's socket for `events`. Returns false on failure, counted and
   * logged; the events stay as they were.
   */
  #setEvents(flow: number, events: number): boolean {
    if (this.#events[flow] === events) return true;
    const fd = this.#sock[flow]!;
    const loop = this.#ctx.loop;
    const r = this.#events[flow] === 0
      ? loop.add(fd, this.#kind, flow, events)
      : loop.modify(fd, this.#kind, flow, events);
    if (r === 0) {
      this.#events[flow] = events;
      return true;
    }
    this.#sysError(flow, "epoll_ctl", -r);
    return false;
  }

  /**
   * `#setEvents` for events the flow cannot go on without (connection progress,
   * data, room after a short write): on failure the flow is reset. Returns
   * whether the flow is still open.
   */
  #watch(flow: number, events: number): boolean {
    if (this.#setEvents(flow, events)) return true;
    this.#reset(flow);
    return false;
  }

  /** Something went wrong on the socket: RST to the guest, close. */
  #reset(flow: number): void {
    this.#sendFlags(flow, RST | ACK);
    this.#close(flow, false);
  }

  /**
   * Close the flow; `abort` sends an RST to the host side (SO_LINGER 0). The
   * connection leaves the lookup table now, but its socket is closed and its
   * flow number freed only at the end of the loop turn: events of this turn's
   * batch may still name them, and must not reach a new connection that got
   * the same number or descriptor meanwhile.
   */
  #close(flow: number, abort: boolean): void {
    if (this.#closing[flow] === 1) return;
    this.#closing[flow] = 1;
    const fd = this.#sock[flow]!;
    if (fd >= 0) {
      if (abort) {
        const r = sys.trySetsockoptBytes(fd, SOL.SOCKET, SO.LINGER, this.#linger);
        if (r < 0) this.#sysError(flow, "setsockopt(SO_LINGER)", -r); // a FIN, not an RST
      }
      if (this.#events[flow] !== 0) {
        // Closing the socket at the end of the turn removes it as well.
        const r = this.#ctx.loop.remove(fd);
        if (r < 0) this.#sysError(flow, "epoll_ctl(DEL)", -r);
      }
    }
    this.#timers.clear(flow);
    this.#windowCheckAt[flow] = 0;
    this.#sock[flow] = -1;
    this.#state[flow] = 0;
    this.#events[flow] = 0;
    this.#ctx.flows.remove(flow);
    this.#closedFd[this.#closedCount] = fd;
    this.#closedFlow[this.#closedCount++] = flow;
  }

  /** End of a loop turn: close what `#close` set aside. */
  #reap(): void {
    for (let i = 0; i < this.#closedCount; i++) {
      const fd = this.#closedFd[i]!;
      const flow = this.#closedFlow[i]!;
      if (fd >= 0) sys.close(fd); // EBADF, our bug, throws; other errors still free it
      this.#closing[flow] = 0;
      this.#ctx.flows.free(flow);
    }
    this.#closedCount = 0;
    while (this.#highWater > 0 && this.#sock[this.#highWater - 1]! < 0) this.#highWater--;
  }

  /** The retransmission timeout of a flow now, ms: doubles with each retry. */
  #rto(flow: number): number {
    return Math.min(RTO_MS << this.#retries[flow]!, RTO_MAX_MS);
  }

  /** When the flow's next timer is due (monotonic ms), from its state. */
  #due(flow: number): number {
    const state = this.#state[flow]!;
    const since = this.#since[flow]!;
    let due: number;
    if ((state & (S_CONNECTING | S_SYN_TO_GUEST)) !== 0) {
      due = since + HANDSHAKE_TIMEOUT_MS;
      if ((state & S_SYN_TO_GUEST) !== 0) {
        due = Math.min(due, since + RTO_MS * (1 << this.#retries[flow]!));
      }
    } else {
      due = this.#lastActive[flow]! + this.#idleTimeoutMs;
      if (this.#seqToGuest[flow] !== this.#seqAckedByGuest[flow]) {
        due = Math.min(due, since + this.#rto(flow));
      }
    }
    const windowCheck = this.#windowCheckAt[flow]!;
    return windowCheck > 0 ? Math.min(due, windowCheck) : due;
  }

  /** Set the flow's deadline from its state. */
  #arm(flow: number): void {
    this.#timers.set(flow, this.#due(flow));
  }

  /** A flow's deadline passed: handshake, retransmission, idle limit or window check. */
  #expire(flow: number, now: number): void {
    if (this.#sock[flow]! < 0 || this.#closing[flow] === 1) return;
    this.#clock[0] = now;
    const state = this.#state[flow]!;
    const since = now - this.#since[flow]!;
    if ((state & (S_CONNECTING | S_SYN_TO_GUEST)) !== 0) {
      if (since >= HANDSHAKE_TIMEOUT_MS) {
        this.#close(flow, true); // unreachable, or the guest never answered
        return;
      }
      if ((state & S_SYN_TO_GUEST) !== 0 && since >= RTO_MS * (1 << this.#retries[flow]!)) {
        this.#retries[flow]!++;
        this.#seqToGuest[flow] = this.#seqAckedByGuest[flow]!;
        this.#sendSyn(flow, SYN);
        this.#seqToGuest[flow] = (this.#seqToGuest[flow]! + 1) >>> 0;
      }
      this.#arm(flow);
      return;
    }
    const windowCheck = this.#windowCheckAt[flow]!;
    if (windowCheck > 0 && now >= windowCheck) this.#checkWindow(flow);
    const inflight = this.#seqToGuest[flow] !== this.#seqAckedByGuest[flow];
    if (inflight && since >= this.#rto(flow)) {
      if (this.#retries[flow]! >= RETRIES_MAX) {
        if (log.debugging) log.debug(`tcp: flow ${flow}: guest unresponsive, resetting`);
        this.#sendFlags(flow, RST | ACK);
        this.#close(flow, true);
        return;
      }
      this.#retries[flow]!++;
      this.#retransmit(flow);
    } else if (now - this.#lastActive[flow]! >= this.#idleTimeoutMs) {
      this.#sendFlags(flow, RST | ACK);
      this.#close(flow, true);
      return;
    }
    if (this.#sock[flow]! >= 0 && this.#closing[flow] === 0) this.#arm(flow);
  }

  /** Close every connection (at exit). */
  /**
   * The guest is gone (passt's client left): reset every connection towards the
   * host, since nobody will ever answer for it. Returns how many there were.
   */
  resetAll(): number {
    let n = 0;
    for (let flow = 0; flow < this.#highWater; flow++) {
      if (this.#sock[flow]! >= 0 && this.#closing[flow] === 0) {
        this.#close(flow, true);
        n++;
      }
    }
    this.#pendingCount = 0;
    this.#reap();
    return n;
  }

  close(): void {
    for (let flow = 0; flow < this.#highWater; flow++) {
      if (this.#sock[flow]! >= 0) this.#close(flow, false);
    }
    this.#reap();
  }
}
