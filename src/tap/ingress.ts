/**
 * Frames from the guest or namespace: learn who the guest is, then hand each
 * frame to the service that owns it.
 *
 * Theory of operation: every frame read from the tap side comes through
 * `handle`, as one PacketView re-pointed per frame. The Ethernet type and, for
 * IP, the protocol and ports pick the service: ARP; DHCP (UDP to port 67); NDP
 * (ICMPv6 133–137); DHCPv6 (UDP to port 547); ICMP/ICMPv6 echo; TCP and UDP
 * (translation to host sockets). IPv6 extension headers (hop-by-hop, routing
 * with no segments left, destination options) are walked to the upper-layer
 * header; fragments and No Next Header are dropped and counted. Services write
 * replies straight into the tap's output arena. On the way, the guest's MAC
 * address and its IPv4, IPv6 global and IPv6 link-local source addresses are
 * learned: replies and traffic from the host go to the addresses the guest
 * actually uses.
 * Whatever nobody handles is dropped and counted, never thrown.
 */
import type { NetworkPlan } from "../config/network.ts";
import type { FrameOutput, TransportHandler } from "../flow/context.ts";
import type { GuestState } from "../flow/guest.ts";
import { type ArpParams, arpReply } from "../protocols/arp.ts";
import { type DhcpParams, dhcpParamsFor, dhcpReply, isDhcpFrame } from "../protocols/dhcp.ts";
import {
  DHCPV6_SERVER_PORT,
  type Dhcpv6Params,
  dhcpv6ParamsFor,
  dhcpv6Reply,
  isDhcpv6Frame,
} from "../protocols/dhcpv6.ts";
import {
  ETH_HLEN,
  ETH_P_ARP,
  ETH_P_IP,
  ETH_P_IPV6,
  ETH_SRC,
  ethType,
} from "../protocols/ethernet.ts";
import {
  IP4_PROTO,
  IP4_SRC,
  IP6_HLEN,
  IP6_NXT,
  IP6_PLEN,
  IP6_SRC,
  IP6_WALK_FRAGMENT,
  IP6_WALK_NO_NEXT,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  ipv4HeaderLength,
  ipv4IsFragment,
  Ipv6HeaderWalk,
  ipv6PayloadEnd,
  UDP_DPORT,
} from "../protocols/ip.ts";
import { isNdpFrame, type NdpParams, ndpParamsFor, ndpReply, NdpType } from "../protocols/ndp.ts";
import type { PacketView } from "../protocols/packet.ts";

/** An echo handler (ICMP or ICMPv6), see protocols/icmp.ts. */
export interface EchoHandler {
  /** An IPv4 ICMP packet at `ipOffset` with the given header and payload lengths. */
  fromTap4(
    pkt: PacketView,
    ipOffset: number,
    ipHeaderLength: number,
    payloadLength: number,
  ): boolean | void;
  /** An IPv6 ICMPv6 packet at `ipOffset`, `headersLength` bytes of IPv6 headers before it. */
  fromTap6(
    pkt: PacketView,
    ipOffset: number,
    headersLength: number,
    payloadLength: number,
  ): boolean | void;
}

/** Frames handled or dropped, by reason. */
export interface IngressStats {
  arp: number;
  dhcp: number;
  ndp: number;
  dhcpv6: number;
  icmp: number;
  tcp: number;
  udp: number;
  /** Dropped, all reasons (the two below included). */
  dropped: number;
  /** IPv6 fragments (a Fragment header): not reassembled, dropped. */
  fragments: number;
  /** IPv6 packets with No Next Header: nothing to hand on, dropped. */
  noNextHeader: number;
}

/** Window offset of the upper-layer header of an IPv6 frame with no extension headers. */
const L4_PLAIN = ETH_HLEN + IP6_HLEN;
const ICMPV6_ECHO_REQUEST = 128;

/** Dispatch of guest frames to the services. */
export class Ingress {
  readonly #tap: FrameOutput;
  readonly #guest: GuestState;
  readonly #arp: ArpParams | undefined;
  readonly #dhcp: DhcpParams | undefined;
  readonly #ndp: NdpParams | undefined;
  readonly #dhcpv6: Dhcpv6Params | undefined;
  readonly #ip6: boolean;
  #echo: EchoHandler | undefined;
  #tcp: TransportHandler | undefined;
  #udp: TransportHandler | undefined;
  /** Counters. */
  readonly stats: IngressStats = {
    arp: 0,
    dhcp: 0,
    ndp: 0,
    dhcpv6: 0,
    icmp: 0,
    tcp: 0,
    udp: 0,
    dropped: 0,
    fragments: 0,
    noNextHeader: 0,
  };
  /** Reused for every IPv6 frame: finds the upper-layer header. */
  readonly #walk = new Ipv6HeaderWalk();

