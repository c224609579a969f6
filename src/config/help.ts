/**
 * The text printed by --help (and after a getopt error), one version per mode.
 *
 * Theory of operation: the help is a list of entries, each an option (or a block of
 * prose) tagged with the modes it applies to; `usage(mode)` keeps the entries of that
 * mode and lays them out in two columns. The wording is our own. A test checks that the
 * long options named in each mode's text are exactly the options the parser accepts in
 * that mode, so descriptions must not mention options of the other mode.
 */

import { DEFAULT_MTU, type Mode } from "./config.ts";

interface HelpEntry {
  /** Modes showing this entry. */
  readonly modes: readonly Mode[];
  /** Left column ("-t, --tcp-ports SPEC"), or "" for a paragraph of prose. */
  readonly option: string;
  /** Description lines. */
  readonly text: readonly string[];
}

const BOTH: readonly Mode[] = ["passt", "pasta"];
const PASST: readonly Mode[] = ["passt"];
const PASTA: readonly Mode[] = ["pasta"];

function entry(modes: readonly Mode[], option: string, ...text: string[]): HelpEntry {
  return { modes, option, text };
}

const PORT_SPEC_TEXT = [
  "SPEC is a comma-separated list of items; each item is",
  "  PORT or FIRST-LAST, optionally followed by :TARGET or",
  "  :TFIRST-TLAST (same length) to forward to other ports,",
  "  :TOADDR/TARGET or :TOADDR to forward to another address,",
  "  or ~PORT / ~FIRST-LAST to leave ports out of the list,",
  "  or 'all[:TOADDR]' for every free port below 49152 (pasta:",
  "  'auto', to follow only the ports of the list).",
  "  A list of exclusions only means: every port below 49152",
  "  except those. The list may be preceded by ADDR/, ADDR%IF/",
  "  or %IF/ to listen on one address and/or interface only",
  "  ('*' is any address).",
  "  Repeat the option to add more lists.",
  "examples: 22  2222:22  22,80-90  8000-8010:9000-9010",
  "  192.0.2.1/22  %eth0/80  1000-2000,~1500  ~20000-20010",
  "  0.0.0.0/5000:192.0.2.5/6000  ::1/all  8000-8010,auto",
];

