/**
 * The addressing the guest or namespace gets: the command line resolved against
 * what host discovery and /etc/resolv.conf found.
 *
 * Theory of operation: the Config says what the user asked for (undefined where
 * the host decides); HostInfo and ResolvConf say what the host has. This module
 * combines them once, at start, into a NetworkPlan that the services (ARP, DHCP,
 * NDP, DHCPv6, ICMP, later TCP/UDP) read and never change:
 * - an IP version is on when the host has an interface for it (and -4/-6 allow);
 * - the assigned address, prefix and gateway come from -a/-n/-g, else the host;
 * - DHCP is off without an IPv4 gateway, and so is the gateway mapping;
 * - name servers come from -D, else resolv.conf, where a loopback resolver (say
 *   127.0.0.53) is only reachable through the host-loopback mapping and is
 *   announced as that address, or left out when there is no mapping;
 * - announced DNS is --dns-forward's address when given; what it is forwarded to is
 *   --dns-host, else the first resolver of resolv.conf;
 * - no router advertisements into a namespace pasta configures (--config-net).
 */
import type { Config } from "./config.ts";
import type { HostInfo } from "../netlink/host.ts";
import type { RouteInfo } from "../netlink/codec.ts";
import type { ResolvConf } from "./resolv.ts";
import { isLinkLocal6, isLoopback, parseMac } from "../addr.ts";

/** Our MAC when neither -M nor the host gives one (locally administered). */
export const FALLBACK_MAC = "9a:55:9a:55:9a:55";

/** What one IP version looks like to the guest. */
export interface FamilyPlan {
  /** Host interface this version is derived from (for the summary and routes). */
  readonly hostIfname: string;
  /** Host interface index. */
  readonly hostIfindex: number;
  /** Address handed to the guest. */
  readonly address: Uint8Array;
  /** Prefix length of that address. */
  readonly prefixLength: number;
  /** Gateway announced to the guest; undefined when the host has none. */
  readonly gateway: Uint8Array | undefined;
  /** Every non-link-local address of the host interface (for --config-net). */
  readonly hostAddresses: readonly { address: Uint8Array; prefixLength: number }[];
  /** Routes of the host interface (for --config-net). */
  readonly hostRoutes: readonly RouteInfo[];
  /** Address standing for the host's loopback (--map-host-loopback), if any. */
  readonly mapHostLoopback: Uint8Array | undefined;
  /** Address standing for the guest's own address on the host (--map-guest-addr). */
  readonly mapGuestAddr: Uint8Array | undefined;
  /** --dns-forward address, if any. */
  readonly dnsForward: Uint8Array | undefined;
  /**
   * Name servers announced to the guest via DHCP, NDP and DHCPv6 (empty: none;
   * pasta announces them only with --dhcp-dns, passt unless --no-dhcp-dns).
   */
  readonly dns: readonly Uint8Array[];
  /** Resolvers the --dns-forward address maps to (first one used): --dns-host, else resolv.conf's. */
  readonly resolvers: readonly Uint8Array[];
}

/** IPv6 specifics. */
export interface Family6Plan extends FamilyPlan {
  /** Our link-local address: source of RAs and DHCPv6 replies. */
  readonly ourLinkLocal: Uint8Array;
}

/** Everything the services need, fixed at start. */
export interface NetworkPlan {
  /** Our MAC address towards the guest. */
  readonly ourMac: Uint8Array;
  /** IPv4, when enabled. */
  readonly ip4: FamilyPlan | undefined;
  /** IPv6, when enabled. */
  readonly ip6: Family6Plan | undefined;
  /** Search domains announced (empty: none; --dhcp-search / --no-dhcp-search). */
  readonly search: readonly string[];
  /** MTU announced; 0: none. */
  readonly mtu: number;
  /** Host name for DHCP option 12 (-H); "": none. */
  readonly hostname: string;
  /** Client FQDN for DHCP option 81 and DHCPv6 option 39 (--fqdn); "": none. */
  readonly fqdn: string;
  /** DHCP server on. */
  readonly dhcp: boolean;
  /** NDP responses on. */
  readonly ndp: boolean;
  /** Router advertisements on. */
  readonly ra: boolean;
  /** DHCPv6 server on. */
  readonly dhcpv6: boolean;
}

