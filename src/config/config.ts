/**
 * The configuration of one passt or pasta process, as the command line leaves it.
 *
 * Theory of operation: options.ts turns argv into exactly one `Config`, deeply frozen,
 * and nothing after start-up changes it. Fields the command line did not set and that
 * the host has to supply later (addresses, gateways, interfaces, resolvers) are
 * `undefined` here: "not given, discover it", which is different from an explicit empty
 * value such as `-D none` (an empty list). Host discovery builds on top of this object
 * instead of mutating it.
 *
 * Addresses are `Uint8Array`s in network order, 4 bytes for IPv4 and 16 for IPv6. Typed
 * arrays with elements cannot be frozen, so each Config owns private copies and readers
 * must treat them as read-only (copy before changing).
 *
 * `ConfigError` and the port table types live here rather than in options.ts and
 * ports.ts so that ports.ts can build tables and throw errors while this file imports
 * nothing: ports.ts points at config.ts, never back; options.ts re-exports the error.
 */

/** How a table was configured. "spec" means an explicit list (possibly exclusions only). */
export type ForwardMode = "none" | "auto" | "all" | "spec";

/** An inclusive range of port numbers. */
export interface PortRange {
  /** First port, 1..65535. */
  readonly first: number;
  /** Last port, first..65535. */
  readonly last: number;
}

/** Local ports first..last forward to targetFirst..targetFirst+(last-first). */
export interface PortRule extends PortRange {
  /** Port that `first` maps to on the other side. */
  readonly targetFirst: number;
  /** Local address to bind (4 or 16 bytes), or undefined for any. */
  readonly bindAddr: Uint8Array | undefined;
  /** Local interface to bind (SO_BINDTODEVICE), or undefined for any. */
  readonly bindIfname: string | undefined;
  /**
   * Address to forward to on the other side (4 or 16 bytes, ":ADDR" of the 2026
   * grammar), or undefined for the guest's or namespace's own address.
   */
  readonly targetAddr: Uint8Array | undefined;
  /**
   * True for "all" and exclusion-only specifications: ports that cannot be bound are
   * skipped silently, and only a complete failure is an error.
   */
  readonly bestEffort: boolean;
}

/** The forwarding table of one protocol in one direction. */
export interface PortForwarding {
  /** How it was configured. */
  readonly mode: ForwardMode;
  /**
   * Static rules, exclusions already applied (empty for "none"). For "auto", the ports,
   * bindings and targets the detected ports are restricted to ("8000-8010,auto",
   * "::1/auto"); empty: any port, any address, same port.
   */
  readonly rules: readonly PortRule[];
  /** Every exclusion given, for diagnostics; already applied to `rules`. */
  readonly excluded: readonly PortRange[];
}

/** Which program is running: the VM flavour (qemu socket) or the namespace one (tap). */
export type Mode = "passt" | "pasta";

/**
 * A command line problem. `message` has no program name in front: the caller prints
 * `${prog}: ${message}` on stderr (which is also getopt's own format) and exits 1.
 * `showUsage` is true for getopt-level errors, after which C passt prints its usage text.
 */
export class ConfigError extends Error {
  /** True if the usage text should follow the message (getopt errors). */
  readonly showUsage: boolean;

  /** Builds an error; `showUsage` defaults to false (a bad value, not a bad option). */
  constructor(message: string, showUsage = false) {
    super(message);
    this.name = "ConfigError";
    this.showUsage = showUsage;
  }
}

/** Target of --runas: numeric ids, or names to be resolved through the user database. */
export interface RunAs {
  /** UID (number) or login name (string). */
  readonly user: number | string;
  /** GID or group name; undefined means the user's primary group. */
  readonly group: number | string | undefined;
}

/** Settings that exist once per IP version. Undefined addresses: take them from the host. */
export interface IpVersionConfig {
  /** -a: address assigned to the guest / namespace. */
  readonly address: Uint8Array | undefined;
  /** -g: gateway announced to the guest / namespace. */
  readonly gateway: Uint8Array | undefined;
  /** -o: source address for outbound sockets. */
  readonly outbound: Uint8Array | undefined;
  /** --outbound-if4 / --outbound-if6: interface outbound sockets are bound to. */
  readonly outboundIf: string | undefined;
  /** --dns-forward: address the guest sends DNS queries to, mapped to the first resolver. */
  readonly dnsForward: Uint8Array | undefined;
  /**
   * --map-host-loopback: address standing for the host's loopback. `undefined`: the
   * default (the gateway, unless --no-map-gw); `null`: explicitly none.
   */
  readonly mapHostLoopback: Uint8Array | null | undefined;
  /** --map-guest-addr: address standing for the guest's own address on the host. */
  readonly mapGuestAddr: Uint8Array | undefined;
  /**
   * --dns-host: the host resolver that queries to the --dns-forward address go to;
   * undefined: the first resolver of /etc/resolv.conf for this version.
   */
  readonly dnsHost: Uint8Array | undefined;
}

