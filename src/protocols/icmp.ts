/**
 * ICMP and ICMPv6 echo ("ping") between the guest and the host's network, through
 * unprivileged ping sockets.
 *
 * Theory of operation: the guest's echo requests cannot be forwarded as raw packets
 * without privileges, so each conversation gets its own ping socket
 * (`socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)`, or AF_INET6/IPPROTO_ICMPV6, see
 * icmp(7)). The kernel fills in the checksum and replaces the echo identifier
 * with the socket's "port", and hands back only the echo replies whose identifier
 * matches that port. A conversation (a flow) is keyed by IP version, the guest's
 * identifier, the guest's source address and the destination the guest used.
 *
 * To keep the identifier the guest chose, the socket is bound with that identifier
 * as its port. The kernel delivers an echo reply to a socket by identifier alone,
 * not by who sent it, so two of our sockets of one IP version must never share an
 * identifier (recent kernels allow binding both, older ones refuse the second):
 * when another flow already uses it, or the bind fails (a process on the host has
 * it, a restrictive security policy refuses it), the socket is bound to port 0
 * and the kernel picks an unused identifier. Requests then leave with a
 * different, but unique, identifier, and replies get the guest's one back, since
 * the flow remembers it.
 *
 * Destinations are translated before sending, by the rules every protocol
 * shares (src/flow/nat.ts): the `mapHostLoopback` address goes to 127.0.0.1 /
 * ::1 (the host itself answers), the `mapGuestAddr` address to the address the
 * guest was assigned, which the host owns too. A link-local IPv6 destination
 * that no mapping covers needs an interface: it goes out with the scope of the
 * IPv6 outbound interface, or is dropped when there is none. The outbound
 * address (-o) and interface (SO_BINDTODEVICE) apply to every flow except those
 * to the host's loopback, which would not be reachable through them.
 *
 * Requests are sent straight from the guest's frame (sendmsg with an iovec at
 * the ICMP header), and replies are read when the socket is readable, in a
 * bounded batch per event, straight into the frame that takes them to the guest
 * (a slot of the tap's output arena), just past the room for the Ethernet and
 * IP headers, which are then written in front of them: no copies. The reply goes from the
 * address the guest pinged (so an answer from 127.0.0.1 appears to come from the
 * mapped address) to the source address the guest used, with the guest's
 * identifier restored and the checksum recomputed (over the pseudo header for
 * ICMPv6). A datagram whose sender is not the flow's target is dropped.
 *
 * Flows are ICMP/ICMPV6 flows of the data path's one flow table (src/flow/):
 * the key is the guest's address, its identifier (as the "guest port") and the
 * destination it used; our per-flow state (socket, identifier, translated
 * target) lives in arrays indexed by flow number. Each flow has a deadline in
 * the loop's deadline queue (src/timers.ts), set to FLOW_TIMEOUT_MS when it
 * opens; a request or reply only records the time (one clock read), and when
 * the deadline comes a flow active since gets its real deadline instead of
 * being closed, so nothing scans the flows on a period and idle flows wake
 * nobody before their timeout. When the table is full, or echo flows reach
 * `capacity`, the flows idle longest (in whole CLOCK_RESOLUTION_MS intervals,
 * at least one) are closed to make room: a flood of identifiers
 * leaves nothing behind that keeps the next ping out for good. Nothing on the
 * data path allocates or throws: bad frames and failures are counted in
 * `stats` (and described in the debug log).
 *
 * Ping sockets need the process's group inside `net.ipv4.ping_group_range`
 * (the same setting covers ICMPv6); otherwise socket() fails with EACCES and every
 * request is dropped as "socket".
 */

import { isLoopback4, isLoopback6 } from "../addr.ts";
import type { NetworkPlan } from "../config/network.ts";
import { AF, EPOLL, IPPROTO, MSG, MSGHDR, SO, SOCK, SOL } from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import { log } from "../log.ts";
import { FLOW_MAX, type FlowEvictor, FlowTable, FlowType } from "../flow/flow.ts";
import type { FrameOutput } from "../flow/context.ts";
import { AddressMap, OutboundKind } from "../flow/nat.ts";
import type { EventLoop } from "../loop.ts";
import type { DeadlineQueue } from "../timers.ts";
import { finish, fold16, l4ChecksumV6, sum16 } from "./checksum.ts";
import { ETH_HLEN, ETH_P_IP, ETH_P_IPV6, writeEthHeader } from "./ethernet.ts";
import {
  formatIpv4,
  formatIpv6,
  IP4_HLEN,
  IP4_SRC,
  IP6_HLEN,
  IP6_SRC,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  ipv4IsFragment,
  isLinkLocal6,
  verifyL4ChecksumV6,
  writeIpv4Header,
  writeIpv6Header,
} from "./ip.ts";
import { PacketView, ServiceStats } from "./packet.ts";

