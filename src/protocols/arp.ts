/**
 * ARP responder (RFC 826) for the guest side.
 *
 * Theory of operation: the guest must reach every IPv4 address through us, so
 * we answer any ARP request with our own MAC address, whatever address it asks
 * for, with two exceptions that would otherwise break the guest's own address
 * handling: requests for the guest's assigned address (address conflict
 * detection, RFC 5227, must not find a conflict) and gratuitous ARP
 * announcements (sender and target address equal and non-zero), which ask
 * nothing. ARP probes (sender 0.0.0.0) for any other address are answered,
 * which correctly tells the guest that address is taken.
 *
 * Only Ethernet/IPv4 ARP is handled: hardware type 1, protocol 0x0800, address
 * lengths 6 and 4, operation 1 (request). The reply goes to the requester's MAC.
 * No padding to the 60-byte Ethernet minimum is added: tap and qemu transports do
 * not need it.
 */

import {
  ETH_ALEN,
  ETH_HLEN,
  ETH_P_ARP,
  ETH_P_IP,
  ETH_SRC,
  ethType,
  isGroupMac,
} from "./ethernet.ts";
import { PacketView, ServiceStats } from "./packet.ts";

/** ARP hardware type: Ethernet. */
export const ARPHRD_ETHER = 1;
/** ARP operation: request. */
export const ARPOP_REQUEST = 1;
/** ARP operation: reply. */
export const ARPOP_REPLY = 2;
/** Length of an Ethernet/IPv4 ARP body, bytes. */
export const ARP_LEN = 28;
/** Length of a whole ARP reply frame we build, bytes. */
export const ARP_FRAME_LEN = ETH_HLEN + ARP_LEN;

/** Offsets inside the ARP body (from the end of the Ethernet header). */
export const ARP_HTYPE = 0;
/** Offset of the protocol type (big-endian u16). */
export const ARP_PTYPE = 2;
/** Offset of the hardware address length. */
export const ARP_HLEN = 4;
/** Offset of the protocol address length. */
export const ARP_PLEN = 5;
/** Offset of the operation (big-endian u16). */
export const ARP_OP = 6;
/** Offset of the sender hardware address (6 bytes). */
export const ARP_SHA = 8;
/** Offset of the sender protocol address (4 bytes). */
export const ARP_SPA = 14;
/** Offset of the target hardware address (6 bytes). */
export const ARP_THA = 18;
/** Offset of the target protocol address (4 bytes). */
export const ARP_TPA = 24;

/** What the ARP responder needs to know. */
export interface ArpParams {
  /** Our MAC address (6 bytes): the answer to every request. */
  readonly ourMac: Uint8Array;
  /** The guest's assigned IPv4 address (4 bytes, network order); never answered. */
  readonly guestAddr: Uint8Array;
}

/** Reasons an ARP frame gets no reply. */
export type ArpDrop =
  | "truncated"
  | "notArp"
  | "unsupported"
  | "notRequest"
  | "badSender"
  | "announcement"
  | "guestAddress"
  | "noRoom";

/** New counters for `arpReply`. */
export function newArpStats(): ServiceStats<ArpDrop> {
  return new ServiceStats<ArpDrop>([
    "truncated",
    "notArp",
    "unsupported",
    "notRequest",
    "badSender",
    "announcement",
    "guestAddress",
    "noRoom",
  ]);
}

/** Default counters used when the caller passes none. */
export const arpStats: ServiceStats<ArpDrop> = newArpStats();

/**
 * Answers the ARP request in `pkt` (a whole Ethernet frame). Writes the reply
 * frame at the window start of `out`, sets `out`'s length and returns it, or
 * returns 0 (counting the reason in `stats`) if the frame gets no reply.
 */
export function arpReply(
  pkt: PacketView,
  params: ArpParams,
  out: PacketView,
  stats: ServiceStats<ArpDrop> = arpStats,
): number {
  out.setLength(0);
  if (!pkt.has(0, ETH_HLEN + ARP_LEN)) return stats.drop("truncated");
  if (ethType(pkt) !== ETH_P_ARP) return stats.drop("notArp");
  const a = ETH_HLEN;
  if (
    pkt.u16(a + ARP_HTYPE) !== ARPHRD_ETHER || pkt.u16(a + ARP_PTYPE) !== ETH_P_IP ||
    pkt.u8(a + ARP_HLEN) !== ETH_ALEN || pkt.u8(a + ARP_PLEN) !== 4
  ) {
    return stats.drop("unsupported");
  }
  if (pkt.u16(a + ARP_OP) !== ARPOP_REQUEST) return stats.drop("notRequest");
  if (isGroupMac(pkt, a + ARP_SHA) || pkt.isZero(a + ARP_SHA, ETH_ALEN)) {
    return stats.drop("badSender");
  }
  const senderIsAny = pkt.isZero(a + ARP_SPA, 4);
  if (!senderIsAny && pkt.u32(a + ARP_SPA) === pkt.u32(a + ARP_TPA)) {
    return stats.drop("announcement");
  }
  if (pkt.equals(a + ARP_TPA, params.guestAddr)) return stats.drop("guestAddress");
  if (out.capacity < ARP_FRAME_LEN) return stats.drop("noRoom");

  // Ethernet: to the requester (sender hardware address), from us.
  out.putFrom(0, pkt, a + ARP_SHA, ETH_ALEN);
  out.putBytes(ETH_SRC, params.ourMac);
  out.put16(12, ETH_P_ARP);
  out.put16(a + ARP_HTYPE, ARPHRD_ETHER);
  out.put16(a + ARP_PTYPE, ETH_P_IP);
  out.put8(a + ARP_HLEN, ETH_ALEN);
  out.put8(a + ARP_PLEN, 4);
  out.put16(a + ARP_OP, ARPOP_REPLY);
  out.putBytes(a + ARP_SHA, params.ourMac);
  out.putFrom(a + ARP_SPA, pkt, a + ARP_TPA, 4);
  out.putFrom(a + ARP_THA, pkt, a + ARP_SHA, ETH_ALEN);
  out.putFrom(a + ARP_TPA, pkt, a + ARP_SPA, 4);
  if (out.overflow) return stats.drop("noRoom");
  return stats.reply("reply", out.setLength(ARP_FRAME_LEN));
}