/** The modified EUI-64 link-local address for `mac` (fe80::/64). */
export function linkLocalFor(mac: Uint8Array): Uint8Array {
  const a = new Uint8Array(16);
  a[0] = 0xfe;
  a[1] = 0x80;
  a[8] = (mac[0]! ^ 0x02) & 0xff;
  a[9] = mac[1]!;
  a[10] = mac[2]!;
  a[11] = 0xff;
  a[12] = 0xfe;
  a[13] = mac[3]!;
  a[14] = mac[4]!;
  a[15] = mac[5]!;
  return a;
}

const LOOPBACK4 = new Uint8Array([127, 0, 0, 1]);
const LOOPBACK6 = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

/** A version with no host interface, for --splice-only: loopback, nothing to announce. */
function loopbackOnlyFamily(address: Uint8Array, prefixLength: number): FamilyPlan {
  return {
    hostIfname: "lo",
    hostIfindex: 1,
    address: address.slice(),
    prefixLength,
    gateway: undefined,
    hostAddresses: [],
    hostRoutes: [],
    mapHostLoopback: undefined,
    mapGuestAddr: undefined,
    dnsForward: undefined,
    dns: [],
    resolvers: [],
  };
}

function classfulPrefix(addr: Uint8Array): number {
  const first = addr[0]!;
  if (first < 128) return 8;
  if (first < 192) return 16;
  if (first < 224) return 24;
  return 32;
}

/** Announced resolvers: -D as given, else resolv.conf with loopback ones mapped. */
function announcedDns(
  given: readonly Uint8Array[] | undefined,
  fromResolv: readonly Uint8Array[],
  family: 4 | 6,
  mapHostLoopback: Uint8Array | undefined,
  dnsForward: Uint8Array | undefined,
): Uint8Array[] {
  const len = family === 4 ? 4 : 16;
  if (given !== undefined) return given.filter((a) => a.length === len).map((a) => a.slice());
  if (dnsForward !== undefined) return [dnsForward.slice()];
  const out: Uint8Array[] = [];
  for (const server of fromResolv) {
    if (!isLoopback(server)) out.push(server.slice());
    else if (mapHostLoopback !== undefined) out.push(mapHostLoopback.slice());
  }
  return out;
}

/**
 * Combine the command line with the host's state. Throws an Error with a clear
 * message when the result cannot work (no address for any enabled version).
 */
