/**
 * UDP between the guest and the host's sockets, with DNS forwarding and the
 * inbound half of UDP port forwarding.
 *
 * Theory of operation. A conversation is a flow in the shared FlowTable, of type
 * FlowType.UDP, keyed by what the guest sees: its own address and port, and the
 * remote address and port it sent to (or, for forwarded traffic, the translated
 * sender it receives from). Per-flow state lives in arrays indexed by the flow
 * number: the socket, whether that socket is shared, the last activity time and,
 * for forwarded flows, the original sender's socket address.
 *
 * Guest → host. The first datagram of a conversation opens a socket
 * (AF_INET/AF_INET6, SOCK_DGRAM, nonblocking) bound to the guest's source port
 * on the host, so the port the peer sees is the one the guest chose, and
 * connected to the destination after translation (AddressMap.outbound: the
 * host-loopback mapping goes to 127.0.0.1 / ::1, --map-guest-addr to the host's
 * own address, the --dns-forward address on port 53 to the first resolver).
 * SO_REUSEADDR lets several flows from one guest port to different peers each
 * bind that port (the kernel hands a datagram to the connected socket whose
 * peer matches); when the port is taken by someone who did not allow sharing,
 * the socket is bound to port 0 instead and the kernel picks one, counted in
 * `stats.portRemapped`. -o and --outbound-if4/6 (SO_BINDTODEVICE) apply except
 * towards the host's loopback, which they would make unreachable. A link-local
 * IPv6 destination goes out with the scope of --outbound-if6, else of the
 * interface the IPv6 plan comes from. The payload is sent straight out of the
 * frame buffer (sendmsg with an iovec pointing into it): no copy.
 *
 * Host → guest. A readable socket is read with recvmmsg, up to RECV_BATCH
 * datagrams per call (bounded by the tap's free slots, flushing first when
 * there are none) and RECV_ROUNDS calls per event, each datagram landing
 * straight in a tap output slot (FrameOutput.slotAddress) just past the room
 * for the Ethernet, IP and UDP headers, which are then written in front of it:
 * the source is the address and port the guest sent to (so DNS answers come
 * from the --dns-forward address and the host's own answers from the gateway),
 * the destination is the guest's address and port; IPv4 header checksum and
 * UDP checksum are computed (the UDP one only over the pseudo header where the
 * tap has checksum offload: FrameOutput.checksumOffload). Frames go out when the loop's turn ends. Measured
 * in a network namespace (loopback, 1400-byte datagrams, per datagram):
 * recvmmsg into the slots 0.29 µs, one recvmsg per datagram into a slot 1.7 µs,
 * recvmmsg into a private pool plus a JavaScript copy 1.4 µs (31 µs at 32000
 * bytes). A datagram dropped inside a batch (too big for a frame, unmappable
 * sender) leaves its slot unqueued, so later ones are moved down one slot
 * (rare). A datagram that does not fit a frame (MSG_TRUNC) is dropped.
 *
 * Port forwarding. `addForwardedSocket` takes a socket someone else bound for a
 * forwarded port (-u). A datagram arriving there goes to the guest's target
 * port, from the sender's address as AddressMap.inboundSource shows it (a
 * loopback sender appears as the host-loopback mapping). It opens (or refreshes)
 * a flow keyed by that guest-side view whose socket is the shared one and which
 * remembers the sender's socket address: the guest's replies to that address and
 * port are sent back out of the same socket with sendmsg to the sender.
 *
 * Guards. Datagrams the guest sends to itself (destination = its source or its
 * known address), to multicast or broadcast destinations (IPv4 224/4 and above,
 * the directed broadcast of the assigned subnet, IPv6 ff00::/8), from an
 * unspecified or multicast source, or with port 0 on either side are dropped and
 * counted: forwarding them could reflect the guest's traffic back at it or spray
 * it onto the host's networks. Frames come from the ingress already
 * IP-validated and not fragments; the UDP length must cover the header and fit
 * the IP payload (trailing bytes are ignored). The UDP checksum is checked only
 * with `verifyChecksum` (guests may leave it partial under offloads); a zero
 * IPv6 UDP checksum is always refused (RFC 8200 §8.1).
 *
 * Expiry. A flow idle for `flowTimeoutMs` (default 180 s, as upstream) is closed
 * by its own deadline in the loop's deadline queue (src/timers.ts): opening a
 * flow sets it to the timeout; traffic only records the time of the event (one
 * clock read per datagram batch) and leaves the queue alone, and when the
 * deadline comes, a flow that was active since is given its real deadline
 * instead of being closed. Nothing scans the flows on a period, and idle flows
 * wake nobody before their timeout. The flow table's capacity bounds the flows.
 * When it is full (for any protocol's new flow), the table evicts the flows idle
 * longest: for UDP, idle time counts in whole intervals of `clockResolutionMs`
 * since a flow's last datagram, and every flow of the greatest count goes, if
 * that is one or more (a flood's one-datagram flows go first; a flow with
 * traffic less than an interval ago never does). If none may go, the datagram is
 * dropped and counted, and the table does not scan again before a flow is
 * freed or the loop turn ends. Nothing on the data path
 * allocates or throws.
 */

import { isLoopback4, isLoopback6 } from "../addr.ts";
import {
  AF,
  EPOLL,
  IOVEC_SIZE,
  IPPROTO,
  IPV6_OPT,
  MMSGHDR,
  MSG,
  MSGHDR,
  SO,
  SOCK,
  SOL,
  UDP_SEGMENT,
} from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import type { DataPathContext, TransportHandler } from "../flow/context.ts";
import { FLOW_MAX, type FlowEvictor, FlowType } from "../flow/flow.ts";
import { OutboundKind } from "../flow/nat.ts";
import { log } from "../log.ts";
import {
  fold16,
  ipv4PseudoSum,
  ipv6PseudoSum,
  l4PartialV4,
  l4PartialV6,
  sum16,
} from "./checksum.ts";
import { ETH_HLEN, ETH_P_IP, ETH_P_IPV6, FRAME_MAX, writeEthHeader } from "./ethernet.ts";
import {
  finishUdp4,
  finishUdp6,
  formatIpv4,
  formatIpv6,
  IP4_DST,
  IP4_HLEN,
  IP4_SRC,
  IP6_DST,
  IP6_HLEN,
  IP6_SRC,
  IPPROTO_UDP,
  isLinkLocal6,
  UDP_CSUM,
  UDP_DPORT,
  UDP_HLEN,
  UDP_LEN,
  UDP_SPORT,
  writeIpv4Header,
  writeIpv6Header,
  writeUdpHeader,
} from "./ip.ts";
import type { DeadlineQueue } from "../timers.ts";
import type { PacketView } from "./packet.ts";
import { UdpSplicer } from "./udp_splice.ts";