/** IPv4-only settings on top of the per-version ones. */
export interface Ip4Config extends IpVersionConfig {
  /** -n: prefix length 0..32 of the assigned address; undefined: from the host. */
  readonly prefixLength: number | undefined;
}

/** Options common to both modes. */
export interface CommonConfig {
  /** Program mode. */
  readonly mode: Mode;
  /** Long names (without "--") of every option present on the command line. */
  readonly given: ReadonlySet<string>;
  /** -d, or implied by --trace. */
  readonly debug: boolean;
  /** --trace: per-packet logging. */
  readonly trace: boolean;
  /** -q: no informational messages. */
  readonly quiet: boolean;
  /** -l: log file path. */
  readonly logFile: string | undefined;
  /** --log-size, bytes. */
  readonly logSize: number;
  /** -f: stay in the foreground. */
  readonly foreground: boolean;
  /** -P: PID file path. */
  readonly pidFile: string | undefined;
  /** -p: pcap capture path. */
  readonly pcapFile: string | undefined;
  /** --runas. */
  readonly runAs: RunAs | undefined;
  /** -m: MTU in bytes announced via DHCP/NDP; 0 means do not announce one. */
  readonly mtu: number;
  /** -M: our MAC address facing the guest (6 bytes); undefined: from the host. */
  readonly macAddr: Uint8Array | undefined;
  /** -i: host interface to take addresses and routes from. */
  readonly interfaceName: string | undefined;
  /** -4. */
  readonly ipv4Only: boolean;
  /** -6. */
  readonly ipv6Only: boolean;
  /** IPv4 settings. */
  readonly ip4: Ip4Config;
  /** IPv6 settings. */
  readonly ip6: IpVersionConfig;
  /** -D: resolvers in order given (mixed families); [] for `-D none`; undefined: resolv.conf. */
  readonly dns: readonly Uint8Array[] | undefined;
  /** -S: search domains; [] for `-S none`; undefined: resolv.conf. */
  readonly search: readonly string[] | undefined;
  /** Resolvers announced via DHCP/DHCPv6/NDP (passt: yes unless --no-dhcp-dns; pasta: --dhcp-dns). */
  readonly dhcpDns: boolean;
  /** Search list announced via DHCP/DHCPv6/NDP (passt: unless --no-dhcp-search; pasta: --dhcp-search). */
  readonly dhcpSearch: boolean;
  /** --no-tcp. */
  readonly noTcp: boolean;
  /** --no-udp. */
  readonly noUdp: boolean;
  /** --no-icmp. */
  readonly noIcmp: boolean;
  /** --no-dhcp. */
  readonly noDhcp: boolean;
  /** --no-ndp. */
  readonly noNdp: boolean;
  /** --no-dhcpv6. */
  readonly noDhcpv6: boolean;
  /** --no-ra. */
  readonly noRa: boolean;
  /** --no-map-gw, or implied by `--map-host-loopback none`. */
  readonly noMapGw: boolean;
  /** -H: host name sent in DHCP option 12; undefined: none. No trailing dot. */
  readonly hostname: string | undefined;
  /** --fqdn: name sent as client FQDN (DHCP option 81, DHCPv6 option 39). No trailing dot. */
  readonly fqdn: string | undefined;
  /** --stats: seconds at least between event statistics on stderr; 0: none. */
  readonly stats: number;
  /** --freebind: listeners of -t/-u may bind addresses the host does not have (yet). */
  readonly freebind: boolean;
  /** --chroot-fallback: chroot(2) into the empty root when pivot_root(2) fails. */
  readonly chrootFallback: boolean;
  /** -t: TCP ports forwarded from the host to the guest / namespace. */
  readonly tcpIn: PortForwarding;
  /** -u (or following -t): UDP ports forwarded from the host to the guest / namespace. */
  readonly udpIn: PortForwarding;
}

