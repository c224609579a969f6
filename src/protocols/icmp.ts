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
 * Destinations are translated before sending: the `mapHostLoopback` address goes
 * to 127.0.0.1 / ::1 (the host itself answers), the `mapGuestAddr` address to the
 * address the guest was assigned, which the host owns too. A link-local IPv6
 * destination that no mapping covers needs an interface: it goes out with the
 * scope of the IPv6 outbound interface, or is dropped when there is none. The
 * outbound address (-o) and interface (SO_BINDTODEVICE) apply to every flow
 * except those to the host's loopback, which would not be reachable through them.
 *
 * Replies are read when the socket is readable, in a bounded batch per event,
 * straight into a preallocated frame buffer just past the room for the Ethernet
 * and IP headers, which are then written in front of them. The reply goes from the
 * address the guest pinged (so an answer from 127.0.0.1 appears to come from the
 * mapped address) to the source address the guest used, with the guest's
 * identifier restored and the checksum recomputed (over the pseudo header for
 * ICMPv6). A datagram whose sender is not the flow's target is dropped.
 *
 * The table is fixed-size and allocated at start: flows live in slots, found by a
 * keyed hash over (version, identifier, addresses) with chaining through slot
 * numbers. Time is a coarse clock advanced by the sweep timer, so the data path
 * makes no clock call; a flow idle for FLOW_TIMEOUT_MS is closed at the next
 * sweep. Nothing on the data path allocates or throws: bad frames and failures
 * are counted in `stats` (and described in the debug log).
 *
 * Ping sockets need the process's group inside `net.ipv4.ping_group_range`
 * (the same setting covers ICMPv6); otherwise socket() fails with EACCES and every
 * request is dropped as "socket".
 */

import { isLoopback4, isLoopback6 } from "../addr.ts";
import { AF, EPOLL, IPPROTO, MSG, SO, SOCK, SOL } from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import { log } from "../log.ts";
import type { EventLoop } from "../loop.ts";
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

/** Default flow table size (flows). */
export const ICMP_FLOWS_MAX = 1024;
/** Inactivity after which a flow is closed, ms. */
export const FLOW_TIMEOUT_MS = 60_000;
/** Interval of the expiry sweep, ms (also the resolution of the flow clock). */
export const SWEEP_INTERVAL_MS = 5_000;

/** Echo replies read from one socket per readiness event, at most. */
const RECV_BATCH = 32;
/** Largest ICMP message in an IPv4 packet (total length is 16 bits). */
const ICMP4_MAX = 65535 - IP4_HLEN;
/** Largest ICMPv6 message (payload length is 16 bits; no jumbograms). */
const ICMP6_MAX = 65535;
/** Hop limit / TTL of replies we write: they reach the guest directly. */
const REPLY_TTL = 255;
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
  | "send" // sendto failed
  | "recv" // recvfrom failed with something other than EAGAIN
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

  constructor() {
    super(DROP_REASONS);
  }
}

/** One echo conversation; slots are preallocated and reused. */
class EchoFlow {
  /** The ping socket, or -1 when the slot is free. */
  fd = -1;
  v6 = false;
  /** Identifier the guest chose (host number). */
  guestId = 0;
  /** Identifier of the socket ("port"), which requests leave with. */
  socketId = 0;
  /** Source address of the guest's requests: replies go there. */
  readonly guestAddr = new Uint8Array(16);
  readonly guestAddr4 = this.guestAddr.subarray(0, 4);
  /** Destination the guest used: replies come from there. */
  readonly origDst = new Uint8Array(16);
  readonly origDst4 = this.origDst.subarray(0, 4);
  /** Where the socket sends, after address translation. */
  readonly target = new Uint8Array(16);
  readonly target4 = this.target.subarray(0, 4);
  /** Interface scope for a link-local IPv6 target (0: none). */
  scopeId = 0;
  /** Flow clock reading at the last request or reply, ms. */
  lastActiveMs = 0;
  /** Hash bucket holding this flow, and the next slot in its chain (-1: end). */
  bucket = -1;
  next = -1;
}

const IP4_LOOPBACK = new Uint8Array([127, 0, 0, 1]);
const IP6_LOOPBACK = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