export function planNetwork(config: Config, host: HostInfo, resolv: ResolvConf): NetworkPlan {
  const ourMac = config.macAddr?.slice() ?? host.mac?.slice() ?? parseMac(FALLBACK_MAC)!;

  let ip4: FamilyPlan | undefined;
  const h4 = host.ipv4;
  if (h4 !== undefined && !config.ipv6Only) {
    const address = config.ip4.address?.slice() ?? h4.address?.slice();
    if (address !== undefined) {
      const matching = h4.addresses.find((a) =>
        a.address.length === 4 && a.address.every((b, i) => b === address[i])
      );
      const prefixLength = config.ip4.prefixLength ?? matching?.prefixLength ??
        (config.ip4.address === undefined ? h4.prefixLength : classfulPrefix(address));
      const gateway = config.ip4.gateway?.slice() ?? h4.gateway?.slice();
      const mapHostLoopback = config.noMapGw || config.ip4.mapHostLoopback === null
        ? undefined
        : config.ip4.mapHostLoopback?.slice() ?? gateway;
      ip4 = {
        hostIfname: h4.ifname,
        hostIfindex: h4.ifindex,
        address,
        prefixLength,
        gateway,
        hostAddresses: h4.addresses.map((a) => ({
          address: a.address.slice(),
          prefixLength: a.prefixLength,
        })),
        hostRoutes: h4.routes,
        mapHostLoopback,
        mapGuestAddr: config.ip4.mapGuestAddr?.slice(),
        dnsForward: config.ip4.dnsForward?.slice(),
        dns: !config.dhcpDns ? [] : announcedDns(
          config.dns,
          resolv.nameservers4,
          4,
          mapHostLoopback,
          config.ip4.dnsForward,
        ),
        resolvers: config.ip4.dnsHost !== undefined
          ? [config.ip4.dnsHost.slice()]
          : resolv.nameservers4.map((a) => (isLoopback(a) ? LOOPBACK4 : a).slice()),
      };
    }
  }

  let ip6: Family6Plan | undefined;
  const h6 = host.ipv6;
  if (h6 !== undefined && !config.ipv4Only) {
    const address = config.ip6.address?.slice() ?? h6.address?.slice();
    if (address !== undefined) {
      const gateway = config.ip6.gateway?.slice() ?? h6.gateway?.slice();
      const mapHostLoopback = config.noMapGw || config.ip6.mapHostLoopback === null
        ? undefined
        : config.ip6.mapHostLoopback?.slice() ?? gateway;
      const ourLinkLocal = gateway !== undefined && isLinkLocal6(gateway)
        ? gateway.slice()
        : linkLocalFor(ourMac);
      ip6 = {
        hostIfname: h6.ifname,
        hostIfindex: h6.ifindex,
        address,
        prefixLength: 64,
        gateway,
        hostAddresses: h6.addresses.map((a) => ({
          address: a.address.slice(),
          prefixLength: a.prefixLength,
        })),
        hostRoutes: h6.routes,
        mapHostLoopback,
        mapGuestAddr: config.ip6.mapGuestAddr?.slice(),
        dnsForward: config.ip6.dnsForward?.slice(),
        dns: !config.dhcpDns ? [] : announcedDns(
          config.dns,
          resolv.nameservers6,
          6,
          mapHostLoopback,
          config.ip6.dnsForward,
        ),
        resolvers: config.ip6.dnsHost !== undefined
          ? [config.ip6.dnsHost.slice()]
          : resolv.nameservers6.map((a) => a.slice()),
        ourLinkLocal,
      };
    }
  }

  if (config.mode === "pasta" && config.spliceOnly) {
    // --splice-only forwards loopback traffic only and has no guest to address: each
    // version -4/-6 allows is on even without a host interface, as upstream's.
    if (!config.ipv6Only) ip4 ??= loopbackOnlyFamily(LOOPBACK4, 8);
    if (!config.ipv4Only) {
      ip6 ??= { ...loopbackOnlyFamily(LOOPBACK6, 128), ourLinkLocal: linkLocalFor(ourMac) };
    }
  }
  if (ip4 === undefined && ip6 === undefined) {
    throw new Error("no IPv4 or IPv6 address to hand out: give one with -a, or check the host");
  }

  return {
    ourMac,
    ip4,
    ip6,
    search: config.dhcpSearch ? (config.search ?? resolv.search).slice() : [],
    mtu: config.mtu,
    hostname: config.hostname ?? "",
    fqdn: config.fqdn ?? "",
    dhcp: ip4 !== undefined && ip4.gateway !== undefined && !config.noDhcp,
    ndp: ip6 !== undefined && !config.noNdp,
    // A namespace we configured ourselves has its addresses and routes already:
    // router advertisements would add a SLAAC address and a second default route.
    ra: ip6 !== undefined && !config.noNdp && !config.noRa &&
      !(config.mode === "pasta" && config.configNet),
    dhcpv6: ip6 !== undefined && !config.noDhcpv6,
  };
}
