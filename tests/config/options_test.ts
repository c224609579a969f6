import assert from "node:assert/strict";
import {
  ConfigError,
  optionNames,
  OPTIONS,
  parseCommandLine,
  type ParseResult,
} from "../../src/config/options.ts";
import type { Config, Mode } from "../../src/config/config.ts";
import { describePortForwarding, type PortForwarding } from "../../src/config/ports.ts";
import { formatIp, formatMac } from "../../src/addr.ts";

// Our own list of the manual's options (passt.1), per mode; the parser's table must match.
const COMMON = [
  "debug",
  "trace",
  "quiet",
  "foreground",
  "stderr",
  "log-file",
  "log-size",
  "runas",
  "help",
  "version",
  "pcap",
  "pid",
  "mtu",
  "address",
  "netmask",
  "mac-addr",
  "gateway",
  "interface",
  "outbound",
  "outbound-if4",
  "outbound-if6",
  "dns",
  "dns-forward",
  "search",
  "no-tcp",
  "no-udp",
  "no-icmp",
  "no-dhcp",
  "no-ndp",
  "no-dhcpv6",
  "no-ra",
  "map-host-loopback",
  "no-map-gw",
  "map-guest-addr",
  "ipv4-only",
  "ipv6-only",
  "tcp-ports",
  "udp-ports",
  // from the 2026 manual
  "hostname",
  "fqdn",
  "dns-host",
  "freebind",
  "chroot-fallback",
  "stats",
];
const MANUAL_OPTIONS: Record<Mode, string[]> = {
  passt: [
    ...COMMON,
    "no-dhcp-dns",
    "no-dhcp-search",
    "socket",
    "fd",
    "one-off",
    // from the 2026 manual: the long name, vhost-user, and migration (refused)
    "socket-path",
    "vhost-user",
    "print-capabilities",
    "repair-path",
    "migrate-exit",
    "migrate-no-linger",
  ],
  pasta: [
    ...COMMON,
    "dhcp-dns",
    "dhcp-search",
    "ns-ifname",
    "tcp-ns",
    "udp-ns",
    "userns",
    "netns",
    "netns-only",
    "no-netns-quit",
    "host-lo-to-ns-lo", // from the 2026 manual
    "config-net",
    "no-copy-routes",
    "no-copy-addrs",
    "ns-mac-addr",
    "no-splice", // from the 2026 manual
    "splice-only", // from the 2026 manual
  ],
};
const SHORT_LETTERS: Record<string, string> = {
  d: "debug",
  q: "quiet",
  f: "foreground",
  e: "stderr",
  l: "log-file",
  h: "help",
  p: "pcap",
  P: "pid",
  m: "mtu",
  a: "address",
  n: "netmask",
  M: "mac-addr",
  g: "gateway",
  i: "interface",
  o: "outbound",
  D: "dns",
  S: "search",
  H: "hostname",
  4: "ipv4-only",
  6: "ipv6-only",
  s: "socket",
  F: "fd",
  1: "one-off",
  t: "tcp-ports",
  u: "udp-ports",
  I: "ns-ifname",
  T: "tcp-ns",
  U: "udp-ns",
};

Deno.test("the option table is the manual's, per mode, with the manual's short letters", () => {
  for (const mode of ["passt", "pasta"] as const) {
    assert.deepEqual([...optionNames(mode)].sort(), [...MANUAL_OPTIONS[mode]].sort(), mode);
  }
  const letters = Object.fromEntries(OPTIONS.flatMap((o) => o.short ? [[o.short, o.long]] : []));
  assert.deepEqual(letters, SHORT_LETTERS);
});

/** Renders a Config as plain data: addresses as text, port tables as spec strings. */
function render(value: unknown): unknown {
  if (value instanceof Uint8Array) return value.length === 6 ? formatMac(value) : formatIp(value);
  if (value instanceof Set) return [...value].sort();
  if (Array.isArray(value)) return value.map(render);
  if (value !== null && typeof value === "object") {
    if ("rules" in value && "mode" in value) return describePortForwarding(value as PortForwarding);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, render(v)]));
  }
  return value;
}

/** Asserts that every field of `expected` has that value in `actual` (recursively). */
function assertSubset(actual: unknown, expected: unknown, path: string): void {
  if (expected !== null && typeof expected === "object" && !Array.isArray(expected)) {
    assert.ok(actual !== null && typeof actual === "object", path);
    for (const [k, v] of Object.entries(expected)) {
      assertSubset((actual as Record<string, unknown>)[k], v, `${path}.${k}`);
    }
  } else {
    assert.deepEqual(actual, expected, path);
  }
}

function parse(mode: Mode, args: string[]): Config {
  const r = parseCommandLine(mode, args);
  assert.equal(r.action, "run", `${mode} ${args.join(" ")}`);
  return (r as { config: Config }).config;
}

type Valid = [Mode, string[], Record<string, unknown>];