  constructor(plan: NetworkPlan, guest: GuestState, tap: FrameOutput) {
    this.#tap = tap;
    this.#guest = guest;
    // What each service answers, and its lease and lifetime policy, is its own file's.
    this.#ip6 = plan.ip6 !== undefined;
    if (plan.ip4 !== undefined) this.#arp = { ourMac: plan.ourMac, guestAddr: plan.ip4.address };
    this.#dhcp = dhcpParamsFor(plan);
    this.#ndp = ndpParamsFor(plan);
    this.#dhcpv6 = dhcpv6ParamsFor(plan);
  }

  /** The NDP parameters (for periodic router advertisements), if NDP is on. */
  get ndpParams(): NdpParams | undefined {
    return this.#ndp;
  }

  /** Hand ICMP/ICMPv6 echo requests to `echo` (undefined: drop them, as --no-icmp). */
  setEcho(echo: EchoHandler | undefined): void {
    this.#echo = echo;
  }

  /** Hand TCP segments to `tcp` (undefined: drop them, as --no-tcp). */
  setTcp(tcp: TransportHandler | undefined): void {
    this.#tcp = tcp;
  }

  /** Hand UDP datagrams (other than DHCP/DHCPv6) to `udp` (undefined: drop, as --no-udp). */
  setUdp(udp: TransportHandler | undefined): void {
    this.#udp = udp;
  }

  /** Handle one frame from the guest. Never throws for anything in the frame. */
  handle(pkt: PacketView): void {
    const type = ethType(pkt);
    if (type < 0) {
      this.stats.dropped++;
      return;
    }
    this.#learnMac(pkt);
    if (type === ETH_P_ARP) this.#handleArp(pkt);
    else if (type === ETH_P_IP) this.#handleIp4(pkt);
    else if (type === ETH_P_IPV6) this.#handleIp6(pkt);
    else this.stats.dropped++;
  }