/** ICMP type: echo reply. */
export const ICMP_ECHO_REPLY = 0;
/** ICMP type: echo request. */
export const ICMP_ECHO_REQUEST = 8;
/** ICMPv6 type: echo request. */
export const ICMPV6_ECHO_REQUEST = 128;
/** ICMPv6 type: echo reply. */
export const ICMPV6_ECHO_REPLY = 129;

/** Offset of the type in an ICMP/ICMPv6 header. */
export const ICMP_TYPE = 0;
/** Offset of the code. */
export const ICMP_CODE = 1;
/** Offset of the checksum (big-endian u16). */
export const ICMP_CSUM = 2;
/** Offset of the echo identifier (big-endian u16). */
export const ICMP_ECHO_ID = 4;
/** Offset of the echo sequence number (big-endian u16). */
export const ICMP_ECHO_SEQ = 6;
/** Length of an echo header, bytes. */
export const ICMP_ECHO_HLEN = 8;

/**
 * Echo flows at most, by default (each holds a socket): a quarter of the shared
 * flow table, so a flood of identifiers leaves room for other protocols.
 */
export const ICMP_FLOWS_MAX = FLOW_MAX / 4;
/** Inactivity after which a flow is closed, ms. */
export const FLOW_TIMEOUT_MS = 60_000;
/** Resolution of idle times for eviction (flows idle alike go together), ms. */
export const CLOCK_RESOLUTION_MS = 5_000;

/** Echo replies read from one socket per readiness event, at most. */
const RECV_BATCH = 32;
/** Largest ICMP message in an IPv4 packet (total length is 16 bits). */
const ICMP4_MAX = 65535 - IP4_HLEN;
/** Largest ICMPv6 message (payload length is 16 bits; no jumbograms). */
const ICMP6_MAX = 65535;
/** Hop limit / TTL of replies we write: they reach the guest directly. */
const REPLY_TTL = 255;
/** The largest frame a tap output slot holds (the tap's FRAME_MAX), bytes. */
const TAP_FRAME_MAX = 65536;
/** Sizes of struct sockaddr_in / sockaddr_in6, bytes. */
const SA6_LEN = 28;

import type { GuestState } from "../flow/guest.ts";
export type { GuestState };

/** Configuration of the echo forwarder; addresses are in network order. */
export interface IcmpParams {
  /** Our MAC address (6 bytes): source of every reply frame. */
  readonly ourMac: Uint8Array;
  /** The guest's MAC and addresses, updated by the caller. */
  readonly guest: GuestState;
  /** Forward ICMP (IPv4) echo requests. */
  readonly ipv4: boolean;
  /** Forward ICMPv6 echo requests. */
  readonly ipv6: boolean;
  /** -o: source address to bind IPv4 sockets to (4 bytes). */
  readonly outboundAddr4?: Uint8Array | undefined;
  /** -o: source address to bind IPv6 sockets to (16 bytes). */
  readonly outboundAddr6?: Uint8Array | undefined;
  /** --outbound-if4: interface IPv4 sockets are bound to (SO_BINDTODEVICE). */
  readonly outboundIf4?: string | undefined;
  /** --outbound-if6: interface IPv6 sockets are bound to; also the scope of link-local targets. */
  readonly outboundIf6?: string | undefined;
  /** --map-host-loopback (IPv4): requests to it go to 127.0.0.1, replies come from it. */
  readonly mapHostLoopback4?: Uint8Array | undefined;
  /** --map-host-loopback (IPv6): requests to it go to ::1, replies come from it. */
  readonly mapHostLoopback6?: Uint8Array | undefined;
  /** --map-guest-addr (IPv4): requests to it go to `guestAssigned4`. */
  readonly mapGuestAddr4?: Uint8Array | undefined;
  /** --map-guest-addr (IPv6): requests to it go to `guestAssigned6`. */
  readonly mapGuestAddr6?: Uint8Array | undefined;
  /** The IPv4 address assigned to the guest, which is also the host's (4 bytes). */
  readonly guestAssigned4?: Uint8Array | undefined;
  /** The IPv6 address assigned to the guest, which is also the host's (16 bytes). */
  readonly guestAssigned6?: Uint8Array | undefined;
  /** Flow table size (default ICMP_FLOWS_MAX); tests make it small. */
  readonly capacity?: number | undefined;
}

