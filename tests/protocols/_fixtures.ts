/** Shared parameters and request builders for the link-layer service tests. */

import type { ArpParams } from "../../src/protocols/arp.ts";
import type { DhcpParams } from "../../src/protocols/dhcp.ts";
import type { Dhcpv6Params } from "../../src/protocols/dhcpv6.ts";
import { parseMac } from "../../src/protocols/ethernet.ts";
import { parseIpv4, parseIpv6 } from "../../src/protocols/ip.ts";
import { linkLocalFromMac, type NdpParams } from "../../src/protocols/ndp.ts";
import { be16, be32, bytes, eth, ipv6, udp4 } from "./_frames.ts";

/** Parses or throws (test data only). */
export function ip4(s: string): Uint8Array {
  const a = parseIpv4(s);
  if (!a) throw new Error(`bad IPv4 ${s}`);
  return a;
}

/** Parses or throws (test data only). */
export function ip6(s: string): Uint8Array {
  const a = parseIpv6(s);
  if (!a) throw new Error(`bad IPv6 ${s}`);
  return a;
}

/** Parses or throws (test data only). */
export function mac(s: string): Uint8Array {
  const a = parseMac(s);
  if (!a) throw new Error(`bad MAC ${s}`);
  return a;
}

export const OUR_MAC = mac("9a:55:9a:55:9a:55");
export const GUEST_MAC = mac("52:54:00:12:34:56");
export const BCAST_MAC = mac("ff:ff:ff:ff:ff:ff");
export const GUEST4 = ip4("192.168.1.118");
export const ROUTER4 = ip4("192.168.1.1");
export const GUEST6 = ip6("2a02:6d40:3ca5:2001:b81d:fa4a:8cdd:cf17");
export const GUEST_LL = linkLocalFromMac(GUEST_MAC);
export const OUR_LL = ip6("fe80::62e3:27ff:fe33:2b01");
export const SEARCH = ["redhat.com", "example.org", "lab.example.org"];

export const arpParams: ArpParams = { ourMac: OUR_MAC, guestAddr: GUEST4 };

export const dhcpParams: DhcpParams = {
  ourMac: OUR_MAC,
  serverAddr: ROUTER4,
  guestAddr: GUEST4,
  prefixLength: 24,
  router: ROUTER4,
  dns: [ip4("192.0.2.53"), ip4("198.51.100.53")],
  search: SEARCH,
  mtu: 65520,
  hostname: "",
  fqdn: "",
  leaseTimeSeconds: 3600,
};

export const ndpParams: NdpParams = {
  ourMac: OUR_MAC,
  ourLinkLocal: OUR_LL,
  guestAddr: GUEST6,
  raEnabled: true,
  managed: true,
  otherConfig: true,
  mtu: 65520,
  dns: [ip6("2001:db8:53::1"), ip6("2001:db8:53::2")],
  search: SEARCH,
  routerLifetimeSeconds: 1800,
  validLifetimeSeconds: 3600,
  preferredLifetimeSeconds: 3600,
  dnsLifetimeSeconds: 3600,
};

export const dhcpv6Params: Dhcpv6Params = {
  ourMac: OUR_MAC,
  ourLinkLocal: OUR_LL,
  guestAddr: GUEST6,
  dns: [ip6("2001:db8:53::1")],
  search: SEARCH,
  fqdn: "",
  validLifetimeSeconds: 7200,
  preferredLifetimeSeconds: 3600,
};

/** ARP request frame from the guest. */
export function arpRequest(sender: Uint8Array, target: Uint8Array, op = 1): Uint8Array {
  return eth(
    BCAST_MAC,
    GUEST_MAC,
    0x0806,
    bytes(be16(1), be16(0x0800), 6, 4, be16(op), GUEST_MAC, sender, new Uint8Array(6), target),
  );
}

/** Options as [code, ...data] arrays, END appended. */
export function dhcpOpts(...opts: number[][]): number[] {
  const out: number[] = [];
  for (const [code, ...data] of opts) out.push(code!, data.length, ...data);
  out.push(255);
  return out;
}