  #learnMac(pkt: PacketView): void {
    const first = pkt.u8(ETH_SRC);
    if (first < 0 || (first & 1) !== 0) return; // group address: not a station
    const mac = this.#guest.mac;
    for (let i = 0; i < 6; i++) mac[i] = pkt.u8(ETH_SRC + i);
    this.#guest.seen = true;
  }

  #reply(length: number): void {
    if (length > 0) this.#tap.queue(length);
  }

  #handleArp(pkt: PacketView): void {
    if (this.#arp === undefined) {
      this.stats.dropped++;
      return;
    }
    this.stats.arp++;
    this.#reply(arpReply(pkt, this.#arp, this.#tap.next()));
  }

  #handleIp4(pkt: PacketView): void {
    const ihl = ipv4HeaderLength(pkt, ETH_HLEN);
    if (ihl < 0 || this.#arp === undefined) {
      this.stats.dropped++;
      return;
    }
    const proto = pkt.u8(ETH_HLEN + IP4_PROTO);
    if (pkt.u8(ETH_HLEN + IP4_SRC) !== 0) {
      const addr = this.#guest.addr4;
      for (let i = 0; i < 4; i++) addr[i] = pkt.u8(ETH_HLEN + IP4_SRC + i);
    }
    const total = pkt.u16(ETH_HLEN + 2);
    // Fragments: not reassembled (like upstream); DHCP never needs it.
    if ((proto === IPPROTO_TCP || proto === IPPROTO_UDP) && ipv4IsFragment(pkt, ETH_HLEN)) {
      this.stats.dropped++;
      return;
    }
    switch (proto) {
      case IPPROTO_UDP:
        if (this.#dhcp !== undefined && isDhcpFrame(pkt)) {
          this.stats.dhcp++;
          this.#reply(dhcpReply(pkt, this.#dhcp, this.#tap.next()));
          return;
        }
        if (this.#udp === undefined) break;
        this.stats.udp++;
        this.#udp.fromTap4(pkt, ETH_HLEN, ihl, total - ihl);
        return;
      case IPPROTO_ICMP:
        if (this.#echo === undefined) break;
        this.stats.icmp++;
        this.#echo.fromTap4(pkt, ETH_HLEN, ihl, total - ihl);
        return;
      case IPPROTO_TCP:
        if (this.#tcp === undefined) break;
        this.stats.tcp++;
        this.#tcp.fromTap4(pkt, ETH_HLEN, ihl, total - ihl);
        return;
    }
    this.stats.dropped++;
  }

  #handleIp6(pkt: PacketView): void {
    const end = ipv6PayloadEnd(pkt, ETH_HLEN);
    if (end < 0 || !this.#ip6) {
      this.stats.dropped++;
      return;
    }
    this.#learnAddr6(pkt);
    const next = this.#walk.walk(pkt, ETH_HLEN, end);
    if (next < 0) {
      if (next === IP6_WALK_FRAGMENT) this.stats.fragments++;
      else if (next === IP6_WALK_NO_NEXT) this.stats.noNextHeader++;
      this.stats.dropped++;
      return;
    }
    let l4 = this.#walk.upperOffset;
    if (l4 !== L4_PLAIN && isServiceMessage(pkt, next, l4)) {
      l4 = this.#dropExtensionHeaders(pkt, next, l4, end);
    }
    const headersLength = l4 - ETH_HLEN;
    const payloadLength = end - l4;
    if (next === IPPROTO_ICMPV6) {
      if (this.#ndp !== undefined && isNdpFrame(pkt)) {
        this.stats.ndp++;
        this.#reply(ndpReply(pkt, this.#ndp, this.#tap.next()));
        return;
      }
      if (pkt.u8(l4) === ICMPV6_ECHO_REQUEST && this.#echo !== undefined) {
        this.stats.icmp++;
        this.#echo.fromTap6(pkt, ETH_HLEN, headersLength, payloadLength);
        return;
      }
    } else if (next === IPPROTO_UDP) {
      if (this.#dhcpv6 !== undefined && isDhcpv6Frame(pkt)) {
        this.stats.dhcpv6++;
        this.#reply(dhcpv6Reply(pkt, this.#dhcpv6, this.#tap.next()));
        return;
      }
      if (this.#udp !== undefined) {
        this.stats.udp++;
        this.#udp.fromTap6(pkt, ETH_HLEN, headersLength, payloadLength);
        return;
      }
    } else if (next === IPPROTO_TCP && this.#tcp !== undefined) {
      this.stats.tcp++;
      this.#tcp.fromTap6(pkt, ETH_HLEN, headersLength, payloadLength);
      return;
    }
    this.stats.dropped++;
  }

  /**
   * NDP and DHCPv6 (see `isServiceMessage`) read their headers at the fixed offset behind a bare IPv6
   * header. For ICMPv6 and UDP behind extension headers (rare: a hop-by-hop router
   * alert, say), the upper-layer bytes at `l4` are moved down over the extension
   * headers, in place, and the fixed header's next header and payload length
   * rewritten, so that every service sees the same frame. The transport checksum
   * stays valid: its pseudo-header has the addresses, the upper-layer length and
   * protocol, none of which change (a routing header with segments left was
   * refused by the walk). Returns the new upper-layer offset.
   */
  #dropExtensionHeaders(pkt: PacketView, next: number, l4: number, end: number): number {
    const length = end - l4;
    pkt.move(L4_PLAIN, l4, length);
    pkt.put8(ETH_HLEN + IP6_NXT, next);
    pkt.put16(ETH_HLEN + IP6_PLEN, length);
    pkt.setLength(L4_PLAIN + length);
    return L4_PLAIN;
  }

  #learnAddr6(pkt: PacketView): void {
    const first = pkt.u8(ETH_HLEN + IP6_SRC);
    const second = pkt.u8(ETH_HLEN + IP6_SRC + 1);
    if (first < 0) return;
    let zero = first === 0;
    for (let i = 1; zero && i < 16; i++) zero = pkt.u8(ETH_HLEN + IP6_SRC + i) === 0;
    if (zero || first === 0xff) return; // unspecified (DAD) or multicast
    const linkLocal = first === 0xfe && (second & 0xc0) === 0x80;
    const addr = linkLocal ? this.#guest.addr6LinkLocal : this.#guest.addr6;
    for (let i = 0; i < 16; i++) addr[i] = pkt.u8(ETH_HLEN + IP6_SRC + i);
  }
}

/**
 * True if the upper-layer header `next` at `l4` is for NDP (ICMPv6 133–137) or
 * DHCPv6 (UDP to port 547), the services that expect it right after the fixed
 * IPv6 header.
 */
function isServiceMessage(pkt: PacketView, next: number, l4: number): boolean {
  if (next === IPPROTO_ICMPV6) {
    const type = pkt.u8(l4);
    return type >= NdpType.ROUTER_SOLICIT && type <= NdpType.REDIRECT;
  }
  return next === IPPROTO_UDP && pkt.u16(l4 + UDP_DPORT) === DHCPV6_SERVER_PORT;
}