/** Why an echo request or reply was not forwarded. */
export type IcmpDrop =
  | "disabled" // the IP version is not enabled
  | "truncated" // header or message outside the frame, or shorter than an echo header
  | "fragment" // IPv4 fragment: no reassembly here
  | "type" // not an echo request
  | "code" // echo request with a non-zero code (the kernel refuses those)
  | "checksum" // ICMP/ICMPv6 checksum wrong
  | "unreachable" // link-local destination without an interface to reach it
  | "full" // flow table full
  | "socket" // ping socket could not be made, bound or watched
  | "send" // sending on the ping socket failed
  | "recv" // receiving failed with something other than EAGAIN
  | "reply" // a datagram from the socket that is not a well-formed echo reply
  | "foreign"; // a reply from someone other than the flow's target

const DROP_REASONS: readonly IcmpDrop[] = [
  "disabled",
  "truncated",
  "fragment",
  "type",
  "code",
  "checksum",
  "unreachable",
  "full",
  "socket",
  "send",
  "recv",
  "reply",
  "foreign",
];

/** Counters of the echo forwarder (`replies` counts frames sent to the guest). */
export class IcmpStats extends ServiceStats<IcmpDrop> {
  /** Echo requests sent on a ping socket. */
  requests = 0;
  /** Flows opened. */
  flowsOpened = 0;
  /** Flows closed (expired or at shutdown). */
  flowsClosed = 0;
  /** Flows whose socket could not take the guest's identifier (the kernel chose one). */
  idRemapped = 0;
  /** Idle flows closed early to make room for new ones. */
  flowsEvicted = 0;

  constructor() {
    super(DROP_REASONS);
  }
}

/** What the echo forwarder shares with the rest of the data path. */
export interface IcmpShared {
  /** The flow table: echo flows are ICMP/ICMPV6 flows in it. */
  readonly flows: FlowTable;
  /** The address translation rules. */
  readonly nat: AddressMap;
  /** Frames towards the guest: replies are received straight into its slots. */
  readonly tap?: FrameOutput;
}

/**
 * Address translation for a forwarder made on its own (tests): the rules of
 * nat.ts over a plan holding only what echo uses.
 */
function standaloneNat(p: IcmpParams): AddressMap {
  const family = (
    address: Uint8Array | undefined,
    mapHostLoopback: Uint8Array | undefined,
    mapGuestAddr: Uint8Array | undefined,
    len: number,
  ) => ({
    hostIfname: "",
    hostIfindex: 0,
    address: address ?? new Uint8Array(len),
    prefixLength: 0,
    gateway: undefined,
    hostAddresses: [],
    hostRoutes: [],
    mapHostLoopback,
    mapGuestAddr,
    dnsForward: undefined,
    dns: [],
    resolvers: [],
  });
  const plan: NetworkPlan = {
    ourMac: p.ourMac,
    ip4: family(p.guestAssigned4, p.mapHostLoopback4, p.mapGuestAddr4, 4),
    ip6: {
      ...family(p.guestAssigned6, p.mapHostLoopback6, p.mapGuestAddr6, 16),
      ourLinkLocal: new Uint8Array(16),
    },
    search: [],
    mtu: 0,
    hostname: "",
    fqdn: "",
    dhcp: false,
    ndp: false,
    ra: false,
    dhcpv6: false,
  };
  return new AddressMap(plan, p.guest);
}

/** Forwards the guest's echo requests through ping sockets and its replies back. */
export class IcmpEcho {
  /** Counters, for tests and debugging. */
  readonly stats: IcmpStats = new IcmpStats();

  readonly #loop: EventLoop;
  readonly #p: IcmpParams;
  readonly #tapSend: (frame: PacketView) => void;
  readonly #kind: number;
  readonly #flows: FlowTable;
  readonly #nat: AddressMap;
  #count = 0;

  // Per-flow state, indexed by flow number (the key is in the table: the
  // guest's address and identifier, the destination it used).
  /** The ping socket, or -1. */
  readonly #fd = new Int32Array(FLOW_MAX).fill(-1);
  /** Identifier of the socket ("port"), which requests leave with. */
  readonly #socketId = new Uint16Array(FLOW_MAX);
  /** Where the socket sends, after address translation (16 bytes per flow). */
  readonly #target = new Uint8Array(FLOW_MAX * 16);
  /** Interface scope for a link-local IPv6 target (0: none). */
  readonly #scopeId = new Uint32Array(FLOW_MAX);
  /** Flow clock reading at the last request or reply, ms. */
  readonly #lastActiveMs = new Float64Array(FLOW_MAX);
  /** How far `tick` moved the flow clock ahead of the monotonic clock, ms (tests). */
  #skewMs = 0;
  /** Per-flow expiry deadlines, on the flow clock. */
  readonly #timers: DeadlineQueue;
  /** Our sockets per identifier: IPv4 at [id], IPv6 at [65536 + id]. */
  readonly #idUsers = new Uint16Array(2 * 65536);