/** Inactivity after which a flow is closed, ms (upstream passt's UDP timeout). */
export const UDP_FLOW_TIMEOUT_MS = 180_000;
/** Resolution of the flow clock for eviction (flows idle alike go together), ms. */
export const UDP_CLOCK_RESOLUTION_MS = 10_000;

/** Datagrams per recvmmsg call, at most. */
const RECV_BATCH = 64;
/** CMSG_SPACE(sizeof(u16)): room for the UDP_SEGMENT control message, bytes. */
const TX_CMSG_SPACE = 24;
/** recvmmsg calls per readiness event, at most (fairness between sockets). */
const RECV_ROUNDS = 4;
/** Largest UDP payload in an IPv4 packet (total length is 16 bits). */
const UDP4_PAYLOAD_MAX = 65535 - IP4_HLEN - UDP_HLEN;
/** Largest UDP payload in an IPv6 packet (payload length is 16 bits; no jumbograms). */
const UDP6_PAYLOAD_MAX = 65535 - UDP_HLEN;
/** TTL / hop limit of frames we build: they reach the guest directly. */
const TTL_TO_GUEST = 255;
/** Sizes of struct sockaddr_in / sockaddr_in6, bytes. */
const SA4_LEN = 16;
const SA6_LEN = 28;
/** Flow socket ownership. */
const OWN_SOCKET = 0;
const SHARED_SOCKET = 1;

/** Tuning, mostly for tests. */
export interface UdpOptions {
  /** Inactivity after which a flow is closed, ms (default UDP_FLOW_TIMEOUT_MS). */
  readonly flowTimeoutMs?: number;
  /** Resolution of idle times for eviction, ms (default UDP_CLOCK_RESOLUTION_MS, at most the timeout). */
  readonly clockResolutionMs?: number;
  /** Check the UDP checksum of the guest's datagrams when it is not zero (default false). */
  readonly verifyChecksum?: boolean;
}

/** Why a datagram was not forwarded. */
export type UdpDrop =
  | "truncated" // UDP header outside the IP payload
  | "length" // UDP length < 8 or larger than the IP payload
  | "checksum" // wrong UDP checksum (with verifyChecksum), or zero over IPv6
  | "port" // source or destination port 0
  | "address" // unspecified or multicast source, unspecified destination
  | "loop" // the guest sending to itself
  | "multicast" // multicast or broadcast destination
  | "unreachable" // no translation (e.g. DNS without resolver), link-local without scope
  | "full" // flow table full
  | "socket" // socket, option, bind, connect or epoll registration failed
  | "send" // sendmsg failed
  | "recv" // recvmsg failed (e.g. ECONNREFUSED from an earlier datagram)
  | "tooBig" // datagram from the host larger than a frame
  | "unmapped"; // forwarded datagram whose sender cannot be shown to the guest

const DROP_REASONS: readonly UdpDrop[] = [
  "truncated",
  "length",
  "checksum",
  "port",
  "address",
  "loop",
  "multicast",
  "unreachable",
  "full",
  "socket",
  "send",
  "recv",
  "tooBig",
  "unmapped",
];

/** Counters of the UDP translator. */
export class UdpStats {
  /** Datagrams from the guest sent on a host socket. */
  fromGuest = 0;
  /** Datagrams from host sockets queued as frames to the guest. */
  toGuest = 0;
  /** Flows opened (guest-initiated and forwarded). */
  flowsOpened = 0;
  /** Flows closed (expired or at shutdown). */
  flowsClosed = 0;
  /** Idle flows closed early because the flow table was full. */
  flowsEvicted = 0;
  /** Flows whose socket could not take the guest's source port (kernel chose one). */
  portRemapped = 0;
  /** Dropped datagrams by reason. */
  readonly dropped: Record<UdpDrop, number>;

  constructor() {
    const d = {} as Record<UdpDrop, number>;
    for (const r of DROP_REASONS) d[r] = 0;
    this.dropped = d;
  }

  /** Total drops over all reasons. */
  totalDropped(): number {
    let n = 0;
    for (const r of DROP_REASONS) n += this.dropped[r];
    return n;
  }
}

/** UDP translation over the tap path; see the file comment. */
export class UdpTranslator implements TransportHandler {
  /** Counters, for tests and debugging. */
  readonly stats: UdpStats = new UdpStats();

  readonly #ctx: DataPathContext;
  readonly #flowKind: number;
  readonly #forwardKind: number;
  #splice: UdpSplicer | undefined;
  readonly #timeoutMs: number;
  readonly #resolutionMs: number;
  readonly #verifyChecksum: boolean;
  /** Per-flow expiry deadlines. */
  readonly #timers: DeadlineQueue;
  #closed = false;
  #fullLogged = false;

  // Per-flow state, indexed like the flow table.
  readonly #fd = new Int32Array(FLOW_MAX).fill(-1);
  readonly #ownership = new Uint8Array(FLOW_MAX);
  readonly #lastActiveMs = new Float64Array(FLOW_MAX);
  /** Original sender of a forwarded flow (struct sockaddr_in/in6, SA6_LEN bytes each). */
  readonly #peerSa = sys.pinnedBuffer(FLOW_MAX * SA6_LEN);
  readonly #peerSaLen = new Uint8Array(FLOW_MAX);
  readonly #peerSaAddr = sys.addressNumber(this.#peerSa);