const ENTRIES: readonly HelpEntry[] = [
  entry(BOTH, "-d, --debug", "Verbose logging, not to the system log"),
  entry(BOTH, "--trace", "Log every packet too; implies --debug"),
  entry(
    BOTH,
    "--stats DELAY",
    "With -f: event counts per descriptor kind on",
    "stderr, at most every DELAY seconds, when busy",
  ),
  entry(BOTH, "-q, --quiet", "Only print warnings and errors"),
  entry(BOTH, "-f, --foreground", "Stay in the foreground (default: detach)"),
  entry(BOTH, "-e, --stderr", "Accepted for compatibility, does nothing"),
  entry(BOTH, "-l, --log-file PATH", "Write log messages to PATH (last one given counts)"),
  entry(
    BOTH,
    "--log-size BYTES",
    "Cap the log file at BYTES, dropping the oldest",
    "default: 1048576",
  ),
  entry(
    BOTH,
    "--runas UID[:GID]",
    "If started as root, become this user (and group)",
    "once set up, numeric or by name: LOGIN[:GROUP]",
    "default: nobody",
  ),
  entry(BOTH, "-h, --help", "Show this text and exit"),
  entry(BOTH, "--version", "Show the version and exit"),
  entry(BOTH, "-p, --pcap FILE", "Record tap-side traffic to FILE in pcap format"),
  entry(BOTH, "-P, --pid FILE", "Write our process ID to FILE once set up"),
  entry(
    BOTH,
    "-m, --mtu MTU",
    "MTU announced via DHCP and NDP, 68 to 65535;",
    `0 announces none. default: ${DEFAULT_MTU}`,
  ),
  entry(
    BOTH,
    "-a, --address ADDR[/LEN]",
    "IPv4 or IPv6 address to hand out; at most once",
    "per IP version. /LEN: IPv4 prefix length instead",
    "of -n (IPv6 always gets a /64)",
    "default: the host's address",
  ),
  entry(
    BOTH,
    "-n, --netmask MASK",
    "IPv4 netmask, dotted (255.255.255.0) or bits (24)",
    "default: as on the host, else by address class",
  ),
  entry(BOTH, "-M, --mac-addr ADDR", "Our MAC address towards the tap side", "default: the host's"),
  entry(
    BOTH,
    "-g, --gateway ADDR",
    "IPv4 or IPv6 default gateway to announce; at most",
    "once per IP version. default: the host's",
  ),
  entry(
    BOTH,
    "-i, --interface NAME",
    "Host interface to copy addresses and routes from",
    "default: --outbound-if4/--outbound-if6, else the",
    "interface of the first default route",
  ),
  entry(
    BOTH,
    "-o, --outbound ADDR",
    "Source address for outgoing IPv4 or IPv6 sockets;",
    "at most once per IP version. default: routing",
  ),
  entry(BOTH, "--outbound-if4 NAME", "Bind outgoing IPv4 sockets to interface NAME"),
  entry(BOTH, "--outbound-if6 NAME", "Bind outgoing IPv6 sockets to interface NAME"),
  entry(
    BOTH,
    "-D, --dns ADDR",
    "Name server to announce, instead of those in",
    "/etc/resolv.conf; repeat for more. 'none': no DNS",
  ),
  entry(
    BOTH,
    "--dns-forward ADDR",
    "Send DNS traffic for ADDR to the host's first",
    "resolver; at most once per IP version",
  ),
  entry(
    BOTH,
    "--dns-host ADDR",
    "Resolver that --dns-forward traffic goes to; at",
    "most once per IP version. default: the first one",
    "in /etc/resolv.conf",
  ),
  entry(
    BOTH,
    "-S, --search LIST",
    "Space-separated search domains, instead of those in",
    "/etc/resolv.conf. 'none': no list ('none.' for a",
    "domain called none)",
  ),
  entry(BOTH, "-H, --hostname NAME", "Host name to hand out via DHCP (option 12)"),
  entry(
    BOTH,
    "--fqdn NAME",
    "Fully qualified name to hand out via DHCP",
    "(option 81) and DHCPv6 (option 39)",
  ),
  entry(PASST, "--no-dhcp-dns", "Don't announce name servers via DHCP/NDP/DHCPv6"),
  entry(PASTA, "--dhcp-dns", "Announce name servers via DHCP/NDP/DHCPv6"),
  entry(PASST, "--no-dhcp-search", "Don't announce search domains via DHCP/NDP/DHCPv6"),
  entry(PASTA, "--dhcp-search", "Announce search domains via DHCP/NDP/DHCPv6"),
  entry(BOTH, "--no-tcp", "Don't handle TCP"),
  entry(BOTH, "--no-udp", "Don't handle UDP"),
  entry(BOTH, "--no-icmp", "Don't handle ICMP and ICMPv6 echo"),
  entry(BOTH, "--no-dhcp", "Don't answer DHCP"),
  entry(BOTH, "--no-ndp", "Don't answer NDP"),
  entry(BOTH, "--no-dhcpv6", "Don't answer DHCPv6"),
  entry(BOTH, "--no-ra", "Don't send router advertisements"),
  entry(
    BOTH,
    "--freebind",
    "Let -t/-u listen on addresses the host doesn't",
    "have (yet): IP_FREEBIND, IPV6_FREEBIND",
  ),
  entry(
    BOTH,
    "--chroot-fallback",
    "If pivot_root() fails while isolating ourselves,",
    "chroot() into the empty root instead of failing",
  ),
  entry(
    BOTH,
    "--map-host-loopback ADDR",
    "Traffic to ADDR reaches the host's loopback; one",
    "per IP version, 'none' for neither",
    "default: the gateway address",
  ),
  entry(BOTH, "--no-map-gw", "Don't let the gateway address stand for the host"),
  entry(
    BOTH,
    "--map-guest-addr ADDR",
    "Traffic to ADDR reaches the host at the address",
    "given to the guest; one per IP version, or 'none'",
  ),
  entry(BOTH, "-4, --ipv4-only", "Use IPv4 only"),
  entry(BOTH, "-6, --ipv6-only", "Use IPv6 only"),
  entry(
    PASST,
    "-s, --socket-path, --socket PATH",
    "UNIX domain socket for qemu to connect to",
    "default: first free /tmp/passt_N.socket, N=1..64",
  ),
  entry(PASST, "-F, --fd FD", "Use FD, an already connected socket", "implies --one-off"),
  entry(PASST, "-1, --one-off", "Exit when the first client disconnects"),
  entry(
    PASST,
    "--vhost-user",
    "Speak vhost-user on the -s socket: qemu shares",
    "the guest's memory (-netdev vhost-user)",
  ),
  entry(PASST, "--print-capabilities", "Print the vhost-user back-end capabilities", "(JSON)"),
  entry(
    PASST,
    "--repair-path PATH",
    "Live migration is not supported: this option,",
    "--migrate-exit and --migrate-no-linger are refused",
  ),
  entry(
    PASST,
    "-t, --tcp-ports SPEC",
    "TCP ports of the host to forward to the guest:",
    "'none' (default), 'all' (every free port below",
    "49152), or a port list, see SPEC below",
  ),
  entry(
    PASST,
    "-u, --udp-ports SPEC",
    "UDP ports to forward, as for -t; when not given,",
    "the TCP port numbers, without translation",
    "default: none",
  ),
  entry(PASTA, "-I, --ns-ifname NAME", "Name of the tap device in the namespace"),
  entry(
    PASTA,
    "-t, --tcp-ports SPEC",
    "TCP ports of the host to forward to the namespace:",
    "'none', 'auto' (default: follow the ports bound",
    "in the namespace), 'all', or a port list, see SPEC",
    "below",
  ),
  entry(
    PASTA,
    "-u, --udp-ports SPEC",
    "UDP ports to forward, as for -t; when not given,",
    "the TCP port numbers, without translation",
  ),
  entry(
    PASTA,
    "-T, --tcp-ns SPEC",
    "TCP ports of the namespace to forward to the host",
    "default: auto",
  ),
  entry(
    PASTA,
    "-U, --udp-ns SPEC",
    "UDP ports of the namespace to forward to the host",
    "default: auto",
  ),
  entry(PASTA, "--userns PATH", "User namespace to join (default: the PID's)"),
  entry(
    PASTA,
    "--netns PATH|NAME",
    "Network namespace to join; a NAME without '/'",
    "means /run/netns/NAME. Not with a PID or command",
  ),
  entry(PASTA, "--netns-only", "Join only the network namespace, no user namespace"),
  entry(PASTA, "--no-netns-quit", "Keep running when the namespace goes away"),
  entry(PASTA, "--host-lo-to-ns-lo", "-t/-u from host loopback to namespace loopback"),
  entry(PASTA, "--config-net", "Set up addresses, routes and link in the namespace"),
  entry(PASTA, "--no-copy-routes", "With --config-net, only add the default route"),
  entry(PASTA, "--no-copy-addrs", "With --config-net, only add one address"),
  entry(PASTA, "--ns-mac-addr ADDR", "MAC address of the tap device in the namespace"),
  entry(
    PASTA,
    "--no-splice",
    "Host loopback traffic to -t/-u ports goes through",
    "the tap too, with the address mapping, not spliced",
  ),
  entry(
    PASTA,
    "--splice-only",
    "No tap device: only forward loopback traffic",
    "between the namespaces (-t/-u/-T/-U)",
  ),
  entry(BOTH, "", ...PORT_SPEC_TEXT),
];

