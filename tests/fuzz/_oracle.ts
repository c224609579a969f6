/**
 * The fuzzer's oracle: what may the data path send to the guest?
 *
 * Every frame it sends must first be well-formed (see `parseOutFrame`: lengths,
 * checksums, no options). Then it must answer something the guest did:
 *
 * - an ARP reply: the frame just handled was a well-formed ARP request (Ethernet,
 *   IPv4, op 1, a unicast sender) for another address than the guest's own, not an
 *   announcement, and the reply swaps its addresses;
 * - a DHCP reply: the frame just handled was UDP to port 67 in a valid IPv4
 *   header, and the reply carries its transaction ID;
 * - a DHCPv6 reply: likewise, UDP to port 547 in IPv6, same transaction ID;
 * - a router or neighbour advertisement: the frame just handled was a router or
 *   neighbour solicitation (router advertisements are not started here);
 * - TCP: the guest sent, at some point, a segment with a correct checksum on that
 *   very 4-tuple (a reset for an unknown flow answers the segment just sent);
 * - UDP: the guest sent a datagram on that 4-tuple;
 * - an echo reply: the guest sent an echo request with a correct checksum, with
 *   that identifier, between those addresses.
 *
 * Anything else, garbage answered, is a failure. So are replies sent for frames
 * with bad checksums (TCP, ICMP, IPv4 headers), since those never count as "sent".
 */
import { naiveChecksum } from "../protocols/_frames.ts";
import {
  ETH_P_ARP,
  ETH_P_IP,
  ETH_P_IPV6,
  get16,
  get32,
  hex,
  l4ChecksumOk,
  type OutFrame,
  parseOutFrame,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  PROTO_UDP,
  pseudoHeader,
  sameBytes,
} from "./_wire.ts";

/** An IP packet the guest sent, as far as the oracle cares. */
interface InPacket {
  src: Uint8Array;
  dst: Uint8Array;
  proto: number;
  l4: Uint8Array;
}

/** A TCP segment the data path sent, kept so that the fuzzer can answer it. */
export interface SentSegment {
  /** The guest's address and port (destination of the segment). */
  guest: Uint8Array;
  guestPort: number;
  remote: Uint8Array;
  remotePort: number;
  seq: number;
  ack: number;
  flags: number;
  /** Sequence space the segment uses: payload, plus one for SYN and for FIN. */
  length: number;
}

const RECENT_MAX = 8;

function tuple(a: Uint8Array, ap: number, b: Uint8Array, bp: number): string {
  return `${hex(a)}:${ap}>${hex(b)}:${bp}`;
}

/** Attribution of frames sent to the guest, per fuzz case. */
export class Oracle {
  readonly #ourMac: Uint8Array;
  readonly #guest4: Uint8Array;
  readonly #tcp = new Set<string>();
  readonly #udp = new Set<string>();
  readonly #echo = new Set<string>();
  #current: Uint8Array | undefined;
  #currentAnswers = 0;
  /** The latest segment (not a reset) sent on each of the most recent flows, newest last. */
  readonly recent: SentSegment[] = [];
  /** Frames sent to the guest, by kind (for the coverage summary). */
  readonly sent = new Map<string, number>();

  constructor(ourMac: Uint8Array, guest4: Uint8Array) {
    this.#ourMac = ourMac;
    this.#guest4 = guest4;
  }

  /** Forget everything (a new fuzz case on a new data path). */
  reset(): void {
    this.#tcp.clear();
    this.#udp.clear();
    this.#echo.clear();
    this.#current = undefined;
    this.recent.length = 0;
  }

  /** The guest sends `frame` now (call before handing it to the data path). */
  input(frame: Uint8Array): void {
    this.#current = frame;
    this.#currentAnswers = 0;
    const ip = parseInPacket(frame);
    if (ip === undefined) return;
    const l4 = ip.l4;
    const pseudo = pseudoHeader(ip.src, ip.dst, ip.proto, l4.length);
    if (ip.proto === PROTO_TCP && l4.length >= 20 && l4ChecksumOk(l4, pseudo)) {
      this.#tcp.add(tuple(ip.src, get16(l4, 0), ip.dst, get16(l4, 2)));
    } else if (ip.proto === PROTO_UDP && l4.length >= 8) {
      this.#udp.add(tuple(ip.src, get16(l4, 0), ip.dst, get16(l4, 2)));
    } else if (ip.proto === (ip.src.length === 4 ? PROTO_ICMP : PROTO_ICMPV6) && l4.length >= 8) {
      const echoRequest = l4[0] === (ip.src.length === 4 ? 8 : 128);
      if (echoRequest && l4ChecksumOk(l4, ip.src.length === 4 ? undefined : pseudo)) {
        this.#echo.add(tuple(ip.src, get16(l4, 4), ip.dst, 0));
      }
    }
  }