  // Forwarded sockets (added at setup).
  readonly #forwardFd: number[] = [];
  readonly #forwardPort: number[] = [];
  readonly #forwardV6: boolean[] = [];
  /** Per forwarded socket: the rule's target address (":ADDR"), or undefined. */
  readonly #forwardAddr: (Uint8Array | undefined)[] = [];

  // Outgoing message: one iovec into the frame being forwarded, optional name.
  readonly #txMsg = sys.pinnedBuffer(MSGHDR.size);
  readonly #txMsgView = new DataView(this.#txMsg.buffer);
  readonly #txIov = sys.pinnedBuffer(IOVEC_SIZE);
  readonly #txIovView = new DataView(this.#txIov.buffer);
  #txBytes: Uint8Array | undefined;
  #txBytesAddr = 0;
  /** A control message UDP_SEGMENT (cmsghdr and a u16), for frames of several datagrams. */
  readonly #txSegmentCmsg = sys.pinnedBuffer(TX_CMSG_SPACE);
  readonly #txSegmentCmsgView = new DataView(this.#txSegmentCmsg.buffer);
  readonly #txSegmentCmsgAddr = sys.addressNumber(this.#txSegmentCmsg);

  // Incoming messages: one iovec each into a tap output slot, senders' addresses.
  readonly #rxVec = sys.pinnedBuffer(RECV_BATCH * MMSGHDR.size);
  readonly #rxVecView = new DataView(this.#rxVec.buffer);
  readonly #rxIov = sys.pinnedBuffer(RECV_BATCH * IOVEC_SIZE);
  readonly #rxIovView = new DataView(this.#rxIov.buffer);
  readonly #rxNames = sys.pinnedBuffer(RECV_BATCH * SA6_LEN);
  readonly #rxNamesAddr = sys.addressNumber(this.#rxNames);

  // Scratch: socket addresses, translated addresses, header addresses, options.
  readonly #sa = sys.pinnedBuffer(SA6_LEN);
  readonly #saLen = sys.pinnedBuffer(4);
  readonly #target = new Uint8Array(16);
  readonly #remote = new Uint8Array(16);
  readonly #guestDst = new Uint8Array(16);
  readonly #src4 = new Uint8Array(4);
  readonly #dst4 = new Uint8Array(4);
  readonly #src6 = new Uint8Array(16);
  readonly #dst6 = new Uint8Array(16);
  readonly #one = sys.pinnedBuffer(4);
  readonly #bindIf4: Uint8Array<ArrayBuffer> | undefined;
  readonly #bindIf6: Uint8Array<ArrayBuffer> | undefined;
  readonly #scope6: number;
  readonly #broadcast4: Uint8Array | undefined;

