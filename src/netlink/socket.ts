/**
 * rtnetlink over a socket: the handle, one request and its reply, and the dumps of
 * links, addresses and routes.
 *
 * Theory of operation: a `NetlinkHandle` is one NETLINK_ROUTE socket plus two
 * preallocated buffers (request, reply) and a sequence counter. The network
 * namespace a handle talks to is the one its socket was opened in: to configure a
 * target namespace, open the handle while inside it (or in a child that joined it)
 * and pass that handle around. Opening and closing are explicit; nothing here
 * keeps a global socket. Receive loops are bounded twice: by a receive timeout on
 * the socket (a kernel that never answers gives an error, not a hang) and by a
 * maximum number of datagrams per request. Messages are built and parsed by
 * codec.ts.
 */

import {
  bind,
  close,
  Errno,
  getsockname,
  recvfrom,
  sendto,
  setsockoptBytes,
  socket,
  SysError,
  trySetsockoptInt,
} from "../ffi/sys.ts";
import { AF, MSG, SOCK, SOL } from "../ffi/layout.ts";
import {
  type AddressInfo,
  addressSize,
  consumeReplyDatagram,
  IFADDRMSG_SIZE,
  IFINFOMSG_SIZE,
  type LinkInfo,
  NETLINK_ROUTE,
  type NetlinkMessage,
  NetlinkMessageWriter,
  NetlinkReplyError,
  NLM_F,
  parseAddress,
  parseLink,
  parseRoute,
  type RouteInfo,
  RT_TABLE,
  RTM,
  RTM_F_CLONED,
  RTMSG_SIZE,
} from "./codec.ts";

/** Socket options at level SOL_NETLINK (<linux/netlink.h>). */
const NETLINK_OPT = { CAP_ACK: 10, EXT_ACK: 11 } as const;
/** SO_RCVTIMEO (the 64-bit time_t form on x86_64 and aarch64): takes a struct timeval. */
const SO_RCVTIMEO = 20;
/** struct sockaddr_nl: family u16, pad u16, pid u32, groups u32. */
const SOCKADDR_NL_SIZE = 12;
/** Request buffer size in bytes: room for any request built here (~100 nexthops). */
const REQUEST_BUFFER_SIZE = 8192;
/** Reply buffer size in bytes: larger than any dump datagram the kernel sends (≤ 32 KiB). */
const REPLY_BUFFER_SIZE = 65536;
/** Default receive timeout for one reply datagram, in milliseconds. */
const DEFAULT_TIMEOUT_MS = 5000;
/** Upper bound on datagrams read for one request, so no reply can loop us forever. */
const MAX_REPLY_DATAGRAMS = 1 << 20;
/** Attempts for a dump that the kernel flags as interrupted by a concurrent change. */
const DUMP_ATTEMPTS = 4;

// --- the handle -------------------------------------------------------------------------

/**
 * An open NETLINK_ROUTE socket and its buffers. The network namespace it acts on is
 * the one it was opened in. Close it with `closeNetlink`.
 */
export interface NetlinkHandle {
  /** The socket descriptor. Owned by the handle. */
  readonly fd: number;
  /** Our port ID, as the kernel assigned it at bind time. */
  readonly portId: number;
  /** Receive timeout per reply datagram, in milliseconds. */
  readonly timeoutMs: number;
  /** Where requests are built. */
  readonly writer: NetlinkMessageWriter;
  /** Where replies are received. */
  readonly reply: Uint8Array<ArrayBuffer>;
  /** Scratch sockaddr_nl for sendto/recvfrom. */
  readonly peer: Uint8Array<ArrayBuffer>;
  /** Scratch socklen_t for recvfrom. */
  readonly peerLength: Uint8Array<ArrayBuffer>;
  /** The sequence number of the last request sent. */
  seq: number;
  /** Set once `closeNetlink` ran. */
  closed: boolean;
}

/**
 * Open an rtnetlink socket in the calling thread's current network namespace, or
 * set up `socketFd`, an rtnetlink socket created elsewhere (in another network
 * namespace, which it then talks to). `timeoutMs` bounds the wait for each reply
 * datagram. Throws `SysError` on failure.
 */