  /** The frame handled now is over: later frames are asynchronous answers. */
  endInput(): void {
    this.#current = undefined;
  }

  /** Check a frame the data path sends; returns why it is wrong, or undefined. */
  output(frame: Uint8Array): string | undefined {
    let out: OutFrame;
    try {
      out = parseOutFrame(frame);
    } catch (e) {
      return `malformed frame sent: ${(e as Error).message}`;
    }
    if (!sameBytes(out.srcMac, this.#ourMac)) return "frame sent from another MAC than ours";
    const kind = this.#attribute(out);
    if (kind.startsWith("!")) return kind.slice(1);
    this.sent.set(kind, (this.sent.get(kind) ?? 0) + 1);
    return undefined;
  }

  #answerOnce(kind: string): string {
    return ++this.#currentAnswers > 1 ? `!two answers to one frame (${kind})` : kind;
  }

  #attribute(out: OutFrame): string {
    const cur = this.#current;
    if (out.arp !== undefined) {
      if (cur === undefined || cur.length < 42 || get16(cur, 12) !== ETH_P_ARP) {
        return "!ARP reply to no ARP request";
      }
      const a = cur.subarray(14);
      const spa = a.subarray(14, 18);
      const tpa = a.subarray(24, 28);
      const ok = get16(a, 0) === 1 && get16(a, 2) === ETH_P_IP && a[4] === 6 && a[5] === 4 &&
        get16(a, 6) === 1 && (a[8]! & 1) === 0 && a.subarray(8, 14).some((x) => x !== 0) &&
        (!spa.some((x) => x !== 0) || !sameBytes(spa, tpa)) && !sameBytes(tpa, this.#guest4);
      if (!ok) return "!ARP reply to a frame that is no valid request";
      if (
        out.arp.op !== 2 || !sameBytes(out.arp.senderIp, tpa) || !sameBytes(out.arp.targetIp, spa)
      ) {
        return "!ARP reply does not answer the request";
      }
      return this.#answerOnce("arp");
    }
    const ip = out.ip!;
    const l4 = ip.l4;
    const in_ = cur === undefined ? undefined : parseInPacket(cur);
    if (ip.proto === PROTO_UDP) {
      const sport = get16(l4, 0);
      const dport = get16(l4, 2);
      if (ip.src.length === 4 && sport === 67 && dport === 68) {
        if (in_ === undefined || in_.proto !== PROTO_UDP || in_.l4.length < 16) {
          return "!DHCP reply to no DHCP request";
        }
        if (get16(in_.l4, 2) !== 67) return "!DHCP reply to UDP not for port 67";
        if (l4.length < 16 || get32(l4, 12) !== get32(in_.l4, 12)) return "!DHCP xid differs";
        return this.#answerOnce("dhcp");
      }
      if (ip.src.length === 16 && sport === 547 && dport === 546) {
        if (in_ === undefined || in_.proto !== PROTO_UDP || in_.l4.length < 12) {
          return "!DHCPv6 reply to no DHCPv6 request";
        }
        if (get16(in_.l4, 2) !== 547) return "!DHCPv6 reply to UDP not for port 547";
        if (l4.length < 12 || !sameBytes(l4.subarray(9, 12), in_.l4.subarray(9, 12))) {
          return "!DHCPv6 transaction ID differs";
        }
        return this.#answerOnce("dhcpv6");
      }
      if (!this.#udp.has(tuple(ip.dst, dport, ip.src, sport))) {
        return "!UDP on no flow of the guest";
      }
      return "udp";
    }
    if (ip.proto === PROTO_TCP) {
      const sport = get16(l4, 0);
      const dport = get16(l4, 2);
      if (!this.#tcp.has(tuple(ip.dst, dport, ip.src, sport))) {
        return "!TCP segment on a 4-tuple the guest never used";
      }
      const flags = l4[13]!;
      if ((flags & 0x04) === 0) this.#remember(ip.dst, dport, ip.src, sport, l4);
      return (flags & 0x04) !== 0 ? "tcp-rst" : (flags & 0x02) !== 0 ? "tcp-syn" : "tcp";
    }
    if (ip.proto === PROTO_ICMPV6 && (l4[0] === 134 || l4[0] === 136)) {
      const want = l4[0] === 134 ? 133 : 135;
      if (in_ === undefined || in_.proto !== PROTO_ICMPV6 || in_.l4[0] !== want) {
        return `!NDP type ${l4[0]} answers no solicitation`;
      }
      return this.#answerOnce(l4[0] === 134 ? "ndp-ra" : "ndp-na");
    }
    if (l4[0] === (ip.src.length === 4 ? 0 : 129) && l4.length >= 8) {
      if (!this.#echo.has(tuple(ip.dst, get16(l4, 4), ip.src, 0))) {
        return "!echo reply to no echo request";
      }
      return "echo";
    }
    return `!unexpected ${ip.src.length === 4 ? "ICMP" : "ICMPv6"} type ${l4[0]} sent`;
  }

  #remember(guest: Uint8Array, gp: number, remote: Uint8Array, rp: number, l4: Uint8Array) {
    const doff = (l4[12]! >> 4) * 4;
    const flags = l4[13]!;
    const seg: SentSegment = {
      guest: guest.slice(),
      guestPort: gp,
      remote: remote.slice(),
      remotePort: rp,
      seq: get32(l4, 4),
      ack: get32(l4, 8),
      flags,
      length: l4.length - doff + ((flags & 0x02) !== 0 ? 1 : 0) + ((flags & 0x01) !== 0 ? 1 : 0),
    };
    const i = this.recent.findIndex((s) =>
      s.guestPort === gp && s.remotePort === rp && sameBytes(s.guest, guest) &&
      sameBytes(s.remote, remote)
    );
    if (i >= 0) this.recent.splice(i, 1);
    this.recent.push(seg);
    if (this.recent.length > RECENT_MAX) this.recent.shift();
  }
}