  /**
   * Registers the socket kinds and the expiry timer with `ctx.loop`. Setup time:
   * allocates its preallocated buffers here.
   */
  constructor(ctx: DataPathContext, options: UdpOptions = {}) {
    this.#ctx = ctx;
    this.#timeoutMs = options.flowTimeoutMs ?? UDP_FLOW_TIMEOUT_MS;
    this.#resolutionMs = Math.max(
      1,
      Math.min(options.clockResolutionMs ?? UDP_CLOCK_RESOLUTION_MS, this.#timeoutMs),
    );
    this.#verifyChecksum = options.verifyChecksum ?? false;
    new DataView(this.#one.buffer).setInt32(0, 1, true);

    const tm = this.#txMsgView;
    sys.putU64(tm, MSGHDR.iov, sys.addressNumber(this.#txIov));
    sys.putU64(tm, MSGHDR.iovlen, 1);
    const cm = this.#txSegmentCmsgView;
    sys.putU64(cm, 0, 16 + 2); // cmsg_len: CMSG_LEN(sizeof(u16))
    cm.setInt32(8, SOL.UDP, true);
    cm.setInt32(12, UDP_SEGMENT, true);
    const rv = this.#rxVecView;
    const rxIovAddr = sys.addressNumber(this.#rxIov);
    for (let j = 0; j < RECV_BATCH; j++) {
      sys.putU64(rv, j * MMSGHDR.size + MSGHDR.iov, rxIovAddr + j * IOVEC_SIZE);
      sys.putU64(rv, j * MMSGHDR.size + MSGHDR.iovlen, 1);
    }

    const config = ctx.config;
    const if4 = config.ip4.outboundIf;
    const if6 = config.ip6.outboundIf;
    this.#bindIf4 = if4 !== undefined ? sys.cString(if4) : undefined;
    this.#bindIf6 = if6 !== undefined ? sys.cString(if6) : undefined;
    this.#scope6 = if6 !== undefined ? sys.ifNameToIndex(if6) : (ctx.plan.ip6?.hostIfindex ?? 0);
    const p4 = ctx.plan.ip4;
    if (p4 !== undefined && p4.prefixLength < 31) {
      const b = p4.address.slice();
      for (let bit = p4.prefixLength; bit < 32; bit++) b[bit >> 3]! |= 0x80 >> (bit & 7);
      this.#broadcast4 = b;
    }

    this.#flowKind = ctx.loop.defineKind("udp", this.#onFlowReadable);
    this.#forwardKind = ctx.loop.defineKind("udp-forward", this.#onForwardReadable);
    this.#timers = ctx.loop.deadlines("udp", FLOW_MAX, this.#onDeadline);
    ctx.flows.evictable(FlowType.UDP, this.#evictor);
  }

  /**
   * For the flow table when it is full: a flow's idle time in whole intervals of
   * the clock's resolution, and closing it (see the file comment).
   */
  readonly #evictor: FlowEvictor = {
    idleFor: (index: number, nowMs: number): number => {
      if (this.#closed) return -1;
      // In whole intervals since the flow's last datagram, so that flows idle
      // alike go together; one active less than an interval ago never goes.
      const r = this.#resolutionMs;
      const idle = nowMs - this.#lastActiveMs[index]!;
      return idle >= r ? Math.floor(idle / r) * r : -1;
    },
    evict: (index: number): void => {
      if (log.debugging) log.debug(`UDP: flow table full: idle flow ${index} closed early`);
      this.#closeFlow(index);
      this.stats.flowsEvicted++;
    },
  };

  /** Number of open UDP flows. */
  get flowCount(): number {
    let n = 0;
    const type = this.#ctx.flows.type;
    for (let i = 0; i < FLOW_MAX; i++) if (type[i] === FlowType.UDP) n++;
    return n;
  }

  /**
   * Take over `fd`, a UDP socket bound on the host for a forwarded port (`v6`:
   * AF_INET6, which may also receive v4-mapped senders). Datagrams arriving on
   * it go to the guest's `targetPort` (at `targetAddr`, when the rule gave one, for
   * senders of that family; others are dropped); the guest's replies leave through it.
   * The translator closes it in `close()`. Setup time; throws if it cannot
   * watch the socket.
   */
  addForwardedSocket(
    fd: number,
    targetPort: number,
    v6: boolean,
    targetAddr?: Uint8Array,
  ): void {
    const index = this.#forwardFd.length;
    const r = this.#ctx.loop.add(fd, this.#forwardKind, index, EPOLL.IN);
    if (r < 0) throw new sys.SysError("epoll_ctl", -r, `UDP forwarded socket ${fd}`);
    this.#forwardFd.push(fd);
    this.#forwardPort.push(targetPort);
    this.#forwardV6.push(v6);
    this.#forwardAddr.push(targetAddr);
    if (log.debugging) {
      log.debug(
        `UDP: forwarded socket ${fd} (${v6 ? "IPv6" : "IPv4"}) -> guest port ${targetPort}`,
      );
    }
  }

  /**
   * An IPv4 packet carrying UDP from the guest: header at `ipOffset`,
   * `ipHeaderLength` bytes, then `l4Length` bytes of UDP.
   */
  fromTap4(pkt: PacketView, ipOffset: number, ipHeaderLength: number, l4Length: number): void {
    const udp = ipOffset + ipHeaderLength;
    const payloadLength = this.#checkUdp(pkt, udp, l4Length);
    if (payloadLength < 0) return;
    const srcOff = ipOffset + IP4_SRC;
    const dstOff = ipOffset + IP4_DST;
    const b = pkt.bytes;
    const src = pkt.start + srcOff;
    const dst = pkt.start + dstOff;
    if (this.#verifyChecksum && !pkt.checksumUnverifiable && pkt.u16(udp + UDP_CSUM) !== 0) {
      const pseudo = ipv4PseudoSum(pkt.view, pkt.start + ipOffset, IPPROTO_UDP, payloadLength + 8);
      if (fold16(sum16(pkt.view, pkt.start + udp, payloadLength + 8, pseudo)) !== 0xffff) {
        this.#drop("checksum");
        return;
      }
    }
    const s0 = b[src]!;
    if (s0 === 0 || s0 >= 224) {
      this.#drop("address");
      return;
    }
    const d0 = b[dst]!;
    if (d0 >= 224 || this.#isBroadcast4(b, dst)) {
      this.#drop("multicast");
      return;
    }
    if (d0 === 0) {
      this.#drop("address");
      return;
    }
    if (
      (b[src] === b[dst] && b[src + 1] === b[dst + 1] && b[src + 2] === b[dst + 2] &&
        b[src + 3] === b[dst + 3]) || pkt.equals(dstOff, this.#ctx.guest.addr4)
    ) {
      this.#drop("loop");
      return;
    }
    this.#forward(pkt, srcOff, dstOff, 4, udp, payloadLength);
  }

  /**
   * An IPv6 packet carrying UDP from the guest: `headersLength` bytes of IPv6
   * headers at `ipOffset`, then `l4Length` bytes of UDP.
   */
  fromTap6(pkt: PacketView, ipOffset: number, headersLength: number, l4Length: number): void {
    const udp = ipOffset + headersLength;
    const payloadLength = this.#checkUdp(pkt, udp, l4Length);
    if (payloadLength < 0) return;
    const csum = pkt.u16(udp + UDP_CSUM);
    if (csum === 0 && !pkt.checksumUnverifiable) {
      this.#drop("checksum");
      return;
    }
    if (this.#verifyChecksum && !pkt.checksumUnverifiable) {
      const pseudo = ipv6PseudoSum(pkt.view, pkt.start + ipOffset, IPPROTO_UDP, payloadLength + 8);
      if (fold16(sum16(pkt.view, pkt.start + udp, payloadLength + 8, pseudo)) !== 0xffff) {
        this.#drop("checksum");
        return;
      }
    }
    const srcOff = ipOffset + IP6_SRC;
    const dstOff = ipOffset + IP6_DST;
    const b = pkt.bytes;
    const src = pkt.start + srcOff;
    const dst = pkt.start + dstOff;
    if (b[src] === 0xff || pkt.isZero(srcOff, 16)) {
      this.#drop("address");
      return;
    }
    if (b[dst] === 0xff) {
      this.#drop("multicast");
      return;
    }
    if (pkt.isZero(dstOff, 16)) {
      this.#drop("address");
      return;
    }
    let self = true;
    for (let i = 0; i < 16 && self; i++) self = b[src + i] === b[dst + i];
    const guest = this.#ctx.guest;
    if (self || pkt.equals(dstOff, guest.addr6) || pkt.equals(dstOff, guest.addr6LinkLocal)) {
      this.#drop("loop");
      return;
    }
    this.#forward(pkt, srcOff, dstOff, 16, udp, payloadLength);
  }

  /**
   * Give back forwarded socket `fd` (its port is no longer forwarded): the flows
   * using it end, and it is closed.
   */
  /**
   * pasta: datagrams from loopback senders on forwarded sockets take the local
   * path (udp_splice.ts) to the namespace's loopback instead of the tap.
   */
  setLocalPath(splicer: UdpSplicer): void {
    this.#splice = splicer;
  }

  removeForwardedSocket(fd: number): void {
    this.#splice?.removeListener(fd);
    const slot = this.#forwardFd.indexOf(fd);
    if (slot < 0) {
      sys.close(fd);
      return;
    }
    const flows = this.#ctx.flows;
    for (let i = 0; i < FLOW_MAX; i++) {
      if (flows.type[i] === FlowType.UDP && this.#fd[i] === fd) this.#closeFlow(i);
    }
    this.#forwardFd[slot] = -1;
    this.#ctx.loop.remove(fd);
    sys.close(fd);
  }

  /**
   * The guest is gone (passt's client left): forget every flow, closing the
   * sockets of its own; forwarded ports stay. Returns how many flows there were.
   */
  closeFlows(): number {
    const flows = this.#ctx.flows;
    let n = 0;
    for (let i = 0; i < FLOW_MAX; i++) {
      if (flows.type[i] === FlowType.UDP && this.#fd[i]! >= 0) {
        this.#closeFlow(i);
        n++;
      }
    }
    return n;
  }

  /** Close every flow socket and every forwarded socket; the translator goes quiet. */
  close(): void {
    const flows = this.#ctx.flows;
    for (let i = 0; i < FLOW_MAX; i++) {
      if (flows.type[i] === FlowType.UDP && this.#fd[i]! >= 0) this.#closeFlow(i);
    }
    for (const fd of this.#forwardFd) {
      if (fd < 0) continue;
      this.#ctx.loop.remove(fd);
      sys.close(fd);
    }
    this.#forwardFd.length = 0;
    this.#forwardPort.length = 0;
    this.#forwardV6.length = 0;
    this.#forwardAddr.length = 0;
    this.#closed = true;
  }

  /** Validates the UDP header at `udp`; returns the payload length, or -1 (counted). */
  #checkUdp(pkt: PacketView, udp: number, l4Length: number): number {
    if (l4Length < UDP_HLEN || !pkt.has(udp, l4Length)) return this.#drop("truncated");
    const length = pkt.u16(udp + UDP_LEN);
    if (length < UDP_HLEN || length > l4Length) return this.#drop("length");
    if (pkt.u16(udp + UDP_SPORT) === 0 || pkt.u16(udp + UDP_DPORT) === 0) {
      return this.#drop("port");
    }
    return length - UDP_HLEN;
  }

  #isBroadcast4(b: Uint8Array, off: number): boolean {
    const bc = this.#broadcast4;
    return bc !== undefined && b[off] === bc[0] && b[off + 1] === bc[1] &&
      b[off + 2] === bc[2] && b[off + 3] === bc[3];
  }

  #drop(reason: UdpDrop): -1 {
    this.stats.dropped[reason]++;
    return -1;
  }

  /** Finds or opens the flow for this datagram and sends its payload. */
  #forward(
    pkt: PacketView,
    srcOff: number,
    dstOff: number,
    addrLen: number,
    udp: number,
    payloadLength: number,
  ): void {
    const flows = this.#ctx.flows;
    const sport = pkt.u16(udp + UDP_SPORT);
    const dport = pkt.u16(udp + UDP_DPORT);
    let index = flows.lookupFrame(FlowType.UDP, pkt, srcOff, sport, dstOff, dport, addrLen);
    if (index < 0) {
      index = this.#open(pkt, srcOff, dstOff, addrLen, sport, dport);
      if (index < 0) return;
    }
    const bytes = pkt.bytes;
    if (bytes !== this.#txBytes) {
      this.#txBytes = bytes;
      this.#txBytesAddr = sys.addressNumber(bytes);
    }
    sys.setIovecAt(
      this.#txIovView,
      0,
      this.#txBytesAddr + pkt.start + udp + UDP_HLEN,
      payloadLength,
    );
    const msg = this.#txMsgView;
    if (this.#ownership[index] === SHARED_SOCKET) {
      sys.putU64(msg, MSGHDR.name, this.#peerSaAddr + index * SA6_LEN);
      msg.setUint32(MSGHDR.namelen, this.#peerSaLen[index]!, true);
    } else {
      sys.putU64(msg, MSGHDR.name, 0);
      msg.setUint32(MSGHDR.namelen, 0, true);
    }
    // Several datagrams in one frame (UDP segmentation offload): one sendmsg with
    // UDP_SEGMENT, which the host's kernel splits alike.
    const segment = pkt.segmentSize;
    const several = segment > 0 && payloadLength > segment;
    if (several) {
      this.#txSegmentCmsgView.setUint16(16, segment, true);
      sys.putU64(msg, MSGHDR.control, this.#txSegmentCmsgAddr);
      sys.putU64(msg, MSGHDR.controllen, TX_CMSG_SPACE);
    }
    let sent = sys.sendmsg(this.#fd[index]!, this.#txMsg, MSG.DONTWAIT | MSG.NOSIGNAL);
    if (several) {
      sys.putU64(msg, MSGHDR.control, 0);
      sys.putU64(msg, MSGHDR.controllen, 0);
      // Refused (a route whose MTU is below the segment size, say): one at a time.
      if (sent === -sys.Errno.EINVAL) {
        const payload = this.#txBytesAddr + pkt.start + udp + UDP_HLEN;
        sent = this.#sendEach(index, payload, payloadLength, segment);
      }
    }
    if (sent < 0) {
      if (log.debugging) log.debug(`UDP: flow ${index}: sendmsg: ${sys.errnoName(-sent)}`);
      this.#drop("send");
      return;
    }
    this.#lastActiveMs[index] = sys.monotonicMs();
    this.stats.fromGuest += several ? Math.ceil(payloadLength / segment) : 1;
  }

  /**
   * Send the `payloadLength` bytes at memory address `base` as datagrams of
   * `segment` bytes, one sendmsg each (the name in `#txMsg` stays). Returns the
   * last result: bytes sent, or -errno.
   */
  #sendEach(index: number, base: number, payloadLength: number, segment: number): number {
    let sent = 0;
    for (let off = 0; off < payloadLength && sent >= 0; off += segment) {
      sys.setIovecAt(this.#txIovView, 0, base + off, Math.min(segment, payloadLength - off));
      sent = sys.sendmsg(this.#fd[index]!, this.#txMsg, MSG.DONTWAIT | MSG.NOSIGNAL);
    }
    return sent;
  }

  /** Opens a guest-initiated flow: translate, make, bind, connect and watch its socket. */
  #open(
    pkt: PacketView,
    srcOff: number,
    dstOff: number,
    addrLen: number,
    sport: number,
    dport: number,
  ): number {
    const ctx = this.#ctx;
    const v6 = addrLen === 16;
    const target = this.#target;
    const kind = ctx.nat.outbound(pkt.bytes, pkt.start + dstOff, addrLen, dport, false, target);
    if (kind === OutboundKind.NONE) return this.#drop("unreachable");
    let scope = 0;
    if (v6 && isLinkLocal6(target)) {
      if (this.#scope6 === 0) return this.#drop("unreachable");
      scope = this.#scope6;
    }
    const index = ctx.flows.alloc(FlowType.UDP);
    if (index < 0) {
      if (!this.#fullLogged && log.debugging) {
        log.debug(`UDP: flow table full (${FLOW_MAX} flows): datagrams dropped`);
      }
      this.#fullLogged = true;
      return this.#drop("full");
    }
    const fd = sys.trySocket(
      v6 ? AF.INET6 : AF.INET,
      SOCK.DGRAM | SOCK.NONBLOCK | SOCK.CLOEXEC,
      IPPROTO.UDP,
    );
    if (fd < 0) return this.#failSocket(index, -1, "socket", fd);
    const toLoopback = v6 ? isLoopback6(target) : isLoopback4(target);
    let r = 0;
    if (v6) r = sys.trySetsockoptBytes(fd, SOL.IPV6, IPV6_OPT.V6ONLY, this.#one);
    if (r < 0) return this.#failSocket(index, fd, "IPV6_V6ONLY", r);
    r = sys.trySetsockoptBytes(fd, SOL.SOCKET, SO.REUSEADDR, this.#one);
    if (r < 0) return this.#failSocket(index, fd, "SO_REUSEADDR", r);
    const bindIf = toLoopback ? undefined : v6 ? this.#bindIf6 : this.#bindIf4;
    if (bindIf !== undefined) {
      r = sys.trySetsockoptBytes(fd, SOL.SOCKET, SO.BINDTODEVICE, bindIf);
      if (r < 0) return this.#failSocket(index, fd, "SO_BINDTODEVICE", r);
    }
    const local = toLoopback ? undefined : v6 ? ctx.config.ip6.outbound : ctx.config.ip4.outbound;
    if (sys.tryBind(fd, this.#sa, sys.encodeSockaddr(this.#sa, local, v6, sport, 0)) < 0) {
      r = sys.tryBind(fd, this.#sa, sys.encodeSockaddr(this.#sa, local, v6, 0, 0));
      if (r < 0) return this.#failSocket(index, fd, "bind", r);
      this.stats.portRemapped++;
    }
    r = sys.connect(fd, this.#sa, sys.encodeSockaddr(this.#sa, target, v6, dport, scope));
    if (r < 0) return this.#failSocket(index, fd, "connect", r);
    r = ctx.loop.add(fd, this.#flowKind, index, EPOLL.IN);
    if (r < 0) return this.#failSocket(index, fd, "epoll_ctl", r);

    ctx.flows.setKey(
      index,
      pkt.bytes,
      pkt.start + srcOff,
      sport,
      pkt.bytes,
      pkt.start + dstOff,
      dport,
      addrLen,
    );
    this.#fd[index] = fd;
    this.#ownership[index] = OWN_SOCKET;
    const now = sys.monotonicMs();
    this.#lastActiveMs[index] = now;
    this.#timers.set(index, now + this.#timeoutMs);
    this.stats.flowsOpened++;
    if (log.debugging) {
      const fmt = v6 ? formatIpv6 : formatIpv4;
      const off = v6 ? 0 : 12;
      const g = ctx.flows.guestAddr;
      const rem = ctx.flows.remoteAddr;
      log.debug(
        `UDP: flow ${index}: ${fmt(g, index * 16 + off)}:${sport} -> ` +
          `${fmt(rem, index * 16 + off)}:${dport} (sent to ${fmt(target)}:${dport}` +
          `${kind === OutboundKind.DNS ? ", DNS forwarding" : ""})`,
      );
    }
    return index;
  }

  #failSocket(index: number, fd: number, call: string, negErrno: number): -1 {
    if (fd >= 0) sys.close(fd);
    this.#ctx.flows.free(index);
    if (log.debugging) log.debug(`UDP: flow socket: ${call}: ${sys.errnoName(-negErrno)}`);
    return this.#drop("socket");
  }

  /**
   * Receives up to RECV_BATCH datagrams from `fd`, each into a free tap slot
   * `headers` bytes in (with the sender's address when `withName`). Returns the
   * number received, or -errno.
   */
  #receive(fd: number, headers: number, v6: boolean, withName: boolean): number {
    const tap = this.#ctx.tap;
    if (tap.room() === 0) tap.flush();
    const room = tap.room();
    const batch = room < RECV_BATCH ? room : RECV_BATCH;
    let size = FRAME_MAX - headers;
    const max = v6 ? UDP6_PAYLOAD_MAX : UDP4_PAYLOAD_MAX;
    if (size > max) size = max;
    const vec = this.#rxVecView;
    for (let j = 0; j < batch; j++) {
      sys.setIovecAt(this.#rxIovView, j, tap.slotAddress(j, headers), size);
      const m = j * MMSGHDR.size;
      sys.putU64(vec, m + MSGHDR.name, withName ? this.#rxNamesAddr + j * SA6_LEN : 0);
      vec.setUint32(m + MSGHDR.namelen, withName ? SA6_LEN : 0, true);
    }
    return sys.recvmmsg(fd, this.#rxVec, batch, MSG.DONTWAIT);
  }

  /**
   * The tap's next slot, with datagram `j` of the batch (received `receivedAt`
   * bytes into its own slot; `queued` frames of the batch queued so far) moved
   * to `headers` bytes into it.
   */
  #slotFor(j: number, queued: number, receivedAt: number, headers: number, length: number) {
    const tap = this.#ctx.tap;
    const out = tap.next();
    const from = tap.slotAddress(j - queued, receivedAt) - tap.slotAddress(0, 0);
    if (from !== headers) out.move(headers, from, length);
    return out;
  }

  /** Whether a receive error ends this event's reading (counted unless EAGAIN). */
  #receiveFailed(n: number, what: string): boolean {
    if (n === -sys.Errno.EAGAIN) return true;
    if (n === -sys.Errno.EINTR) return false;
    // An ICMP error for an earlier datagram (ECONNREFUSED…): consumed, go on.
    if (log.debugging) log.debug(`UDP: ${what}: recvmmsg: ${sys.errnoName(-n)}`);
    this.#drop("recv");
    return false;
  }

  /** Readiness of a flow's own socket: batches of datagrams into frames for the guest. */
  readonly #onFlowReadable = (index: number, _events: number, fd: number): void => {
    const ctx = this.#ctx;
    const vec = this.#rxVecView;
    for (let round = 0; round < RECV_ROUNDS; round++) {
      if (ctx.flows.type[index] !== FlowType.UDP || this.#fd[index] !== fd) return; // stale
      const v6 = ctx.flows.v6[index] === 1;
      const headers = ETH_HLEN + (v6 ? IP6_HLEN : IP4_HLEN) + UDP_HLEN;
      const n = this.#receive(fd, headers, v6, false);
      if (n < 0) {
        if (this.#receiveFailed(n, `flow ${index}`)) return;
        continue;
      }
      let queued = 0;
      for (let j = 0; j < n; j++) {
        const m = j * MMSGHDR.size;
        if ((vec.getUint32(m + MSGHDR.flags, true) & MSG.TRUNC) !== 0) {
          this.#drop("tooBig");
          continue;
        }
        const length = vec.getUint32(m + MMSGHDR.len, true);
        const out = this.#slotFor(j, queued, headers, headers, length);
        if (this.#toGuest(out, index, v6, length)) queued++;
      }
      if (n > 0) this.#lastActiveMs[index] = sys.monotonicMs();
      if (n < RECV_BATCH) return;
    }
  };

  /** Readiness of a forwarded socket: each datagram to the guest's target port. */
  readonly #onForwardReadable = (slot: number, _events: number, fd: number): void => {
    const ctx = this.#ctx;
    const vec = this.#rxVecView;
    const names = this.#rxNames;
    for (let round = 0; round < RECV_ROUNDS; round++) {
      if (this.#forwardFd[slot] !== fd) return; // stale
      // An IPv6 socket leaves room for IPv6 headers; a v4-mapped sender is moved after.
      const socketV6 = this.#forwardV6[slot] === true;
      const headers = ETH_HLEN + (socketV6 ? IP6_HLEN : IP4_HLEN) + UDP_HLEN;
      const n = this.#receive(fd, headers, socketV6, true);
      if (n < 0) {
        if (this.#receiveFailed(n, `forwarded socket ${fd}`)) return;
        continue;
      }
      const now = sys.monotonicMs();
      let queued = 0;
      for (let j = 0; j < n; j++) {
        const m = j * MMSGHDR.size;
        if ((vec.getUint32(m + MSGHDR.flags, true) & MSG.TRUNC) !== 0) {
          this.#drop("tooBig");
          continue;
        }
        const length = vec.getUint32(m + MMSGHDR.len, true);
        const nameLen = vec.getUint32(m + MSGHDR.namelen, true);
        const name = j * SA6_LEN;
        // Sender: AF_INET, or AF_INET6 that may be v4-mapped (::ffff:a.b.c.d).
        let addrOff: number;
        let addrLen: number;
        if (names[name] === AF.INET && names[name + 1] === 0 && nameLen >= SA4_LEN) {
          addrOff = name + 4;
          addrLen = 4;
        } else if (names[name] === AF.INET6 && names[name + 1] === 0 && nameLen >= SA6_LEN) {
          let mapped = names[name + 18] === 0xff && names[name + 19] === 0xff;
          for (let k = 8; k < 18 && mapped; k++) mapped = names[name + k] === 0;
          addrOff = name + (mapped ? 20 : 8);
          addrLen = mapped ? 4 : 16;
        } else {
          this.#drop("unmapped");
          continue;
        }
        const splice = this.#splice;
        const targetAddr = this.#forwardAddr[slot];
        if (
          splice !== undefined && targetAddr === undefined &&
          UdpSplicer.isLocalSender(names, name, nameLen)
        ) {
          // Sent from where it stays: in place, to the namespace's loopback.
          splice.queueToNamespace(
            fd,
            names,
            name,
            nameLen,
            ctx.tap.slotAddress(j - queued, headers),
            length,
            this.#forwardPort[slot]!,
          );
          continue;
        }
        // A frame built below may take the slot of a datagram queued above.
        splice?.flush();
        const v6 = addrLen === 16;
        const remote = this.#remote;
        if (!ctx.nat.inboundSource(names, addrOff, addrLen, remote)) {
          this.#drop("unmapped");
          continue;
        }
        const guestDst = this.#guestDst;
        if (targetAddr === undefined) {
          ctx.nat.guestDestination(addrLen, v6 && isLinkLocal6(remote), guestDst);
        } else if (targetAddr.length === addrLen) {
          guestDst.set(targetAddr);
        } else {
          this.#drop("unmapped");
          continue;
        }
        const senderPort = (names[name + 2]! << 8) | names[name + 3]!;
        const guestPort = this.#forwardPort[slot]!;
        let index = ctx.flows.lookup(
          FlowType.UDP,
          guestDst,
          0,
          guestPort,
          remote,
          0,
          senderPort,
          addrLen,
        );
        if (index < 0) {
          index = this.#openForwarded(fd, guestDst, guestPort, remote, senderPort, addrLen, j);
          if (index < 0) continue;
        }
        this.#lastActiveMs[index] = now;
        const finalHeaders = ETH_HLEN + (v6 ? IP6_HLEN : IP4_HLEN) + UDP_HLEN;
        const out = this.#slotFor(j, queued, headers, finalHeaders, length);
        if (this.#toGuest(out, index, v6, length)) queued++;
      }
      this.#splice?.flush();
      if (n < RECV_BATCH) return;
    }
  };

  /** Opens a flow for the sender of message `message` of the batch, on shared socket `fd`. */
  #openForwarded(
    fd: number,
    guestDst: Uint8Array,
    guestPort: number,
    remote: Uint8Array,
    senderPort: number,
    addrLen: number,
    message: number,
  ): number {
    const flows = this.#ctx.flows;
    const index = flows.alloc(FlowType.UDP);
    if (index < 0) {
      if (!this.#fullLogged && log.debugging) {
        log.debug(`UDP: flow table full (${FLOW_MAX} flows): datagrams dropped`);
      }
      this.#fullLogged = true;
      return this.#drop("full");
    }
    flows.setKey(index, guestDst, 0, guestPort, remote, 0, senderPort, addrLen);
    this.#fd[index] = fd;
    this.#ownership[index] = SHARED_SOCKET;
    const nameLen = this.#rxVecView.getUint32(message * MMSGHDR.size + MSGHDR.namelen, true);
    const len = nameLen < SA6_LEN ? nameLen : SA6_LEN;
    const base = index * SA6_LEN;
    const from = message * SA6_LEN;
    for (let i = 0; i < len; i++) this.#peerSa[base + i] = this.#rxNames[from + i]!;
    this.#peerSaLen[index] = len;
    this.#timers.set(index, sys.monotonicMs() + this.#timeoutMs);
    this.stats.flowsOpened++;
    if (log.debugging) {
      const fmt = addrLen === 16 ? formatIpv6 : formatIpv4;
      log.debug(
        `UDP: flow ${index}: forwarded ${fmt(remote)}:${senderPort} -> ` +
          `${fmt(guestDst)}:${guestPort} (socket ${fd})`,
      );
    }
    return index;
  }

  /**
   * Writes the Ethernet, IP and UDP headers in front of the `payloadLength`
   * bytes already received into `out` for flow `index`, and queues the frame
   * (false: it did not fit, counted).
   */
  #toGuest(out: PacketView, index: number, v6: boolean, payloadLength: number): boolean {
    const ctx = this.#ctx;
    const flows = ctx.flows;
    const base = index * 16;
    const ga = flows.guestAddr;
    const ra = flows.remoteAddr;
    const ipOffset = ETH_HLEN;
    // The kernel completes the checksum where the tap lets it: no pass over the payload.
    const offload = ctx.tap.checksumOffload;
    let udp: number;
    if (v6) {
      const src = this.#src6;
      const dst = this.#dst6;
      for (let i = 0; i < 16; i++) {
        src[i] = ra[base + i]!;
        dst[i] = ga[base + i]!;
      }
      writeEthHeader(out, 0, ctx.guest.mac, ctx.plan.ourMac, ETH_P_IPV6);
      udp = writeIpv6Header(
        out,
        ipOffset,
        src,
        dst,
        IPPROTO_UDP,
        UDP_HLEN + payloadLength,
        TTL_TO_GUEST,
      );
      writeUdpHeader(out, udp, flows.remotePort[index]!, flows.guestPort[index]!, payloadLength);
      if (offload) {
        const l4Length = UDP_HLEN + payloadLength;
        out.put16(
          udp + UDP_CSUM,
          l4PartialV6(out.view, out.start + ipOffset, IPPROTO_UDP, l4Length),
        );
      } else finishUdp6(out, ipOffset, udp);
    } else {
      const src = this.#src4;
      const dst = this.#dst4;
      for (let i = 0; i < 4; i++) {
        src[i] = ra[base + 12 + i]!;
        dst[i] = ga[base + 12 + i]!;
      }
      writeEthHeader(out, 0, ctx.guest.mac, ctx.plan.ourMac, ETH_P_IP);
      udp = writeIpv4Header(
        out,
        ipOffset,
        src,
        dst,
        IPPROTO_UDP,
        UDP_HLEN + payloadLength,
        TTL_TO_GUEST,
      );
      writeUdpHeader(out, udp, flows.remotePort[index]!, flows.guestPort[index]!, payloadLength);
      if (offload) {
        const l4Length = UDP_HLEN + payloadLength;
        out.put16(
          udp + UDP_CSUM,
          l4PartialV4(out.view, out.start + ipOffset, IPPROTO_UDP, l4Length),
        );
      } else finishUdp4(out, ipOffset, udp);
    }
    if (out.overflow) {
      this.#drop("tooBig");
      return false;
    }
    const length = udp + UDP_HLEN + payloadLength;
    out.setLength(length);
    if (offload) ctx.tap.queueOffloaded(length, 0);
    else ctx.tap.queue(length);
    this.stats.toGuest++;
    return true;
  }

  /** A flow's deadline came: close it if idle for the timeout, else wait for the real one. */
  readonly #onDeadline = (index: number, nowMs: number): void => {
    if (this.#closed || this.#ctx.flows.type[index] !== FlowType.UDP) return;
    const due = this.#lastActiveMs[index]! + this.#timeoutMs;
    if (due <= nowMs) this.#closeFlow(index);
    else this.#timers.set(index, due);
  };

  /** Frees flow `index`, closing its socket unless it is a shared forwarded one. */
  #closeFlow(index: number): void {
    const fd = this.#fd[index]!;
    if (this.#ownership[index] === OWN_SOCKET && fd >= 0) {
      this.#ctx.loop.remove(fd);
      sys.close(fd);
    }
    this.#timers.clear(index);
    this.#fd[index] = -1;
    this.#ownership[index] = OWN_SOCKET;
    this.#peerSaLen[index] = 0;
    this.#ctx.flows.free(index);
    this.#fullLogged = false;
    this.stats.flowsClosed++;
  }
}
