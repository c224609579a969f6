/**
 * The option table of passt and pasta, and the parser that turns argv into a Config.
 *
 * Theory of operation: one table (`OPTIONS`) lists every option of both programs, in
 * C passt's order (which is the order glibc prints for an ambiguous abbreviation), with
 * its short letter and the modes it belongs to. getopt recognises every long name in
 * both modes, as C passt does with its single table, so "passt --netns x" reaches the
 * value handler and fails with "--netns is for pasta mode only"; short letters of the
 * other mode are simply not in the mode's option string ("passt -T" is an invalid
 * option). Values are checked as each option is met, in command line order, so the
 * first mistake is the one reported and "--help" stops parsing where it stands; checks
 * that involve several options run after the loop. The result is one frozen Config.
 *
 * Deliberate differences from C passt (checked against Debian's 0.0~git20230309 build;
 * upstream behaviour of late 2024 as we understand it), mostly to report mistakes at
 * start-up instead of acting on them silently:
 *
 * - every value error names the option and the value, in the form
 *   "Invalid <what> for --<option>: <value> (<reason>)"; C prints e.g. "Invalid MTU: 50".
 *   getopt errors, "--X is for pasta mode only" and "Extra non-option argument: X" keep
 *   C's text exactly;
 * - numbers (-m, -F, --log-size) are decimal only (C: strtol() base 0 takes 0x.., 010);
 *   -m and -M refuse text that the Debian build silently turned into 0;
 * - port 0 is refused in port specifications (C accepts it); a port given twice for
 *   the same bind scope, or mapped to two targets, is an error (C upstream only warns);
 *   like C, -T/-U take no "ADDR/" or "%IF/" prefix;
 * - -a, -g, -o and --dns-forward may appear once per IP version, as the manual says
 *   (the Debian build refuses a second one too; upstream lets the last one win);
 *   --map-host-loopback and --map-guest-addr are last-one-wins per version;
 * - -4 together with -6 is an error, as in the Debian build;
 * - "-D none" empties the list and later -D options add to it again (the Debian build
 *   calls that "Conflicting DNS options"); -S is last-one-wins;
 * - --userns together with --netns-only is an error;
 * - -S names must be valid DNS names (labels of letters, digits, '-', '_');
 * - -M and --ns-mac-addr refuse group (multicast) MAC addresses;
 * - the positional PID must be 1..2^31-1 (C takes anything strtol() accepts);
 * - --no-tcp/--no-udp against port options is checked after the loop, in any order;
 * - passt, like pasta, stops at the first operand and then fails on it (the Debian build
 *   permutes, so "passt foo --bogus" complains about --bogus first);
 * - --help and --version are returned to the caller, which prints to stdout and exits 0
 *   (upstream behaviour; the Debian build prints help to stderr and exits 1).
 * - options of the 2026 manual: --stats without -f is refused whatever the order (C
 *   only sees a -f given before it); -H and --fqdn must be DNS names of at most 253
 *   bytes (C only limits the length); --dns-host may be given once per IP version;
 *   -a ADDR/LEN together with -n is refused in either order, as upstream says;
 *   "-t 22 -t all" is still refused (C adds both); the migration options are
 *   parsed here and refused by main.ts; --print-capabilities is acted on by main.ts.
 */

import {
  type Config,
  ConfigError,
  deepFreeze,
  DEFAULT_LOG_SIZE,
  DEFAULT_MTU,
  type Ip4Config,
  type IpVersionConfig,
  MAX_MTU,
  MIN_LOG_SIZE,
  MIN_MTU,
  type Mode,
  NETNS_RUN_DIR,
  type PasstConfig,
  type PastaConfig,
  type PastaTarget,
  type RunAs,
} from "./config.ts";
import {
  IP4_LEN,
  isBroadcast4,
  isLoopback,
  isMulticast,
  isMulticastMac,
  isUnspecified,
  isV4Compat6,
  isV4Mapped6,
  isValidIfname,
  parseIp,
  parseMac,
  parseNetmask4,
} from "../addr.ts";
import { Getopt, type LongOption, type ShortOption } from "./getopt.ts";
import { FORWARD_AUTO, FORWARD_NONE, PortTableBuilder, udpFromTcp } from "./ports.ts";

