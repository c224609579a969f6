/**
 * Address translation between what the guest sees and what the host's sockets
 * use: the man page's NOTES, in one place for TCP, UDP and ICMP.
 *
 * Theory of operation. The guest usually has the host's own address, so a few
 * addresses must stand for something else:
 * - Outbound (guest → host socket), on the destination:
 *   the --map-host-loopback address (by default the gateway, unless --no-map-gw)
 *   means the host itself, reached on 127.0.0.1 / ::1;
 *   the --map-guest-addr address means the address assigned to the guest, which
 *   on the host is the host's own (or whatever it shadows);
 *   the --dns-forward address, to port 53 (and 853 for TCP), means the first
 *   resolver from /etc/resolv.conf;
 *   anything else is used as it is.
 * - Inbound (a connection or datagram arriving at a host socket, towards the
 *   guest), on the source: a loopback source becomes the host-loopback mapping
 *   address; the host's own address (which is also the guest's) becomes the
 *   --map-guest-addr address; without the mapping, our own address on the tap
 *   stands for either (the gateway for IPv4, our link-local address for IPv6);
 *   anything else stays.
 *   The destination is the guest's address as last seen (its link-local one
 *   for IPv6 when the source is link-local), else the assigned one.
 * Replies within a flow need none of this: a flow remembers the addresses the
 * guest used, and answers come from those.
 * Addresses are byte arrays in network order (4 or 16 bytes) read at an offset,
 * so callers pass frame buffers directly; results go to caller-owned buffers.
 */
import type { FamilyPlan, NetworkPlan } from "../config/network.ts";
import type { GuestState } from "./guest.ts";

/** Ports that --dns-forward maps. */
export const DNS_PORT = 53;
/** DNS over TLS, mapped for TCP only. */
export const DNS_TLS_PORT = 853;

const LOOPBACK4 = new Uint8Array([127, 0, 0, 1]);
const LOOPBACK6 = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

function equalAt(a: Uint8Array, off: number, b: Uint8Array | undefined, len: number): boolean {
  if (b === undefined || b.length !== len) return false;
  for (let i = 0; i < len; i++) if (a[off + i] !== b[i]) return false;
  return true;
}

function copy(from: Uint8Array, fromOff: number, to: Uint8Array, len: number): void {
  for (let i = 0; i < len; i++) to[i] = from[fromOff + i]!;
}

/** How an outbound destination was translated. */
export const OutboundKind = {
  /** Used as it is. */
  DIRECT: 0,
  /** The host's loopback. */
  HOST_LOOPBACK: 1,
  /** The guest's assigned address on the host. */
  GUEST_ADDR: 2,
  /** The first resolver (DNS forwarding). */
  DNS: 3,
  /** Nowhere to send it. */
  NONE: -1,
} as const;

/** The translation rules, fixed at start. */
export class AddressMap {
  readonly #plan: NetworkPlan;
  readonly #guest: GuestState;

  constructor(plan: NetworkPlan, guest: GuestState) {
    this.#plan = plan;
    this.#guest = guest;
  }

  /**
   * Translate the destination the guest used (`len` = 4 or 16 bytes at `off` of
   * `src`, port `port`, TCP or not) into the address a host socket should reach;
   * written to `out`. Returns an OutboundKind (NONE: drop).
   */
  outbound(
    src: Uint8Array,
    off: number,
    len: number,
    port: number,
    tcp: boolean,
    out: Uint8Array,
  ): number {
    const family = len === 4 ? this.#plan.ip4 : this.#plan.ip6;
    if (family === undefined) return OutboundKind.NONE;
    if (
      family.dnsForward !== undefined && equalAt(src, off, family.dnsForward, len) &&
      (port === DNS_PORT || (tcp && port === DNS_TLS_PORT))
    ) {
      const resolver = family.resolvers[0];
      if (resolver === undefined) return OutboundKind.NONE;
      copy(resolver, 0, out, len);
      return OutboundKind.DNS;
    }
    if (equalAt(src, off, family.mapHostLoopback, len)) {
      copy(len === 4 ? LOOPBACK4 : LOOPBACK6, 0, out, len);
      return OutboundKind.HOST_LOOPBACK;
    }
    if (equalAt(src, off, family.mapGuestAddr, len)) {
      copy(family.address, 0, out, len);
      return OutboundKind.GUEST_ADDR;
    }
    copy(src, off, out, len);
    return OutboundKind.DIRECT;
  }

  /**
   * Translate the source of something arriving at a host socket (`len` bytes at
   * `off` of `src`) into the source the guest should see; written to `out`.
   * Returns false when it cannot be delivered (no address to stand for it).
   *
   * A source the guest can't reach as it is becomes the mapping address for it:
   * loopback the --map-host-loopback one, the host's own address (which the
   * guest has too) the --map-guest-addr one. Without that mapping, as the C
   * passt, our own address on the tap: the gateway for IPv4, our link-local
   * address for IPv6, which then goes to the guest's link-local address (see
   * `guestDestination`).
   */
  inboundSource(src: Uint8Array, off: number, len: number, out: Uint8Array): boolean {
    const family = len === 4 ? this.#plan.ip4 : this.#plan.ip6;
    if (family === undefined) return false;
    const loopback = len === 4 ? src[off] === 127 : equalAt(src, off, LOOPBACK6, 16);
    let stand: Uint8Array | undefined;
    if (loopback) stand = family.mapHostLoopback;
    else if (this.#hostOwn(family, src, off, len)) stand = family.mapGuestAddr;
    else {
      copy(src, off, out, len);
      return true;
    }
    stand ??= len === 4 ? family.gateway : this.#plan.ip6?.ourLinkLocal;
    if (stand === undefined) return false;
    copy(stand, 0, out, len);
    return true;
  }

  /** Whether `len` bytes at `off` of `src` are the guest's or the host's own address. */
  #hostOwn(family: FamilyPlan, src: Uint8Array, off: number, len: number): boolean {
    if (equalAt(src, off, family.address, len)) return true;
    const own = family.hostAddresses;
    for (let i = 0; i < own.length; i++) {
      if (equalAt(src, off, own[i]!.address, len)) return true;
    }
    return false;
  }

  /**
   * The guest's address to deliver to (`len` 4 or 16), written to `out`; for
   * IPv6, the link-local one when `linkLocal` and one has been seen.
   */
  guestDestination(len: number, linkLocal: boolean, out: Uint8Array): void {
    const g = this.#guest;
    if (len === 4) {
      copy(g.addr4, 0, out, 4);
      return;
    }
    const useLinkLocal = linkLocal && g.addr6LinkLocal[0] === 0xfe;
    copy(useLinkLocal ? g.addr6LinkLocal : g.addr6, 0, out, 16);
  }
}