/** A DHCP client message in an Ethernet frame from the guest. */
export function dhcpRequest(
  type: number,
  opts: number[][] = [],
  options: { xid?: number; flags?: number; ciaddr?: Uint8Array; src?: Uint8Array } = {},
): Uint8Array {
  const { xid = 0x3903f326, flags = 0 } = options;
  const ciaddr: Uint8Array = options.ciaddr ?? new Uint8Array(4);
  const src: Uint8Array = options.src ?? new Uint8Array(4);
  const bootp = bytes(
    1,
    1,
    6,
    0,
    be32(xid),
    be16(0),
    be16(flags),
    ciaddr,
    new Uint8Array(4),
    new Uint8Array(4),
    new Uint8Array(4),
    GUEST_MAC,
    new Uint8Array(10 + 64 + 128),
    be32(0x63825363),
    dhcpOpts([53, type], ...opts),
  );
  const dst = src[0] === 0 ? ip4("255.255.255.255") : ROUTER4;
  return eth(BCAST_MAC, GUEST_MAC, 0x0800, udp4(src, dst, 68, 67, bootp));
}

/** An ICMPv6 NDP message from `src` in an Ethernet frame, checksum filled in. */
export function ndpFrame(
  src: Uint8Array,
  dst: Uint8Array,
  icmp: Uint8Array,
  hopLimit = 255,
): Uint8Array {
  return eth(OUR_MAC, GUEST_MAC, 0x86dd, ipv6(src, dst, 58, hopLimit, icmp, 2));
}

/** Neighbor Solicitation for `target`, with a source link-layer option unless from ::. */
export function neighborSolicit(src: Uint8Array, target: Uint8Array): Uint8Array {
  const unspecified = src.every((b) => b === 0);
  const icmp = bytes(135, 0, 0, 0, 0, 0, 0, 0, target, unspecified ? [] : bytes(1, 1, GUEST_MAC));
  const snm = bytes(0xff, 2, new Array(9).fill(0), 1, 0xff, target.subarray(13));
  return ndpFrame(src, snm, icmp);
}

/** Router Solicitation from `src`, with a source link-layer option unless from ::. */
export function routerSolicit(src: Uint8Array): Uint8Array {
  const unspecified = src.every((b) => b === 0);
  const icmp = bytes(133, 0, 0, 0, 0, 0, 0, 0, unspecified ? [] : bytes(1, 1, GUEST_MAC));
  return ndpFrame(src, ip6("ff02::2"), icmp);
}

/** DHCPv6 option: code, data. */
export function v6opt(code: number, data: Uint8Array | number[]): Uint8Array {
  return bytes(be16(code), be16(data.length), data instanceof Uint8Array ? data : bytes(data));
}

/** Client DUID-LLT-ish identifier used in the tests (DUID-LL of the guest MAC). */
export const CLIENT_DUID = bytes(be16(3), be16(1), GUEST_MAC);
/** Our DUID-LL as the server identifier. */
export const SERVER_DUID = bytes(be16(3), be16(1), OUR_MAC);

/** IA_NA with `iaid` and optional IAADDR sub-options. */
export function iaNa(iaid: number, ...addrs: Uint8Array[]): Uint8Array {
  const subs = addrs.map((a) => v6opt(5, bytes(a, be32(0), be32(0))));
  return v6opt(3, bytes(be32(iaid), be32(0), be32(0), ...subs.map((s) => [...s])));
}

/** A DHCPv6 client message from the guest's link-local address to ff02::1:2. */
export function dhcpv6Request(type: number, xid: number, ...opts: Uint8Array[]): Uint8Array {
  const msg = bytes(
    type,
    (xid >> 16) & 0xff,
    (xid >> 8) & 0xff,
    xid & 0xff,
    ...opts.map((o) => [...o]),
  );
  const u = bytes(be16(546), be16(547), be16(8 + msg.length), 0, 0, msg);
  return eth(
    mac("33:33:00:01:00:02"),
    GUEST_MAC,
    0x86dd,
    ipv6(GUEST_LL, ip6("ff02::1:2"), 17, 1, u, 6),
  );
}