export function openNetlink(timeoutMs = DEFAULT_TIMEOUT_MS, socketFd?: number): NetlinkHandle {
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new RangeError(`openNetlink: timeout must be a positive number of ms, not ${timeoutMs}`);
  }
  // A socket made elsewhere (in another network namespace) talks to that namespace.
  const fd = socketFd ?? socket(AF.NETLINK, SOCK.RAW | SOCK.CLOEXEC, NETLINK_ROUTE);
  try {
    const timeval = new Uint8Array(16);
    const tv = new DataView(timeval.buffer);
    const us = Math.max(1, Math.round(timeoutMs * 1000));
    tv.setBigInt64(0, BigInt(Math.floor(us / 1_000_000)), true);
    tv.setBigInt64(8, BigInt(us % 1_000_000), true);
    setsockoptBytes(fd, SOL.SOCKET, SO_RCVTIMEO, timeval);
    // Optional: error text from the kernel, and errors without our request echoed.
    trySetsockoptInt(fd, SOL.NETLINK, NETLINK_OPT.EXT_ACK, 1);
    trySetsockoptInt(fd, SOL.NETLINK, NETLINK_OPT.CAP_ACK, 1);
    const addr = new Uint8Array(SOCKADDR_NL_SIZE);
    addr[0] = AF.NETLINK;
    // bind(2) with port ID 0: the kernel picks a unique one, which we read back.
    bind(fd, addr, SOCKADDR_NL_SIZE, "netlink");
    const bound = new Uint8Array(SOCKADDR_NL_SIZE);
    getsockname(fd, bound);
    const portId = new DataView(bound.buffer).getUint32(4, true);
    const peer = new Uint8Array(SOCKADDR_NL_SIZE);
    return {
      fd,
      portId,
      timeoutMs,
      writer: new NetlinkMessageWriter(new Uint8Array(REQUEST_BUFFER_SIZE)),
      reply: new Uint8Array(REPLY_BUFFER_SIZE),
      peer,
      peerLength: new Uint8Array(4),
      seq: Math.floor(Date.now() / 1000) >>> 0,
      closed: false,
    };
  } catch (e) {
    close(fd);
    throw e;
  }
}

/** Close the handle's socket. Closing twice is harmless. */
export function closeNetlink(h: NetlinkHandle): void {
  if (h.closed) return;
  h.closed = true;
  close(h.fd);
}

const KERNEL_ADDRESS = (() => {
  const a = new Uint8Array(SOCKADDR_NL_SIZE);
  a[0] = AF.NETLINK;
  return a;
})();

/**
 * Start a request of `type` with `flags` in the handle's writer, with a fresh
 * sequence number; fill it through `h.writer`, then call `sendRequest`. For
 * requests this module has no function for.
 */
export function startRequest(h: NetlinkHandle, type: number, flags: number): void {
  if (h.closed) throw new Error("netlink handle used after closeNetlink");
  h.seq = (h.seq + 1) >>> 0;
  h.writer.begin(type, flags, h.seq);
}

/**
 * Send the request built in the handle's writer, then read datagrams until its
 * reply ends (NLMSG_DONE, or the NLMSG_ERROR acknowledgement for NLM_F_ACK), giving
 * each data message to `onData`. `request` names it in errors. Throws
 * `NetlinkError` if the kernel refuses it and `NetlinkReplyError` if the reply is
 * malformed or does not come within the handle's timeout.
 */