function bytesEqual(a: Uint8Array, b: Uint8Array | undefined): boolean {
  if (b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Forwards the guest's echo requests through ping sockets and its replies back. */
export class IcmpEcho {
  /** Counters, for tests and debugging. */
  readonly stats: IcmpStats = new IcmpStats();

  readonly #loop: EventLoop;
  readonly #p: IcmpParams;
  readonly #tapSend: (frame: PacketView) => void;
  readonly #kind: number;

  /**
   * The slots used so far: slot objects are made on first use, and the free list
   * hands out the lowest slots first, so the used ones are always a prefix. A
   * slot, once made, is reused for good: no allocation per request.
   */
  readonly #flows: EchoFlow[];
  readonly #capacity: number;
  readonly #free: Int32Array;
  #freeCount: number;
  readonly #buckets: Int32Array;
  readonly #hashKey: number;
  #nowMs = 0;
  /** Our sockets per identifier: IPv4 at [id], IPv6 at [65536 + id]. */
  readonly #idUsers = new Uint16Array(2 * 65536);

  // Preallocated I/O buffers: requests are copied to #tx for sendto; replies are
  // received in place inside #frameBytes, after the headers' room.
  readonly #tx = sys.pinnedBuffer(ICMP6_MAX);
  readonly #frameBytes = sys.pinnedBuffer(ETH_HLEN + IP6_HLEN + ICMP6_MAX);
  readonly #frame = new PacketView(this.#frameBytes, 0);
  readonly #rx4 = this.#frameBytes.subarray(ETH_HLEN + IP4_HLEN);
  readonly #rx6 = this.#frameBytes.subarray(ETH_HLEN + IP6_HLEN);
  readonly #sa = sys.pinnedBuffer(SA6_LEN);
  readonly #peer = sys.pinnedBuffer(SA6_LEN);
  readonly #peerLen = sys.pinnedBuffer(4);
  readonly #bindIf4: Uint8Array<ArrayBuffer> | undefined;
  readonly #bindIf6: Uint8Array<ArrayBuffer> | undefined;
  readonly #scope6: number;

  /**
   * Registers the socket kind and the expiry timer with `loop`; `tapSend` is
   * called with each reply frame (window = the frame) and must consume it before
   * returning, as the buffer is reused.
   */
  constructor(loop: EventLoop, params: IcmpParams, tapSend: (frame: PacketView) => void) {
    this.#loop = loop;
    this.#p = params;
    this.#tapSend = tapSend;
    const capacity = params.capacity ?? ICMP_FLOWS_MAX;
    if (!(capacity >= 1 && capacity <= 1 << 20)) throw new RangeError(`ICMP flows: ${capacity}`);
    this.#flows = [];
    this.#capacity = capacity;
    this.#free = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.#free[i] = capacity - 1 - i; // pop order: slot 0 first
    this.#freeCount = capacity;
    let buckets = 1;
    while (buckets < capacity * 2) buckets <<= 1;
    this.#buckets = new Int32Array(buckets).fill(-1);
    // Keyed hash: the guest cannot aim its identifiers at one chain.
    this.#hashKey = crypto.getRandomValues(new Uint32Array(1))[0]!;
    this.#bindIf4 = params.outboundIf4 !== undefined ? sys.cString(params.outboundIf4) : undefined;
    this.#bindIf6 = params.outboundIf6 !== undefined ? sys.cString(params.outboundIf6) : undefined;
    this.#scope6 = params.outboundIf6 !== undefined ? sys.ifNameToIndex(params.outboundIf6) : 0;
    this.#kind = loop.defineKind("icmp", this.#onReadable);
    loop.addTimer("icmp", SWEEP_INTERVAL_MS, this.#onTimer);
  }

  /** Number of open flows. */
  get flowCount(): number {
    return this.#capacity - this.#freeCount;
  }

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
   * Advances the flow clock by `elapsedMs` and closes flows idle for
   * FLOW_TIMEOUT_MS or more. The sweep timer calls it; tests may too.
   */
  tick(elapsedMs: number): void {
    this.#nowMs += elapsedMs;
    const flows = this.#flows;
    for (let slot = 0; slot < flows.length; slot++) {
      const flow = flows[slot]!;
      if (flow.fd >= 0 && this.#nowMs - flow.lastActiveMs >= FLOW_TIMEOUT_MS) {
        if (log.debugging) log.debug(`ICMP: flow ${slot} expired`);
        this.#closeFlow(slot);
      }
    }
  }

  /** Closes every flow's socket. The loop's timer stays with the loop. */
  close(): void {
    for (let slot = 0; slot < this.#flows.length; slot++) {
      if (this.#flows[slot]!.fd >= 0) this.#closeFlow(slot);
    }
  }

  #drop(reason: IcmpDrop): false {
    this.stats.drop(reason);
    return false;
  }

  readonly #onTimer = (expirations: number): void => {
    this.tick(expirations * SWEEP_INTERVAL_MS);
  };

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
    const bucket = this.#hash(pkt, addrOffset, 2 * addrLen, id, v6);
    let slot = this.#lookup(pkt, addrOffset, addrLen, id, v6, bucket);
    if (slot < 0) {
      slot = this.#open(pkt, addrOffset, addrLen, id, v6, bucket);
      if (slot < 0) return false;
    }
    const flow = this.#flows[slot]!;
    pkt.copyOut(icmp, length, this.#tx);
    const saLen = sys.encodeSockaddr(this.#sa, flow.target, v6, 0, flow.scopeId);
    const sent = sys.sendto(flow.fd, this.#tx, length, 0, this.#sa, saLen);
    if (sent < 0) {
      if (log.debugging) {
        log.debug(`ICMP: flow ${slot}: sendto: ${sys.errnoName(-sent)}`);
      }
      return this.#drop("send");
    }
    flow.lastActiveMs = this.#nowMs;
    this.stats.requests++;
    return true;
  }

  /** Bucket for (version, id, source and destination addresses). */
  #hash(pkt: PacketView, addrOffset: number, count: number, id: number, v6: boolean): number {
    const b = pkt.bytes;
    const base = pkt.start + addrOffset;
    let h = Math.imul(this.#hashKey ^ (v6 ? 0x60000 : 0x40000) ^ id, 0x9e3779b1);
    for (let i = 0; i < count; i++) h = Math.imul(h ^ b[base + i]!, 0x01000193);
    h ^= h >>> 15;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    return h & (this.#buckets.length - 1);
  }

  #lookup(
    pkt: PacketView,
    addrOffset: number,
    addrLen: number,
    id: number,
    v6: boolean,
    bucket: number,
  ): number {
    for (let slot = this.#buckets[bucket]!; slot >= 0;) {
      const flow = this.#flows[slot]!;
      if (
        flow.v6 === v6 && flow.guestId === id &&
        pkt.equals(addrOffset, v6 ? flow.guestAddr : flow.guestAddr4) &&
        pkt.equals(addrOffset + addrLen, v6 ? flow.origDst : flow.origDst4)
      ) {
        return slot;
      }
      slot = flow.next;
    }
    return -1;
  }

  /** Opens a flow: translate the destination, make and bind the socket, watch it. */
  #open(
    pkt: PacketView,
    addrOffset: number,
    addrLen: number,
    id: number,
    v6: boolean,
    bucket: number,
  ): number {
    if (this.#freeCount === 0) {
      if (log.debugging) {
        log.debug(`ICMP: flow table full (${this.#capacity} flows): echo request dropped`);
      }
      this.#drop("full");
      return -1;
    }
    const slot = this.#free[this.#freeCount - 1]!;
    if (slot === this.#flows.length) this.#flows.push(new EchoFlow());
    const flow = this.#flows[slot]!;
    flow.v6 = v6;
    flow.guestId = id;
    flow.guestAddr.fill(0);
    flow.origDst.fill(0);
    pkt.copyOut(addrOffset, addrLen, flow.guestAddr);
    pkt.copyOut(addrOffset + addrLen, addrLen, flow.origDst);
    if (!this.#translate(flow)) {
      if (log.debugging) log.debug(`ICMP: link-local ${formatIpv6(flow.origDst)}: no interface`);
      this.#drop("unreachable");
      return -1;
    }

    const fd = sys.trySocket(
      v6 ? AF.INET6 : AF.INET,
      SOCK.DGRAM | SOCK.NONBLOCK | SOCK.CLOEXEC,
      v6 ? IPPROTO.ICMPV6 : IPPROTO.ICMP,
    );
    if (fd < 0) {
      if (log.debugging) {
        log.debug(
          `ICMP: ping socket: ${sys.errnoName(-fd)} ` +
            "(is this group in net.ipv4.ping_group_range?)",
        );
      }
      this.#drop("socket");
      return -1;
    }
    const toLoopback = v6 ? isLoopback6(flow.target) : isLoopback4(flow.target4);
    const bindIf = toLoopback ? undefined : v6 ? this.#bindIf6 : this.#bindIf4;
    if (bindIf !== undefined) {
      const r = sys.trySetsockoptBytes(fd, SOL.SOCKET, SO.BINDTODEVICE, bindIf);
      if (r < 0) return this.#failSocket(fd, "SO_BINDTODEVICE", r);
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
      if (r < 0) return this.#failSocket(fd, "bind", r);
      const n = sys.tryGetsockname(fd, this.#sa, this.#peerLen);
      if (n < 0) return this.#failSocket(fd, "getsockname", n);
      socketId = sys.sockaddrPort(this.#sa);
      this.stats.idRemapped++;
    }
    const r = this.#loop.add(fd, this.#kind, slot, EPOLL.IN);
    if (r < 0) return this.#failSocket(fd, "epoll_ctl", r);

    this.#freeCount--;
    flow.fd = fd;
    flow.socketId = socketId;
    this.#idUsers[idBase + socketId]!++;
    flow.lastActiveMs = this.#nowMs;
    flow.bucket = bucket;
    flow.next = this.#buckets[bucket]!;
    this.#buckets[bucket] = slot;
    this.stats.flowsOpened++;
    if (log.debugging) {
      const fmt = v6 ? formatIpv6 : formatIpv4;
      log.debug(
        `ICMP: flow ${slot}: id ${id} ${fmt(flow.guestAddr)} -> ${fmt(flow.origDst)}` +
          ` (sent to ${fmt(flow.target)}, id ${socketId})`,
      );
    }
    return slot;
  }

  #failSocket(fd: number, call: string, negErrno: number): -1 {
    sys.close(fd);
    if (log.debugging) log.debug(`ICMP: ping socket: ${call}: ${sys.errnoName(-negErrno)}`);
    this.#drop("socket");
    return -1;
  }

  /** Sets `flow.target` (and scope) from `flow.origDst`; false if unreachable. */
  #translate(flow: EchoFlow): boolean {
    const p = this.#p;
    flow.target.fill(0);
    flow.scopeId = 0;
    if (!flow.v6) {
      const dst = flow.origDst4;
      if (bytesEqual(dst, p.mapHostLoopback4)) flow.target4.set(IP4_LOOPBACK);
      else if (bytesEqual(dst, p.mapGuestAddr4) && p.guestAssigned4 !== undefined) {
        flow.target4.set(p.guestAssigned4);
      } else flow.target4.set(dst);
      return true;
    }
    const dst = flow.origDst;
    if (bytesEqual(dst, p.mapHostLoopback6)) flow.target.set(IP6_LOOPBACK);
    else if (bytesEqual(dst, p.mapGuestAddr6) && p.guestAssigned6 !== undefined) {
      flow.target.set(p.guestAssigned6);
    } else flow.target.set(dst);
    if (isLinkLocal6(flow.target)) {
      if (this.#scope6 === 0) return false;
      flow.scopeId = this.#scope6;
    }
    return true;
  }

  /** Readiness of a flow's socket: read its replies (bounded) and pass them on. */
  readonly #onReadable = (slot: number, _events: number, fd: number): void => {
    const flow = this.#flows[slot];
    if (flow === undefined || flow.fd !== fd) return; // stale event for a closed flow
    const rx = flow.v6 ? this.#rx6 : this.#rx4;
    const max = flow.v6 ? ICMP6_MAX : ICMP4_MAX;
    const peerLen = this.#peerLen;
    for (let i = 0; i < RECV_BATCH; i++) {
      peerLen[0] = SA6_LEN;
      peerLen[1] = 0;
      peerLen[2] = 0;
      peerLen[3] = 0;
      const n = sys.recvfrom(fd, rx, max, MSG.DONTWAIT, this.#peer, peerLen);
      if (n < 0) {
        if (n !== -sys.Errno.EAGAIN && n !== -sys.Errno.EINTR) {
          // An ICMP error for this socket (e.g. host unreachable) ends up here.
          if (log.debugging) log.debug(`ICMP: flow ${slot}: recvfrom: ${sys.errnoName(-n)}`);
          this.stats.drop("recv");
        }
        return;
      }
      this.#reply(flow, n);
    }
  };

  /** Turns the `length`-byte echo reply just received for `flow` into a frame. */
  #reply(flow: EchoFlow, length: number): void {
    const v6 = flow.v6;
    const frame = this.#frame;
    const ipOffset = ETH_HLEN;
    const icmp = ETH_HLEN + (v6 ? IP6_HLEN : IP4_HLEN);
    frame.setWindow(0, icmp + length);
    if (length < ICMP_ECHO_HLEN) {
      this.stats.drop("reply");
      return;
    }
    const type = frame.u8(icmp + ICMP_TYPE);
    if (type !== (v6 ? ICMPV6_ECHO_REPLY : ICMP_ECHO_REPLY)) {
      this.stats.drop("reply");
      return;
    }
    if (!this.#fromTarget(flow)) {
      this.stats.drop("foreign");
      return;
    }
    flow.lastActiveMs = this.#nowMs;

    const guest = this.#p.guest;
    frame.put16(icmp + ICMP_ECHO_ID, flow.guestId);
    frame.put16(icmp + ICMP_CSUM, 0);
    const abs = frame.start;
    if (v6) {
      writeEthHeader(frame, 0, guest.mac, this.#p.ourMac, ETH_P_IPV6);
      writeIpv6Header(
        frame,
        ipOffset,
        flow.origDst,
        flow.guestAddr,
        IPPROTO_ICMPV6,
        length,
        REPLY_TTL,
      );
      const csum = l4ChecksumV6(frame.view, abs + ipOffset, abs + icmp, length, IPPROTO_ICMPV6);
      frame.put16(icmp + ICMP_CSUM, csum);
    } else {
      writeEthHeader(frame, 0, guest.mac, this.#p.ourMac, ETH_P_IP);
      writeIpv4Header(
        frame,
        ipOffset,
        flow.origDst4,
        flow.guestAddr4,
        IPPROTO_ICMP,
        length,
        REPLY_TTL,
      );
      frame.put16(icmp + ICMP_CSUM, finish(sum16(frame.view, abs + icmp, length)));
    }
    if (frame.overflow) {
      this.stats.drop("reply");
      return;
    }
    this.stats.replies++;
    this.#tapSend(frame);
  }

  /** True if the sender in #peer is the flow's target. */
  #fromTarget(flow: EchoFlow): boolean {
    const peer = this.#peer;
    if (flow.v6) {
      if (peer[0] !== AF.INET6 || peer[1] !== 0) return false;
      for (let i = 0; i < 16; i++) if (peer[8 + i] !== flow.target[i]) return false;
      return true;
    }
    if (peer[0] !== AF.INET || peer[1] !== 0) return false;
    for (let i = 0; i < 4; i++) if (peer[4 + i] !== flow.target[i]) return false;
    return true;
  }

  #closeFlow(slot: number): void {
    const flow = this.#flows[slot]!;
    this.#loop.remove(flow.fd);
    sys.close(flow.fd);
    flow.fd = -1;
    this.#idUsers[(flow.v6 ? 65536 : 0) + flow.socketId]!--;
    // Unlink from the hash chain.
    let prev = -1;
    for (let s = this.#buckets[flow.bucket]!; s >= 0; s = this.#flows[s]!.next) {
      if (s === slot) {
        if (prev < 0) this.#buckets[flow.bucket] = flow.next;
        else this.#flows[prev]!.next = flow.next;
        break;
      }
      prev = s;
    }
    flow.next = -1;
    flow.bucket = -1;
    this.#free[this.#freeCount++] = slot;
    this.stats.flowsClosed++;
  }
}