/** passt: serves one qemu instance over a UNIX domain socket. */
export interface PasstConfig extends CommonConfig {
  /** Mode tag. */
  readonly mode: "passt";
  /** -s: socket path; undefined: probe /tmp/passt_N.socket. Cleared by a later -F. */
  readonly socketPath: string | undefined;
  /** -F: pre-opened connected socket. Cleared by a later -s. */
  readonly fd: number | undefined;
  /** -1, or implied by -F. */
  readonly oneOff: boolean;
  /** --vhost-user: the socket speaks vhost-user, the guest's memory is shared. */
  readonly vhostUser: boolean;
}

/** What pasta attaches to: a new namespace running a command, a PID's, or a named one. */
export type PastaTarget =
  /** Spawn `command` (empty: the user's shell) in new user and network namespaces. */
  | { readonly kind: "spawn"; readonly command: readonly string[] }
  /** Join the namespaces of a running process. */
  | { readonly kind: "pid"; readonly pid: number }
  /** --netns: join the network namespace bound at `path`. */
  | { readonly kind: "netns"; readonly path: string };

/** pasta: connects a network namespace through a tap device. */
export interface PastaConfig extends CommonConfig {
  /** Mode tag. */
  readonly mode: "pasta";
  /** -I: tap interface name in the namespace; undefined: same as the host's. */
  readonly nsIfname: string | undefined;
  /** -T: TCP ports forwarded from the namespace to the host. */
  readonly tcpOut: PortForwarding;
  /** -U (or following -T): UDP ports forwarded from the namespace to the host. */
  readonly udpOut: PortForwarding;
  /** Positional COMMAND / PID, or --netns. */
  readonly target: PastaTarget;
  /** --userns: user namespace path to join. */
  readonly userns: string | undefined;
  /** --netns-only, or implied by --netns without --userns. */
  readonly netnsOnly: boolean;
  /** --no-netns-quit. */
  readonly noNetnsQuit: boolean;
  /**
   * --host-lo-to-ns-lo: connections to the host's loopback forwarded with -t/-u
   * reach the namespace's loopback; otherwise its own (external) address.
   */
  readonly hostLoToNsLo: boolean;
  /** --no-splice: loopback traffic goes through the tap too, with the address mapping. */
  readonly noSplice: boolean;
  /** --splice-only: no tap device; only loopback forwarding between the namespaces. */
  readonly spliceOnly: boolean;
  /** --config-net. */
  readonly configNet: boolean;
  /** --no-copy-routes for IPv4, or implied by an IPv4 -g. */
  readonly noCopyRoutes4: boolean;
  /** --no-copy-routes for IPv6, or implied by an IPv6 -g. */
  readonly noCopyRoutes6: boolean;
  /** --no-copy-addrs for IPv4, or implied by an IPv4 -a. */
  readonly noCopyAddrs4: boolean;
  /** --no-copy-addrs for IPv6, or implied by an IPv6 -a. */
  readonly noCopyAddrs6: boolean;
  /** --ns-mac-addr: MAC of the namespace's tap (6 bytes); undefined: kernel's choice. */
  readonly nsMacAddr: Uint8Array | undefined;
}

/** The parsed command line of either mode; narrow on `mode`. */
export type Config = PasstConfig | PastaConfig;

/** Default -m: the largest 802.3 MTU minus the 802.3 header, rounded down to 32 bits. */
export const DEFAULT_MTU = 65520;
/** Smallest non-zero -m (ETH_MIN_MTU). */
export const MIN_MTU = 68;
/** Largest -m (ETH_MAX_MTU). */
export const MAX_MTU = 65535;
/** Default --log-size in bytes: 1 MiB. */
export const DEFAULT_LOG_SIZE = 1024 * 1024;
/** Smallest --log-size in bytes accepted (as C passt: five 8 KiB pages). */
export const MIN_LOG_SIZE = 5 * 8192;
/** Where a bare --netns NAME lives, as with ip-netns(8). */
export const NETNS_RUN_DIR = "/run/netns";

/** Object.freeze applied through plain objects and arrays (typed arrays and Sets left alone). */
export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== "object") return value;
  if (ArrayBuffer.isView(value) || value instanceof Set || Object.isFrozen(value)) return value;
  for (const key of Object.keys(value)) {
    deepFreeze((value as Record<string, unknown>)[key]);
  }
  return Object.freeze(value);
}