const COLUMN = 28;

/** Help text for `mode`, ending with a newline; printed for --help and after getopt errors. */
export function usage(mode: Mode): string {
  const lines: string[] = [];
  if (mode === "pasta") {
    lines.push(
      "Usage: pasta [OPTION]... [COMMAND [ARG]...]",
      "       pasta [OPTION]... PID",
      "       pasta [OPTION]... --netns [PATH|NAME]",
      "",
      "Connect a network namespace to the host's network: a new one running COMMAND",
      "(default: your shell), the one of process PID, or the one given with --netns.",
    );
  } else {
    lines.push(
      "Usage: passt [OPTION]...",
      "",
      "Give a qemu virtual machine network access through the host's sockets.",
    );
  }
  lines.push("", "Options:");
  for (const e of ENTRIES) {
    if (!e.modes.includes(mode)) continue;
    if (e.option === "") {
      lines.push("");
      for (const t of e.text) lines.push(t);
      continue;
    }
    const head = `  ${e.option}`;
    const [first = "", ...rest] = e.text;
    if (head.length < COLUMN) {
      lines.push(head.padEnd(COLUMN) + first);
    } else {
      lines.push(head, " ".repeat(COLUMN) + first);
    }
    for (const t of rest) lines.push(" ".repeat(COLUMN) + t);
  }
  return lines.join("\n") + "\n";
}