const VALID: Valid[] = [
  // Logging and process.
  ["passt", ["-d"], { debug: true, trace: false, quiet: false }],
  ["passt", ["--trace"], { debug: true, trace: true }],
  ["passt", ["-q"], { quiet: true, debug: false }],
  ["pasta", ["-d", "-q"], { quiet: true, debug: false }],
  ["pasta", ["-q", "--trace"], { quiet: false, debug: true, trace: true }],
  ["passt", ["--quiet", "--debug"], { quiet: false, debug: true }],
  ["passt", ["-e", "--stderr"], { given: ["stderr"] }],
  ["passt", ["-f"], { foreground: true }],
  ["pasta", ["--foreground"], { foreground: true }],
  ["passt", ["-l", "/tmp/a.log", "--log-file=/tmp/b.log"], { logFile: "/tmp/b.log" }],
  ["passt", ["--log-size", "40960"], { logSize: 40960 }],
  ["pasta", ["--log-size=2097152"], { logSize: 2097152 }],
  ["passt", ["--runas", "1000"], { runAs: { user: 1000, group: undefined } }],
  ["passt", ["--runas", "1000:100"], { runAs: { user: 1000, group: 100 } }],
  ["passt", ["--runas", "nobody"], { runAs: { user: "nobody", group: undefined } }],
  ["pasta", ["--runas", "nobody:nogroup"], { runAs: { user: "nobody", group: "nogroup" } }],
  ["passt", ["-p", "/tmp/x.pcap"], { pcapFile: "/tmp/x.pcap" }],
  ["pasta", ["--pcap", "a.pcap", "-p", "b.pcap"], { pcapFile: "b.pcap" }],
  ["passt", ["-P", "/run/passt.pid"], { pidFile: "/run/passt.pid" }],
  ["pasta", ["--pid=/tmp/p"], { pidFile: "/tmp/p" }],
  // MTU.
  ["passt", ["-m", "1500"], { mtu: 1500 }],
  ["passt", ["-m", "0"], { mtu: 0 }],
  ["pasta", ["--mtu", "68"], { mtu: 68 }],
  ["pasta", ["--mtu=65535"], { mtu: 65535 }],
  // Addresses.
  ["passt", ["-a", "192.0.2.5"], { ip4: { address: "192.0.2.5" }, ip6: { address: undefined } }],
  [
    "passt",
    ["-a", "192.0.2.5", "--address", "2001:db8::5"],
    { ip4: { address: "192.0.2.5" }, ip6: { address: "2001:db8::5" } },
  ],
  ["passt", ["-n", "24"], { ip4: { prefixLength: 24 } }],
  ["passt", ["--netmask", "255.255.240.0"], { ip4: { prefixLength: 20 } }],
  ["passt", ["-M", "9a:55:9a:55:9a:55"], { macAddr: "9a:55:9a:55:9a:55" }],
  ["pasta", ["--mac-addr", "2:0:0:0:0:1"], { macAddr: "02:00:00:00:00:01" }],
  [
    "passt",
    ["-g", "192.0.2.1", "-g", "fe80::1"],
    { ip4: { gateway: "192.0.2.1" }, ip6: { gateway: "fe80::1" } },
  ],
  ["pasta", ["--gateway", "192.0.2.1"], {
    ip4: { gateway: "192.0.2.1" },
    noCopyRoutes4: true,
    noCopyRoutes6: false,
  }],
  ["pasta", ["-a", "2001:db8::9"], { noCopyAddrs4: false, noCopyAddrs6: true }],
  ["passt", ["-i", "eth0"], { interfaceName: "eth0" }],
  ["pasta", ["--interface", "wlan0", "-i", "eth1"], { interfaceName: "eth1" }],
  [
    "passt",
    ["-o", "192.0.2.9", "--outbound", "2001:db8::9"],
    { ip4: { outbound: "192.0.2.9" }, ip6: { outbound: "2001:db8::9" } },
  ],
  [
    "passt",
    ["--outbound-if4", "eth0", "--outbound-if6", "eth1"],
    { ip4: { outboundIf: "eth0" }, ip6: { outboundIf: "eth1" } },
  ],
  // DNS.
  ["passt", [], { dns: undefined, search: undefined, dhcpDns: true, dhcpSearch: true }],
  ["pasta", [], { dns: undefined, search: undefined, dhcpDns: false, dhcpSearch: false }],
  ["passt", ["-D", "192.0.2.53", "--dns", "2001:db8::53", "-D", "127.0.0.1"], {
    dns: ["192.0.2.53", "2001:db8::53", "127.0.0.1"],
  }],
  ["passt", ["-D", "none"], { dns: [] }],
  ["passt", ["-D", "192.0.2.53", "-D", "none"], { dns: [] }],
  ["passt", ["-D", "none", "-D", "192.0.2.53"], { dns: ["192.0.2.53"] }],
  ["passt", ["-S", "example.com lab.example.org"], { search: ["example.com", "lab.example.org"] }],
  ["passt", ["--search", "none"], { search: [] }],
  ["passt", ["-S", "none."], { search: ["none."] }],
  ["passt", ["-S", "a.example", "-S", "b.example"], { search: ["b.example"] }],
  ["passt", ["--no-dhcp-dns", "--no-dhcp-search"], { dhcpDns: false, dhcpSearch: false }],
  ["pasta", ["--dhcp-dns", "--dhcp-search"], { dhcpDns: true, dhcpSearch: true }],
  [
    "pasta",
    ["--dns-forward", "169.254.1.1", "--dns-forward", "fd00::53"],
    { ip4: { dnsForward: "169.254.1.1" }, ip6: { dnsForward: "fd00::53" } },
  ],
  ["passt", ["--dns-forward", "192.0.2.53"], { ip4: { dnsForward: "192.0.2.53" } }],
  ["passt", ["-6"], { ipv6Only: true }],
  ["passt", ["--map-guest-addr", "192.0.2.100"], { ip4: { mapGuestAddr: "192.0.2.100" } }],
  ["pasta", ["-D", "192.0.2.53", "-S", "example.com", "-l", "/tmp/pasta.log"], {
    dns: ["192.0.2.53"],
    search: ["example.com"],
    logFile: "/tmp/pasta.log",
    dhcpDns: false,
  }],
  ["pasta", ["-o", "192.0.2.9", "--outbound-if4", "eth0", "--outbound-if6", "eth1"], {
    ip4: { outbound: "192.0.2.9", outboundIf: "eth0" },
    ip6: { outboundIf: "eth1" },
  }],
  ["pasta", ["--map-host-loopback", "192.0.2.2"], { ip4: { mapHostLoopback: "192.0.2.2" } }],
  [
    "pasta",
    ["--no-icmp", "--no-dhcp", "--no-ndp", "--no-dhcpv6", "--no-ra"],
    { noIcmp: true, noDhcp: true, noNdp: true, noDhcpv6: true, noRa: true, noTcp: false },
  ],
  // Protocol switches.
  [
    "passt",
    ["--no-tcp", "--no-udp", "--no-icmp", "--no-dhcp", "--no-ndp", "--no-dhcpv6", "--no-ra"],
    {
      noTcp: true,
      noUdp: true,
      noIcmp: true,
      noDhcp: true,
      noNdp: true,
      noDhcpv6: true,
      noRa: true,
    },
  ],
  ["pasta", ["--no-tcp"], {
    noTcp: true,
    tcpIn: "none",
    tcpOut: "none",
    udpIn: "auto",
    udpOut: "auto",
  }],
  ["pasta", ["--no-udp"], { noUdp: true, udpIn: "none", udpOut: "none", tcpIn: "auto" }],
  ["passt", ["--no-tcp", "-t", "none"], { noTcp: true, tcpIn: "none" }],
  // Address mapping.
  ["passt", [], { noMapGw: false, ip4: { mapHostLoopback: undefined, mapGuestAddr: undefined } }],
  ["passt", ["--no-map-gw"], { noMapGw: true }],
  [
    "passt",
    [
      "--map-host-loopback",
      "192.0.2.2",
      "--map-host-loopback",
      "fd00::2",
      "--map-host-loopback",
      "192.0.2.3",
    ],
    { noMapGw: false, ip4: { mapHostLoopback: "192.0.2.3" }, ip6: { mapHostLoopback: "fd00::2" } },
  ],
  [
    "passt",
    ["--map-host-loopback", "192.0.2.2", "--map-host-loopback", "none"],
    { noMapGw: true, ip4: { mapHostLoopback: null }, ip6: { mapHostLoopback: null } },
  ],
  [
    "pasta",
    ["--map-guest-addr", "169.254.1.2", "--map-guest-addr", "169.254.1.3"],
    { ip4: { mapGuestAddr: "169.254.1.3" }, ip6: { mapGuestAddr: undefined } },
  ],
  ["pasta", ["--map-guest-addr", "fd00::2", "--map-guest-addr", "none"], {
    ip6: { mapGuestAddr: undefined },
  }],
  // IP versions.
  ["passt", ["-4"], { ipv4Only: true, ipv6Only: false }],
  ["pasta", ["--ipv6-only"], { ipv4Only: false, ipv6Only: true }],
  ["pasta", ["-4", "--ipv4-only"], { ipv4Only: true }],
  // passt only.
  ["passt", [], {
    socketPath: undefined,
    fd: undefined,
    oneOff: false,
    tcpIn: "none",
    udpIn: "none",
  }],
  ["passt", ["-s", "/tmp/vm.sock"], { socketPath: "/tmp/vm.sock", fd: undefined }],
  ["passt", ["--fd", "5"], { fd: 5, oneOff: true, socketPath: undefined }],
  ["passt", ["-F", "0"], { fd: 0 }],
  ["passt", ["-F", "5", "--socket", "/tmp/s"], { fd: undefined, socketPath: "/tmp/s" }],
  ["passt", ["-s", "/tmp/s", "-F", "7"], { fd: 7, socketPath: undefined }],
  ["passt", ["-1"], { oneOff: true }],
  ["passt", ["--one-off"], { oneOff: true }],
  ["passt", [], { vhostUser: false }],
  ["passt", ["--vhost-user", "-s", "/tmp/vu.sock"], {
    vhostUser: true,
    socketPath: "/tmp/vu.sock",
  }],
  // Port forwarding.
  ["passt", ["-t", "22"], { tcpIn: "22", udpIn: "22" }],
  ["passt", ["-t", "2222:22", "-u", "53"], { tcpIn: "2222:22", udpIn: "53" }],
  ["passt", ["-t", "2222:22"], { tcpIn: "2222:22", udpIn: "2222" }],
  ["passt", ["--tcp-ports", "all"], { tcpIn: "1-49151", udpIn: "1-49151" }],
  ["pasta", ["-t", "all", "-U", "all"], { tcpIn: "1-49151", udpIn: "1-49151", udpOut: "1-49151" }],
  ["passt", ["-t", "22", "-t", "80"], { tcpIn: "22,80" }],
  ["passt", ["-u", "53"], { tcpIn: "none", udpIn: "53" }],
  ["passt", ["-t", "22", "--udp-ports", "none"], { tcpIn: "22", udpIn: "none" }],
  ["passt", ["-t", "none"], { tcpIn: "none", udpIn: "none" }],
  ["pasta", [], { tcpIn: "auto", udpIn: "auto", tcpOut: "auto", udpOut: "auto" }],
  ["pasta", ["-t", "none"], { tcpIn: "none", udpIn: "none", tcpOut: "auto" }],
  ["pasta", ["-t", "auto", "-u", "none"], { tcpIn: "auto", udpIn: "none" }],
  ["pasta", ["-t", "8080:80"], { tcpIn: "8080:80", udpIn: "8080", tcpOut: "auto", udpOut: "auto" }],
  ["pasta", ["-T", "5432", "-U", "none"], { tcpOut: "5432", udpOut: "none", tcpIn: "auto" }],
  ["pasta", ["--tcp-ns", "5432:5433"], { tcpOut: "5432:5433", udpOut: "5432" }],
  ["pasta", ["--udp-ns=53"], { tcpOut: "auto", udpOut: "53" }],
  ["pasta", ["-t", "none", "-u", "none", "-T", "none", "-U", "none"], {
    tcpIn: "none",
    udpIn: "none",
    tcpOut: "none",
    udpOut: "none",
  }],
  // pasta's target.
  ["pasta", [], { target: { kind: "spawn", command: [] }, netnsOnly: false, userns: undefined }],
  ["pasta", ["sh", "-c", "echo -d"], {
    target: { kind: "spawn", command: ["sh", "-c", "echo -d"] },
  }],
  ["pasta", ["-d", "--", "ip", "-4", "a"], {
    debug: true,
    target: { kind: "spawn", command: ["ip", "-4", "a"] },
  }],
  ["pasta", ["--", "--weird"], { target: { kind: "spawn", command: ["--weird"] } }],
  ["pasta", ["1234"], { target: { kind: "pid", pid: 1234 }, netnsOnly: false }],
  ["pasta", ["1234", "x"], { target: { kind: "spawn", command: ["1234", "x"] } }],
  ["pasta", ["--userns", "/proc/1/ns/user", "1"], {
    userns: "/proc/1/ns/user",
    target: { kind: "pid", pid: 1 },
  }],
  ["pasta", ["--netns-only", "4321"], { netnsOnly: true, target: { kind: "pid", pid: 4321 } }],
  ["pasta", ["--netns", "blue"], {
    target: { kind: "netns", path: "/run/netns/blue" },
    netnsOnly: true,
  }],
  ["pasta", ["--netns", "./ns"], { target: { kind: "netns", path: "./ns" } }],
  ["pasta", ["--netns=/proc/7/ns/net", "--userns", "/proc/7/ns/user"], {
    target: { kind: "netns", path: "/proc/7/ns/net" },
    userns: "/proc/7/ns/user",
    netnsOnly: false,
  }],
  ["pasta", ["--no-netns-quit", "--config-net"], { noNetnsQuit: true, configNet: true }],
  ["pasta", ["--host-lo-to-ns-lo"], { hostLoToNsLo: true }],
  ["pasta", [], {
    noNetnsQuit: false,
    configNet: false,
    nsIfname: undefined,
    nsMacAddr: undefined,
  }],
  ["pasta", ["--no-copy-routes", "--no-copy-addrs"], {
    noCopyRoutes4: true,
    noCopyRoutes6: true,
    noCopyAddrs4: true,
    noCopyAddrs6: true,
  }],
  ["pasta", ["-I", "tap0"], { nsIfname: "tap0" }],
  ["pasta", ["--ns-ifname=eth7"], { nsIfname: "eth7" }],
  ["pasta", ["--ns-mac-addr", "02:00:00:00:00:07"], { nsMacAddr: "02:00:00:00:00:07" }],
  // Options of the 2026 manual.
  ["passt", ["-a", "192.0.2.5/20"], { ip4: { address: "192.0.2.5", prefixLength: 20 } }],
  ["pasta", ["-a", "2001:db8::5/56", "-a", "10.0.0.2/8"], {
    ip4: { address: "10.0.0.2", prefixLength: 8 },
    ip6: { address: "2001:db8::5" },
  }],
  ["passt", ["-a", "2001:db8::5/64", "-n", "16"], { ip4: { prefixLength: 16 } }],
  ["passt", ["-H", "guest1", "--fqdn", "guest1.example.org."], {
    hostname: "guest1",
    fqdn: "guest1.example.org",
  }],
  ["pasta", ["--hostname", "a.example", "-H", "b"], { hostname: "b", fqdn: undefined }],
  ["passt", [], { hostname: undefined, freebind: false, chrootFallback: false }],
  ["pasta", ["--dns-forward", "169.254.1.1", "--dns-host", "127.0.0.53", "--dns-host", "::1"], {
    ip4: { dnsForward: "169.254.1.1", dnsHost: "127.0.0.53" },
    ip6: { dnsHost: "::1" },
  }],
  ["passt", ["--dns-host", "192.0.2.53"], { ip4: { dnsHost: "192.0.2.53" } }],
  ["passt", ["--freebind", "--chroot-fallback"], { freebind: true, chrootFallback: true }],
  ["passt", ["--stats", "5", "-f"], { stats: 5, foreground: true }],
  ["pasta", ["-f", "--stats=1"], { stats: 1 }],
  ["passt", ["--stats", "0"], { stats: 0 }],
  ["pasta", ["--freebind", "--chroot-fallback", "--fqdn", "ns.example"], {
    freebind: true,
    chrootFallback: true,
    fqdn: "ns.example",
  }],
  ["passt", ["--socket-path", "/tmp/vm.sock"], { socketPath: "/tmp/vm.sock" }],
  ["pasta", ["--no-splice"], { noSplice: true, spliceOnly: false, hostLoToNsLo: false }],
  ["pasta", ["--splice-only"], {
    spliceOnly: true,
    noSplice: false,
    hostLoToNsLo: true,
    noIcmp: true,
  }],
  ["passt", ["--vhost-user", "--print-capabilities", "--repair-path", "none"], {
    given: ["print-capabilities", "repair-path", "vhost-user"],
  }],
  ["passt", ["--migrate-exit", "--migrate-no-linger"], {
    given: ["migrate-exit", "migrate-no-linger"],
  }],
  // Defaults.
  ["passt", [], {
    mode: "passt",
    debug: false,
    quiet: false,
    foreground: false,
    logFile: undefined,
    logSize: 1048576,
    mtu: 65520,
    runAs: undefined,
    given: [],
  }],
  // What Podman, rootlesskit and libvirt pass.
  ["pasta", [
    "--config-net",
    "--dns-forward",
    "169.254.1.1",
    "-t",
    "none",
    "-u",
    "none",
    "-T",
    "none",
    "-U",
    "none",
    "--no-map-gw",
    "--quiet",
    "--netns",
    "/run/user/1000/netns/netns-1",
    "--map-guest-addr",
    "169.254.1.2",
  ], {
    configNet: true,
    quiet: true,
    noMapGw: true,
    target: { kind: "netns", path: "/run/user/1000/netns/netns-1" },
    ip4: { dnsForward: "169.254.1.1", mapGuestAddr: "169.254.1.2" },
  }],
  ["pasta", [
    "--stderr",
    "--ns-ifname=tap0",
    "--mtu=65520",
    "--config-net",
    "--address=10.0.2.100",
    "--netmask=24",
    "--gateway=10.0.2.2",
    "--dns-forward=10.0.2.3",
    "--ipv4-only",
    "--netns-only",
    "--pid=/tmp/pasta.pid",
    "1234",
  ], {
    nsIfname: "tap0",
    ip4: { address: "10.0.2.100", prefixLength: 24, gateway: "10.0.2.2", dnsForward: "10.0.2.3" },
    ipv4Only: true,
    netnsOnly: true,
    target: { kind: "pid", pid: 1234 },
  }],
  ["passt", [
    "--one-off",
    "--socket",
    "/run/libvirt/qemu/passt/1-vm-net0.socket",
    "--pid",
    "/run/libvirt/qemu/passt/1-vm-net0-passt.pid",
    "--mac-addr",
    "52:54:00:1b:2c:3d",
    "--mtu",
    "1500",
    "--interface",
    "eth0",
    "--address",
    "192.168.122.50",
    "--netmask",
    "24",
    "--gateway",
    "192.168.122.1",
    "--tcp-ports",
    "2222:22",
    "--udp-ports",
    "5353:53",
    "--log-file",
    "/var/log/passt.log",
  ], {
    oneOff: true,
    socketPath: "/run/libvirt/qemu/passt/1-vm-net0.socket",
    macAddr: "52:54:00:1b:2c:3d",
    tcpIn: "2222:22",
    udpIn: "5353:53",
    logFile: "/var/log/passt.log",
  }],
];