export { ConfigError };

/** One entry of the option table. */
export interface OptionSpec {
  /** Long name without "--". */
  readonly long: string;
  /** Short letter, if any. */
  readonly short: string | undefined;
  /** True if the option requires an argument. */
  readonly hasArg: boolean;
  /** Modes in which the option is valid. */
  readonly modes: readonly Mode[];
}

const BOTH: readonly Mode[] = ["passt", "pasta"];
const PASST: readonly Mode[] = ["passt"];
const PASTA: readonly Mode[] = ["pasta"];

function opt(long: string, short: string | undefined, hasArg: boolean, modes = BOTH): OptionSpec {
  return Object.freeze({ long, short, hasArg, modes });
}

/** Every option of both modes, in C passt's table order. */
export const OPTIONS: readonly OptionSpec[] = Object.freeze([
  opt("debug", "d", false),
  opt("quiet", "q", false),
  opt("foreground", "f", false),
  opt("stderr", "e", false),
  opt("log-file", "l", true),
  opt("help", "h", false),
  opt("socket", "s", true, PASST),
  opt("fd", "F", true, PASST),
  opt("ns-ifname", "I", true, PASTA),
  opt("pcap", "p", true),
  opt("pid", "P", true),
  opt("mtu", "m", true),
  opt("address", "a", true),
  opt("netmask", "n", true),
  opt("mac-addr", "M", true),
  opt("gateway", "g", true),
  opt("interface", "i", true),
  opt("outbound", "o", true),
  opt("dns", "D", true),
  opt("search", "S", true),
  opt("hostname", "H", true),
  opt("no-tcp", undefined, false),
  opt("no-udp", undefined, false),
  opt("no-icmp", undefined, false),
  opt("no-dhcp", undefined, false),
  opt("no-dhcpv6", undefined, false),
  opt("no-ndp", undefined, false),
  opt("no-ra", undefined, false),
  opt("no-splice", undefined, false, PASTA),
  opt("splice-only", undefined, false, PASTA),
  opt("freebind", undefined, false),
  opt("no-map-gw", undefined, false),
  opt("ipv4-only", "4", false),
  opt("ipv6-only", "6", false),
  opt("one-off", "1", false, PASST),
  opt("tcp-ports", "t", true),
  opt("udp-ports", "u", true),
  opt("tcp-ns", "T", true, PASTA),
  opt("udp-ns", "U", true, PASTA),
  opt("userns", undefined, true, PASTA),
  opt("netns", undefined, true, PASTA),
  opt("ns-mac-addr", undefined, true, PASTA),
  opt("dhcp-dns", undefined, false, PASTA),
  opt("no-dhcp-dns", undefined, false, PASST),
  opt("dhcp-search", undefined, false, PASTA),
  opt("no-dhcp-search", undefined, false, PASST),
  opt("dns-forward", undefined, true),
  opt("no-netns-quit", undefined, false, PASTA),
  opt("host-lo-to-ns-lo", undefined, false, PASTA),
  opt("trace", undefined, false),
  opt("runas", undefined, true),
  opt("log-size", undefined, true),
  opt("version", undefined, false),
  opt("outbound-if4", undefined, true),
  opt("outbound-if6", undefined, true),
  opt("config-net", undefined, false, PASTA),
  opt("no-copy-routes", undefined, false, PASTA),
  opt("no-copy-addrs", undefined, false, PASTA),
  opt("netns-only", undefined, false, PASTA),
  opt("map-host-loopback", undefined, true),
  opt("map-guest-addr", undefined, true),
  opt("dns-host", undefined, true),
  opt("vhost-user", undefined, false, PASST),
  opt("print-capabilities", undefined, false, PASST),
  opt("socket-path", undefined, true, PASST),
  opt("fqdn", undefined, true),
  opt("repair-path", undefined, true, PASST),
  opt("migrate-exit", undefined, false, PASST),
  opt("migrate-no-linger", undefined, false, PASST),
  opt("stats", undefined, true),
  opt("chroot-fallback", undefined, false),
]);

