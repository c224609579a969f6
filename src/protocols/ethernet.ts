/**
 * Ethernet II framing: offsets, EtherTypes, header writer, MAC helpers.
 *
 * Theory of operation: every frame exchanged with the guest (qemu socket or tap
 * device) starts with a 14-byte Ethernet II header: destination MAC, source MAC,
 * EtherType (big-endian). We neither send nor accept 802.1Q tags; a tagged frame
 * simply has an EtherType we do not handle. The link is point to point, so the
 * destination of a reply is normally the source of the request; multicast IPv6
 * destinations map to 33:33:xx:xx:xx:xx (RFC 2464 §7).
 *
 * MAC addresses are 6-byte Uint8Arrays in transmission order. The string helpers
 * allocate and are meant for configuration and logging, not for the data path.
 */

import type { PacketView } from "./packet.ts";

/** Ethernet header length, bytes. */
export const ETH_HLEN = 14;
/**
 * The largest frame read from or written to the guest (bytes): a 64 KiB IP packet
 * fits whole, as over the tap at the default 65520-byte MTU. The tap's buffers
 * and the protocols' socket reads straight into frames are sized by it.
 */
export const FRAME_MAX = 65536;
/** MAC address length, bytes. */
export const ETH_ALEN = 6;
/** Offset of the destination MAC in the header. */
export const ETH_DST = 0;
/** Offset of the source MAC in the header. */
export const ETH_SRC = 6;
/** Offset of the EtherType (big-endian u16) in the header. */
export const ETH_TYPE = 12;

/** EtherType: IPv4. */
export const ETH_P_IP = 0x0800;
/** EtherType: ARP. */
export const ETH_P_ARP = 0x0806;
/** EtherType: IPv6. */
export const ETH_P_IPV6 = 0x86dd;

/** ff:ff:ff:ff:ff:ff. Shared constant: never write into it. */
export const MAC_BROADCAST: Uint8Array = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
/** 33:33:00:00:00:01, the Ethernet address of ff02::1 (all nodes). Never write into it. */
export const MAC_ALL_NODES: Uint8Array = new Uint8Array([0x33, 0x33, 0, 0, 0, 1]);

/** EtherType of the frame (big-endian u16 at 12), or -1 if shorter than a header. */
export function ethType(pkt: PacketView): number {
  return pkt.length >= ETH_HLEN ? pkt.u16(ETH_TYPE) : -1;
}

/**
 * Writes an Ethernet header at window offset `offset` of `out`: destination `dst`,
 * source `src` (6 bytes each), EtherType `type` (host number, written big-endian).
 * Returns the offset just past the header.
 */
export function writeEthHeader(
  out: PacketView,
  offset: number,
  dst: Uint8Array,
  src: Uint8Array,
  type: number,
): number {
  out.putBytes(offset + ETH_DST, dst);
  out.putBytes(offset + ETH_SRC, src);
  out.put16(offset + ETH_TYPE, type);
  return offset + ETH_HLEN;
}

/** True if the MAC at window `offset` of `pkt` is multicast or broadcast (I/G bit), or absent. */
export function isGroupMac(pkt: PacketView, offset: number): boolean {
  const b = pkt.u8(offset);
  return b < 0 || (b & 1) === 1 || !pkt.has(offset, ETH_ALEN);
}

/** True if all six bytes of the MAC at window `offset` of `pkt` are zero. */
export function isZeroMac(pkt: PacketView, offset: number): boolean {
  return pkt.isZero(offset, ETH_ALEN);
}

/**
 * Writes into `mac` (6 bytes) the Ethernet multicast address for the IPv6
 * multicast address `ip6` (16 bytes): 33:33 followed by its last four bytes.
 */
export function ipv6MulticastMac(ip6: Uint8Array, mac: Uint8Array): void {
  mac[0] = 0x33;
  mac[1] = 0x33;
  mac[2] = ip6[12]!;
  mac[3] = ip6[13]!;
  mac[4] = ip6[14]!;
  mac[5] = ip6[15]!;
}

/** Parses "aa:bb:cc:dd:ee:ff" (or with '-'); returns a new 6-byte array or null. */
export function parseMac(text: string): Uint8Array | null {
  const m =
    /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i
      .exec(text);
  if (!m) return null;
  const mac = new Uint8Array(ETH_ALEN);
  for (let i = 0; i < ETH_ALEN; i++) mac[i] = parseInt(m[i + 1]!, 16);
  return mac;
}

/** Formats 6 bytes at `offset` of `bytes` as "aa:bb:cc:dd:ee:ff" (allocates). */
export function formatMac(bytes: Uint8Array, offset = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < ETH_ALEN; i++) {
    parts.push((bytes[offset + i] ?? 0).toString(16).padStart(2, "0"));
  }
  return parts.join(":");
}