Deno.test("valid command lines give the expected configuration", () => {
  for (const [mode, args, expected] of VALID) {
    assertSubset(render(parse(mode, args)), expected, `${mode} ${args.join(" ")}`);
  }
});

Deno.test("the valid table uses every option of each mode (help and version aside)", () => {
  for (const mode of ["passt", "pasta"] as const) {
    const seen = new Set<string>();
    for (const [m, args] of VALID) {
      if (m === mode) { for (const o of parse(m, args).given) seen.add(o); }
    }
    const expected = MANUAL_OPTIONS[mode].filter((o) => o !== "help" && o !== "version");
    assert.deepEqual([...seen].sort(), expected.sort(), mode);
  }
});

Deno.test("given records the long names of the options present", () => {
  const c = parse("pasta", ["-dq", "--trace", "-t22", "--config-net", "ls"]);
  assert.deepEqual([...c.given].sort(), ["config-net", "debug", "quiet", "tcp-ports", "trace"]);
});

Deno.test("help and version are reported, in command line order", () => {
  const action = (mode: Mode, args: string[]) =>
    (parseCommandLine(mode, args) as ParseResult).action;
  assert.equal(action("passt", ["-h"]), "help");
  assert.equal(action("pasta", ["--help"]), "help");
  assert.equal(action("pasta", ["--he"]), "help");
  assert.equal(action("passt", ["--version"]), "version");
  assert.equal(action("pasta", ["-d", "--vers"]), "version");
  assert.throws(() => parseCommandLine("pasta", ["--print-capabilities"]), /passt mode only/);
  assert.equal(action("passt", ["--help", "--bogus"]), "help");
  assert.equal(action("passt", ["-h", "-m", "1"]), "help");
  assert.equal(action("pasta", ["cmd", "--help"]), "run"); // the command's own option
  assert.throws(() => parseCommandLine("passt", ["--bogus", "--help"]), /unrecognized option/);
  assert.throws(() => parseCommandLine("passt", ["-m", "1", "--help"]), /Invalid MTU/);
});