/** Long names (without "--") of the options valid in `mode`, in table order. */
export function optionNames(mode: Mode): string[] {
  return OPTIONS.filter((o) => o.modes.includes(mode)).map((o) => o.long);
}

const LONG_OPTIONS: readonly LongOption[] = OPTIONS.map((o) => ({
  name: o.long,
  hasArg: o.hasArg,
  key: o.long,
}));

function shortOptionsFor(mode: Mode): ReadonlyMap<string, ShortOption> {
  const map = new Map<string, ShortOption>();
  for (const o of OPTIONS) {
    if (o.short !== undefined && o.modes.includes(mode)) {
      map.set(o.short, { hasArg: o.hasArg, key: o.long });
    }
  }
  return map;
}

const SHORT_OPTIONS: Readonly<Record<Mode, ReadonlyMap<string, ShortOption>>> = {
  passt: shortOptionsFor("passt"),
  pasta: shortOptionsFor("pasta"),
};

/**
 * The getopt option string equivalent to the short options of `mode` (for reference and
 * tests): "+" then each letter, followed by ':' if it takes an argument.
 */
export function optionString(mode: Mode): string {
  let s = "+";
  for (const [letter, o] of SHORT_OPTIONS[mode]) s += o.hasArg ? `${letter}:` : letter;
  return s;
}

/** What the command line asks for: run with a configuration, or print help or version. */
export type ParseResult =
  | { readonly action: "run"; readonly config: Config }
  | { readonly action: "help" }
  | { readonly action: "version" };

/** Longest path we accept for files given on the command line (PATH_MAX minus NUL). */
const PATH_MAX = 4095;
/** Longest UNIX domain socket path (sun_path minus NUL). */
const SOCKET_PATH_MAX = 107;
const INT_MAX = 0x7fffffff;
const DECIMAL_RE = /^[0-9]+$/;

function invalid(what: string, option: string, value: string, reason?: string): ConfigError {
  const suffix = reason === undefined ? "" : ` (${reason})`;
  return new ConfigError(`Invalid ${what} for --${option}: ${value}${suffix}`);
}