  // I/O without copies: a request is sent straight from the guest's frame (an
  // iovec at its address); a reply is received straight into the frame that
  // carries it to the guest, after the room for the Ethernet and IP headers:
  // a slot of the tap's output when the data path shares it, else #frameBytes.
  readonly #tap: FrameOutput | undefined;
  readonly #frameBytes = sys.pinnedBuffer(ETH_HLEN + IP6_HLEN + ICMP6_MAX);
  readonly #frameAddress = sys.addressNumber(this.#frameBytes);
  readonly #frame = new PacketView(this.#frameBytes, 0);
  readonly #txMsg = sys.pinnedBuffer(MSGHDR.size);
  readonly #txMsgView = new DataView(this.#txMsg.buffer);
  readonly #txIov = sys.pinnedBuffer(16);
  readonly #txIovView = new DataView(this.#txIov.buffer);
  readonly #rxMsg = sys.pinnedBuffer(MSGHDR.size);
  readonly #rxMsgView = new DataView(this.#rxMsg.buffer);
  readonly #rxIov = sys.pinnedBuffer(16);
  readonly #rxIovView = new DataView(this.#rxIov.buffer);
  /** The buffer of the last request's frame, and its memory address. */
  #inBuffer: Uint8Array | undefined;
  #inAddress = 0;
  readonly #sa = sys.pinnedBuffer(SA6_LEN);
  readonly #peer = sys.pinnedBuffer(SA6_LEN);
  readonly #peerLen = sys.pinnedBuffer(4);
  readonly #peerLenView = new DataView(this.#peerLen.buffer);
  readonly #addr = new Uint8Array(16);
  readonly #addr4 = this.#addr.subarray(12);
  readonly #src4 = new Uint8Array(4);
  readonly #dst4 = new Uint8Array(4);
  readonly #src6 = new Uint8Array(16);
  readonly #dst6 = new Uint8Array(16);
  readonly #bindIf4: Uint8Array<ArrayBuffer> | undefined;
  readonly #bindIf6: Uint8Array<ArrayBuffer> | undefined;
  readonly #scope6: number;