export function sendRequest(
  h: NetlinkHandle,
  request: string,
  onData: (msg: NetlinkMessage) => void,
): void {
  const length = h.writer.end();
  let sent: number;
  do {
    sent = sendto(h.fd, h.writer.buf, length, 0, KERNEL_ADDRESS, SOCKADDR_NL_SIZE);
  } while (sent === -Errno.EINTR);
  if (sent < 0) throw new SysError("sendto", -sent, `netlink ${request}`);
  if (sent !== length) {
    throw new NetlinkReplyError(request, `short send (${sent} of ${length} bytes)`);
  }
  const peerView = new DataView(h.peer.buffer);
  for (let datagrams = 0; datagrams < MAX_REPLY_DATAGRAMS; datagrams++) {
    new DataView(h.peerLength.buffer).setUint32(0, SOCKADDR_NL_SIZE, true);
    const got = recvfrom(h.fd, h.reply, h.reply.length, MSG.TRUNC, h.peer, h.peerLength);
    if (got === -Errno.EINTR) continue;
    if (got === -Errno.EAGAIN) {
      throw new NetlinkReplyError(request, `no reply from the kernel within ${h.timeoutMs} ms`);
    }
    if (got < 0) throw new SysError("recvfrom", -got, `netlink ${request}`);
    if (got > h.reply.length) {
      throw new NetlinkReplyError(
        request,
        `reply datagram of ${got} bytes exceeds the ${h.reply.length}-byte buffer`,
      );
    }
    if (peerView.getUint32(4, true) !== 0) continue; // not from the kernel
    if (consumeReplyDatagram(h.reply, got, h.seq, h.portId, request, onData) === "done") return;
  }
  throw new NetlinkReplyError(request, `reply did not end within ${MAX_REPLY_DATAGRAMS} datagrams`);
}

/** Run a dump, retrying while the kernel flags it as interrupted by a concurrent change. */
function dump<T>(
  h: NetlinkHandle,
  request: string,
  build: () => void,
  expectType: number,
  decode: (payload: Uint8Array) => T | undefined,
): T[] {
  for (let attempt = 0; attempt < DUMP_ATTEMPTS; attempt++) {
    const out: T[] = [];
    let interrupted = false;
    build();
    sendRequest(h, request, (msg) => {
      if ((msg.flags & NLM_F.DUMP_INTR) !== 0) interrupted = true;
      if (msg.type !== expectType) return;
      const item = decode(msg.payload);
      if (item !== undefined) out.push(item);
    });
    if (!interrupted) return out;
  }
  throw new NetlinkReplyError(request, `dump interrupted ${DUMP_ATTEMPTS} times by changes`);
}

// --- dumps ------------------------------------------------------------------------------

/** All network interfaces of the handle's namespace, in kernel order. */
export function dumpLinks(h: NetlinkHandle): LinkInfo[] {
  const request = "RTM_GETLINK dump";
  return dump(
    h,
    request,
    () => {
      startRequest(h, RTM.GETLINK, NLM_F.REQUEST | NLM_F.DUMP);
      h.writer.reserve(IFINFOMSG_SIZE);
    },
    RTM.NEWLINK,
    (payload) => parseLink(payload, request),
  );
}

/** All addresses of `family` (AF.INET, AF.INET6, or AF.UNSPEC for both), in kernel order. */
export function dumpAddresses(h: NetlinkHandle, family: number = AF.UNSPEC): AddressInfo[] {
  const request = `RTM_GETADDR dump (${familyName(family)})`;
  return dump(
    h,
    request,
    () => {
      startRequest(h, RTM.GETADDR, NLM_F.REQUEST | NLM_F.DUMP);
      const at = h.writer.reserve(IFADDRMSG_SIZE);
      h.writer.view.setUint8(at, family);
    },
    RTM.NEWADDR,
    (payload) => {
      const a = parseAddress(payload, request);
      return family === AF.UNSPEC || a.family === family ? a : undefined;
    },
  );
}

/**
 * Routes of the main table for `family` (AF.INET or AF.INET6), in kernel order;
 * cached (cloned) routes are left out.
 */
export function dumpRoutes(h: NetlinkHandle, family: number): RouteInfo[] {
  const request = `RTM_GETROUTE dump (${familyName(family)})`;
  addressSize(family, request);
  return dump(
    h,
    request,
    () => {
      startRequest(h, RTM.GETROUTE, NLM_F.REQUEST | NLM_F.DUMP);
      const at = h.writer.reserve(RTMSG_SIZE);
      h.writer.view.setUint8(at, family);
    },
    RTM.NEWROUTE,
    (payload) => {
      const r = parseRoute(payload, request);
      if (r.family !== family || r.table !== RT_TABLE.MAIN) return undefined;
      return (r.flags & RTM_F_CLONED) !== 0 ? undefined : r;
    },
  );
}

function familyName(family: number): string {
  if (family === AF.INET) return "IPv4";
  if (family === AF.INET6) return "IPv6";
  if (family === AF.UNSPEC) return "all families";
  return `family ${family}`;
}