/** Decimal integer within [min, max], or undefined. */
function parseDecimal(text: string, min: number, max: number): number | undefined {
  if (!DECIMAL_RE.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
}

function checkPath(option: string, value: string, max = PATH_MAX): string {
  if (value.length === 0) throw invalid("path", option, value, "empty");
  if (new TextEncoder().encode(value).length > max) {
    throw invalid("path", option, value, `longer than ${max} bytes`);
  }
  if (value.includes("\0")) throw invalid("path", option, value, "contains NUL");
  return value;
}

function checkIfname(option: string, value: string): string {
  if (!isValidIfname(value)) throw invalid("interface name", option, value);
  return value;
}

/** Which kinds of address an option refuses, besides malformed text. */
interface AddressRules {
  readonly unspecified?: boolean;
  readonly loopback?: boolean;
  readonly multicast?: boolean;
  readonly broadcast?: boolean;
  readonly v4InV6?: boolean;
}

function parseAddress(
  what: string,
  option: string,
  value: string,
  refuse: AddressRules,
): Uint8Array {
  const addr = parseIp(value);
  if (addr === undefined) throw invalid(what, option, value);
  let reason: string | undefined;
  if (refuse.unspecified && isUnspecified(addr)) reason = "unspecified address";
  else if (refuse.loopback && isLoopback(addr)) reason = "loopback address";
  else if (refuse.multicast && isMulticast(addr)) reason = "multicast address";
  else if (refuse.broadcast && addr.length === IP4_LEN && isBroadcast4(addr)) {
    reason = "broadcast address";
  } else if (refuse.v4InV6 && addr.length !== IP4_LEN && (isV4Mapped6(addr) || isV4Compat6(addr))) {
    reason = "IPv4 address in IPv6 form";
  }
  if (reason !== undefined) throw invalid(what, option, value, reason);
  return addr;
}

const LABEL_RE = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

function parseSearchList(value: string): string[] {
  if (value === "none") return [];
  const names = value.split(/[ \t]+/).filter((s) => s.length > 0);
  if (names.length === 0) throw invalid("search list", "search", `'${value}'`, "empty");
  for (const name of names) {
    const bare = name.endsWith(".") ? name.slice(0, -1) : name;
    if (bare.length === 0 || bare.length > 253 || !bare.split(".").every((l) => LABEL_RE.test(l))) {
      throw invalid("search list", "search", value, `bad domain name '${name}'`);
    }
  }
  return names;
}

/**
 * A domain name for -H and --fqdn: labels of letters, digits, '-' and '_', at most
 * 253 bytes without a trailing dot, so that it fits DHCP option 12 and the wire form
 * of options 81 (DHCP) and 39 (DHCPv6).
 */
function checkDomainName(what: string, option: string, value: string): string {
  const bare = value.endsWith(".") ? value.slice(0, -1) : value;
  if (bare.length === 0) throw invalid(what, option, `'${value}'`, "empty");
  if (bare.length > 253) throw invalid(what, option, value, "longer than 253 bytes");
  if (!bare.split(".").every((l) => LABEL_RE.test(l))) {
    throw invalid(what, option, value, "labels of letters, digits, '-' and '_' only");
  }
  return bare;
}

function parseRunAs(value: string): RunAs {
  const colon = value.indexOf(":");
  const userText = colon < 0 ? value : value.slice(0, colon);
  const groupText = colon < 0 ? undefined : value.slice(colon + 1);
  const id = (text: string): number | string => {
    if (text.length === 0 || text.includes(":")) throw invalid("user", "runas", value);
    if (!DECIMAL_RE.test(text)) return text;
    const n = parseDecimal(text, 0, 0xfffffffe); // (uid_t)-1 means "no change"
    if (n === undefined) throw invalid("user", "runas", value, "id out of range");
    return n;
  };
  return { user: id(userText), group: groupText === undefined ? undefined : id(groupText) };
}

function parseMacOption(option: string, value: string): Uint8Array {
  const mac = parseMac(value);
  if (mac === undefined) throw invalid("MAC address", option, value);
  if (isMulticastMac(mac)) throw invalid("MAC address", option, value, "group address");
  return mac;
}

/** Per-version state while parsing. */
interface VersionState {
  address: Uint8Array | undefined;
  gateway: Uint8Array | undefined;
  outbound: Uint8Array | undefined;
  outboundIf: string | undefined;
  dnsForward: Uint8Array | undefined;
  mapHostLoopback: Uint8Array | null | undefined;
  mapGuestAddr: Uint8Array | undefined;
  dnsHost: Uint8Array | undefined;
}

function newVersionState(): VersionState {
  return {
    address: undefined,
    gateway: undefined,
    outbound: undefined,
    outboundIf: undefined,
    dnsForward: undefined,
    mapHostLoopback: undefined,
    mapGuestAddr: undefined,
    dnsHost: undefined,
  };
}

type OnceField = "address" | "gateway" | "outbound" | "dnsForward" | "dnsHost";

/**
 * Parses the arguments of passt or pasta (argv without argv[0]) into a frozen Config,
 * or tells the caller to print help or the version. Throws ConfigError on any mistake;
 * see the comment at the top of this file for the message conventions.
 */
export function parseCommandLine(mode: Mode, args: readonly string[]): ParseResult {
  const other = mode === "passt" ? "pasta" : "passt";
  const given = new Set<string>();
  let debug = false;
  let trace = false;
  let quiet = false;
  let logFile: string | undefined;
  let logSize = DEFAULT_LOG_SIZE;
  let foreground = false;
  let pidFile: string | undefined;
  let pcapFile: string | undefined;
  let runAs: RunAs | undefined;
  let mtu = DEFAULT_MTU;
  let macAddr: Uint8Array | undefined;
  let interfaceName: string | undefined;
  let ipv4Only = false;
  let ipv6Only = false;
  let prefixLength: number | undefined;
  let netmaskGiven = false;
  let cidrGiven = false;
  let hostname: string | undefined;
  let stats = 0;
  let fqdn: string | undefined;
  const v4 = newVersionState();
  const v6 = newVersionState();
  let dns: Uint8Array[] | undefined;
  let search: string[] | undefined;
  let dhcpDns = mode === "passt";
  let dhcpSearch = mode === "passt";
  const flags = new Set<string>(); // plain on/off options that were given
  let socketPath: string | undefined;
  let fd: number | undefined;
  let nsIfname: string | undefined;
  let userns: string | undefined;
  let netns: string | undefined;
  let nsMacAddr: Uint8Array | undefined;
  const tcpIn = new PortTableBuilder("--tcp-ports", mode, true);
  const udpIn = new PortTableBuilder("--udp-ports", mode, true);
  const tcpOut = new PortTableBuilder("--tcp-ns", mode, false);
  const udpOut = new PortTableBuilder("--udp-ns", mode, false);

  const setOnce = (
    field: OnceField,
    option: string,
    what: string,
    addr: Uint8Array,
    raw: string,
  ) => {
    const state = addr.length === IP4_LEN ? v4 : v6;
    if (state[field] !== undefined) {
      const family = addr.length === IP4_LEN ? "IPv4" : "IPv6";
      throw invalid(what, option, raw, `${family} already given, one per IP version`);
    }
    state[field] = addr;
  };

  const getopt = new Getopt(args, SHORT_OPTIONS[mode], LONG_OPTIONS);
  for (let parsed = getopt.next(); parsed !== undefined; parsed = getopt.next()) {
    const name = parsed.key;
    const value = parsed.value ?? "";
    const spec = OPTIONS.find((o) => o.long === name)!;
    if (!spec.modes.includes(mode)) throw new ConfigError(`--${name} is for ${other} mode only`);
    given.add(name);

    switch (name) {
      case "help":
        return { action: "help" };
      case "version":
        return { action: "version" };
      case "debug":
        debug = true;
        quiet = false;
        break;
      case "trace":
        trace = debug = true;
        quiet = false;
        break;
      case "quiet":
        quiet = true;
        debug = trace = false;
        break;
      case "stderr": // kept for compatibility, no effect
        break;
      case "foreground":
        foreground = true;
        break;
      case "log-file":
        logFile = checkPath(name, value);
        break;
      case "log-size": {
        const size = parseDecimal(value, 0, Number.MAX_SAFE_INTEGER);
        if (size === undefined) throw invalid("size", name, value);
        if (size < MIN_LOG_SIZE) {
          throw invalid("size", name, value, `must be at least ${MIN_LOG_SIZE} bytes`);
        }
        logSize = size;
        break;
      }
      case "runas":
        runAs = parseRunAs(value);
        break;
      case "pcap":
        pcapFile = checkPath(name, value);
        break;
      case "pid":
        pidFile = checkPath(name, value);
        break;
      case "mtu": {
        const n = parseDecimal(value, 0, MAX_MTU);
        if (n === undefined || (n !== 0 && n < MIN_MTU)) {
          throw invalid("MTU", name, value, `0, or ${MIN_MTU} to ${MAX_MTU}`);
        }
        mtu = n;
        break;
      }
      case "address": {
        const slash = value.indexOf("/");
        const addrText = slash < 0 ? value : value.slice(0, slash);
        const addr = parseAddress("address", name, addrText, {
          unspecified: true,
          loopback: true,
          multicast: true,
          broadcast: true,
          v4InV6: true,
        });
        if (slash >= 0) {
          // CIDR notation (2026 manual): IPv4 sets the DHCP netmask; an IPv6 length is
          // checked and then, as upstream, left to the /64 of NDP and DHCPv6.
          const max = addr.length === IP4_LEN ? 32 : 128;
          const len = parseDecimal(value.slice(slash + 1), 0, max);
          if (len === undefined) throw invalid("address", name, value, `prefix length 0 to ${max}`);
          if (addr.length === IP4_LEN) {
            prefixLength = len;
            cidrGiven = true;
          }
        }
        setOnce("address", name, "address", addr, value);
        break;
      }
      case "netmask": {
        const len = parseNetmask4(value);
        if (len < 0) throw invalid("netmask", name, value);
        if (!cidrGiven) prefixLength = len;
        netmaskGiven = true;
        break;
      }
      case "mac-addr":
        macAddr = parseMacOption(name, value);
        break;
      case "gateway": {
        const addr = parseAddress("gateway address", name, value, {
          unspecified: true,
          loopback: true,
          multicast: true,
          broadcast: true,
        });
        setOnce("gateway", name, "gateway address", addr, value);
        break;
      }
      case "interface":
        interfaceName = checkIfname(name, value);
        break;
      case "outbound": {
        const addr = parseAddress("outbound address", name, value, {
          unspecified: true,
          loopback: true,
          multicast: true,
          broadcast: true,
          v4InV6: true,
        });
        setOnce("outbound", name, "outbound address", addr, value);
        break;
      }
      case "outbound-if4":
        v4.outboundIf = checkIfname(name, value);
        break;
      case "outbound-if6":
        v6.outboundIf = checkIfname(name, value);
        break;
      case "dns":
        if (value === "none") {
          dns = [];
        } else {
          const addr = parseAddress("DNS address", name, value, { unspecified: true });
          (dns ??= []).push(addr);
        }
        break;
      case "search":
        search = parseSearchList(value);
        break;
      case "stats": {
        const n = parseDecimal(value, 0, INT_MAX);
        if (n === undefined) throw invalid("delay", name, value, "seconds, 0 or more");
        stats = n;
        break;
      }
      case "hostname":
        hostname = checkDomainName("hostname", name, value);
        break;
      case "fqdn":
        fqdn = checkDomainName("FQDN", name, value);
        break;
      case "dns-host": {
        // The host's own resolver may well be a loopback one (127.0.0.53).
        const addr = parseAddress("DNS host address", name, value, {
          unspecified: true,
          multicast: true,
          broadcast: true,
        });
        setOnce("dnsHost", name, "DNS host address", addr, value);
        break;
      }
      case "dns-forward": {
        const addr = parseAddress("DNS forwarding address", name, value, {
          unspecified: true,
          loopback: true,
          multicast: true,
          broadcast: true,
        });
        setOnce("dnsForward", name, "DNS forwarding address", addr, value);
        break;
      }
      case "map-host-loopback":
      case "map-guest-addr": {
        const hostLoopback = name === "map-host-loopback";
        if (value === "none") {
          if (hostLoopback) {
            v4.mapHostLoopback = v6.mapHostLoopback = null;
            flags.add("no-map-gw"); // as the manual says, 'none' implies --no-map-gw
          } else {
            v4.mapGuestAddr = v6.mapGuestAddr = undefined;
          }
          break;
        }
        const addr = parseAddress("address to map", name, value, {
          unspecified: true,
          loopback: true,
          multicast: true,
          broadcast: true,
        });
        const state = addr.length === IP4_LEN ? v4 : v6;
        if (hostLoopback) state.mapHostLoopback = addr;
        else state.mapGuestAddr = addr;
        break;
      }
      case "ipv4-only":
        ipv4Only = true;
        break;
      case "ipv6-only":
        ipv6Only = true;
        break;
      case "dhcp-dns":
        dhcpDns = true;
        break;
      case "no-dhcp-dns":
        dhcpDns = false;
        break;
      case "dhcp-search":
        dhcpSearch = true;
        break;
      case "no-dhcp-search":
        dhcpSearch = false;
        break;
      case "socket":
      case "socket-path":
        socketPath = checkPath(name, value, SOCKET_PATH_MAX);
        fd = undefined;
        break;
      case "fd": {
        const n = parseDecimal(value, 0, INT_MAX);
        if (n === undefined || n === 1 || n === 2) {
          throw invalid("file descriptor", name, value, "0, or 3 and above");
        }
        fd = n;
        socketPath = undefined;
        break;
      }
      case "ns-ifname":
        nsIfname = checkIfname(name, value);
        break;
      case "tcp-ports":
        tcpIn.add(value);
        break;
      case "udp-ports":
        udpIn.add(value);
        break;
      case "tcp-ns":
        tcpOut.add(value);
        break;
      case "udp-ns":
        udpOut.add(value);
        break;
      case "userns":
        userns = checkPath(name, value);
        break;
      case "netns":
        if (value === "." || value === "..") throw invalid("namespace", name, value);
        checkPath(name, value);
        netns = value.includes("/") ? value : `${NETNS_RUN_DIR}/${value}`;
        break;
      case "ns-mac-addr":
        nsMacAddr = parseMacOption(name, value);
        break;
      default: // the on/off options: no-tcp, config-net, one-off, netns-only...
        flags.add(name);
    }
  }

  // Checks across options.
  const operands = getopt.operands;
  if (ipv4Only && ipv6Only) {
    throw new ConfigError("Options --ipv4-only and --ipv6-only are mutually exclusive");
  }
  if (stats > 0 && !foreground) {
    throw new ConfigError(
      "Can't display statistics if not running in foreground: --stats needs -f",
    );
  }
  if (cidrGiven && netmaskGiven) {
    throw new ConfigError(
      "Options --netmask and --address with a prefix length are mutually exclusive",
    );
  }
  const noTcp = flags.has("no-tcp");
  const noUdp = flags.has("no-udp");
  for (
    const [builder, disabled, proto] of [
      [tcpIn, noTcp, "TCP"],
      [tcpOut, noTcp, "TCP"],
      [udpIn, noUdp, "UDP"],
      [udpOut, noUdp, "UDP"],
    ] as const
  ) {
    if (disabled && builder.given && builder.build(FORWARD_NONE).mode !== "none") {
      throw new ConfigError(
        `${proto} port forwarding requested with ${builder.option} but --no-${proto.toLowerCase()} given`,
      );
    }
  }
  const fallback = mode === "pasta" ? FORWARD_AUTO : FORWARD_NONE;
  const tcpInTable = noTcp ? FORWARD_NONE : tcpIn.build(fallback);
  const udpInTable = noUdp
    ? FORWARD_NONE
    : udpIn.given
    ? udpIn.build(fallback)
    : tcpIn.given
    ? udpFromTcp(tcpInTable)
    : fallback;

  const ipVersion = (s: VersionState): IpVersionConfig => ({
    address: s.address,
    gateway: s.gateway,
    outbound: s.outbound,
    outboundIf: s.outboundIf,
    dnsForward: s.dnsForward,
    mapHostLoopback: s.mapHostLoopback,
    mapGuestAddr: s.mapGuestAddr,
    dnsHost: s.dnsHost,
  });
  const ip4: Ip4Config = { ...ipVersion(v4), prefixLength };

  const common = {
    given: given as ReadonlySet<string>,
    debug,
    trace,
    quiet,
    logFile,
    logSize,
    foreground,
    pidFile,
    pcapFile,
    runAs,
    mtu,
    macAddr,
    interfaceName,
    ipv4Only,
    ipv6Only,
    ip4,
    ip6: ipVersion(v6),
    dns,
    search,
    dhcpDns,
    dhcpSearch,
    noTcp,
    noUdp,
    noIcmp: flags.has("no-icmp") || flags.has("splice-only"),
    noDhcp: flags.has("no-dhcp"),
    noNdp: flags.has("no-ndp"),
    noDhcpv6: flags.has("no-dhcpv6"),
    noRa: flags.has("no-ra"),
    noMapGw: flags.has("no-map-gw"),
    hostname,
    fqdn,
    freebind: flags.has("freebind"),
    stats,
    chrootFallback: flags.has("chroot-fallback"),
    tcpIn: tcpInTable,
    udpIn: udpInTable,
  };

  if (mode === "passt") {
    if (operands.length > 0) {
      throw new ConfigError(`Extra non-option argument: ${operands[0]}`);
    }
    const config: PasstConfig = {
      mode,
      ...common,
      socketPath,
      fd,
      oneOff: flags.has("one-off") || fd !== undefined,
      vhostUser: flags.has("vhost-user"),
    };
    return { action: "run", config: deepFreeze(config) };
  }

  let target: PastaTarget;
  if (netns !== undefined) {
    if (operands.length > 0) {
      throw new ConfigError(`Both --netns and PID or command given: ${operands.join(" ")}`);
    }
    target = { kind: "netns", path: netns };
  } else if (operands.length === 1 && DECIMAL_RE.test(operands[0]!)) {
    const pid = parseDecimal(operands[0]!, 1, INT_MAX);
    if (pid === undefined) throw new ConfigError(`Invalid PID: ${operands[0]}`);
    target = { kind: "pid", pid };
  } else {
    target = { kind: "spawn", command: [...operands] };
  }
  if (userns !== undefined && target.kind === "spawn") {
    throw new ConfigError(`--userns requires --netns or PID: --userns ${userns}`);
  }
  if (userns !== undefined && flags.has("netns-only")) {
    throw new ConfigError("Options --userns and --netns-only are mutually exclusive");
  }
  const noSplice = flags.has("no-splice");
  const spliceOnly = flags.has("splice-only");
  if (spliceOnly && noSplice) {
    throw new ConfigError("--splice-only is incompatible with --no-splice");
  }
  if (noSplice && flags.has("host-lo-to-ns-lo")) {
    throw new ConfigError("--host-lo-to-ns-lo is incompatible with --no-splice");
  }
  const tcpOutTable = noTcp ? FORWARD_NONE : tcpOut.build(FORWARD_AUTO);
  const udpOutTable = noUdp
    ? FORWARD_NONE
    : udpOut.given
    ? udpOut.build(FORWARD_AUTO)
    : tcpOut.given
    ? udpFromTcp(tcpOutTable)
    : FORWARD_AUTO;
  const config: PastaConfig = {
    mode,
    ...common,
    nsIfname,
    tcpOut: tcpOutTable,
    udpOut: udpOutTable,
    target,
    userns,
    netnsOnly: flags.has("netns-only") || (target.kind === "netns" && userns === undefined),
    noNetnsQuit: flags.has("no-netns-quit"),
    // Without a tap, loopback is the only way in: as upstream, --splice-only implies
    // --host-lo-to-ns-lo (and no ICMP, which only has the tap).
    hostLoToNsLo: flags.has("host-lo-to-ns-lo") || spliceOnly,
    noSplice,
    spliceOnly,
    configNet: flags.has("config-net"),
    noCopyRoutes4: flags.has("no-copy-routes") || v4.gateway !== undefined,
    noCopyRoutes6: flags.has("no-copy-routes") || v6.gateway !== undefined,
    noCopyAddrs4: flags.has("no-copy-addrs") || v4.address !== undefined,
    noCopyAddrs6: flags.has("no-copy-addrs") || v6.address !== undefined,
    nsMacAddr,
  };
  return { action: "run", config: deepFreeze(config) };
}