  /**
   * Registers the socket kind and the expiry timer with `loop`; `tapSend` is
   * called with each reply frame (window = the frame) and must consume it before
   * returning, as the buffer is reused. `shared`: the data path's flow table and
   * address translation (by default, a table and rules of its own, for tests).
   */
  constructor(
    loop: EventLoop,
    params: IcmpParams,
    tapSend: (frame: PacketView) => void,
    shared?: IcmpShared,
  ) {
    this.#loop = loop;
    this.#p = params;
    this.#tapSend = tapSend;
    const capacity = params.capacity ?? ICMP_FLOWS_MAX;
    if (!(capacity >= 1 && capacity <= FLOW_MAX)) throw new RangeError(`ICMP flows: ${capacity}`);
    this.#tap = shared?.tap;
    sys.putU64(this.#txMsgView, MSGHDR.name, sys.addressNumber(this.#sa));
    sys.putU64(this.#txMsgView, MSGHDR.iov, sys.addressNumber(this.#txIov));
    sys.putU64(this.#txMsgView, MSGHDR.iovlen, 1);
    sys.putU64(this.#rxMsgView, MSGHDR.name, sys.addressNumber(this.#peer));
    sys.putU64(this.#rxMsgView, MSGHDR.iov, sys.addressNumber(this.#rxIov));
    sys.putU64(this.#rxMsgView, MSGHDR.iovlen, 1);
    this.#flows = shared?.flows ?? new FlowTable();
    this.#flows.share([FlowType.ICMP, FlowType.ICMPV6], capacity);
    this.#nat = shared?.nat ?? standaloneNat(params);
    this.#flows.evictable(FlowType.ICMP, this.#evictor);
    this.#flows.evictable(FlowType.ICMPV6, this.#evictor);
    this.#bindIf4 = params.outboundIf4 !== undefined ? sys.cString(params.outboundIf4) : undefined;
    this.#bindIf6 = params.outboundIf6 !== undefined ? sys.cString(params.outboundIf6) : undefined;
    this.#scope6 = params.outboundIf6 !== undefined ? sys.ifNameToIndex(params.outboundIf6) : 0;
    this.#kind = loop.defineKind("icmp", this.#onReadable);
    this.#timers = loop.deadlines("icmp", FLOW_MAX, this.#onDeadline);
  }

  /** Number of open flows. */
  get flowCount(): number {
    return this.#count;
  }

  /** For the flow table when it is full: idle time on the flow clock, and closing. */
  readonly #evictor: FlowEvictor = {
    idleFor: (index: number, nowMs: number): number => {
      if (this.#fd[index]! < 0) return -1;
      // In whole intervals since the last request or reply (see udp.ts).
      const r = CLOCK_RESOLUTION_MS;
      const idle = nowMs + this.#skewMs - this.#lastActiveMs[index]!;
      return idle >= r ? Math.floor(idle / r) * r : -1;
    },
    evict: (index: number): void => {
      if (log.debugging) log.debug(`ICMP: flow ${index} closed early to make room`);
      this.#closeFlow(index);
      this.stats.flowsEvicted++;
    },
  };

  /**
   * Handles an IPv4 packet carrying ICMP from the guest: the (validated) IPv4 header
   * is at window `ipOffset` of `pkt`, `ipHeaderLength` bytes long, followed by
   * `payloadLength` bytes of ICMP. Echo requests are sent on; anything else is
   * dropped and counted. Returns true if a request was sent.
   */
  fromTap4(
    pkt: PacketView,
    ipOffset: number,
    ipHeaderLength: number,
    payloadLength: number,
  ): boolean {
    if (!this.#p.ipv4) return this.#drop("disabled");
    const icmp = ipOffset + ipHeaderLength;
    if (
      ipHeaderLength < IP4_HLEN || payloadLength < ICMP_ECHO_HLEN || payloadLength > ICMP4_MAX ||
      !pkt.has(ipOffset, ipHeaderLength) || !pkt.has(icmp, payloadLength)
    ) {
      return this.#drop("truncated");
    }
    if (ipv4IsFragment(pkt, ipOffset)) return this.#drop("fragment");
    if (pkt.u8(icmp + ICMP_TYPE) !== ICMP_ECHO_REQUEST) return this.#drop("type");
    if (pkt.u8(icmp + ICMP_CODE) !== 0) return this.#drop("code");
    if (fold16(sum16(pkt.view, pkt.start + icmp, payloadLength)) !== 0xffff) {
      return this.#drop("checksum");
    }
    return this.#forward(pkt, ipOffset + IP4_SRC, false, icmp, payloadLength);
  }

  /**
   * Handles an IPv6 packet carrying ICMPv6 from the guest: the IPv6 header is at
   * window `ipOffset` of `pkt`, followed by `headersLength` bytes of IPv6 header and
   * extension headers (40 without any), then `payloadLength` bytes of ICMPv6. Echo
   * requests are sent on; anything else is dropped and counted. Returns true if a
   * request was sent.
   */
  fromTap6(
    pkt: PacketView,
    ipOffset: number,
    headersLength: number,
    payloadLength: number,
  ): boolean {
    if (!this.#p.ipv6) return this.#drop("disabled");
    const icmp = ipOffset + headersLength;
    if (
      headersLength < IP6_HLEN || payloadLength < ICMP_ECHO_HLEN || payloadLength > ICMP6_MAX ||
      !pkt.has(ipOffset, headersLength) || !pkt.has(icmp, payloadLength)
    ) {
      return this.#drop("truncated");
    }
    if (pkt.u8(icmp + ICMP_TYPE) !== ICMPV6_ECHO_REQUEST) return this.#drop("type");
    if (pkt.u8(icmp + ICMP_CODE) !== 0) return this.#drop("code");
    if (!verifyL4ChecksumV6(pkt, ipOffset, icmp, payloadLength, IPPROTO_ICMPV6)) {
      return this.#drop("checksum");
    }
    return this.#forward(pkt, ipOffset + IP6_SRC, true, icmp, payloadLength);
  }

  /**
   * For tests: moves the flow clock `elapsedMs` ahead of the monotonic clock and
   * closes the flows whose deadline that passes (the loop does it in real time).
   */
  tick(elapsedMs: number): void {
    this.#skewMs += elapsedMs;
    this.#timers.expire(this.#now());
  }

  /**
   * The flow clock (monotonic ms; ahead by what `tick` added, in tests). Not on
   * the per-packet path, which writes the time straight into #lastActiveMs: a
   * double returned from a call V8 does not inline is boxed on the heap.
   */
  #now(): number {
    return sys.monotonicMs() + this.#skewMs;
  }

  /** A flow's deadline came: close it if idle for the timeout, else wait for the real one. */
  readonly #onDeadline = (flow: number, _nowMs: number): void => {
    if (this.#fd[flow]! < 0) return;
    const now = this.#now();
    const due = this.#lastActiveMs[flow]! + FLOW_TIMEOUT_MS;
    if (due > now) {
      this.#timers.set(flow, due);
      return;
    }
    if (log.debugging) log.debug(`ICMP: flow ${flow} expired`);
    this.#closeFlow(flow);
  };

  /** Closes every flow's socket. The deadline queue stays with the loop. */
  close(): void {
    for (let flow = 0; flow < FLOW_MAX && this.#count > 0; flow++) {
      if (this.#fd[flow]! >= 0) this.#closeFlow(flow);
    }
  }

  #drop(reason: IcmpDrop): false {
    this.stats.drop(reason);
    return false;
  }

  /**
   * Finds or opens the flow for the request whose source and destination
   * addresses start at window `addrOffset` of `pkt`, and sends the ICMP message.
   */
  #forward(
    pkt: PacketView,
    addrOffset: number,
    v6: boolean,
    icmp: number,
    length: number,
  ): boolean {
    const addrLen = v6 ? 16 : 4;
    const id = pkt.u16(icmp + ICMP_ECHO_ID);
    const type = v6 ? FlowType.ICMPV6 : FlowType.ICMP;
    let flow = this.#flows.lookupFrame(type, pkt, addrOffset, id, addrOffset + addrLen, 0, addrLen);
    if (flow < 0) {
      flow = this.#open(pkt, addrOffset, addrLen, id, v6);
      if (flow < 0) return false;
    }
    if (pkt.bytes !== this.#inBuffer) {
      this.#inBuffer = pkt.bytes;
      this.#inAddress = sys.addressNumber(pkt.bytes);
    }
    sys.setIovecAt(this.#txIovView, 0, this.#inAddress + pkt.start + icmp, length);
    const target = this.#targetOf(flow, v6);
    const saLen = sys.encodeSockaddr(this.#sa, target, v6, 0, this.#scopeId[flow]!);
    this.#txMsgView.setUint32(MSGHDR.namelen, saLen, true);
    const sent = sys.sendmsg(this.#fd[flow]!, this.#txMsg, 0);
    if (sent < 0) {
      if (log.debugging) {
        log.debug(`ICMP: flow ${flow}: sendmsg: ${sys.errnoName(-sent)}`);
      }
      return this.#drop("send");
    }
    this.#lastActiveMs[flow] = sys.monotonicMs() + this.#skewMs;
    this.stats.requests++;
    return true;
  }

  /** The flow's translated target in #dst4 or #dst6. */
  #targetOf(flow: number, v6: boolean): Uint8Array {
    const base = flow * 16;
    if (v6) {
      for (let i = 0; i < 16; i++) this.#dst6[i] = this.#target[base + i]!;
      return this.#dst6;
    }
    for (let i = 0; i < 4; i++) this.#dst4[i] = this.#target[base + 12 + i]!;
    return this.#dst4;
  }

  /** Opens a flow: translate the destination, make and bind the socket, watch it. */
  #open(
    pkt: PacketView,
    addrOffset: number,
    addrLen: number,
    id: number,
    v6: boolean,
  ): number {
    const flows = this.#flows;
    // Translate first: nothing to undo when the destination can't be reached.
    const addr = this.#addr;
    addr.fill(0);
    const kind = this.#nat.outbound(
      pkt.bytes,
      pkt.start + addrOffset + addrLen,
      addrLen,
      0,
      false,
      v6 ? addr : this.#addr4,
    );
    let scopeId = 0;
    if (kind === OutboundKind.NONE) return this.#unreachable(pkt, addrOffset + addrLen, v6);
    if (v6 && isLinkLocal6(addr)) {
      if (this.#scope6 === 0) return this.#unreachable(pkt, addrOffset + addrLen, v6);
      scopeId = this.#scope6;
    }

    const flow = flows.alloc(v6 ? FlowType.ICMPV6 : FlowType.ICMP);
    if (flow < 0) return this.#full();
    const fd = sys.trySocket(
      v6 ? AF.INET6 : AF.INET,
      SOCK.DGRAM | SOCK.NONBLOCK | SOCK.CLOEXEC,
      v6 ? IPPROTO.ICMPV6 : IPPROTO.ICMP,
    );
    if (fd < 0) {
      flows.free(flow);
      if (log.debugging) {
        log.debug(
          `ICMP: ping socket: ${sys.errnoName(-fd)} ` +
            "(is this group in net.ipv4.ping_group_range?)",
        );
      }
      this.#drop("socket");
      return -1;
    }
    const toLoopback = kind === OutboundKind.HOST_LOOPBACK ||
      (v6 ? isLoopback6(addr) : isLoopback4(this.#addr4));
    const bindIf = toLoopback ? undefined : v6 ? this.#bindIf6 : this.#bindIf4;
    if (bindIf !== undefined) {
      const r = sys.trySetsockoptBytes(fd, SOL.SOCKET, SO.BINDTODEVICE, bindIf);
      if (r < 0) return this.#failSocket(flow, fd, "SO_BINDTODEVICE", r);
    }
    const local = toLoopback ? undefined : v6 ? this.#p.outboundAddr6 : this.#p.outboundAddr4;
    // Port = identifier, so the guest's one survives; else let the kernel choose.
    // Replies are delivered by identifier alone, whoever they come from: two of
    // our sockets must never share one, and recent kernels do not refuse that.
    const idBase = v6 ? 65536 : 0;
    let socketId = id;
    if (
      this.#idUsers[idBase + id] !== 0 ||
      sys.tryBind(fd, this.#sa, sys.encodeSockaddr(this.#sa, local, v6, id, 0)) < 0
    ) {
      const r = sys.tryBind(fd, this.#sa, sys.encodeSockaddr(this.#sa, local, v6, 0, 0));
      if (r < 0) return this.#failSocket(flow, fd, "bind", r);
      this.#peerLenView.setUint32(0, SA6_LEN, true);
      const n = sys.tryGetsockname(fd, this.#sa, this.#peerLen);
      if (n < 0) return this.#failSocket(flow, fd, "getsockname", n);
      socketId = sys.sockaddrPort(this.#sa);
      this.stats.idRemapped++;
    }
    const r = this.#loop.add(fd, this.#kind, flow, EPOLL.IN);
    if (r < 0) return this.#failSocket(flow, fd, "epoll_ctl", r);

    flows.setKey(
      flow,
      pkt.bytes,
      pkt.start + addrOffset,
      id,
      pkt.bytes,
      pkt.start + addrOffset + addrLen,
      0,
      addrLen,
    );
    this.#target.set(addr, flow * 16);
    this.#scopeId[flow] = scopeId;
    this.#fd[flow] = fd;
    this.#socketId[flow] = socketId;
    this.#idUsers[idBase + socketId]!++;
    const now = this.#now();
    this.#lastActiveMs[flow] = now;
    this.#timers.set(flow, now + FLOW_TIMEOUT_MS);
    this.#count++;
    this.stats.flowsOpened++;
    if (log.debugging) {
      const fmt = v6 ? formatIpv6 : formatIpv4;
      const at = (a: Uint8Array) =>
        v6 ? a.slice(flow * 16, flow * 16 + 16) : a.slice(flow * 16 + 12, flow * 16 + 16);
      log.debug(
        `ICMP: flow ${flow}: id ${id} ${fmt(at(flows.guestAddr))} -> ${fmt(at(flows.remoteAddr))}` +
          ` (sent to ${fmt(v6 ? addr : this.#addr4)}, id ${socketId})`,
      );
    }
    return flow;
  }

  #full(): -1 {
    if (log.debugging) log.debug(`ICMP: no room for a new flow: echo request dropped`);
    this.#drop("full");
    return -1;
  }

  #unreachable(pkt: PacketView, dstOffset: number, v6: boolean): -1 {
    if (log.debugging && v6) {
      const dst = new Uint8Array(16);
      pkt.copyOut(dstOffset, 16, dst);
      log.debug(`ICMP: link-local ${formatIpv6(dst)}: no interface`);
    }
    this.#drop("unreachable");
    return -1;
  }

  #failSocket(flow: number, fd: number, call: string, negErrno: number): -1 {
    sys.close(fd);
    this.#flows.free(flow);
    if (log.debugging) log.debug(`ICMP: ping socket: ${call}: ${sys.errnoName(-negErrno)}`);
    this.#drop("socket");
    return -1;
  }

  /** Readiness of a flow's socket: read its replies (bounded) and pass them on. */
  readonly #onReadable = (flow: number, _events: number, fd: number): void => {
    if (this.#fd[flow] !== fd) return; // stale event for a closed flow
    const v6 = this.#flows.type[flow] === FlowType.ICMPV6;
    const icmp = ETH_HLEN + (v6 ? IP6_HLEN : IP4_HLEN);
    const tap = this.#tap;
    const msg = this.#rxMsgView;
    for (let i = 0; i < RECV_BATCH; i++) {
      let frame: PacketView;
      if (tap !== undefined) {
        frame = tap.next();
        sys.setIovecAt(this.#rxIovView, 0, tap.slotAddress(0, icmp), TAP_FRAME_MAX - icmp);
      } else {
        frame = this.#frame;
        sys.setIovecAt(this.#rxIovView, 0, this.#frameAddress + icmp, v6 ? ICMP6_MAX : ICMP4_MAX);
      }
      msg.setUint32(MSGHDR.namelen, SA6_LEN, true);
      msg.setUint32(MSGHDR.flags, 0, true);
      const n = sys.recvmsg(fd, this.#rxMsg, MSG.DONTWAIT);
      if (n < 0) {
        if (n !== -sys.Errno.EAGAIN && n !== -sys.Errno.EINTR) {
          // An ICMP error for this socket (e.g. host unreachable) ends up here.
          if (log.debugging) log.debug(`ICMP: flow ${flow}: recvmsg: ${sys.errnoName(-n)}`);
          this.stats.drop("recv");
        }
        return;
      }
      if ((msg.getUint32(MSGHDR.flags, true) & MSG.TRUNC) !== 0) {
        this.stats.drop("reply"); // larger than a frame can carry
        continue;
      }
      if (this.#reply(flow, v6, n, frame)) {
        if (tap !== undefined) tap.queue(icmp + n);
        else this.#tapSend(frame);
      }
    }
  };

  /**
   * Turns the `length`-byte echo reply just received for `flow` after the
   * headers' room of `frame` into a whole frame: whether it is one to send.
   */
  #reply(flow: number, v6: boolean, length: number, frame: PacketView): boolean {
    const ipOffset = ETH_HLEN;
    const icmp = ETH_HLEN + (v6 ? IP6_HLEN : IP4_HLEN);
    frame.clearOverflow();
    frame.setLength(icmp + length);
    if (length < ICMP_ECHO_HLEN) {
      this.stats.drop("reply");
      return false;
    }
    const type = frame.u8(icmp + ICMP_TYPE);
    if (type !== (v6 ? ICMPV6_ECHO_REPLY : ICMP_ECHO_REPLY)) {
      this.stats.drop("reply");
      return false;
    }
    if (!this.#fromTarget(flow, v6)) {
      this.stats.drop("foreign");
      return false;
    }
    this.#lastActiveMs[flow] = sys.monotonicMs() + this.#skewMs;

    // From the address the guest pinged, to the address it pinged from.
    const flows = this.#flows;
    const base = flow * 16;
    const guest = this.#p.guest;
    frame.put16(icmp + ICMP_ECHO_ID, flows.guestPort[flow]!);
    frame.put16(icmp + ICMP_CSUM, 0);
    const abs = frame.start;
    if (v6) {
      for (let i = 0; i < 16; i++) {
        this.#src6[i] = flows.remoteAddr[base + i]!;
        this.#dst6[i] = flows.guestAddr[base + i]!;
      }
      writeEthHeader(frame, 0, guest.mac, this.#p.ourMac, ETH_P_IPV6);
      writeIpv6Header(frame, ipOffset, this.#src6, this.#dst6, IPPROTO_ICMPV6, length, REPLY_TTL);
      const csum = l4ChecksumV6(frame.view, abs + ipOffset, abs + icmp, length, IPPROTO_ICMPV6);
      frame.put16(icmp + ICMP_CSUM, csum);
    } else {
      for (let i = 0; i < 4; i++) {
        this.#src4[i] = flows.remoteAddr[base + 12 + i]!;
        this.#dst4[i] = flows.guestAddr[base + 12 + i]!;
      }
      writeEthHeader(frame, 0, guest.mac, this.#p.ourMac, ETH_P_IP);
      writeIpv4Header(frame, ipOffset, this.#src4, this.#dst4, IPPROTO_ICMP, length, REPLY_TTL);
      frame.put16(icmp + ICMP_CSUM, finish(sum16(frame.view, abs + icmp, length)));
    }
    if (frame.overflow) {
      this.stats.drop("reply");
      return false;
    }
    this.stats.replies++;
    return true;
  }

  /** True if the sender in #peer is the flow's target. */
  #fromTarget(flow: number, v6: boolean): boolean {
    const peer = this.#peer;
    const target = this.#target;
    const base = flow * 16;
    if (v6) {
      if (peer[0] !== AF.INET6 || peer[1] !== 0) return false;
      for (let i = 0; i < 16; i++) if (peer[8 + i] !== target[base + i]) return false;
      return true;
    }
    if (peer[0] !== AF.INET || peer[1] !== 0) return false;
    for (let i = 0; i < 4; i++) if (peer[4 + i] !== target[base + 12 + i]) return false;
    return true;
  }

  #closeFlow(flow: number): void {
    const fd = this.#fd[flow]!;
    this.#loop.remove(fd);
    sys.close(fd);
    this.#fd[flow] = -1;
    this.#timers.clear(flow);
    const v6 = this.#flows.type[flow] === FlowType.ICMPV6;
    this.#idUsers[(v6 ? 65536 : 0) + this.#socketId[flow]!]!--;
    this.#flows.free(flow);
    this.#count--;
    this.stats.flowsClosed++;
  }
}