/**
 * The IP packet in a guest frame, if its network header is one the data path
 * would accept: IPv4 with a good header checksum and total length, not a
 * fragment; IPv6 with a payload length inside the frame, behind which hop-by-hop
 * (first only), routing (no segments left) and destination options headers are
 * skipped to the upper layer (a fragment or No Next Header: nothing).
 */
function parseInPacket(f: Uint8Array): InPacket | undefined {
  if (f.length < 14) return undefined;
  const type = get16(f, 12);
  if (type === ETH_P_IP) {
    if (f.length < 34 || f[14]! >> 4 !== 4) return undefined;
    const ihl = (f[14]! & 0x0f) * 4;
    const total = get16(f, 16);
    if (ihl < 20 || total < ihl || 14 + total > f.length) return undefined;
    if (naiveChecksum(f.subarray(14, 14 + ihl)) !== 0) return undefined;
    if ((get16(f, 20) & 0x3fff) !== 0) return undefined;
    return {
      src: f.subarray(26, 30),
      dst: f.subarray(30, 34),
      proto: f[23]!,
      l4: f.subarray(14 + ihl, 14 + total),
    };
  }
  if (type === ETH_P_IPV6) {
    if (f.length < 54 || f[14]! >> 4 !== 6) return undefined;
    const plen = get16(f, 18);
    if (54 + plen > f.length) return undefined;
    const end = 54 + plen;
    let proto = f[20]!;
    let at = 54;
    for (let n = 0; proto === 0 || proto === 43 || proto === 60; n++) {
      if (n > 0 && proto === 0) return undefined; // hop-by-hop only first
      if (at + 8 > end || (proto === 43 && f[at + 3] !== 0)) return undefined;
      const next = f[at]!;
      at += (f[at + 1]! + 1) * 8;
      if (at > end) return undefined;
      proto = next;
    }
    if (proto === 44 || proto === 59) return undefined;
    return {
      src: f.subarray(22, 38),
      dst: f.subarray(38, 54),
      proto,
      l4: f.subarray(at, end),
    };
  }
  return undefined;
}