Deno.test("the configuration is frozen all the way down", () => {
  const c = parse("pasta", ["-a", "10.0.0.2", "-D", "192.0.2.53", "-t", "22", "cmd"]);
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.ip4) && Object.isFrozen(c.ip6));
  assert.ok(Object.isFrozen(c.dns) && Object.isFrozen(c.tcpIn.rules));
  assert.ok(c.mode === "pasta" && Object.isFrozen(c.target));
  assert.throws(() => {
    (c as { mtu: number }).mtu = 1;
  }, TypeError);
});

type Invalid = [Mode, string[], string, boolean?];

const INVALID: Invalid[] = [
  // getopt's own messages: usage follows.
  ["passt", ["--foo"], "unrecognized option '--foo'", true],
  ["pasta", ["--map-guest"], "option '--map-guest-addr' requires an argument", true],
  ["passt", ["-z"], "invalid option -- 'z'", true],
  ["passt", ["-t"], "option requires an argument -- 't'", true],
  ["pasta", ["--tcp-ports"], "option '--tcp-ports' requires an argument", true],
  ["pasta", ["--debug=yes"], "option '--debug' doesn't allow an argument", true],
  [
    "passt",
    ["--tcp", "22"],
    "option '--tcp' is ambiguous; possibilities: '--tcp-ports' '--tcp-ns'",
    true,
  ],
  [
    "pasta",
    ["--dhcp"],
    "option '--dhcp' is ambiguous; possibilities: '--dhcp-dns' '--dhcp-search'",
    true,
  ],
  ["passt", ["--map-gateway"], "unrecognized option '--map-gateway'", true],
  // Short letters of the other mode are not options at all...
  ["passt", ["-T", "22"], "invalid option -- 'T'", true],
  ["passt", ["-U", "22"], "invalid option -- 'U'", true],
  ["passt", ["-I", "tap0"], "invalid option -- 'I'", true],
  ["pasta", ["-s", "/tmp/s"], "invalid option -- 's'", true],
  ["pasta", ["-F", "5"], "invalid option -- 'F'", true],
  ["pasta", ["-1"], "invalid option -- '1'", true],
  // ...while long names are recognised and refused.
  ["passt", ["--tcp-ns", "22"], "--tcp-ns is for pasta mode only"],
  ["passt", ["--udp-ns", "22"], "--udp-ns is for pasta mode only"],
  ["passt", ["--ns-ifname", "tap0"], "--ns-ifname is for pasta mode only"],
  ["passt", ["--netns", "x"], "--netns is for pasta mode only"],
  ["passt", ["--netns-o"], "--netns-only is for pasta mode only"],
  ["passt", ["--userns", "/x"], "--userns is for pasta mode only"],
  ["passt", ["--no-netns-quit"], "--no-netns-quit is for pasta mode only"],
  ["passt", ["--host-lo-to-ns-lo"], "--host-lo-to-ns-lo is for pasta mode only"],
  ["passt", ["--config-net"], "--config-net is for pasta mode only"],
  ["passt", ["--no-copy-routes"], "--no-copy-routes is for pasta mode only"],
  ["passt", ["--no-copy-addrs"], "--no-copy-addrs is for pasta mode only"],
  ["passt", ["--ns-mac-addr", "02:00:00:00:00:01"], "--ns-mac-addr is for pasta mode only"],
  ["passt", ["--dhcp-dns"], "--dhcp-dns is for pasta mode only"],
  ["passt", ["--dhcp-search"], "--dhcp-search is for pasta mode only"],
  ["pasta", ["--no-dhcp-dns"], "--no-dhcp-dns is for passt mode only"],
  ["pasta", ["--no-dhcp-search"], "--no-dhcp-search is for passt mode only"],
  ["pasta", ["--socket", "/tmp/s"], "--socket is for passt mode only"],
  ["pasta", ["--fd", "5"], "--fd is for passt mode only"],
  ["pasta", ["--one-off"], "--one-off is for passt mode only"],
  ["passt", ["--no-splice"], "--no-splice is for pasta mode only"],
  ["passt", ["--splice-only"], "--splice-only is for pasta mode only"],
  ["pasta", ["--socket-path", "/tmp/s"], "--socket-path is for passt mode only"],
  ["pasta", ["--vhost-user"], "--vhost-user is for passt mode only"],
  ["pasta", ["--migrate-exit"], "--migrate-exit is for passt mode only"],
  // Options of the 2026 manual.
  ["pasta", ["--splice-only", "--no-splice"], "--splice-only is incompatible with --no-splice"],
  [
    "pasta",
    ["--host-lo-to-ns-lo", "--no-splice"],
    "--host-lo-to-ns-lo is incompatible with --no-splice",
  ],
  [
    "passt",
    ["-n", "24", "-a", "192.0.2.5/24"],
    "Options --netmask and --address with a prefix length are mutually exclusive",
  ],
  [
    "passt",
    ["-a", "192.0.2.5/24", "-n", "24"],
    "Options --netmask and --address with a prefix length are mutually exclusive",
  ],
  [
    "passt",
    ["-a", "192.0.2.5/33"],
    "Invalid address for --address: 192.0.2.5/33 (prefix length 0 to 32)",
  ],
  [
    "passt",
    ["-a", "2001:db8::1/129"],
    "Invalid address for --address: 2001:db8::1/129 (prefix length 0 to 128)",
  ],
  [
    "passt",
    ["-a", "192.0.2.5/"],
    "Invalid address for --address: 192.0.2.5/ (prefix length 0 to 32)",
  ],
  ["passt", ["-a", "127.0.0.1/8"], "Invalid address for --address: 127.0.0.1 (loopback address)"],
  ["passt", ["-H", ""], "Invalid hostname for --hostname: '' (empty)"],
  [
    "passt",
    ["-H", "a b"],
    "Invalid hostname for --hostname: a b (labels of letters, digits, '-' and '_' only)",
  ],
  [
    "passt",
    ["--fqdn", "a..b"],
    "Invalid FQDN for --fqdn: a..b (labels of letters, digits, '-' and '_' only)",
  ],
  [
    "passt",
    ["--fqdn", `${"a".repeat(60)}.`.repeat(5)],
    `Invalid FQDN for --fqdn: ${`${"a".repeat(60)}.`.repeat(5)} (longer than 253 bytes)`,
  ],
  [
    "passt",
    ["--stats", "1"],
    "Can't display statistics if not running in foreground: --stats needs -f",
  ],
  ["passt", ["-f", "--stats", "x"], "Invalid delay for --stats: x (seconds, 0 or more)"],
  [
    "passt",
    ["--dns-host", "0.0.0.0"],
    "Invalid DNS host address for --dns-host: 0.0.0.0 (unspecified address)",
  ],
  ["passt", ["--dns-host", "nowhere"], "Invalid DNS host address for --dns-host: nowhere"],
  [
    "passt",
    ["--dns-host", "192.0.2.1", "--dns-host", "192.0.2.2"],
    "Invalid DNS host address for --dns-host: 192.0.2.2 (IPv4 already given, one per IP version)",
  ],
  // Operands.
  ["passt", ["foo"], "Extra non-option argument: foo"],
  ["passt", ["-d", "--", "-f"], "Extra non-option argument: -f"],
  ["pasta", ["--netns", "x", "sh"], "Both --netns and PID or command given: sh"],
  ["pasta", ["--netns", "x", "1234"], "Both --netns and PID or command given: 1234"],
  ["pasta", ["--userns", "/u"], "--userns requires --netns or PID: --userns /u"],
  ["pasta", ["--userns", "/u", "sh"], "--userns requires --netns or PID: --userns /u"],
  [
    "pasta",
    ["--userns", "/u", "--netns-only", "--netns", "x"],
    "Options --userns and --netns-only are mutually exclusive",
  ],
  ["pasta", ["0"], "Invalid PID: 0"],
  ["pasta", ["99999999999"], "Invalid PID: 99999999999"],
  ["pasta", ["--netns", ".."], "Invalid namespace for --netns: .."],
  ["pasta", ["--netns", ""], "Invalid path for --netns:  (empty)"],
  // Values.
  ["passt", ["-m", "50"], "Invalid MTU for --mtu: 50 (0, or 68 to 65535)"],
  ["passt", ["-m", "67"], "Invalid MTU for --mtu: 67 (0, or 68 to 65535)"],
  ["passt", ["-m", "65536"], "Invalid MTU for --mtu: 65536 (0, or 68 to 65535)"],
  ["pasta", ["--mtu", "0x100"], "Invalid MTU for --mtu: 0x100 (0, or 68 to 65535)"],
  ["pasta", ["--mtu="], "Invalid MTU for --mtu:  (0, or 68 to 65535)"],
  ["passt", ["-a", "1.2.3"], "Invalid address for --address: 1.2.3"],
  ["passt", ["-a", "0.0.0.0"], "Invalid address for --address: 0.0.0.0 (unspecified address)"],
  ["passt", ["-a", "::1"], "Invalid address for --address: ::1 (loopback address)"],
  ["passt", ["-a", "127.0.0.1"], "Invalid address for --address: 127.0.0.1 (loopback address)"],
  ["passt", ["-a", "224.0.0.1"], "Invalid address for --address: 224.0.0.1 (multicast address)"],
  [
    "passt",
    ["-a", "255.255.255.255"],
    "Invalid address for --address: 255.255.255.255 (broadcast address)",
  ],
  [
    "passt",
    ["-a", "::ffff:10.0.0.1"],
    "Invalid address for --address: ::ffff:10.0.0.1 (IPv4 address in IPv6 form)",
  ],
  ["passt", ["-a", "fe80::1%eth0"], "Invalid address for --address: fe80::1%eth0"],
  [
    "passt",
    ["-a", "10.0.0.1", "-a", "10.0.0.2"],
    "Invalid address for --address: 10.0.0.2 (IPv4 already given, one per IP version)",
  ],
  [
    "pasta",
    ["-a", "2001:db8::1", "-a", "10.0.0.1", "-a", "2001:db8::2"],
    "Invalid address for --address: 2001:db8::2 (IPv6 already given, one per IP version)",
  ],
  ["passt", ["-n", "33"], "Invalid netmask for --netmask: 33"],
  ["passt", ["-n", "255.0.255.0"], "Invalid netmask for --netmask: 255.0.255.0"],
  ["passt", ["-M", "zz"], "Invalid MAC address for --mac-addr: zz"],
  [
    "passt",
    ["-M", "ff:ff:ff:ff:ff:ff"],
    "Invalid MAC address for --mac-addr: ff:ff:ff:ff:ff:ff (group address)",
  ],
  ["pasta", ["--ns-mac-addr", "1:2:3"], "Invalid MAC address for --ns-mac-addr: 1:2:3"],
  ["passt", ["-g", "::"], "Invalid gateway address for --gateway: :: (unspecified address)"],
  [
    "passt",
    ["-g", "127.0.0.1"],
    "Invalid gateway address for --gateway: 127.0.0.1 (loopback address)",
  ],
  [
    "passt",
    ["-g", "fe80::1", "-g", "fe80::2"],
    "Invalid gateway address for --gateway: fe80::2 (IPv6 already given, one per IP version)",
  ],
  ["passt", ["-i", "eth0/x"], "Invalid interface name for --interface: eth0/x"],
  [
    "passt",
    ["-i", "averyveryverylongname"],
    "Invalid interface name for --interface: averyveryverylongname",
  ],
  ["passt", ["--outbound-if4", ""], "Invalid interface name for --outbound-if4: "],
  ["passt", ["--outbound-if6", "a b"], "Invalid interface name for --outbound-if6: a b"],
  ["pasta", ["-I", ""], "Invalid interface name for --ns-ifname: "],
  ["passt", ["-o", "x"], "Invalid outbound address for --outbound: x"],
  [
    "passt",
    ["-o", "0.0.0.0"],
    "Invalid outbound address for --outbound: 0.0.0.0 (unspecified address)",
  ],
  [
    "passt",
    ["-o", "192.0.2.1", "-o", "192.0.2.2"],
    "Invalid outbound address for --outbound: 192.0.2.2 (IPv4 already given, one per IP version)",
  ],
  ["passt", ["-D", "x"], "Invalid DNS address for --dns: x"],
  ["passt", ["-D", "0.0.0.0"], "Invalid DNS address for --dns: 0.0.0.0 (unspecified address)"],
  [
    "passt",
    ["--dns-forward", "127.0.0.1"],
    "Invalid DNS forwarding address for --dns-forward: 127.0.0.1 (loopback address)",
  ],
  [
    "pasta",
    ["--dns-forward", "169.254.1.1", "--dns-forward", "169.254.1.2"],
    "Invalid DNS forwarding address for --dns-forward: 169.254.1.2 (IPv4 already given, one per IP version)",
  ],
  ["passt", ["-S", ""], "Invalid search list for --search: '' (empty)"],
  ["passt", ["-S", "a..b"], "Invalid search list for --search: a..b (bad domain name 'a..b')"],
  [
    "passt",
    ["-S", "ok.example bad!name"],
    "Invalid search list for --search: ok.example bad!name (bad domain name 'bad!name')",
  ],
  [
    "passt",
    ["--map-host-loopback", "::1"],
    "Invalid address to map for --map-host-loopback: ::1 (loopback address)",
  ],
  [
    "passt",
    ["--map-host-loopback", "NONE"],
    "Invalid address to map for --map-host-loopback: NONE",
  ],
  ["pasta", ["--map-guest-addr", "x"], "Invalid address to map for --map-guest-addr: x"],
  [
    "pasta",
    ["--map-guest-addr", "0.0.0.0"],
    "Invalid address to map for --map-guest-addr: 0.0.0.0 (unspecified address)",
  ],
  ["passt", ["-4", "-6"], "Options --ipv4-only and --ipv6-only are mutually exclusive"],
  ["pasta", ["--ipv6-only", "-4"], "Options --ipv4-only and --ipv6-only are mutually exclusive"],
  ["passt", ["--log-size", "5"], "Invalid size for --log-size: 5 (must be at least 40960 bytes)"],
  ["passt", ["--log-size", "1M"], "Invalid size for --log-size: 1M"],
  ["passt", ["--runas", ""], "Invalid user for --runas: "],
  ["passt", ["--runas", "a:"], "Invalid user for --runas: a:"],
  ["passt", ["--runas", ":100"], "Invalid user for --runas: :100"],
  ["passt", ["--runas", "a:b:c"], "Invalid user for --runas: a:b:c"],
  ["passt", ["--runas", "4294967295"], "Invalid user for --runas: 4294967295 (id out of range)"],
  ["passt", ["-F", "1"], "Invalid file descriptor for --fd: 1 (0, or 3 and above)"],
  ["passt", ["-F", "2"], "Invalid file descriptor for --fd: 2 (0, or 3 and above)"],
  ["passt", ["-F", "x"], "Invalid file descriptor for --fd: x (0, or 3 and above)"],
  [
    "passt",
    ["-F", "2147483648"],
    "Invalid file descriptor for --fd: 2147483648 (0, or 3 and above)",
  ],
  [
    "passt",
    ["-s", "/" + "x".repeat(107)],
    `Invalid path for --socket: /${"x".repeat(107)} (longer than 107 bytes)`,
  ],
  ["passt", ["-P", ""], "Invalid path for --pid:  (empty)"],
  ["passt", ["-p", ""], "Invalid path for --pcap:  (empty)"],
  ["passt", ["-l", ""], "Invalid path for --log-file:  (empty)"],
  // Ports, through the whole parser.
  ["passt", ["-t", "auto"], "'auto' port forwarding is only allowed for pasta: --tcp-ports auto"],
  ["passt", ["-u", "auto"], "'auto' port forwarding is only allowed for pasta: --udp-ports auto"],
  // (pasta -t all and -U all: allowed since the 2026 manual, see the valid table)
  ["passt", ["-t", "0"], "Invalid port specifier for --tcp-ports: 0 (port 0 out of range 1-65535)"],
  [
    "passt",
    ["-t", "70000"],
    "Invalid port specifier for --tcp-ports: 70000 (port 70000 out of range 1-65535)",
  ],
  [
    "pasta",
    ["-u", "22-20"],
    "Invalid port specifier for --udp-ports: 22-20 (range '22-20' is reversed)",
  ],
  [
    "passt",
    ["-t", "22", "-t", "22:23"],
    "Overlapping port specifier for --tcp-ports: 22:23 (port 22 given twice)",
  ],
  [
    "passt",
    ["-t", "none", "-t", "22"],
    "Specific ports cannot be combined with all, none or auto: --tcp-ports 22",
  ],
  [
    "pasta",
    ["-T", "22", "-T", "none"],
    "Port forwarding mode 'none' conflicts with previous --tcp-ns: none",
  ],
  [
    "pasta",
    ["-T", "%lo/22"],
    "Invalid port specifier for --tcp-ns: %lo/22 (no bind address or interface allowed for --tcp-ns)",
  ],
  [
    "passt",
    ["--no-tcp", "-t", "22"],
    "TCP port forwarding requested with --tcp-ports but --no-tcp given",
  ],
  [
    "passt",
    ["-t", "22", "--no-tcp"],
    "TCP port forwarding requested with --tcp-ports but --no-tcp given",
  ],
  [
    "pasta",
    ["--no-tcp", "-T", "auto"],
    "TCP port forwarding requested with --tcp-ns but --no-tcp given",
  ],
  [
    "passt",
    ["--no-udp", "-u", "53"],
    "UDP port forwarding requested with --udp-ports but --no-udp given",
  ],
  [
    "pasta",
    ["--no-udp", "-U", "53"],
    "UDP port forwarding requested with --udp-ns but --no-udp given",
  ],
];

Deno.test("invalid command lines give one exact message", () => {
  for (const [mode, args, message, showUsage = false] of INVALID) {
    assert.throws(() => parseCommandLine(mode, args), (e: unknown) => {
      assert.ok(e instanceof ConfigError, `${mode} ${args.join(" ")}: ${e}`);
      assert.equal(e.message, message, `${mode} ${args.join(" ")}`);
      assert.equal(e.showUsage, showUsage, `${mode} ${args.join(" ")}: showUsage`);
      return true;
    });
  }
});

Deno.test("the first mistake on the command line is the one reported", () => {
  assert.throws(() => parseCommandLine("passt", ["-m", "1", "-a", "x"]), /--mtu/);
  assert.throws(() => parseCommandLine("passt", ["-a", "x", "-m", "1"]), /--address/);
  assert.throws(() => parseCommandLine("passt", ["-a", "x", "--bogus"]), /--address/);
});
